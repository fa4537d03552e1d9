"""SQLite metadata store (the default), through aiosqlite.

Two connections: one for reads and one for writes. Every write transaction runs on the writer
under an asyncio lock with ``BEGIN IMMEDIATE``, so statements of concurrent coroutines never
interleave inside a transaction, and another process (the CLI beside a running server) waits on
``busy_timeout`` instead of failing. WAL lets reads go on during a write.

One module per aggregate: ``connection`` (connections, transactions, listeners), ``schema``
(migrations), ``rows`` (shared columns and row conversions), ``versions``, ``modules``,
``installations``, ``tokens`` (and settings), ``sessions``, ``events`` (and consumers), ``webhooks``, ``jobs``;
``store`` composes them into ``SqliteMetadataStore``.
"""

from __future__ import annotations

from mirror.storage.sqlite.connection import DatabaseMissing
from mirror.storage.sqlite.schema import MIGRATIONS
from mirror.storage.sqlite.store import SqliteMetadataStore


__all__ = ["MIGRATIONS", "DatabaseMissing", "SqliteMetadataStore"]
