"""Outbound webhook subscriptions and their dead letters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mirror.domain.models import DeliveryFailure, WebhookSubscription
from mirror.domain.timeutil import now_rfc3339
from mirror.storage.sqlite.rows import _dumps, _one
from mirror.storage.sqlite.connection import SqliteConnection


class Webhooks(SqliteConnection):
    """Outbound webhook subscriptions and their dead letters."""

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


_SUBSCRIPTION_SELECT = "SELECT id, url, secret, events, namespaces, source, created_at FROM webhook_subscriptions"


def _subscription_from_row(row: Sequence[Any]) -> WebhookSubscription:
    sub_id, url, secret, events, namespaces, source, created_at = row
    return WebhookSubscription(
        sub_id, url, secret, tuple(json.loads(events)), tuple(json.loads(namespaces)), source, created_at
    )
