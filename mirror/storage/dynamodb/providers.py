"""Providers: namespaces' signing keys, providers and their versions.

A provider's item and its versions' share one partition (``PROVIDER#<host>#<ns>#<type>``); the
provider item is also in GSI1's ``PROVIDERS`` partition, sorted by hostname, namespace and type,
which is what lists walk. Signing keys live in ``PROVIDERKEYS#<ns>``, one item per key id.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mirror.domain import events
from mirror.domain.blobs import provider_archive_key
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import (
    Deprecation,
    NewProviderVersion,
    ProviderKey,
    ProviderPublishOutcome,
    ProviderRecord,
    ProviderVersion,
    merge_version,
    provider_refusal,
)
from mirror.domain.providers import ProviderAddress
from mirror.domain.timeutil import now_rfc3339
from mirror.storage.dynamodb.keys import _provider_browse_key, _provider_key_key, _provider_pk, _provider_version_sk
from mirror.storage.dynamodb.provider_items import (
    _new_provider_item,
    _platforms_json,
    _provider_from_item,
    _provider_key,
    _provider_version_from_item,
    _provider_version_item,
    _provider_version_key,
    _signing_key_from_item,
    _signing_key_item,
)
from mirror.storage.dynamodb.items import _fitting
from mirror.storage.dynamodb.table import _AGAIN, _ConditionFailed, _Plan, DynamoTable
from mirror.storage.dynamodb.wire import _Raw, _expressions, _key


class Providers(DynamoTable):
    """Signing keys, providers and provider versions."""

    async def add_provider_key(self, key: ProviderKey) -> bool:
        pk, sk = _provider_key_key(key.namespace, key.key_id)
        if await self._get((pk, sk), ("SK",)) is not None:
            return False
        seq = await self._next_id("PROVIDERKEYS")  # the order keys were added in (gaps are harmless)
        try:
            await self._put(_signing_key_item(key, seq), "attribute_not_exists(#PK)")
        except _ConditionFailed:
            return False
        return True

    async def list_provider_keys(self, namespace: str) -> list[ProviderKey]:
        pk, _sk = _provider_key_key(namespace, "")
        items = await self._query(pk, prefix="KEY#")
        return [_signing_key_from_item(item) for item in sorted(items, key=lambda item: int(item["seq"]))]

    async def remove_provider_key(self, namespace: str, key_id: str) -> bool:
        try:
            return await self._delete(_provider_key_key(namespace, key_id), "attribute_exists(#PK)") is not None
        except _ConditionFailed:
            return False

    async def get_provider(self, hostname: str, address: ProviderAddress) -> ProviderRecord | None:
        item = await self._get(_provider_key(hostname.lower(), address))
        return _provider_from_item(item) if item else None

    async def list_providers(self, hostname: str | None = None) -> list[ProviderRecord]:
        """One query of GSI1's ``PROVIDERS`` partition (of one hostname's prefix when given)."""
        prefix = None if hostname is None else _provider_browse_key(hostname, "", "").removesuffix("#")
        items = await self._query("PROVIDERS", index=True, prefix=prefix)
        records = [_provider_from_item(item) for item in items]
        return sorted(records, key=lambda r: (r.hostname, r.address.namespace.lower(), r.address.type))

    async def provider_versions(self, hostname: str, address: ProviderAddress) -> list[ProviderVersion]:
        items = await self._query(
            _provider_pk(hostname, address.namespace, address.type), prefix=_provider_version_sk("")
        )
        versions = [_provider_version_from_item(item) for item in items]
        return [v for v in versions if v.revoked_at is None]

    async def get_provider_version(
        self, hostname: str, address: ProviderAddress, version: str
    ) -> ProviderVersion | None:
        item = await self._get(_provider_version_key(hostname, address, version))
        return _provider_version_from_item(item) if item else None

    async def publish_provider_version(self, new: NewProviderVersion) -> ProviderPublishOutcome:
        version = new.version
        hostname, address = version.hostname.lower(), version.address
        provider_key = _provider_key(hostname, address)
        version_key = _provider_version_key(hostname, address, version.version)

        async def plan() -> _Plan:
            now = now_rfc3339()
            provider, stored = await asyncio.gather(self._get(provider_key), self._get(version_key))
            appended: list[events.EventSpec] = []
            items: list[dict[str, Any]] = []
            if provider is None:
                display = address
                items.append(
                    self._tx_put(
                        _new_provider_item(hostname, address, now, new.owner, new.source_url),
                        "attribute_not_exists(#PK)",
                    )
                )
                appended.append(events.provider_created(hostname, address))
            else:
                display = ProviderAddress(provider["namespace"], provider["type"])
                owner = Owner.parse(provider["owner"])
                if owner != new.owner:
                    raise provider_refusal(
                        hostname, address, owner, new.owner, "add versions to", source_url=provider.get("source_url")
                    )
            if stored is None:
                item = _provider_version_item(hostname, display, version)
                items.append(self._tx_put(item, "attribute_not_exists(#PK)"))
                appended.append(
                    events.provider_version_released(hostname, address, version.version, version.platform_names)
                )
                outcome = ProviderPublishOutcome("created", version, tuple(p.platform for p in version.platforms))
            else:
                status, merged, added = merge_version(_provider_version_from_item(stored), version)
                outcome = ProviderPublishOutcome(status, merged, added)
                if status in ("created", "extended"):
                    items.append(self._tx_merged(version_key, merged, int(stored.get("rev", 0))))
                if status == "created":
                    appended.append(
                        events.provider_version_released(hostname, address, merged.version, merged.platform_names)
                    )
                elif added:
                    appended.append(
                        events.provider_platforms_added(hostname, address, merged.version, [str(p) for p in added])
                    )
            if provider is not None:
                items.append(self._tx_provider(provider, new))
            if not appended and all("ConditionCheck" in item for item in items):
                return _Plan(outcome)  # nothing to write
            return _Plan(outcome, items, list(appended), now)

        return await self._commit(plan)

    async def deprecate_provider_version(
        self,
        hostname: str,
        address: ProviderAddress,
        version: str,
        deprecation: Deprecation,
        *,
        owner: Owner | None = None,
    ) -> bool:
        event = events.provider_version_deprecated(
            hostname.lower(), address, version, deprecation.reason, deprecation.replacement
        )
        fields = {"deprecation": json.dumps(deprecation.to_json())}
        return await self._change_live_version(
            hostname, address, version, owner, "deprecate versions of", fields, event, deprecation.deprecated_at
        )

    async def _change_live_version(
        self,
        hostname: str,
        address: ProviderAddress,
        version: str,
        owner: Owner | None,
        action: str,
        fields: dict[str, Any],
        event: events.EventSpec,
        when: str,
    ) -> bool:
        """Set ``fields`` on a live version with its ``event``, if ``owner`` (None: any) owns the
        provider and nobody changed the version since it was read; False when it is not live."""
        hostname = hostname.lower()
        provider_key = _provider_key(hostname, address)
        version_key = _provider_version_key(hostname, address, version)

        async def plan() -> _Plan:
            provider, stored = await asyncio.gather(
                self._get(provider_key), self._get(version_key, ("rev", "revoked_at"))
            )
            if provider is None:
                return _Plan(False)
            current = Owner.parse(provider["owner"])
            if owner is not None and owner != current:
                raise provider_refusal(hostname, address, current, owner, action, source_url=provider.get("source_url"))
            if stored is None or stored.get("revoked_at") is not None:
                return _Plan(False)
            item = self._tx_update(
                version_key,
                set={**fields, "rev": _Raw("#rev + :one")},
                condition="#rev = :rev AND attribute_not_exists(#revoked_at)",
                values={":rev": int(stored.get("rev", 0)), ":one": 1},
            )
            return _Plan(True, [item], [event], when)

        return await self._commit(plan)

    def _tx_merged(self, key: tuple[str, str], merged: ProviderVersion, rev: int) -> dict[str, Any]:
        """The merged version's platforms (and reinstatement), if nobody changed it since it was read."""
        return self._tx_update(
            key,
            set={
                "platforms": _platforms_json(merged),
                "published_at": merged.published_at,
                "source": merged.source,
                "revoked_at": merged.revoked_at,
                "rev": _Raw("#rev + :one"),
            },
            condition="#rev = :rev",
            values={":rev": rev, ":one": 1},
        )

    def _tx_provider(self, provider: dict[str, Any], new: NewProviderVersion) -> dict[str, Any]:
        """The provider item in a publish's transaction: its source URL updated when another is
        given, otherwise a check that it is still the same owner's."""
        key = (provider["PK"], provider["SK"])
        condition, values = "#owner = :owner", {":owner": provider["owner"]}
        if new.source_url and new.source_url != provider.get("source_url"):
            return self._tx_update(key, set={"source_url": new.source_url}, condition=condition, values=values)
        check = {"TableName": self.table, "Key": _key(*key), **_expressions(values, ConditionExpression=condition)}
        return {"ConditionCheck": check}

    async def revoke_provider_version(
        self, hostname: str, address: ProviderAddress, version: str, *, owner: Owner | None = None
    ) -> bool:
        now = now_rfc3339()
        event = events.provider_version_revoked(hostname.lower(), address, version)
        return await self._change_live_version(
            hostname, address, version, owner, "revoke versions of", {"revoked_at": now}, event, now
        )

    async def delete_provider(self, hostname: str, address: ProviderAddress, *, owner: Owner | None = None) -> list[str]:
        """Up to 97 versions go in one transaction with the provider item and the event; a larger
        provider loses its versions in transactions of 99 first. Which of its zips are orphans is
        then found by reading every remaining provider version's platforms (a rare admin action)."""
        hostname = hostname.lower()
        provider_key = _provider_key(hostname, address)

        async def plan() -> _Plan:
            provider = await self._get(provider_key)
            if provider is None:
                return _Plan(None)
            current = Owner.parse(provider["owner"])
            if owner is not None and owner != current:
                raise provider_refusal(hostname, address, current, owner, "delete", source_url=provider.get("source_url"))
            versions = await self._query(provider_key[0], prefix=_provider_version_sk(""), fields=("PK", "SK", "platforms"))
            final = _fitting(versions, per_item=1, fixed=3) == len(versions)  # the provider, the event, the counter
            batch = versions if final else versions[: _fitting(versions, per_item=1, fixed=1)]
            digests = {file["sha256"] for version in batch for file in json.loads(version["platforms"])}
            items = [self._tx_delete((v["PK"], v["SK"]), "attribute_exists(#PK)") for v in batch]
            if not final:
                return _Plan((_AGAIN, digests), items)
            items.append(self._tx_delete(provider_key, "#owner = :owner", {":owner": provider["owner"]}))
            return _Plan((None, digests), items, [events.provider_deleted(hostname, address)], now_rfc3339())

        released: set[str] = set()
        while True:
            outcome = await self._commit(plan)
            if outcome is None:
                break
            again, digests = outcome
            released |= digests
            if again is not _AGAIN:
                break
        if not released:
            return []
        for record in await self.list_providers():
            pk = _provider_pk(record.hostname, record.address.namespace, record.address.type)
            for item in await self._query(pk, prefix=_provider_version_sk(""), fields=("platforms",)):
                released -= {file["sha256"] for file in json.loads(item["platforms"])}
        return [provider_archive_key(sha256) for sha256 in sorted(released)]
