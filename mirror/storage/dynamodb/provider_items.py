"""Provider items built from provider records and records read back from items."""

from __future__ import annotations

import json
import zlib
from typing import Any

from mirror.domain.errors import BadRequest
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import (
    Deprecation,
    ProviderKey,
    ProviderPlatformFile,
    ProviderRecord,
    ProviderVersion,
    provider_name,
)
from mirror.domain.providers import ProviderAddress
from mirror.storage.dynamodb.items import _size
from mirror.storage.dynamodb.keys import (
    _provider_browse_key,
    _provider_key_key,
    _provider_pk,
    _provider_version_sk,
)


#: a SHA256SUMS longer than this is stored zlib-compressed (``shasums_z``). Real ones list a few
#: dozen zips (a few KiB); the parser accepts up to 1 MiB, which would not fit in one item as is.
INLINE_SHASUMS_BYTES = 16 * 1024


#: the largest version item written. DynamoDB refuses items over 400 KB; a version whose
#: compressed SHA256SUMS, signature, key and platforms still come to more than this is refused
#: with BadRequest (it cannot be stored on this backend) rather than failing at the write.
MAX_VERSION_ITEM_BYTES = 350_000


_KEY_FIELDS = ("namespace", "key_id", "fingerprint", "algorithm", "ascii_armor", "created_at")


def _provider_key(hostname: str, address: ProviderAddress) -> tuple[str, str]:
    return (_provider_pk(hostname, address.namespace, address.type), "PROVIDER")


def _provider_version_key(hostname: str, address: ProviderAddress, version: str) -> tuple[str, str]:
    return (_provider_pk(hostname, address.namespace, address.type), _provider_version_sk(version))


def _signing_key_item(key: ProviderKey, seq: int) -> dict[str, Any]:
    pk, sk = _provider_key_key(key.namespace, key.key_id)
    return {"PK": pk, "SK": sk, "kind": "provider_key", "seq": seq, **{f: getattr(key, f) for f in _KEY_FIELDS}}


def _signing_key_from_item(item: dict[str, Any]) -> ProviderKey:
    return ProviderKey(*(item[f] for f in _KEY_FIELDS))


def _new_provider_item(
    hostname: str, address: ProviderAddress, now: str, owner: Owner, source_url: str | None
) -> dict[str, Any]:
    pk, sk = _provider_key(hostname, address)
    return {
        "PK": pk,
        "SK": sk,
        "kind": "provider",
        "hostname": hostname,
        "namespace": address.namespace,
        "type": address.type,
        "created_at": now,
        "owner": str(owner),
        "source_url": source_url,
        "GSI1PK": "PROVIDERS",
        "GSI1SK": _provider_browse_key(hostname, address.namespace, address.type),
    }


def _provider_from_item(item: dict[str, Any]) -> ProviderRecord:
    return ProviderRecord(
        item["hostname"],
        ProviderAddress(item["namespace"], item["type"]),
        item["created_at"],
        Owner.parse(item["owner"]),
        item.get("source_url"),
    )


def _platforms_json(version: ProviderVersion) -> str:
    return json.dumps([item.to_json() for item in version.platforms], separators=(",", ":"))


def _provider_version_item(hostname: str, display: ProviderAddress, version: ProviderVersion) -> dict[str, Any]:
    """A version item under the provider's spelling of its namespace; BadRequest when too large."""
    pk, sk = _provider_version_key(hostname, display, version.version)
    shasums = (
        {"shasums": version.shasums}
        if len(version.shasums) <= INLINE_SHASUMS_BYTES
        else {"shasums_z": zlib.compress(version.shasums, 9)}
    )
    item = {
        "PK": pk,
        "SK": sk,
        "kind": "provider_version",
        "hostname": hostname,
        "namespace": display.namespace,
        "type": display.type,
        "version": version.version,
        "protocols": list(version.protocols),
        "platforms": _platforms_json(version),
        **shasums,
        "signature": version.signature,
        "key_id": version.key_id,
        "key_armor": version.key_armor,
        "published_at": version.published_at,
        "source": version.source,
        "revoked_at": version.revoked_at,
        "deprecation": json.dumps(version.deprecation.to_json()) if version.deprecation else None,
        "rev": 0,  # bumped by every change of the item (platforms added or completed, revoked)
    }
    size = _size(item)
    if size > MAX_VERSION_ITEM_BYTES:
        raise BadRequest(
            f"provider {provider_name(hostname, display)} {version.version} is too large to store "
            f"({size} bytes of SHA256SUMS, signature and platforms; at most {MAX_VERSION_ITEM_BYTES})"
        )
    return item


def _provider_version_from_item(item: dict[str, Any]) -> ProviderVersion:
    shasums = item["shasums"] if "shasums" in item else zlib.decompress(item["shasums_z"])
    return ProviderVersion(
        hostname=item["hostname"],
        address=ProviderAddress(item["namespace"], item["type"]),
        version=item["version"],
        protocols=tuple(item.get("protocols", [])),
        platforms=tuple(ProviderPlatformFile.from_json(p) for p in json.loads(item["platforms"])),
        shasums=bytes(shasums),
        signature=bytes(item["signature"]),
        key_id=item["key_id"],
        key_armor=item["key_armor"],
        published_at=item["published_at"],
        source=item.get("source"),
        revoked_at=item.get("revoked_at"),
        deprecation=Deprecation.from_json(json.loads(item["deprecation"])) if item.get("deprecation") else None,
    )
