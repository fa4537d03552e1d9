"""Outbound webhook subscriptions and their dead letters."""

from __future__ import annotations

import asyncio

from mirror.domain.models import DeliveryFailure, WebhookSubscription
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import StorageUnavailable
from mirror.storage.dynamodb.wire import _Raw
from mirror.storage.dynamodb.keys import COMMIT_ATTEMPTS, _lease_held, _consumer_key
from mirror.storage.dynamodb.items import _subscription_from_item, _backoff
from mirror.storage.dynamodb.table import _Cancelled, _ConditionFailed, DynamoTable


class Webhooks(DynamoTable):
    """Outbound webhook subscriptions and their dead letters."""

    async def put_subscription(self, subscription: WebhookSubscription) -> None:
        """Create or replace a subscription; an existing one keeps its source and creation time."""
        await self._update(
            ("WEBHOOKS", f"SUBSCRIPTION#{subscription.id}"),
            set={
                "id": subscription.id,
                "url": subscription.url,
                "secret": subscription.secret,
                "events": list(subscription.events),
                "namespaces": list(subscription.namespaces),
                "source": _Raw("if_not_exists(#source, :source)"),
                "created_at": _Raw("if_not_exists(#created_at, :created)"),
            },
            values={":source": subscription.source, ":created": subscription.created_at},
        )

    async def list_subscriptions(self) -> list[WebhookSubscription]:
        subscriptions = [_subscription_from_item(i) for i in await self._query("WEBHOOKS", prefix="SUBSCRIPTION#")]
        return sorted(subscriptions, key=lambda s: (s.created_at, s.id))

    async def get_subscription(self, subscription_id: str) -> WebhookSubscription | None:
        item = await self._get(("WEBHOOKS", f"SUBSCRIPTION#{subscription_id}"))
        return _subscription_from_item(item) if item else None

    async def delete_subscription(self, subscription_id: str) -> bool:
        old = await self._delete(("WEBHOOKS", f"SUBSCRIPTION#{subscription_id}"))
        await self._delete(_consumer_key(f"webhook:{subscription_id}"))
        return old is not None

    async def add_delivery_failure(
        self, subscription_id: str, serial: int, attempts: int, error: str, *, owner: str | None = None
    ) -> bool:
        """Park an event the subscriber did not take, and move its cursor past it, in one transaction
        (with ``owner``: conditional on its holding the consumer's lease; False when it does not)."""
        failure_id = await self._next_id("FAILURES")
        now = now_rfc3339()
        failure = {
            "PK": f"WEBHOOK#{subscription_id}",
            "SK": f"FAILURE#{failure_id:020d}",
            "id": failure_id,
            "subscription_id": subscription_id,
            "serial": serial,
            "attempts": attempts,
            "last_error": error,
            "failed_at": now,
        }
        pointer = {"PK": f"FAILURE#{failure_id}", "SK": "FAILURE", "subscription_id": subscription_id}
        key = _consumer_key(f"webhook:{subscription_id}")
        for attempt in range(COMMIT_ATTEMPTS):
            cursor = await self._get(key, ("serial", "lease_owner"))
            if owner is not None and (cursor is None or cursor.get("lease_owner") != owner):
                return False
            held, values = _lease_held(owner)
            items = [self._tx_put(failure), self._tx_put(pointer)]
            if cursor is not None:
                items.append(
                    self._tx_update(
                        key,
                        set={
                            "serial": max(int(cursor["serial"]), serial),
                            "attempts": 0,
                            "next_attempt_at": 0,
                            "last_error": error,
                            "updated_at": now,
                        },
                        condition=f"#serial = :seen{held}",
                        values={":seen": cursor["serial"], **values},
                    )
                )
            try:
                await self._transact(items)
                return True
            except _Cancelled:
                await asyncio.sleep(_backoff(attempt))
        raise StorageUnavailable(f"DynamoDB table {self.table!r} is too busy to park a failed delivery")

    async def list_delivery_failures(self, subscription_id: str, *, pending_only: bool = True) -> list[DeliveryFailure]:
        failures = [
            DeliveryFailure(
                int(i["id"]),
                i["subscription_id"],
                int(i["serial"]),
                int(i["attempts"]),
                i["last_error"],
                i["failed_at"],
                i.get("redelivered_at"),
            )
            for i in await self._query(f"WEBHOOK#{subscription_id}", prefix="FAILURE#")
        ]
        return [f for f in failures if f.redelivered_at is None] if pending_only else failures

    async def mark_redelivered(self, failure_id: int) -> bool:
        pointer = await self._get((f"FAILURE#{failure_id}", "FAILURE"))
        if pointer is None:
            return False
        try:
            await self._update(
                (f"WEBHOOK#{pointer['subscription_id']}", f"FAILURE#{failure_id:020d}"),
                set={"redelivered_at": now_rfc3339()},
                condition="attribute_exists(#PK) AND attribute_not_exists(#redelivered_at)",
            )
        except _ConditionFailed:
            return False
        return True
