"""Modules' versions: the protocol's reads, publishing, browsing and download counts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping
from typing import Any

from mirror.domain.addresses import ModuleAddress
from mirror.domain import provenance
from mirror.domain.models import ModuleVersion, NewVersion, PublishOutcome
from mirror.domain.errors import StorageUnavailable
from mirror.domain.publishing import plan_publish
from mirror.storage.protocols import ModuleSummary
from mirror.storage.sqlite.rows import (
    _MODULE_MATCH,
    _OWNER_COLUMNS,
    _VERSION_COLUMNS,
    _VERSION_COLUMNS_NO_README,
    _dumps,
    _module_id,
    _one,
    _owner_from_row,
    _parts,
    _refresh_latest,
    _summary_from_row,
    _version_from_row,
)
from mirror.storage.sqlite.connection import SqliteConnection


class Versions(SqliteConnection):
    """Modules' versions: the protocol's reads, publishing, browsing and download counts."""

    async def list_versions(self, address: ModuleAddress, *, readme: bool = True) -> list[ModuleVersion]:
        rows = await self._fetchall(
            f"SELECT {_VERSION_COLUMNS if readme else _VERSION_COLUMNS_NO_README} FROM versions v JOIN modules m ON m.id = v.module_id "
            f"WHERE {_MODULE_MATCH} AND v.revoked_at IS NULL",
            (address.namespace, address.name, address.provider),
        )
        return [_version_from_row(row) for row in rows]

    async def get_version(self, address: ModuleAddress, version: str) -> ModuleVersion | None:
        row = await self._fetchone(
            f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN modules m ON m.id = v.module_id "
            f"WHERE {_MODULE_MATCH} AND v.version = ?",
            (address.namespace, address.name, address.provider, version),
        )
        return _version_from_row(row) if row else None

    async def version_analysis(self, address: ModuleAddress, version: str) -> dict[str, Any] | None:
        """The stored analysis of a version (kept off ``ModuleVersion``: the hot path never needs it)."""
        row = await self._fetchone(
            f"SELECT v.analysis FROM versions v JOIN modules m ON m.id = v.module_id WHERE {_MODULE_MATCH} AND v.version = ?",
            (address.namespace, address.name, address.provider, version),
        )
        return json.loads(row[0]) if row and row[0] else None

    async def all_versions(self, address: ModuleAddress) -> list[ModuleVersion]:
        """Every version, revoked ones included (for reconciling against a source)."""
        rows = await self._fetchall(
            f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN modules m ON m.id = v.module_id WHERE {_MODULE_MATCH}",
            _parts(address),
        )
        return [_version_from_row(row) for row in rows]

    async def publish_version(self, new: NewVersion) -> PublishOutcome:
        mv = new.version
        addr = mv.address
        try:
            async with self._transaction() as conn:
                module_row = await _one(
                    conn, f"SELECT id, {_OWNER_COLUMNS} FROM modules m WHERE " + _MODULE_MATCH, _parts(addr)
                )
                if new.expected_owner != "any":
                    current = _owner_from_row(module_row[1:]) if module_row else None
                    if current != new.expected_owner:
                        raise provenance.changed(addr, current, new.expected_owner)
                existing = await _one(
                    conn,
                    f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN modules m ON m.id = v.module_id "
                    f"WHERE {_MODULE_MATCH} AND v.version = ?",
                    (addr.namespace, addr.name, addr.provider, mv.version),
                )
                stored = _version_from_row(existing) if existing is not None else None
                plan = plan_publish(new, stored, module_exists=module_row is not None)
                if plan.action in ("conflict", "unchanged"):
                    return plan.outcome
                if plan.action == "reinstate":
                    await conn.execute(
                        "UPDATE versions SET revoked_at = NULL WHERE version = ? AND module_id = "
                        "(SELECT id FROM modules m WHERE " + _MODULE_MATCH + ")",
                        (mv.version, addr.namespace, addr.name, addr.provider),
                    )
                    await _refresh_latest(conn, await _module_id(conn, addr))
                    await self._append_events(conn, list(plan.events), mv.published_at)
                    return plan.outcome

                now = mv.published_at
                await conn.execute(
                    "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (addr.namespace, now),
                )
                if module_row is None:
                    cursor = await conn.execute(
                        "INSERT INTO modules (namespace, name, provider, created_at, owner, repository_id) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (addr.namespace, addr.name, addr.provider, now, str(new.owner), new.owner.repository_id),
                    )
                    module_id = cursor.lastrowid
                else:
                    module_id = module_row[0]
                await conn.execute(
                    "INSERT INTO versions (module_id, version, raw_version, sha256, size, blob_key, readme, "
                    "source, commit_sha, published_at, analysis) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        module_id,
                        mv.version,
                        mv.raw_version,
                        mv.sha256,
                        mv.size,
                        mv.blob_key,
                        mv.readme,
                        mv.source,
                        mv.commit_sha,
                        now,
                        _dumps(new.analysis) if new.analysis is not None else None,
                    ),
                )
                await _refresh_latest(conn, module_id)
                await self._append_events(conn, list(plan.events), now)
                return plan.outcome
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

    async def latest_versions(
        self, *, namespace: str | None = None, name: str | None = None, provider: str | None = None
    ) -> list[ModuleSummary]:
        """Each matching module with a live version, with its latest one (highest release, else
        highest prerelease), sorted by address: one indexed query through ``latest_version_id``."""
        where, params = ["m.latest_version_id IS NOT NULL"], []
        for column, value in (("m.namespace", namespace), ("m.name", name), ("m.provider", provider)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._fetchall(
            f"SELECT {_VERSION_COLUMNS}, m.source_url, m.downloads, m.description FROM modules m "
            f"JOIN versions v ON v.id = m.latest_version_id WHERE {' AND '.join(where)} "
            "ORDER BY m.namespace, m.name, m.provider",
            params,
        )
        return [_summary_from_row(row) for row in rows]

    async def browse_modules(
        self,
        *,
        namespace: str | None = None,
        provider: str | None = None,
        query: str = "",
        only_namespaces: Collection[str] | None = None,
        exclude_namespaces: Collection[str] = (),
        offset: int = 0,
        limit: int = 15,
    ) -> tuple[list[ModuleSummary], bool]:
        """A page in address order, walking the modules' unique index; a ``query`` is a
        case-insensitive LIKE over four short columns (no README is read)."""
        where, params = ["m.latest_version_id IS NOT NULL"], []
        if namespace is not None:
            where.append("m.namespace = ?")
            params.append(namespace)
        if provider is not None:
            where.append("m.provider = ?")
            params.append(provider)
        if query:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "(m.namespace LIKE ? ESCAPE '\\' OR m.name LIKE ? ESCAPE '\\' "
                "OR m.provider LIKE ? ESCAPE '\\' OR m.description LIKE ? ESCAPE '\\')"
            )
            params += [pattern] * 4
        if only_namespaces is not None:
            where.append(f"m.namespace IN ({','.join('?' * len(only_namespaces)) or 'NULL'})")
            params += list(only_namespaces)
        if exclude_namespaces:
            where.append(f"m.namespace NOT IN ({','.join('?' * len(exclude_namespaces))})")
            params += list(exclude_namespaces)
        columns = _VERSION_COLUMNS.replace("v.readme", "NULL")
        # The page is chosen on the modules table alone, then joined: SQLite would otherwise join
        # every row an OFFSET skips (12 ms instead of 4 for a deep page of 10,000 modules).
        rows = await self._fetchall(
            f"SELECT {columns}, m.source_url, m.downloads, m.description FROM "
            f"(SELECT m.id FROM modules m WHERE {' AND '.join(where)} "
            "ORDER BY m.namespace, m.name, m.provider LIMIT ? OFFSET ?) page "
            "JOIN modules m ON m.id = page.id JOIN versions v ON v.id = m.latest_version_id "
            "ORDER BY m.namespace, m.name, m.provider",
            [*params, limit + 1, offset],
        )
        return [_summary_from_row(row) for row in rows[:limit]], len(rows) > limit

    async def version_downloads(self, address: ModuleAddress) -> dict[str, int]:
        rows = await self._fetchall(
            f"SELECT v.version, v.downloads FROM versions v JOIN modules m ON m.id = v.module_id WHERE {_MODULE_MATCH}",
            _parts(address),
        )
        return {version: downloads for version, downloads in rows}

    async def add_downloads(self, counts: Mapping[tuple[ModuleAddress, str], int]) -> None:
        """Add counted downloads to their versions, in one write transaction."""
        if not counts:
            return
        async with self._writing() as conn:
            await conn.executemany(
                "UPDATE versions SET downloads = downloads + ? WHERE version = ? AND module_id = "
                "(SELECT id FROM modules m WHERE " + _MODULE_MATCH + ")",
                [(count, version, *_parts(address)) for (address, version), count in counts.items()],
            )
            await conn.executemany(
                "UPDATE modules SET downloads = downloads + ? WHERE id = (SELECT id FROM modules m WHERE "
                + _MODULE_MATCH
                + ")",
                [(count, *_parts(address)) for (address, _), count in counts.items()],
            )
