"""Signed-in people's sessions (by id, and by their secret's hash)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from mirror.domain.errors import Conflict, StorageUnavailable
from mirror.domain.sessions import Grant, SessionRecord
from mirror.storage.sqlite.connection import SqliteConnection


#: the columns of a SessionRecord, in the order of its fields
_COLUMNS = "id, secret_hash, issuer, subject, person, name, grants, created_at, expires_at, revoked_at"


def _grants_json(grants: Sequence[Grant]) -> str:
    """The grants as a JSON list of ``[namespace, scope]`` pairs, in their order."""
    return json.dumps([[grant.namespace, grant.scope] for grant in grants], separators=(",", ":"))


def _session_from_row(row: Sequence[Any]) -> SessionRecord:
    session_id, secret_hash, issuer, subject, person, name, grants, created_at, expires_at, revoked_at = row
    return SessionRecord(
        id=session_id,
        secret_hash=secret_hash,
        issuer=issuer,
        subject=subject,
        person=person,
        name=name,
        grants=tuple(Grant(namespace, scope) for namespace, scope in json.loads(grants)),
        created_at=created_at,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )


class Sessions(SqliteConnection):
    """Signed-in people's sessions (by id, and by their secret's hash)."""

    async def create_session(self, record: SessionRecord) -> None:
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.secret_hash,
                        record.issuer,
                        record.subject,
                        record.person,
                        record.name,
                        _grants_json(record.grants),
                        record.created_at,
                        record.expires_at,
                        record.revoked_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"session could not be stored: its id or secret hash exists ({exc})") from exc
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

    async def find_session(self, secret_hash: str) -> SessionRecord | None:
        row = await self._fetchone(f"SELECT {_COLUMNS} FROM sessions WHERE secret_hash = ?", (secret_hash,))
        return _session_from_row(row) if row else None

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self._fetchone(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
        return _session_from_row(row) if row else None

    async def list_sessions(self) -> list[SessionRecord]:
        rows = await self._fetchall(f"SELECT {_COLUMNS} FROM sessions ORDER BY created_at, id", ())
        return [_session_from_row(row) for row in rows]

    async def revoke_session(self, session_id: str, when: str) -> bool:
        try:
            async with self._transaction() as conn:
                cursor = await conn.execute(
                    "UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (when, session_id)
                )
                return cursor.rowcount > 0
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

    async def purge_sessions(self, before: str) -> int:
        """Delete the sessions that ended (expired or were revoked) before ``before``; RFC 3339
        in UTC compares as text, and each condition walks its own index."""
        try:
            async with self._transaction() as conn:
                cursor = await conn.execute(
                    "DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?", (before, before)
                )
                return cursor.rowcount
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc
