"""Module lifecycle driven by its owner source: create, policy, delete, rename, revoke, deprecate."""

from __future__ import annotations

import json

import aiosqlite

from mirror.domain import events
from mirror.domain.addresses import ModuleAddress
from mirror.domain import provenance
from mirror.domain.provenance import Owner
from mirror.domain.lifecycle import Deprecation
from mirror.domain.models import ModuleRecord
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import Conflict
from mirror.storage.sqlite.rows import (
    _MODULE_COLUMNS,
    _MODULE_MATCH,
    _OWNER_COLUMNS,
    _check_owner,
    _module_from_row,
    _module_id,
    _one,
    _owner_from_row,
    _parts,
    _refresh_latest,
)
from mirror.storage.sqlite.connection import SqliteConnection


class Modules(SqliteConnection):
    """Module lifecycle driven by its owner source: create, policy, delete, rename, revoke, deprecate."""

    async def ensure_module(
        self,
        address: ModuleAddress,
        *,
        owner: Owner = Owner("upload"),
        source_url: str | None = None,
        installation_id: int | None = None,
    ) -> bool:
        """Create the module (and its namespace) for ``owner`` if it is new, with ``module.created``;
        True if created. An existing module of ``owner`` takes the given source URL and installation;
        one of another owner is left alone (NotOwner)."""
        async with self._writing() as conn:
            now = now_rfc3339()
            row = await _one(conn, f"SELECT id, {_OWNER_COLUMNS} FROM modules m WHERE " + _MODULE_MATCH, _parts(address))
            if row is not None:
                current = _owner_from_row(row[1:])
                if current != owner:
                    raise provenance.refusal(address, current, owner, "change", source_url=None)
                await conn.execute(
                    "UPDATE modules SET source_url = COALESCE(?, source_url), "
                    "installation_id = COALESCE(?, installation_id) WHERE id = ?",
                    (source_url, installation_id, row[0]),
                )
                return False
            await conn.execute(
                "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (address.namespace, now),
            )
            await conn.execute(
                "INSERT INTO modules (namespace, name, provider, created_at, source_url, repository_id, owner, "
                "installation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*_parts(address), now, source_url, owner.repository_id, str(owner), installation_id),
            )
            await self._append_events(conn, [events.module_created(address)], now)
            return True

    async def get_module(self, address: ModuleAddress) -> ModuleRecord | None:
        row = await self._fetchone(f"SELECT {_MODULE_COLUMNS} FROM modules m WHERE {_MODULE_MATCH}", _parts(address))
        return _module_from_row(row) if row else None

    async def list_modules(self, namespace: str) -> list[ModuleRecord]:
        rows = await self._fetchall(
            f"SELECT {_MODULE_COLUMNS} FROM modules WHERE namespace = ? ORDER BY name, provider", (namespace,)
        )
        return [_module_from_row(row) for row in rows]

    async def module_by_repository(self, repository_id: int) -> ModuleRecord | None:
        row = await self._fetchone(
            f"SELECT {_MODULE_COLUMNS} FROM modules WHERE owner = ?", (str(Owner.github(repository_id)),)
        )
        return _module_from_row(row) if row else None

    async def set_module_policy(
        self, address: ModuleAddress, *, owner: Owner | None = None, allow_uploads: bool | None = None
    ) -> ModuleRecord | None:
        """An admin's change of the module's owner source or upload allowance, with
        ``module.policy_changed``; None when there is no such module."""
        async with self._writing() as conn:
            row = await _one(conn, f"SELECT id, {_OWNER_COLUMNS} FROM modules m WHERE " + _MODULE_MATCH, _parts(address))
            if row is None:
                return None
            current = _owner_from_row(row[1:])
            new_owner = current if owner is None else owner
            if owner is not None and owner != current and owner.kind == "github":
                clash = await _one(conn, "SELECT id FROM modules WHERE owner = ? AND id != ?", (str(owner), row[0]))
                if clash is not None:
                    raise Conflict(f"another module is already owned by {owner}: a repository owns one module")
            await conn.execute(
                "UPDATE modules SET owner = ?, repository_id = ?, allow_uploads = COALESCE(?, allow_uploads), "
                "installation_id = CASE WHEN ? THEN installation_id ELSE NULL END WHERE id = ?",
                (
                    str(new_owner),
                    new_owner.repository_id,
                    None if allow_uploads is None else int(allow_uploads),
                    new_owner == current,
                    row[0],
                ),
            )
            record = _module_from_row(
                await _one(conn, f"SELECT {_MODULE_COLUMNS} FROM modules WHERE id = ?", (row[0],))
            )
            changed = events.module_policy_changed(address, record.owner, record.allow_uploads)
            await self._append_events(conn, [changed], now_rfc3339())
            return record

    async def delete_module(self, address: ModuleAddress, *, owner: Owner | None = None) -> list[str]:
        """Remove a module and its versions (``module.deleted``); return blob keys nothing uses any more.
        With ``owner``, only while the module is that owner's (NotOwner otherwise)."""
        async with self._writing() as conn:
            await _check_owner(conn, address, owner)
            return await self._delete_module(conn, address, now_rfc3339())

    async def _delete_module(self, conn: aiosqlite.Connection, address: ModuleAddress, now: str) -> list[str]:
        row = await _one(conn, "SELECT id FROM modules m WHERE " + _MODULE_MATCH, _parts(address))
        if row is None:
            return []
        module_id = row[0]
        async with conn.execute("SELECT DISTINCT blob_key FROM versions WHERE module_id = ?", (module_id,)) as cursor:
            keys = [r[0] for r in await cursor.fetchall()]
        await conn.execute("DELETE FROM versions WHERE module_id = ?", (module_id,))
        await conn.execute("DELETE FROM modules WHERE id = ?", (module_id,))
        await self._append_events(conn, [events.module_deleted(address)], now)
        orphans = []
        for key in keys:
            if await _one(conn, "SELECT 1 FROM versions WHERE blob_key = ? LIMIT 1", (key,)) is None:
                orphans.append(key)
        return orphans

    async def rename_module(self, address: ModuleAddress, new_name: str, *, owner: Owner | None = None) -> bool:
        """Rename a module in place (``module.renamed``); False when there is no such module.
        With ``owner``, only while the module is that owner's (NotOwner otherwise)."""
        async with self._writing() as conn:
            row = await _one(conn, "SELECT id FROM modules m WHERE " + _MODULE_MATCH, _parts(address))
            if row is None:
                return False
            await _check_owner(conn, address, owner)
            target = ModuleAddress(address.namespace, new_name, address.provider)
            if await _one(conn, "SELECT id FROM modules m WHERE " + _MODULE_MATCH, _parts(target)):
                raise Conflict(f"cannot rename {address} to {target}: that module exists")
            await conn.execute("UPDATE modules SET name = ? WHERE id = ?", (new_name, row[0]))
            await self._append_events(conn, [events.module_renamed(target, address.name)], now_rfc3339())
            return True

    async def revoke_version(self, address: ModuleAddress, version: str, *, owner: Owner | None = None) -> bool:
        """Take a version out of service (``module.version_revoked``); False if not live. With
        ``owner``, only while the module is that owner's (NotOwner otherwise)."""
        async with self._writing() as conn:
            await _check_owner(conn, address, owner)
            now = now_rfc3339()
            cursor = await conn.execute(
                "UPDATE versions SET revoked_at = ? WHERE version = ? AND revoked_at IS NULL AND module_id = "
                "(SELECT id FROM modules m WHERE " + _MODULE_MATCH + ")",
                (now, version, *_parts(address)),
            )
            if cursor.rowcount == 0:
                return False
            await _refresh_latest(conn, await _module_id(conn, address))
            await self._append_events(conn, [events.version_revoked(address, version)], now)
            return True

    async def deprecate_version(
        self, address: ModuleAddress, version: str, deprecation: Deprecation, *, owner: Owner | None = None
    ) -> bool:
        """Record (or replace) a live version's deprecation (``module.version_deprecated``); False
        if not live. With ``owner``, only while the module is that owner's (NotOwner otherwise)."""
        async with self._writing() as conn:
            row = await _one(conn, f"SELECT id, {_OWNER_COLUMNS} FROM modules m WHERE " + _MODULE_MATCH, _parts(address))
            if row is None:
                return False
            current = _owner_from_row(row[1:])
            if owner is not None and owner != current:
                raise provenance.refusal(address, current, owner, "deprecate versions of")
            cursor = await conn.execute(
                "UPDATE versions SET deprecation = ? WHERE module_id = ? AND version = ? AND revoked_at IS NULL",
                (json.dumps(deprecation.to_json()), row[0], version),
            )
            if cursor.rowcount == 0:
                return False
            event = events.version_deprecated(address, version, deprecation.reason, deprecation.replacement)
            await self._append_events(conn, [event], deprecation.deprecated_at)
            return True
