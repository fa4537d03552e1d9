"""SQLite metadata store (the default), through aiosqlite.

Two connections: one for reads and one for writes. Every write transaction runs on the writer
under an asyncio lock with ``BEGIN IMMEDIATE``, so statements of concurrent coroutines never
interleave inside a transaction, and another process (the CLI beside a running server) waits on
``busy_timeout`` instead of failing. WAL lets reads go on during a write.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import Event, ModuleVersion, NewVersion, PublishOutcome, TokenRecord
from mirror.domain.timeutil import now_rfc3339
from mirror.errors import MirrorError, StorageUnavailable

# Each entry moves the schema one version up; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE namespaces (
        name        TEXT PRIMARY KEY COLLATE NOCASE,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE modules (
        id          INTEGER PRIMARY KEY,
        namespace   TEXT NOT NULL COLLATE NOCASE REFERENCES namespaces(name),
        name        TEXT NOT NULL COLLATE NOCASE,
        provider    TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (namespace, name, provider)
    );
    CREATE TABLE versions (
        id           INTEGER PRIMARY KEY,
        module_id    INTEGER NOT NULL REFERENCES modules(id),
        version      TEXT NOT NULL,
        raw_version  TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        blob_key     TEXT NOT NULL,
        readme       TEXT,
        source       TEXT,
        commit_sha   TEXT,
        published_at TEXT NOT NULL,
        revoked_at   TEXT,
        UNIQUE (module_id, version)
    );
    CREATE TABLE tokens (
        id          TEXT PRIMARY KEY,
        token_hash  TEXT NOT NULL UNIQUE,
        namespace   TEXT NOT NULL,
        scope       TEXT NOT NULL CHECK (scope IN ('read', 'publish', 'admin')),
        description TEXT NOT NULL DEFAULT '',
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE TABLE events (
        serial      INTEGER PRIMARY KEY AUTOINCREMENT,
        type        TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        data        TEXT NOT NULL
    );
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)

_VERSION_COLUMNS = (
    "m.namespace, m.name, m.provider, v.version, v.raw_version, v.sha256, v.size, v.blob_key, "
    "v.published_at, v.readme, v.source, v.commit_sha, v.revoked_at"
)
_MODULE_MATCH = "m.namespace = ? AND m.name = ? AND m.provider = ?"


class SqliteMetadataStore:
    """The MetadataStore on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._reader: aiosqlite.Connection | None = None
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect()
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await self._migrate(self._writer)
            self._reader = await self._connect()
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StorageUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def ping(self) -> None:
        await self._fetchone("SELECT 1", ())

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute("PRAGMA busy_timeout = 10000")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = row[0] if row else 0
        if current > len(MIGRATIONS):
            raise StorageUnavailable(
                f"database schema version {current} is newer than this mirror understands ({len(MIGRATIONS)})"
            )
        for number in range(current, len(MIGRATIONS)):
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_statements(MIGRATIONS[number]):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number + 1}")
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    # -- plumbing ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = self._writer
        assert conn is not None, "store is not open"
        async with self._write_lock:
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"metadata store is busy: {exc}") from exc
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            else:
                try:
                    await conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    await conn.execute("ROLLBACK")
                    raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row | tuple]:
        assert self._reader is not None, "store is not open"
        try:
            async with self._reader.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store read failed: {exc}") from exc

    async def _fetchone(self, sql: str, params: Sequence[Any]) -> Any:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # -- modules and versions ------------------------------------------------------------------

    async def list_versions(self, address: ModuleAddress) -> list[ModuleVersion]:
        rows = await self._fetchall(
            f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN modules m ON m.id = v.module_id "
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

    async def publish_version(self, new: NewVersion) -> PublishOutcome:
        mv = new.version
        addr = mv.address
        try:
            async with self._transaction() as conn:
                existing = await _one(
                    conn,
                    f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN modules m ON m.id = v.module_id "
                    f"WHERE {_MODULE_MATCH} AND v.version = ?",
                    (addr.namespace, addr.name, addr.provider, mv.version),
                )
                if existing is not None:
                    stored = _version_from_row(existing)
                    return PublishOutcome("unchanged" if stored.sha256 == mv.sha256 else "conflict", stored)

                now = mv.published_at
                await conn.execute(
                    "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (addr.namespace, now),
                )
                module_row = await _one(
                    conn,
                    "SELECT id FROM modules m WHERE " + _MODULE_MATCH,
                    (addr.namespace, addr.name, addr.provider),
                )
                events = list(new.events)
                if module_row is None:
                    cursor = await conn.execute(
                        "INSERT INTO modules (namespace, name, provider, created_at) VALUES (?, ?, ?, ?)",
                        (addr.namespace, addr.name, addr.provider, now),
                    )
                    module_id = cursor.lastrowid
                    events.insert(
                        0,
                        ("module.created", {"namespace": addr.namespace, "name": addr.name, "provider": addr.provider}),
                    )
                else:
                    module_id = module_row[0]
                await conn.execute(
                    "INSERT INTO versions (module_id, version, raw_version, sha256, size, blob_key, readme, "
                    "source, commit_sha, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    ),
                )
                await _append_events(conn, events, now)
                return PublishOutcome("created", mv)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

    # -- tokens ------------------------------------------------------------------------------

    async def create_token(self, record: TokenRecord) -> None:
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    "INSERT INTO tokens (id, token_hash, namespace, scope, description, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.token_hash,
                        record.namespace,
                        record.scope,
                        record.description,
                        record.created_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise MirrorError(f"token could not be stored: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        row = await self._fetchone(
            "SELECT id, token_hash, namespace, scope, created_at, description, revoked_at "
            "FROM tokens WHERE token_hash = ?",
            (token_hash,),
        )
        return TokenRecord(*row) if row else None

    async def list_tokens(self) -> list[TokenRecord]:
        rows = await self._fetchall(
            "SELECT id, token_hash, namespace, scope, created_at, description, revoked_at "
            "FROM tokens ORDER BY created_at, id",
            (),
        )
        return [TokenRecord(*row) for row in rows]

    async def revoke_token(self, token_id: str) -> bool:
        try:
            async with self._transaction() as conn:
                cursor = await conn.execute(
                    "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    (now_rfc3339(), token_id),
                )
                return cursor.rowcount > 0
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

    # -- events ------------------------------------------------------------------------------

    async def events_after(self, serial: int, limit: int) -> list[Event]:
        rows = await self._fetchall(
            "SELECT serial, type, occurred_at, data FROM events WHERE serial > ? ORDER BY serial LIMIT ?",
            (serial, limit),
        )
        return [Event(row[0], row[1], row[2], json.loads(row[3])) for row in rows]

    # -- settings ----------------------------------------------------------------------------

    async def get_or_create_setting(self, key: str, default: str) -> str:
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, default)
                )
                row = await _one(conn, "SELECT value FROM settings WHERE key = ?", (key,))
                return row[0]
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc


async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> Any:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def _append_events(conn: aiosqlite.Connection, events: list[tuple[str, dict[str, Any]]], when: str) -> None:
    await conn.executemany(
        "INSERT INTO events (type, occurred_at, data) VALUES (?, ?, ?)",
        [(kind, when, json.dumps(data, separators=(",", ":"), sort_keys=True)) for kind, data in events],
    )


def _version_from_row(row: Sequence[Any]) -> ModuleVersion:
    (namespace, name, provider, version, raw, sha256, size, blob_key, published_at, readme, source, commit, revoked) = row
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
    )


def _split_statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
