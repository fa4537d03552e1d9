"""API tokens (by hash) and settings."""

from __future__ import annotations

import sqlite3

from mirror.domain.models import TokenRecord
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import MirrorError, StorageUnavailable
from mirror.storage.sqlite.rows import _one
from mirror.storage.sqlite.connection import SqliteConnection


#: the columns of a TokenRecord, in the order of its fields
_COLUMNS = "id, token_hash, namespace, scope, created_at, description, revoked_at, expires_at, created_by, last_used_at"


class Tokens(SqliteConnection):
    """API tokens (by hash) and settings."""

    async def create_token(self, record: TokenRecord) -> None:
        try:
            async with self._transaction() as conn:
                await conn.execute(
                    "INSERT INTO tokens (id, token_hash, namespace, scope, description, created_at, "
                    "revoked_at, expires_at, created_by, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.token_hash,
                        record.namespace,
                        record.scope,
                        record.description,
                        record.created_at,
                        record.revoked_at,
                        record.expires_at,
                        record.created_by,
                        record.last_used_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise MirrorError(f"token could not be stored: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        row = await self._fetchone(
            f"SELECT {_COLUMNS} FROM tokens WHERE token_hash = ?",
            (token_hash,),
        )
        return TokenRecord(*row) if row else None

    async def list_tokens(self) -> list[TokenRecord]:
        rows = await self._fetchall(
            f"SELECT {_COLUMNS} FROM tokens ORDER BY created_at, id",
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

    async def touch_token(self, token_id: str, when: str) -> bool:
        """Record ``when`` as the token's last use, unless a later one is recorded."""
        try:
            async with self._transaction() as conn:
                cursor = await conn.execute(
                    "UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                    (when, token_id, when),
                )
                return cursor.rowcount > 0
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"metadata store write failed: {exc}") from exc

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
