"""The event log and its consumers' cursors and leases."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mirror.domain.models import Consumer, Event
from mirror.domain.timeutil import now_rfc3339
from mirror.storage.sqlite.rows import _one
from mirror.storage.sqlite.connection import SqliteConnection


class Events(SqliteConnection):
    """The event log and its consumers' cursors and leases."""

    async def events_after(self, serial: int, limit: int, types: Sequence[str] = ()) -> list[Event]:
        """Events with a serial above ``serial``, in order; only ``types`` when given."""
        where, params = ("", ()) if not types else (f" AND type IN ({','.join('?' * len(types))})", tuple(types))
        rows = await self._fetchall(
            f"SELECT serial, type, occurred_at, data, actor FROM events WHERE serial > ?{where} ORDER BY serial LIMIT ?",
            (serial, *params, limit),
        )
        return [Event(row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]) if row[4] else None) for row in rows]

    async def latest_serial(self) -> int:
        row = await self._fetchone("SELECT COALESCE(MAX(serial), 0) FROM events", ())
        return row[0]

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


_CONSUMER_SELECT = "SELECT name, serial, attempts, next_attempt_at, last_error, updated_at FROM consumers"


def _consumer_from_row(row: Sequence[Any]) -> Consumer:
    return Consumer(*row)


def _owned(name: str, owner: str | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE of a write to a consumer: by name, and by its lease's owner when one is given."""
    return ("name = ?", (name,)) if owner is None else ("name = ? AND lease_owner = ?", (name, owner))
