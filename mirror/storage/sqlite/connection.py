"""The SQLite store's connections, transactions and event listeners (every aggregate builds on it)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from mirror.domain.errors import StorageUnavailable
from mirror.storage.sqlite.rows import _append_events
from mirror.storage.sqlite.schema import migrate


class DatabaseMissing(StorageUnavailable):
    """The database file does not exist and the store was told not to create it."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class SqliteConnection:
    """Two connections on one SQLite file: reads on one, serialized write transactions on the other."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        #: False: ``open`` raises DatabaseMissing instead of creating a database that is not there
        self.create = create
        self._reader: aiosqlite.Connection | None = None
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._event_listeners: list[Callable[[], None]] = []
        self._events_appended = False

    async def open(self) -> None:
        if not self.create and not self.path.is_file():
            raise DatabaseMissing(f"no SQLite database at {self.path}", path=self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600, exist_ok=True)  # a new database is 0600; SQLite gives -wal and -shm its mode
            self._writer = await self._connect()
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await migrate(self._writer)
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

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer, under the write lock.

        A statement handed to aiosqlite runs on the connection's thread even when the task that
        awaits it is cancelled. So BEGIN, COMMIT and ROLLBACK are awaited to their end whatever
        happens to the caller (``_to_the_end``), and a transaction whose BEGIN ran is always ended
        before the lock is given up: a cancelled write never leaves the writer inside a transaction.
        """
        conn = self._writer
        assert conn is not None, "store is not open"
        async with self._write_lock:
            try:
                await _to_the_end(conn, "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"metadata store is busy: {exc}") from exc
            except asyncio.CancelledError:
                await _rollback(conn)
                raise
            self._events_appended = False
            try:
                yield conn
            except BaseException:
                await _rollback(conn)
                raise
            else:
                try:
                    await _to_the_end(conn, "COMMIT")
                except sqlite3.Error as exc:
                    await _rollback(conn)
                    raise StorageUnavailable(f"metadata store write failed: {exc}") from exc
                except asyncio.CancelledError:
                    await _rollback(conn)  # nothing to undo when the COMMIT went through
                    raise
                if self._events_appended:
                    for listener in self._event_listeners:
                        listener()

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction whose sqlite3 errors surface as StorageUnavailable."""
        try:
            async with self._transaction() as conn:
                yield conn
        except sqlite3.Error as exc:
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

    async def _append_events(
        self, conn: aiosqlite.Connection, events: list[tuple[str, dict[str, Any]]], when: str
    ) -> None:
        self._events_appended = True
        await _append_events(conn, events, when)

    def add_event_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit that appended events (consumers wake up at once;
        writes of other processes are found by their polling)."""
        self._event_listeners.append(listener)


async def _to_the_end(conn: aiosqlite.Connection, statement: str) -> None:
    """Run ``statement`` and wait for it to finish even if the caller is cancelled meanwhile (it
    runs on the connection's thread either way); the cancellation is raised after it."""
    done = asyncio.ensure_future(conn.execute(statement))
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        await asyncio.wait([done])
        if not done.cancelled():
            done.exception()  # retrieved: the cancellation is what the caller hears of
        raise


async def _rollback(conn: aiosqlite.Connection) -> None:
    """End the open transaction, if there is one, to the end (see ``_to_the_end``)."""
    if conn.in_transaction:
        try:
            await _to_the_end(conn, "ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction after all (SQLite ended it on an error of its own)
