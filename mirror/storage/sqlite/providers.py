"""Providers on SQLite: signing keys, providers and their versions (platforms as JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from mirror.domain import events
from mirror.domain.blobs import provider_archive_key
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import (
    Deprecation,
    NewProviderVersion,
    ProviderKey,
    ProviderPlatformFile,
    ProviderPublishOutcome,
    ProviderRecord,
    ProviderVersion,
    merge_version,
    provider_refusal,
)
from mirror.domain.providers import ProviderAddress
from mirror.domain.timeutil import now_rfc3339
from mirror.storage.sqlite.connection import SqliteConnection
from mirror.storage.sqlite.rows import _one

_KEY_COLUMNS = "namespace, key_id, fingerprint, algorithm, ascii_armor, created_at"
_PROVIDER_COLUMNS = "hostname, namespace, type, created_at, owner, source_url"
_VERSION_COLUMNS = (
    "p.hostname, p.namespace, p.type, v.version, v.protocols, v.platforms, v.shasums, v.signature, "
    "v.key_id, v.key_armor, v.published_at, v.source, v.revoked_at, v.deprecation"
)
_PROVIDER_MATCH = "p.hostname = ? AND p.namespace = ? AND p.type = ?"


def _parts(hostname: str, address: ProviderAddress) -> tuple[str, str, str]:
    return (hostname.lower(), address.namespace, address.type)


def _provider_from_row(row: Sequence[Any]) -> ProviderRecord:
    hostname, namespace, type_, created_at, owner, source_url = row
    return ProviderRecord(hostname, ProviderAddress(namespace, type_), created_at, Owner.parse(owner), source_url)


def _version_from_row(row: Sequence[Any]) -> ProviderVersion:
    (hostname, namespace, type_, version, protocols, platforms, shasums, signature, key_id, key_armor,
     published_at, source, revoked_at, deprecation) = row
    return ProviderVersion(
        hostname=hostname,
        address=ProviderAddress(namespace, type_),
        version=version,
        protocols=tuple(json.loads(protocols)),
        platforms=tuple(ProviderPlatformFile.from_json(item) for item in json.loads(platforms)),
        shasums=bytes(shasums),
        signature=bytes(signature),
        key_id=key_id,
        key_armor=key_armor,
        published_at=published_at,
        source=source,
        revoked_at=revoked_at,
        deprecation=Deprecation.from_json(json.loads(deprecation)) if deprecation else None,
    )


def _platforms_json(version: ProviderVersion) -> str:
    return json.dumps([item.to_json() for item in version.platforms], separators=(",", ":"))


async def _provider_for(
    conn: aiosqlite.Connection, hostname: str, address: ProviderAddress, owner: Owner | None, action: str
) -> int | None:
    """The provider's row id for a change by ``owner`` (None: whoever owns it); None when there is
    no such provider; NotOwner when another source owns it."""
    row = await _one(conn, f"SELECT id, owner, source_url FROM providers p WHERE {_PROVIDER_MATCH}", _parts(hostname, address))
    if row is None:
        return None
    provider_id, owner_text, source_url = row
    current = Owner.parse(owner_text)
    if owner is not None and owner != current:
        raise provider_refusal(hostname, address, current, owner, action, source_url=source_url)
    return provider_id


class Providers(SqliteConnection):
    """Signing keys, providers and provider versions."""

    async def add_provider_key(self, key: ProviderKey) -> bool:
        async with self._writing() as conn:
            cursor = await conn.execute(
                f"INSERT INTO provider_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (key.namespace, key.key_id, key.fingerprint, key.algorithm, key.ascii_armor, key.created_at),
            )
            return cursor.rowcount == 1

    async def list_provider_keys(self, namespace: str) -> list[ProviderKey]:
        rows = await self._fetchall(
            f"SELECT {_KEY_COLUMNS} FROM provider_keys WHERE namespace = ? ORDER BY id", (namespace,)
        )
        return [ProviderKey(*row) for row in rows]

    async def remove_provider_key(self, namespace: str, key_id: str) -> bool:
        async with self._writing() as conn:
            cursor = await conn.execute(
                "DELETE FROM provider_keys WHERE namespace = ? AND key_id = ?", (namespace, key_id.upper())
            )
            return cursor.rowcount > 0

    async def get_provider(self, hostname: str, address: ProviderAddress) -> ProviderRecord | None:
        row = await self._fetchone(
            f"SELECT {_PROVIDER_COLUMNS} FROM providers p WHERE {_PROVIDER_MATCH}", _parts(hostname, address)
        )
        return _provider_from_row(row) if row else None

    async def list_providers(self, hostname: str | None = None) -> list[ProviderRecord]:
        where, params = ("WHERE hostname = ? ", (hostname.lower(),)) if hostname is not None else ("", ())
        rows = await self._fetchall(
            f"SELECT {_PROVIDER_COLUMNS} FROM providers {where}ORDER BY hostname, namespace COLLATE NOCASE, type",
            params,
        )
        return [_provider_from_row(row) for row in rows]

    async def provider_versions(self, hostname: str, address: ProviderAddress) -> list[ProviderVersion]:
        rows = await self._fetchall(
            f"SELECT {_VERSION_COLUMNS} FROM provider_versions v JOIN providers p ON p.id = v.provider_id "
            f"WHERE {_PROVIDER_MATCH} AND v.revoked_at IS NULL",
            _parts(hostname, address),
        )
        return [_version_from_row(row) for row in rows]

    async def get_provider_version(
        self, hostname: str, address: ProviderAddress, version: str
    ) -> ProviderVersion | None:
        row = await self._fetchone(
            f"SELECT {_VERSION_COLUMNS} FROM provider_versions v JOIN providers p ON p.id = v.provider_id "
            f"WHERE {_PROVIDER_MATCH} AND v.version = ?",
            (*_parts(hostname, address), version),
        )
        return _version_from_row(row) if row else None

    async def publish_provider_version(self, new: NewProviderVersion) -> ProviderPublishOutcome:
        version = new.version
        hostname, address = version.hostname.lower(), version.address
        async with self._writing() as conn:
            now = now_rfc3339()
            appended: list[events.EventSpec] = []
            row = await _one(
                conn, f"SELECT id, owner, source_url FROM providers p WHERE {_PROVIDER_MATCH}", _parts(hostname, address)
            )
            if row is None:
                cursor = await conn.execute(
                    f"INSERT INTO providers ({_PROVIDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (*_parts(hostname, address), now, str(new.owner), new.source_url),
                )
                provider_id = cursor.lastrowid
                appended.append(events.provider_created(hostname, address))
            else:
                provider_id, owner_text, source_url = row
                owner = Owner.parse(owner_text)
                if owner != new.owner:
                    raise provider_refusal(hostname, address, owner, new.owner, "add versions to", source_url=source_url)
                if new.source_url:
                    await conn.execute("UPDATE providers SET source_url = ? WHERE id = ?", (new.source_url, provider_id))
            stored_row = await _one(
                conn,
                f"SELECT {_VERSION_COLUMNS} FROM provider_versions v JOIN providers p ON p.id = v.provider_id "
                "WHERE v.provider_id = ? AND v.version = ?",
                (provider_id, version.version),
            )
            if stored_row is None:
                await self._insert_version(conn, provider_id, version)
                appended.append(
                    events.provider_version_released(hostname, address, version.version, version.platform_names)
                )
                outcome = ProviderPublishOutcome("created", version, tuple(p.platform for p in version.platforms))
            else:
                status, merged, added = merge_version(_version_from_row(stored_row), version)
                outcome = ProviderPublishOutcome(status, merged, added)
                if status in ("created", "extended"):
                    await conn.execute(
                        "UPDATE provider_versions SET platforms = ?, revoked_at = ?, published_at = ?, source = ? "
                        "WHERE provider_id = ? AND version = ?",
                        (_platforms_json(merged), merged.revoked_at, merged.published_at, merged.source,
                         provider_id, version.version),
                    )
                if status == "created":
                    appended.append(
                        events.provider_version_released(hostname, address, merged.version, merged.platform_names)
                    )
                elif added:
                    appended.append(
                        events.provider_platforms_added(hostname, address, merged.version, [str(p) for p in added])
                    )
            if appended:
                await self._append_events(conn, appended, now)
            return outcome

    @staticmethod
    async def _insert_version(conn: aiosqlite.Connection, provider_id: int, version: ProviderVersion) -> None:
        await conn.execute(
            "INSERT INTO provider_versions (provider_id, version, protocols, platforms, shasums, signature, key_id, "
            "key_armor, published_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                provider_id,
                version.version,
                json.dumps(list(version.protocols)),
                _platforms_json(version),
                version.shasums,
                version.signature,
                version.key_id,
                version.key_armor,
                version.published_at,
                version.source,
            ),
        )

    async def revoke_provider_version(
        self, hostname: str, address: ProviderAddress, version: str, *, owner: Owner | None = None
    ) -> bool:
        async with self._writing() as conn:
            provider_id = await _provider_for(conn, hostname, address, owner, "revoke versions of")
            if provider_id is None:
                return False
            now = now_rfc3339()
            cursor = await conn.execute(
                "UPDATE provider_versions SET revoked_at = ? WHERE provider_id = ? AND version = ? AND revoked_at IS NULL",
                (now, provider_id, version),
            )
            if cursor.rowcount == 0:
                return False
            await self._append_events(conn, [events.provider_version_revoked(hostname.lower(), address, version)], now)
            return True

    async def deprecate_provider_version(
        self,
        hostname: str,
        address: ProviderAddress,
        version: str,
        deprecation: Deprecation,
        *,
        owner: Owner | None = None,
    ) -> bool:
        async with self._writing() as conn:
            provider_id = await _provider_for(conn, hostname, address, owner, "deprecate versions of")
            if provider_id is None:
                return False
            cursor = await conn.execute(
                "UPDATE provider_versions SET deprecation = ? WHERE provider_id = ? AND version = ? AND revoked_at IS NULL",
                (json.dumps(deprecation.to_json()), provider_id, version),
            )
            if cursor.rowcount == 0:
                return False
            event = events.provider_version_deprecated(
                hostname.lower(), address, version, deprecation.reason, deprecation.replacement
            )
            await self._append_events(conn, [event], deprecation.deprecated_at)
            return True

    async def delete_provider(self, hostname: str, address: ProviderAddress, *, owner: Owner | None = None) -> list[str]:
        async with self._writing() as conn:
            provider_id = await _provider_for(conn, hostname, address, owner, "delete")
            if provider_id is None:
                return []
            async with conn.execute("SELECT platforms FROM provider_versions WHERE provider_id = ?", (provider_id,)) as cur:
                stored = [ProviderPlatformFile.from_json(item) for (text,) in await cur.fetchall() for item in json.loads(text)]
            await conn.execute("DELETE FROM provider_versions WHERE provider_id = ?", (provider_id,))
            await conn.execute("DELETE FROM providers WHERE id = ?", (provider_id,))
            await self._append_events(conn, [events.provider_deleted(hostname.lower(), address)], now_rfc3339())
            orphans = []
            for sha256 in sorted({file.sha256 for file in stored}):
                # a zip is named by its SHA-256: listed by another version when its digest is in its platforms
                if await _one(conn, "SELECT 1 FROM provider_versions WHERE instr(platforms, ?) > 0 LIMIT 1", (sha256,)) is None:
                    orphans.append(provider_archive_key(sha256))
            return orphans
