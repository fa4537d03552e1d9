"""GitHub App installations and what they brought."""

from __future__ import annotations

from mirror.domain import events
from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import Installation
from mirror.domain.timeutil import now_rfc3339
from mirror.storage.sqlite.rows import _one
from mirror.storage.sqlite.modules import Modules


class Installations(Modules):
    """GitHub App installations and what they brought."""

    async def record_installation(self, installation: Installation) -> bool:
        """Remember an installation and create its namespace (``app.installed``); True if new."""
        async with self._writing() as conn:
            if await _one(conn, "SELECT id FROM installations WHERE id = ?", (installation.id,)):
                return False
            await conn.execute(
                "INSERT INTO installations (id, account, namespace, created_at) VALUES (?, ?, ?, ?)",
                (installation.id, installation.account, installation.namespace, installation.created_at),
            )
            await conn.execute(
                "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (installation.namespace, installation.created_at),
            )
            await self._append_events(conn, [events.app_installed(installation.namespace)], installation.created_at)
            return True

    async def installation(self, installation_id: int) -> Installation | None:
        row = await self._fetchone(
            "SELECT id, account, namespace, created_at FROM installations WHERE id = ?", (installation_id,)
        )
        return Installation(*row) if row else None

    async def list_installations(self) -> list[Installation]:
        rows = await self._fetchall("SELECT id, account, namespace, created_at FROM installations ORDER BY id", ())
        return [Installation(*row) for row in rows]

    async def remove_installation(self, installation_id: int) -> list[str]:
        """Remove an installation and what it brought: ``module.deleted`` for each module it
        brought (other sources' modules in its namespace stay, and so does the namespace while
        any module is left), then ``app.uninstalled``. Returns blob keys nothing uses any more."""
        async with self._writing() as conn:
            row = await _one(conn, "SELECT namespace FROM installations WHERE id = ?", (installation_id,))
            if row is None:
                return []
            namespace, now = row[0], now_rfc3339()
            orphans: list[str] = []
            async with conn.execute(
                "SELECT namespace, name, provider FROM modules WHERE installation_id = ? AND owner LIKE 'github:%' "
                "ORDER BY namespace, name, provider",
                (installation_id,),
            ) as cursor:
                modules = [ModuleAddress(*r) for r in await cursor.fetchall()]
            for address in modules:
                orphans += await self._delete_module(conn, address, now)
            await conn.execute("DELETE FROM installations WHERE id = ?", (installation_id,))
            await conn.execute(
                "DELETE FROM namespaces WHERE name = ? AND NOT EXISTS (SELECT 1 FROM modules WHERE namespace = ?) "
                "AND NOT EXISTS (SELECT 1 FROM installations WHERE namespace = ?)",
                (namespace, namespace, namespace),
            )
            await self._append_events(conn, [events.app_uninstalled(namespace)], now)
            return orphans
