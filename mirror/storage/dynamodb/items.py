"""Items built from mirror's records and records read back from items."""

from __future__ import annotations

import json
import random
import zlib
from typing import Any

from mirror.domain.addresses import ModuleAddress
from mirror.domain import provenance
from mirror.domain.provenance import Owner
from mirror.domain.models import (
    Consumer,
    Installation,
    Job,
    ModuleRecord,
    ModuleVersion,
    TokenRecord,
    WebhookSubscription,
)
from mirror.domain.events import address_data
from mirror.domain.lifecycle import Deprecation
from mirror.domain.publishing import latest_live
from mirror.domain.readme import first_paragraph
from mirror.storage.protocols import ModuleSummary
from mirror.storage.dynamodb.keys import (
    EVENT_BUCKET,
    MAX_TRANSACTION_ITEMS,
    MAX_TRANSACTION_BYTES,
    _module_key,
    _version_sk,
    _version_key,
    _browse_key,
    _serial_sk,
)


#: texts (README, analysis) longer than this are stored zlib-compressed, so that a version item
#: stays under DynamoDB's 400 KB item limit for all but extreme READMEs
INLINE_TEXT_BYTES = 16 * 1024


_VERSION_FIELDS = (
    "namespace",
    "name",
    "provider",
    "version",
    "raw_version",
    "sha256",
    "size",
    "blob_key",
    "published_at",
    "readme",
    "readme_z",
    "source",
    "commit_sha",
    "revoked_at",
    "deprecation",
)


#: the protocol's versions list: no README, no deprecation (as on SQLite)
_VERSION_FIELDS_NO_README = tuple(f for f in _VERSION_FIELDS if f not in ("readme", "readme_z", "deprecation"))


#: what the latest-version summary is computed from (no README, no analysis)
_BRIEF_FIELDS = (
    "version",
    "raw_version",
    "sha256",
    "size",
    "blob_key",
    "published_at",
    "source",
    "commit_sha",
    "revoked_at",
    "description",
)


_LATEST_FIELDS = ("version", "raw_version", "sha256", "size", "blob_key", "published_at", "source", "commit_sha")


_address_data = address_data


def _address_of(item: dict[str, Any]) -> ModuleAddress:
    return ModuleAddress(item["namespace"], item["name"], item["provider"])


def _new_module_item(address: ModuleAddress, now: str, owner: Owner) -> dict[str, Any]:
    pk, sk = _module_key(address)
    return {
        "owner": str(owner),
        "repository_id": owner.repository_id,
        "PK": pk,
        "SK": sk,
        "kind": "module",
        "namespace": address.namespace,
        "name": address.name,
        "provider": address.provider,
        "created_at": now,
        "downloads": 0,
        "description": "",
        "rev": 0,  # bumped by writes outside the event counter (source, downloads)
        "vrev": 0,  # bumped by every change of the module's versions
    }


def _version_item(display: ModuleAddress, mv: ModuleVersion, analysis: dict[str, Any] | None) -> dict[str, Any]:
    pk, sk = _version_key(display, mv.version)
    item = {
        "PK": pk,
        "SK": sk,
        "kind": "version",
        "namespace": display.namespace,
        "name": display.name,
        "provider": display.provider,
        "version": mv.version,
        "raw_version": mv.raw_version,
        "sha256": mv.sha256,
        "size": mv.size,
        "blob_key": mv.blob_key,
        "published_at": mv.published_at,
        "source": mv.source,
        "commit_sha": mv.commit_sha,
        "description": first_paragraph(mv.readme),
        "downloads": 0,
    }
    item.update(_pack("readme", mv.readme))
    item.update(_pack("analysis", _dumps(analysis) if analysis is not None else None))
    return item


def _pick_latest(briefs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest live version of a module's briefs (``mirror.domain.publishing.latest_live``)."""
    return latest_live(briefs, version=lambda brief: brief["version"], revoked=lambda brief: brief.get("revoked_at"))


def _latest_fields(display: ModuleAddress, latest: dict[str, Any] | None, *, put: bool = False) -> dict[str, Any]:
    """The module's summary attributes; None values are removed (or left out of a put)."""
    if latest is None:
        fields: dict[str, Any] = {"latest": None, "description": "", "GSI1PK": None, "GSI1SK": None}
    else:
        fields = {
            "latest": {f: latest[f] for f in _LATEST_FIELDS if latest.get(f) is not None},
            "description": latest.get("description") or "",
            "GSI1PK": "MODULES",
            "GSI1SK": _browse_key(display.namespace, display.name, display.provider),
        }
    return {k: v for k, v in fields.items() if v is not None} if put else fields


def _latest_version_key(module: dict[str, Any]) -> tuple[str, str]:
    return (module["PK"], _version_sk(module["name"], module["provider"], module["latest"]["version"]))


def _browse_sort(module: dict[str, Any]) -> str:
    return _browse_key(module["namespace"], module["name"], module["provider"])


def _summary_from_item(module: dict[str, Any], readme: str | None) -> ModuleSummary:
    latest = module["latest"]
    version = ModuleVersion(
        address=_address_of(module),
        version=latest["version"],
        raw_version=latest["raw_version"],
        sha256=latest["sha256"],
        size=int(latest["size"]),
        blob_key=latest["blob_key"],
        published_at=latest["published_at"],
        readme=readme,
        source=latest.get("source"),
        commit_sha=latest.get("commit_sha"),
    )
    return ModuleSummary(
        version, module.get("source_url"), int(module.get("downloads", 0)), module.get("description", "")
    )


def _version_from_item(item: dict[str, Any]) -> ModuleVersion:
    return ModuleVersion(
        address=_address_of(item),
        version=item["version"],
        raw_version=item["raw_version"],
        sha256=item["sha256"],
        size=int(item["size"]),
        blob_key=item["blob_key"],
        published_at=item["published_at"],
        readme=_unpack(item, "readme"),
        source=item.get("source"),
        commit_sha=item.get("commit_sha"),
        revoked_at=item.get("revoked_at"),
        deprecation=Deprecation.from_json(json.loads(item["deprecation"])) if item.get("deprecation") else None,
    )


def _owner_of(item: dict[str, Any]) -> Owner:
    """A module item's owner; an item written before owners were kept has its legacy owner."""
    if item.get("owner"):
        return Owner.parse(item["owner"])
    repository_id = item.get("repository_id")
    latest = item.get("latest") or {}
    return provenance.legacy_owner(None if repository_id is None else int(repository_id), latest.get("source"))


def _check_owner(address: ModuleAddress, module: dict[str, Any], owner: Owner | None) -> None:
    """NotOwner unless the module item is ``owner``'s; nothing to check without ``owner``."""
    if owner is not None and (current := _owner_of(module)) != owner:
        raise provenance.changed(address, current, owner)


def _record_from_item(item: dict[str, Any]) -> ModuleRecord:
    repository_id = item.get("repository_id")
    installation_id = item.get("installation_id")
    return ModuleRecord(
        _address_of(item),
        item["created_at"],
        item.get("source_url"),
        None if repository_id is None else int(repository_id),
        _owner_of(item),
        None if installation_id is None else int(installation_id),
        bool(item.get("allow_uploads")),
    )


def _token_fields(record: TokenRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "token_hash": record.token_hash,
        "namespace": record.namespace,
        "scope": record.scope,
        "created_at": record.created_at,
        "description": record.description,
        "revoked_at": record.revoked_at,
        "expires_at": record.expires_at,
        "created_by": record.created_by,
        "last_used_at": record.last_used_at,
    }


def _token_from_item(item: dict[str, Any]) -> TokenRecord:
    return TokenRecord(
        item["id"],
        item["token_hash"],
        item["namespace"],
        item["scope"],
        item["created_at"],
        item.get("description", ""),
        item.get("revoked_at"),
        item.get("expires_at"),
        item.get("created_by", ""),
        item.get("last_used_at"),
    )


def _event_item(serial: int, kind: str, data: dict[str, Any], when: str, actor: dict[str, Any]) -> dict[str, Any]:
    return {
        "PK": f"EVENTS#{serial // EVENT_BUCKET}",
        "SK": _serial_sk(serial),
        "serial": serial,
        "type": kind,
        "occurred_at": when,
        "data": _dumps(data),
        "actor": json.dumps(actor, separators=(",", ":")),  # its kind first
    }


def _consumer_from_item(item: dict[str, Any]) -> Consumer:
    return Consumer(
        item["name"],
        int(item["serial"]),
        int(item["attempts"]),
        float(item["next_attempt_at"]),
        item.get("last_error"),
        item["updated_at"],
    )


def _subscription_from_item(item: dict[str, Any]) -> WebhookSubscription:
    return WebhookSubscription(
        item["id"],
        item["url"],
        item["secret"],
        tuple(item.get("events", [])),
        tuple(item.get("namespaces", [])),
        item["source"],
        item["created_at"],
    )


def _installation_from_item(item: dict[str, Any]) -> Installation:
    return Installation(int(item["id"]), item["account"], item["namespace"], item["created_at"])


def _job_from_item(item: dict[str, Any]) -> Job:
    return Job(
        int(item["id"]),
        item["kind"],
        json.loads(item["payload"]),
        item["state"],
        int(item["attempts"]),
        float(item["run_after"]),
        item["created_at"],
        item["updated_at"],
        item.get("last_error"),
        item.get("dedupe_key"),
        item.get("lease_owner"),
        float(item["lease_until"]) if item.get("lease_until") is not None else None,
    )


def _pack(name: str, text: str | None) -> dict[str, Any]:
    """A text attribute: as is when short, zlib-compressed (``<name>_z``) when long."""
    if text is None:
        return {}
    raw = text.encode("utf-8")
    return {name: text} if len(raw) <= INLINE_TEXT_BYTES else {f"{name}_z": zlib.compress(raw, 6)}


def _unpack(item: dict[str, Any], name: str) -> str | None:
    if name in item:
        return item[name]
    packed = item.get(f"{name}_z")
    return zlib.decompress(packed).decode("utf-8") if packed is not None else None


def _fitting(items: list[dict[str, Any]], *, per_item: int, fixed: int) -> int:
    """How many of ``items`` fit in one transaction with ``fixed`` other actions."""
    count, size = 0, 0
    for item in items:
        size += _size(item) * 2
        if fixed + (count + 1) * per_item > MAX_TRANSACTION_ITEMS or (count and size > MAX_TRANSACTION_BYTES):
            break
        count += 1
    return count


def _size(value: Any) -> int:
    if isinstance(value, dict):
        return sum(len(k) + _size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value) + 1
    if isinstance(value, (str, bytes)):
        return len(value)
    return 8


def _backoff(attempt: int) -> float:
    """Seconds before trying a lost race again: short, growing, jittered."""
    return random.uniform(0.002, min(0.2, 0.005 * 2 ** min(attempt, 6)))


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
