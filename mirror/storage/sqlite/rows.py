"""Columns, row conversions and statements every SQLite aggregate shares."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from mirror.domain.addresses import ModuleAddress
from mirror.domain.audit import actor_json
from mirror.domain import provenance
from mirror.domain.provenance import Owner
from mirror.domain.models import ModuleRecord, ModuleVersion
from mirror.domain.events import address_data
from mirror.domain.lifecycle import Deprecation
from mirror.domain.publishing import latest_live
from mirror.domain.readme import first_paragraph
from mirror.storage.protocols import ModuleSummary


_VERSION_COLUMNS = (
    "m.namespace, m.name, m.provider, v.version, v.raw_version, v.sha256, v.size, v.blob_key, "
    "v.published_at, v.readme, v.source, v.commit_sha, v.revoked_at, v.deprecation"
)


#: the protocol's versions list: only columns of the covering index ``versions_live`` (no
#: README, no deprecation: the table's rows are never read)
_VERSION_COLUMNS_NO_README = _VERSION_COLUMNS.replace("v.readme", "NULL").replace("v.deprecation", "NULL")


_MODULE_MATCH = "m.namespace = ? AND m.name = ? AND m.provider = ?"


_OWNER_COLUMNS = "owner, repository_id"


_MODULE_COLUMNS = "namespace, name, provider, created_at, source_url, repository_id, owner, installation_id, allow_uploads"


def _version_from_row(row: Sequence[Any]) -> ModuleVersion:
    (namespace, name, provider, version, raw, sha256, size, blob_key, published_at, readme, source, commit, revoked,
     deprecation) = row
    return ModuleVersion(
        address=ModuleAddress(namespace, name, provider),
        version=version,
        raw_version=raw,
        sha256=sha256,
        size=size,
        blob_key=blob_key,
        published_at=published_at,
        readme=readme,
        source=source,
        commit_sha=commit,
        revoked_at=revoked,
        deprecation=Deprecation.from_json(json.loads(deprecation)) if deprecation else None,
    )


def _summary_from_row(row: Sequence[Any]) -> ModuleSummary:
    *version, source_url, downloads, description = row
    return ModuleSummary(_version_from_row(version), source_url, downloads, description)


def _owner_from_row(row: Sequence[Any]) -> Owner:
    """The owner from ``_OWNER_COLUMNS`` (a row the provenance migration has not filled: its legacy owner)."""
    owner, repository_id = row[0], row[1]
    return Owner.parse(owner) if owner else provenance.legacy_owner(repository_id, None)


def _module_from_row(row: Sequence[Any]) -> ModuleRecord:
    namespace, name, provider, created_at, source_url, repository_id, owner, installation_id, allow_uploads = row
    return ModuleRecord(
        ModuleAddress(namespace, name, provider),
        created_at,
        source_url,
        repository_id,
        _owner_from_row((owner, repository_id)),
        installation_id,
        bool(allow_uploads),
    )


async def _check_owner(conn: aiosqlite.Connection, address: ModuleAddress, owner: Owner | None) -> None:
    """NotOwner unless the module (if there is one) is ``owner``'s; nothing to check without ``owner``."""
    if owner is None:
        return
    row = await _one(conn, f"SELECT {_OWNER_COLUMNS} FROM modules m WHERE " + _MODULE_MATCH, _parts(address))
    if row is not None and (current := _owner_from_row(row)) != owner:
        raise provenance.changed(address, current, owner)


async def _module_id(conn: aiosqlite.Connection, address: ModuleAddress) -> int:
    return (await _one(conn, "SELECT id FROM modules m WHERE " + _MODULE_MATCH, _parts(address)))[0]


async def _refresh_latest(conn: aiosqlite.Connection, module_id: int) -> None:
    """Point the module at its latest live version (highest release, else highest prerelease)
    and keep that version's description; inside the write that changed its versions."""
    async with conn.execute(
        "SELECT id, version FROM versions WHERE module_id = ? AND revoked_at IS NULL", (module_id,)
    ) as cursor:
        live = await cursor.fetchall()
    best = latest_live(live, version=lambda row: row[1])
    if best is None:
        await conn.execute("UPDATE modules SET latest_version_id = NULL, description = '' WHERE id = ?", (module_id,))
        return
    readme = await _one(conn, "SELECT readme FROM versions WHERE id = ?", (best[0],))
    await conn.execute(
        "UPDATE modules SET latest_version_id = ?, description = ? WHERE id = ?",
        (best[0], first_paragraph(readme[0]), module_id),
    )


def _parts(address: ModuleAddress) -> tuple[str, str, str]:
    return (address.namespace, address.name, address.provider)


_address_data = address_data


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> Any:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def _append_events(conn: aiosqlite.Connection, events: list[tuple[str, dict[str, Any]]], when: str) -> None:
    # who the work under way is done for (mirror.domain.audit), its kind first
    actor = json.dumps(actor_json(), separators=(",", ":"))
    await conn.executemany(
        "INSERT INTO events (type, occurred_at, data, actor) VALUES (?, ?, ?, ?)",
        [(kind, when, _dumps(data), actor) for kind, data in events],
    )
