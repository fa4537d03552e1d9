"""Where each item lives in mirror's one table (see the package docstring), and the limits writes keep to."""

from __future__ import annotations

from typing import Any

from mirror.domain.addresses import ModuleAddress


INDEX = "GSI1"


#: events per partition: a partition holds serials [n * EVENT_BUCKET, (n + 1) * EVENT_BUCKET)
EVENT_BUCKET = 1000


#: DynamoDB's limits on one TransactWriteItems: 100 actions and 4 MB (we stay well under)
MAX_TRANSACTION_ITEMS = 100


MAX_TRANSACTION_BYTES = 3_000_000


#: how often a write that lost a race (another writer took the serial, a condition moved) is tried
COMMIT_ATTEMPTS = 50


#: claims tried per round, from each of the queued and expired-lease lists
CLAIM_CANDIDATES = 10


#: concurrent requests of one ``add_downloads``
DOWNLOAD_WRITERS = 16


_COUNTER_EVENTS = ("COUNTER#EVENTS", "COUNTER")


def _ns_pk(namespace: str) -> str:
    return f"NAMESPACE#{namespace.lower()}"


def _namespace_key(namespace: str) -> tuple[str, str]:
    return (_ns_pk(namespace), _ns_pk(namespace))


def _module_key(address: ModuleAddress) -> tuple[str, str]:
    return (_ns_pk(address.namespace), f"MODULE#{address.name.lower()}#PROVIDER#{address.provider}")


def _version_prefix(address: ModuleAddress) -> str:
    return f"NAME#{address.name.lower()}#PROVIDER#{address.provider}#VERSION#"


def _version_sk(name: str, provider: str, version: str) -> str:
    return f"NAME#{name.lower()}#PROVIDER#{provider}#VERSION#{version}"


def _version_key(address: ModuleAddress, version: str) -> tuple[str, str]:
    return (_ns_pk(address.namespace), _version_sk(address.name, address.provider, version))


def _browse_key(namespace: str, name: str, provider: str) -> str:
    # '#' sorts before every character a name may hold, so this orders like (ns, name, provider)
    return f"{namespace.lower()}#{name.lower()}#{provider}"


def _blob_key(blob_key: str) -> tuple[str, str]:
    return (f"BLOB#{blob_key}", "BLOB")


def _lease_held(owner: str | None) -> tuple[str, dict[str, Any]]:
    """The condition (to append) and values that a write applies only while ``owner`` holds the
    item's lease; nothing when no owner is given."""
    if owner is None:
        return "", {}
    return " AND #lease_owner = :lease_owner", {":lease_owner": owner}


def _consumer_key(name: str) -> tuple[str, str]:
    return ("CONSUMERS", f"CONSUMER#{name}")


def _installation_key(installation_id: int) -> tuple[str, str]:
    return ("INSTALLATIONS", f"INSTALLATION#{installation_id:020d}")


def _job_pk(job_id: int) -> str:
    return f"JOB#{job_id:020d}"


def _serial_sk(serial: int) -> str:
    return f"{serial:020d}"


def _time_key(moment: float) -> str:
    return f"{max(0.0, moment):017.6f}"


def _job_index(state: str, job_id: int, moment: float | None) -> dict[str, str]:
    """GSI1 keys of a job: the queue by due time, running jobs by lease end, the rest by id."""
    if state in ("queued", "running"):
        assert moment is not None
        return {"GSI1PK": f"JOBS#{state}", "GSI1SK": f"{_time_key(moment)}#{job_id:020d}"}
    return {"GSI1PK": f"JOBS#{state}", "GSI1SK": f"{job_id:020d}"}


def _repository_pointer(repository_id: int, module_key: tuple[str, str]) -> dict[str, Any]:
    return {
        "PK": f"REPOSITORY#{repository_id}",
        "SK": "REPOSITORY",
        "module_pk": module_key[0],
        "module_sk": module_key[1],
    }


def _provider_pk(hostname: str, namespace: str, type_: str) -> str:
    """A provider's partition: its item and its versions' (hostname "" for this registry's own)."""
    return f"PROVIDER#{hostname.lower()}#{namespace.lower()}#{type_}"


def _provider_browse_key(hostname: str, namespace: str, type_: str) -> str:
    # '#' sorts before every character a hostname, namespace or type may hold: (host, ns, type) order
    return f"{hostname.lower()}#{namespace.lower()}#{type_}"


def _provider_version_sk(version: str) -> str:
    return f"VERSION#{version}"


def _provider_key_key(namespace: str, key_id: str) -> tuple[str, str]:
    return (f"PROVIDERKEYS#{namespace.lower()}", f"KEY#{key_id.upper()}")
