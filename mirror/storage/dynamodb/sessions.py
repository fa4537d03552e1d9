"""Signed-in people's sessions: an item by id (all in one collection) and one by secret hash.

A session is two copies written together, as a token is: ``SESSIONS`` / ``SESSION#<id>`` (listed,
revoked and purged by id) and ``SESSION#<sha256>`` / ``SESSION`` (the one GetItem of a browser's
request). Grants are a JSON list of ``[namespace, scope]`` pairs.
"""

from __future__ import annotations

import json
from typing import Any

from mirror.domain.errors import Conflict
from mirror.domain.sessions import Grant, SessionRecord
from mirror.storage.dynamodb.table import _Cancelled, DynamoTable


_SESSIONS = "SESSIONS"


def _id_key(session_id: str) -> tuple[str, str]:
    return (_SESSIONS, f"SESSION#{session_id}")


def _hash_key(secret_hash: str) -> tuple[str, str]:
    return (f"SESSION#{secret_hash}", "SESSION")


def _session_fields(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "secret_hash": record.secret_hash,
        "issuer": record.issuer,
        "subject": record.subject,
        "person": record.person,
        "name": record.name,
        "grants": json.dumps([[grant.namespace, grant.scope] for grant in record.grants], separators=(",", ":")),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
    }


def _session_from_item(item: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        id=item["id"],
        secret_hash=item["secret_hash"],
        issuer=item["issuer"],
        subject=item["subject"],
        person=item["person"],
        name=item.get("name", ""),
        grants=tuple(Grant(namespace, scope) for namespace, scope in json.loads(item["grants"])),
        created_at=item["created_at"],
        expires_at=item["expires_at"],
        revoked_at=item.get("revoked_at"),
    )


def _ended_before(item: dict[str, Any], before: str) -> bool:
    """Expired or revoked before ``before`` (RFC 3339 in UTC compares as text)."""
    revoked_at = item.get("revoked_at")
    return item["expires_at"] < before or (revoked_at is not None and revoked_at < before)


class Sessions(DynamoTable):
    """Signed-in people's sessions: an item by id (all in one collection) and one by secret hash."""

    async def create_session(self, record: SessionRecord) -> None:
        fields = _session_fields(record)
        try:
            await self._transact(
                [
                    self._tx_put({"PK": pk, "SK": sk, **fields}, "attribute_not_exists(#PK)")
                    for pk, sk in (_id_key(record.id), _hash_key(record.secret_hash))
                ]
            )
        except _Cancelled as exc:
            raise Conflict(f"session could not be stored: its id or secret hash exists ({exc})") from None

    async def find_session(self, secret_hash: str) -> SessionRecord | None:
        item = await self._get(_hash_key(secret_hash))
        return _session_from_item(item) if item else None

    async def get_session(self, session_id: str) -> SessionRecord | None:
        item = await self._get(_id_key(session_id))
        return _session_from_item(item) if item else None

    async def list_sessions(self) -> list[SessionRecord]:
        sessions = [_session_from_item(item) for item in await self._query(_SESSIONS, prefix="SESSION#")]
        return sorted(sessions, key=lambda s: (s.created_at, s.id))

    async def revoke_session(self, session_id: str, when: str) -> bool:
        item = await self._get(_id_key(session_id), ("secret_hash", "revoked_at"))
        if item is None or item.get("revoked_at"):
            return False
        try:
            await self._transact(
                [
                    self._tx_update(
                        _id_key(session_id),
                        set={"revoked_at": when},
                        condition="attribute_exists(#PK) AND attribute_not_exists(#revoked_at)",
                    ),
                    self._tx_update(
                        _hash_key(item["secret_hash"]), set={"revoked_at": when}, condition="attribute_exists(#PK)"
                    ),
                ]
            )
        except _Cancelled:
            return False  # revoked (or purged) meanwhile
        return True

    async def purge_sessions(self, before: str) -> int:
        """Delete both items of each session that ended before ``before``, one transaction per
        session, counting only the deletes of this call (a replica purging at once takes the rest)."""
        ended = [
            item
            for item in await self._query(
                _SESSIONS, prefix="SESSION#", fields=("PK", "id", "secret_hash", "expires_at", "revoked_at")
            )
            if _ended_before(item, before)
        ]
        purged = 0
        for item in ended:
            try:
                await self._transact(
                    [
                        self._tx_delete(_id_key(item["id"]), "attribute_exists(#PK)"),
                        self._tx_delete(_hash_key(item["secret_hash"])),
                    ]
                )
            except _Cancelled:
                continue  # gone already
            purged += 1
        return purged
