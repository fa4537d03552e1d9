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
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite

from mirror.domain.addresses import ModuleAddress
from mirror.domain import provenance
from mirror.domain.provenance import Owner
from mirror.domain.models import (
    Consumer,
    DeliveryFailure,
    Event,
    Installation,
    Job,
    ModuleRecord,
    ModuleVersion,
    NewVersion,
    PublishOutcome,
    TokenRecord,
    WebhookSubscription,
)
from mirror.domain.readme import first_paragraph
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.versions import Version
from mirror.domain.errors import Conflict, MirrorError, StorageUnavailable
from mirror.storage.protocols import ModuleSummary, new_lease_owner

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
    """
    ALTER TABLE modules ADD COLUMN source_url TEXT;
    ALTER TABLE modules ADD COLUMN repository_id INTEGER;
    CREATE INDEX modules_repository ON modules (repository_id);
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        payload     TEXT NOT NULL,
        dedupe_key  TEXT UNIQUE,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        run_after   REAL NOT NULL,
        lease_until REAL,
        last_error  TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE INDEX jobs_ready ON jobs (state, run_after);
    CREATE TABLE installations (
        id          INTEGER PRIMARY KEY,
        account     TEXT NOT NULL,
        namespace   TEXT NOT NULL COLLATE NOCASE,
        created_at  TEXT NOT NULL
    );
    """,
    """
    CREATE INDEX events_type ON events (type, serial);
    CREATE TABLE consumers (
        name            TEXT PRIMARY KEY,
        serial          INTEGER NOT NULL DEFAULT 0,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error      TEXT,
        updated_at      TEXT NOT NULL
    );
    CREATE TABLE webhook_subscriptions (
        id          TEXT PRIMARY KEY,
        url         TEXT NOT NULL,
        secret      TEXT NOT NULL,
        events      TEXT NOT NULL,
        namespaces  TEXT NOT NULL,
        source      TEXT NOT NULL CHECK (source IN ('config', 'api')),
        created_at  TEXT NOT NULL
    );
    CREATE TABLE webhook_failures (
        id              INTEGER PRIMARY KEY,
        subscription_id TEXT NOT NULL,
        serial          INTEGER NOT NULL,
        attempts        INTEGER NOT NULL,
        last_error      TEXT NOT NULL,
        failed_at       TEXT NOT NULL,
        redelivered_at  TEXT
    );
    CREATE INDEX webhook_failures_subscription ON webhook_failures (subscription_id, id);
    """,
    """
    ALTER TABLE versions ADD COLUMN analysis TEXT;
    """,
    """
    ALTER TABLE versions ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX modules_provider ON modules (provider);
    """,
    # What lists and search read, kept on the module row by every write that changes it (so a
    # page of 10,000 modules is an index walk, not a pass over every version): the latest live
    # version (SemVer order, chosen in Python), its README's first paragraph, and the download
    # total. Filled for existing modules by ``_after_migration``.
    """
    ALTER TABLE modules ADD COLUMN latest_version_id INTEGER;
    ALTER TABLE modules ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE modules ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;
    UPDATE modules SET downloads = (SELECT COALESCE(SUM(downloads), 0) FROM versions WHERE module_id = modules.id);
    """,
    # Leases with owners: a job's claim token (its holder's later writes are conditional on it),
    # and a consumer's lease (one webhook dispatcher per subscriber across processes).
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE consumers ADD COLUMN lease_owner TEXT;
    ALTER TABLE consumers ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
    """,
    # The protocol's versions list without touching table rows: a README sits before the later
    # columns in a row, so reading them walked its overflow pages (a covering index).
    """
    CREATE INDEX versions_live ON versions (
        module_id, revoked_at, version, raw_version, sha256, size, blob_key, published_at, source, commit_sha
    );
    """,
    # Provenance: each module's one owner source, the installation that brought it, and an
    # admin's per-module allowance for uploads. Filled for existing modules by ``_after_migration``.
    """
    ALTER TABLE modules ADD COLUMN owner TEXT;
    ALTER TABLE modules ADD COLUMN installation_id INTEGER;
    ALTER TABLE modules ADD COLUMN allow_uploads INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX modules_owner ON modules (owner);
    CREATE INDEX modules_installation ON modules (installation_id);
    """,
)

#: migrations after which ``_migrate`` has Python work to do
_REFRESH_LATEST_AFTER = 6
_RECORD_OWNERS_AFTER = 9

_VERSION_COLUMNS = (
    "m.namespace, m.name, m.provider, v.version, v.raw_version, v.sha256, v.size, v.blob_key, "
    "v.published_at, v.readme, v.source, v.commit_sha, v.revoked_at"
)
_VERSION_COLUMNS_NO_README = _VERSION_COLUMNS.replace("v.readme", "NULL")
_MODULE_MATCH = "m.namespace = ? AND m.name = ? AND m.provider = ?"


class DatabaseMissing(StorageUnavailable):
    """The database file does not exist and the store was told not to create it."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class SqliteMetadataStore:
    """The MetadataStore on one SQLite file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        #: False: ``open`` raises DatabaseMissing instead of creating a database that is not there
        self.create = create
        self._reader: aiosqlite.Connection | None = None
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._event_listeners: list[Callable[[], None]] = []
        self._events_appended = False

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if not self.create and not self.path.is_file():
            raise DatabaseMissing(f"no SQLite database at {self.path}", path=self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600, exist_ok=True)  # a new database is 0600; SQLite gives -wal and -shm its mode
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
        # 64 MiB of page cache (SQLite's default is 2 MiB): the modules table and its index of a
        # 10,000-module registry stay in memory, which a search scans.
        await conn.execute("PRAGMA cache_size = -65536")
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
                if number + 1 == _REFRESH_LATEST_AFTER:
                    async with conn.execute("SELECT id FROM modules") as cursor:
                        for (module_id,) in await cursor.fetchall():
                            await _refresh_latest(conn, module_id)
                if number + 1 == _RECORD_OWNERS_AFTER:
                    await _record_legacy_owners(conn)
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
            self._events_appended = False
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
                if self._events_appended:
                    for listener in self._event_listeners:
                        listener()

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
                if existing is not None:
                    stored = _version_from_row(existing)
                    if stored.sha256 != mv.sha256:
                        return PublishOutcome("conflict", stored)
                    if stored.revoked_at is None:
                        return PublishOutcome("unchanged", stored)
                    # the same bytes again after a revocation (a tag deleted and pushed back)
                    await conn.execute(
                        "UPDATE versions SET revoked_at = NULL WHERE version = ? AND module_id = "
                        "(SELECT id FROM modules m WHERE " + _MODULE_MATCH + ")",
                        (mv.version, addr.namespace, addr.name, addr.provider),
                    )
                    await _refresh_latest(conn, await _module_id(conn, addr))
                    await self._append_events(conn, list(new.events), mv.published_at)
                    return PublishOutcome("created", replace(stored, revoked_at=None))

                now = mv.published_at
                await conn.execute(
                    "INSERT INTO namespaces (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (addr.namespace, now),
                )
                events = list(new.events)
                if module_row is None:
                    cursor = await conn.execute(
                        "INSERT INTO modules (namespace, name, provider, created_at, owner, repository_id) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (addr.namespace, addr.name, addr.provider, now, str(new.owner), new.owner.repository_id),
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
                await self._append_events(conn, events, now)
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

    async def events_after(self, serial: int, limit: int, types: Sequence[str] = ()) -> list[Event]:
        """Events with a serial above ``serial``, in order; only ``types`` when given."""
        where, params = ("", ()) if not types else (f" AND type IN ({','.join('?' * len(types))})", tuple(types))
        rows = await self._fetchall(
            f"SELECT serial, type, occurred_at, data FROM events WHERE serial > ?{where} ORDER BY serial LIMIT ?",
            (serial, *params, limit),
        )
        return [Event(row[0], row[1], row[2], json.loads(row[3])) for row in rows]

    async def latest_serial(self) -> int:
        row = await self._fetchone("SELECT COALESCE(MAX(serial), 0) FROM events", ())
        return row[0]

    # -- event consumers -----------------------------------------------------------------------

    async def consumer(self, name: str, *, start_serial: int = 0) -> Consumer:
        """The consumer's state, created at ``start_serial`` the first time it is asked for."""
        async with self._writing() as conn:
            await conn.execute(
                "INSERT INTO consumers (name, serial, updated_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (name, start_serial, now_rfc3339()),
            )
            return _consumer_from_row(await _one(conn, _CONSUMER_SELECT + " WHERE name = ?", (name,)))

    async def list_consumers(self) -> list[Consumer]:
        return [_consumer_from_row(row) for row in await self._fetchall(_CONSUMER_SELECT + " ORDER BY name", ())]

    async def advance_consumer(self, name: str, serial: int, *, owner: str | None = None) -> bool:
        """The consumer handled everything up to ``serial``; its retry state starts afresh.
        With ``owner``, only while ``owner`` holds the consumer's lease; False when not applied."""
        where, params = _owned(name, owner)
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE consumers SET serial = MAX(serial, ?), attempts = 0, next_attempt_at = 0, last_error = NULL, "
                f"updated_at = ? WHERE {where}",
                (serial, now_rfc3339(), *params),
            )
            return cursor.rowcount > 0

    async def record_consumer_failure(
        self, name: str, attempts: int, next_attempt_at: float, error: str, *, owner: str | None = None
    ) -> bool:
        where, params = _owned(name, owner)
        async with self._writing() as conn:
            cursor = await conn.execute(
                f"UPDATE consumers SET attempts = ?, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE {where}",
                (attempts, next_attempt_at, error, now_rfc3339(), *params),
            )
            return cursor.rowcount > 0

    async def acquire_consumer_lease(self, name: str, owner: str, until: float, now: float) -> bool:
        """Hold the consumer's lease until ``until`` when it is free, expired, or already
        ``owner``'s (so this renews too); False when another holder's lease runs or there is no
        such consumer."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE consumers SET lease_owner = ?, lease_until = ? "
                "WHERE name = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (owner, until, name, owner, now),
            )
            return cursor.rowcount > 0

    async def release_consumer_lease(self, name: str, owner: str) -> bool:
        """Give the lease up (only ``owner``'s own); another holder may take it at once."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE consumers SET lease_owner = NULL, lease_until = 0 WHERE name = ? AND lease_owner = ?",
                (name, owner),
            )
            return cursor.rowcount > 0

    async def delete_consumer(self, name: str) -> None:
        async with self._writing() as conn:
            await conn.execute("DELETE FROM consumers WHERE name = ?", (name,))

    # -- webhook subscriptions -----------------------------------------------------------------

    async def put_subscription(self, subscription: WebhookSubscription) -> None:
        """Create or replace a subscription (config subscriptions are re-put at every start)."""
        async with self._writing() as conn:
            await conn.execute(
                "INSERT INTO webhook_subscriptions (id, url, secret, events, namespaces, source, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET url = excluded.url, "
                "secret = excluded.secret, events = excluded.events, namespaces = excluded.namespaces",
                (
                    subscription.id,
                    subscription.url,
                    subscription.secret,
                    _dumps(list(subscription.events)),
                    _dumps(list(subscription.namespaces)),
                    subscription.source,
                    subscription.created_at,
                ),
            )

    async def list_subscriptions(self) -> list[WebhookSubscription]:
        rows = await self._fetchall(_SUBSCRIPTION_SELECT + " ORDER BY created_at, id", ())
        return [_subscription_from_row(row) for row in rows]

    async def get_subscription(self, subscription_id: str) -> WebhookSubscription | None:
        row = await self._fetchone(_SUBSCRIPTION_SELECT + " WHERE id = ?", (subscription_id,))
        return _subscription_from_row(row) if row else None

    async def delete_subscription(self, subscription_id: str) -> bool:
        async with self._writing() as conn:
            cursor = await conn.execute("DELETE FROM webhook_subscriptions WHERE id = ?", (subscription_id,))
            await conn.execute("DELETE FROM consumers WHERE name = ?", (f"webhook:{subscription_id}",))
            return cursor.rowcount > 0

    # -- dead letters --------------------------------------------------------------------------

    async def add_delivery_failure(
        self, subscription_id: str, serial: int, attempts: int, error: str, *, owner: str | None = None
    ) -> bool:
        """Park an event the subscriber did not take, and move its cursor past it, in one transaction.
        With ``owner``, only while ``owner`` holds the consumer's lease (False, nothing written, otherwise)."""
        async with self._writing() as conn:
            now = now_rfc3339()
            if owner is not None:
                held = await _one(
                    conn,
                    "SELECT 1 FROM consumers WHERE name = ? AND lease_owner = ?",
                    (f"webhook:{subscription_id}", owner),
                )
                if held is None:
                    return False
            await conn.execute(
                "INSERT INTO webhook_failures (subscription_id, serial, attempts, last_error, failed_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (subscription_id, serial, attempts, error, now),
            )
            await conn.execute(
                "UPDATE consumers SET serial = MAX(serial, ?), attempts = 0, next_attempt_at = 0, last_error = ?, "
                "updated_at = ? WHERE name = ?",
                (serial, error, now, f"webhook:{subscription_id}"),
            )
            return True

    async def list_delivery_failures(self, subscription_id: str, *, pending_only: bool = True) -> list[DeliveryFailure]:
        where = " AND redelivered_at IS NULL" if pending_only else ""
        rows = await self._fetchall(
            "SELECT id, subscription_id, serial, attempts, last_error, failed_at, redelivered_at FROM webhook_failures "
            f"WHERE subscription_id = ?{where} ORDER BY id",
            (subscription_id,),
        )
        return [DeliveryFailure(*row) for row in rows]

    async def mark_redelivered(self, failure_id: int) -> bool:
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE webhook_failures SET redelivered_at = ? WHERE id = ? AND redelivered_at IS NULL",
                (now_rfc3339(), failure_id),
            )
            return cursor.rowcount > 0

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


    # -- browsing and download counts ----------------------------------------------------------

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

    # -- modules, namespaces, installations ------------------------------------------------

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
            await self._append_events(conn, [("module.created", _address_data(address))], now)
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
            data = {**_address_data(address), "owner_source": str(record.owner), "allow_uploads": record.allow_uploads}
            await self._append_events(conn, [("module.policy_changed", data)], now_rfc3339())
            return record

    async def all_versions(self, address: ModuleAddress) -> list[ModuleVersion]:
        """Every version, revoked ones included (for reconciling against a source)."""
        rows = await self._fetchall(
            f"SELECT {_VERSION_COLUMNS} FROM versions v JOIN modules m ON m.id = v.module_id WHERE {_MODULE_MATCH}",
            _parts(address),
        )
        return [_version_from_row(row) for row in rows]

    async def delete_module(self, address: ModuleAddress, *, owner: Owner | None = None) -> list[str]:
        """Remove a module and its versions (``module.deleted``); return blob keys nothing uses any more.
        With ``owner``, only while the module is that owner's (NotOwner otherwise)."""
        async with self._writing() as conn:
            await _check_owner(conn, address, owner)
            return await self._delete_module(conn, address, now_rfc3339())

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
            data = {**_address_data(target), "old_name": address.name}
            await self._append_events(conn, [("module.renamed", data)], now_rfc3339())
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
            await self._append_events(conn, [("module.version_revoked", {**_address_data(address), "version": version})], now)
            return True

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
            await self._append_events(conn, [("app.installed", {"namespace": installation.namespace})], installation.created_at)
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
            await self._append_events(conn, [("app.uninstalled", {"namespace": namespace})], now)
            return orphans

    # -- jobs --------------------------------------------------------------------------------

    async def enqueue_job(
        self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None, run_after: float | None = None
    ) -> Job | None:
        """Queue a job; None when ``dedupe_key`` was seen before (the job is not queued again)."""
        now, stamp = time.time(), now_rfc3339()
        async with self._writing() as conn:
            cursor = await conn.execute(
                "INSERT INTO jobs (kind, payload, dedupe_key, state, run_after, created_at, updated_at) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
                (kind, _dumps(payload), dedupe_key, run_after or now, stamp, stamp),
            )
            if cursor.rowcount == 0:
                return None
            return Job(cursor.lastrowid, kind, payload, "queued", 0, run_after or now, stamp, stamp, None, dedupe_key)

    async def claim_job(self, now: float, lease_seconds: float) -> Job | None:
        """Take the oldest runnable job: queued and due, or running with an expired lease (its
        worker died). The claim counts as an attempt."""
        async with self._writing() as conn:
            row = await _one(
                conn,
                "SELECT id FROM jobs WHERE (state = 'queued' AND run_after <= ?) "
                "OR (state = 'running' AND lease_until < ?) ORDER BY run_after, id LIMIT 1",
                (now, now),
            )
            if row is None:
                return None
            await conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, lease_owner = ?, "
                "updated_at = ? WHERE id = ?",
                (now + lease_seconds, new_lease_owner(), now_rfc3339(), row[0]),
            )
            return _job_from_row(await _one(conn, _JOB_SELECT + " WHERE id = ?", (row[0],)))

    async def renew_job_lease(self, job_id: int, until: float, *, owner: str | None = None) -> bool:
        where, params = _job_owned(job_id, owner)
        async with self._writing() as conn:
            cursor = await conn.execute(
                f"UPDATE jobs SET lease_until = ? WHERE {where} AND state = 'running'", (until, *params)
            )
            return cursor.rowcount > 0

    async def finish_job(self, job_id: int, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "done", None, None, owner)

    async def retry_job(self, job_id: int, error: str, run_after: float, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "queued", error, run_after, owner)

    async def fail_job(self, job_id: int, error: str, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "failed", error, None, owner)

    async def requeue_job(self, job_id: int) -> bool:
        """Put a failed job back in the queue with fresh attempts; False unless it had failed."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_after = ?, lease_until = NULL, lease_owner = NULL, "
                "updated_at = ? WHERE id = ? AND state = 'failed'",
                (time.time(), now_rfc3339(), job_id),
            )
            return cursor.rowcount > 0

    async def get_job(self, job_id: int) -> Job | None:
        row = await self._fetchone(_JOB_SELECT + " WHERE id = ?", (job_id,))
        return None if row is None else _job_from_row(row)

    async def list_jobs(self, state: str | None = None, limit: int = 100) -> list[Job]:
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        rows = await self._fetchall(f"{_JOB_SELECT} {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_job_from_row(row) for row in rows]

    async def _set_job(
        self, job_id: int, state: str, error: str | None, run_after: float | None, owner: str | None
    ) -> bool:
        where, params = _job_owned(job_id, owner)
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET state = ?, last_error = COALESCE(?, last_error), run_after = COALESCE(?, run_after), "
                f"lease_until = NULL, lease_owner = NULL, updated_at = ? WHERE {where}",
                (state, error, run_after, now_rfc3339(), *params),
            )
            return cursor.rowcount > 0

    async def _delete_module(self, conn: aiosqlite.Connection, address: ModuleAddress, now: str) -> list[str]:
        row = await _one(conn, "SELECT id FROM modules m WHERE " + _MODULE_MATCH, _parts(address))
        if row is None:
            return []
        module_id = row[0]
        async with conn.execute("SELECT DISTINCT blob_key FROM versions WHERE module_id = ?", (module_id,)) as cursor:
            keys = [r[0] for r in await cursor.fetchall()]
        await conn.execute("DELETE FROM versions WHERE module_id = ?", (module_id,))
        await conn.execute("DELETE FROM modules WHERE id = ?", (module_id,))
        await self._append_events(conn, [("module.deleted", _address_data(address))], now)
        orphans = []
        for key in keys:
            if await _one(conn, "SELECT 1 FROM versions WHERE blob_key = ? LIMIT 1", (key,)) is None:
                orphans.append(key)
        return orphans

    async def _append_events(
        self, conn: aiosqlite.Connection, events: list[tuple[str, dict[str, Any]]], when: str
    ) -> None:
        self._events_appended = True
        await _append_events(conn, events, when)

    def add_event_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit that appended events (consumers wake up at once;
        writes of other processes are found by their polling)."""
        self._event_listeners.append(listener)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction whose sqlite3 errors surface as StorageUnavailable."""
        try:
            async with self._transaction() as conn:
                yield conn
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc


_CONSUMER_SELECT = "SELECT name, serial, attempts, next_attempt_at, last_error, updated_at FROM consumers"
_SUBSCRIPTION_SELECT = "SELECT id, url, secret, events, namespaces, source, created_at FROM webhook_subscriptions"


def _consumer_from_row(row: Sequence[Any]) -> Consumer:
    return Consumer(*row)


def _subscription_from_row(row: Sequence[Any]) -> WebhookSubscription:
    sub_id, url, secret, events, namespaces, source, created_at = row
    return WebhookSubscription(
        sub_id, url, secret, tuple(json.loads(events)), tuple(json.loads(namespaces)), source, created_at
    )


_JOB_SELECT = (
    "SELECT id, kind, payload, state, attempts, run_after, created_at, updated_at, last_error, dedupe_key, "
    "lease_owner FROM jobs"
)


def _job_from_row(row: Sequence[Any]) -> Job:
    job_id, kind, payload, state, attempts, run_after, created, updated, error, dedupe, owner = row
    return Job(job_id, kind, json.loads(payload), state, attempts, run_after, created, updated, error, dedupe, owner)


def _job_owned(job_id: int, owner: str | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE of a write to a job: by id, and by its lease's owner when one is given."""
    return ("id = ?", (job_id,)) if owner is None else ("id = ? AND lease_owner = ?", (job_id, owner))


def _owned(name: str, owner: str | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE of a write to a consumer: by name, and by its lease's owner when one is given."""
    return ("name = ?", (name,)) if owner is None else ("name = ? AND lease_owner = ?", (name, owner))


_OWNER_COLUMNS = "owner, repository_id"
_MODULE_COLUMNS = "namespace, name, provider, created_at, source_url, repository_id, owner, installation_id, allow_uploads"


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


async def _record_legacy_owners(conn: aiosqlite.Connection) -> None:
    """Migration 9: modules recorded before owners were kept get their legacy owner
    (``provenance.legacy_owner``: their repository, an upstream, or uploads), and a GitHub module
    the installation of its namespace (the only one that could have brought it)."""
    async with conn.execute(
        "SELECT m.id, m.repository_id, (SELECT source FROM versions v WHERE v.module_id = m.id ORDER BY v.id LIMIT 1), "
        "(SELECT MIN(i.id) FROM installations i WHERE i.namespace = m.namespace) FROM modules m"
    ) as cursor:
        rows = await cursor.fetchall()
    for module_id, repository_id, source, installation_id in rows:
        owner = provenance.legacy_owner(repository_id, source)
        await conn.execute(
            "UPDATE modules SET owner = ?, installation_id = ? WHERE id = ?",
            (str(owner), installation_id if owner.kind == "github" else None, module_id),
        )


def _summary_from_row(row: Sequence[Any]) -> ModuleSummary:
    *version, source_url, downloads, description = row
    return ModuleSummary(_version_from_row(version), source_url, downloads, description)


async def _module_id(conn: aiosqlite.Connection, address: ModuleAddress) -> int:
    return (await _one(conn, "SELECT id FROM modules m WHERE " + _MODULE_MATCH, _parts(address)))[0]


async def _refresh_latest(conn: aiosqlite.Connection, module_id: int) -> None:
    """Point the module at its latest live version (highest release, else highest prerelease)
    and keep that version's description; inside the write that changed its versions."""
    async with conn.execute(
        "SELECT id, version FROM versions WHERE module_id = ? AND revoked_at IS NULL", (module_id,)
    ) as cursor:
        live = await cursor.fetchall()
    best: tuple[tuple[bool, Version], int] | None = None
    for version_id, text in live:
        parsed = Version.parse(text)
        key = (not parsed.is_prerelease, parsed)
        if best is None or key > best[0]:
            best = (key, version_id)
    if best is None:
        await conn.execute("UPDATE modules SET latest_version_id = NULL, description = '' WHERE id = ?", (module_id,))
        return
    readme = await _one(conn, "SELECT readme FROM versions WHERE id = ?", (best[1],))
    await conn.execute(
        "UPDATE modules SET latest_version_id = ?, description = ? WHERE id = ?",
        (best[1], first_paragraph(readme[0]), module_id),
    )


def _parts(address: ModuleAddress) -> tuple[str, str, str]:
    return (address.namespace, address.name, address.provider)


def _address_data(address: ModuleAddress) -> dict[str, str]:
    return {"namespace": address.namespace, "name": address.name, "provider": address.provider}


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


async def _one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> Any:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def _append_events(conn: aiosqlite.Connection, events: list[tuple[str, dict[str, Any]]], when: str) -> None:
    await conn.executemany(
        "INSERT INTO events (type, occurred_at, data) VALUES (?, ?, ?)",
        [(kind, when, _dumps(data)) for kind, data in events],
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
