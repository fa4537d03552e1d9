"""The event log (read up to the committed counter) and its consumers' cursors and leases."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import aclosing

from mirror.domain.models import Consumer, Event
from mirror.domain.timeutil import now_rfc3339
from mirror.storage.dynamodb.keys import EVENT_BUCKET, _lease_held, _consumer_key, _serial_sk
from mirror.storage.dynamodb.items import _consumer_from_item
from mirror.storage.dynamodb.table import _ConditionFailed, DynamoTable


class Events(DynamoTable):
    """The event log (read up to the committed counter) and its consumers' cursors and leases."""

    async def events_after(self, serial: int, limit: int, types: Sequence[str] = ()) -> list[Event]:
        """Events above ``serial`` in order, up to the committed counter (never past a gap)."""
        high = await self._read_serial()
        wanted = set(types)
        found: list[Event] = []
        start = max(serial + 1, 1)
        while start <= high and len(found) < limit:
            bucket = start // EVENT_BUCKET
            end = min(high, (bucket + 1) * EVENT_BUCKET - 1)
            pages = self._pages(
                f"EVENTS#{bucket}",
                between=(_serial_sk(start), _serial_sk(end)),
                page_size=None if wanted else limit - len(found),
            )
            async with aclosing(pages):
                async for page in pages:
                    for item in page:
                        if not wanted or item["type"] in wanted:
                            found.append(
                                Event(
                                    int(item["serial"]),
                                    item["type"],
                                    item["occurred_at"],
                                    json.loads(item["data"]),
                                    json.loads(item["actor"]) if item.get("actor") else None,
                                )
                            )
                    if len(found) >= limit:
                        break
            start = (bucket + 1) * EVENT_BUCKET
        return found[:limit] if limit > 0 else []

    async def latest_serial(self) -> int:
        return await self._read_serial()

    async def consumer(self, name: str, *, start_serial: int = 0) -> Consumer:
        key = _consumer_key(name)
        while True:
            try:
                await self._put(
                    {
                        "PK": key[0],
                        "SK": key[1],
                        "name": name,
                        "serial": start_serial,
                        "attempts": 0,
                        "next_attempt_at": 0,
                        "updated_at": now_rfc3339(),
                    },
                    "attribute_not_exists(#PK)",
                )
            except _ConditionFailed:
                pass
            item = await self._get(key)
            if item is not None:
                return _consumer_from_item(item)

    async def list_consumers(self) -> list[Consumer]:
        return [_consumer_from_item(item) for item in await self._query("CONSUMERS", prefix="CONSUMER#")]

    async def advance_consumer(self, name: str, serial: int, *, owner: str | None = None) -> bool:
        fresh = {"attempts": 0, "next_attempt_at": 0, "last_error": None, "updated_at": now_rfc3339()}
        key = _consumer_key(name)
        held, values = _lease_held(owner)
        try:
            await self._update(
                key,
                set={**fresh, "serial": serial},
                condition=f"attribute_exists(#PK) AND #serial < :target{held}",
                values={":target": serial, **values},
            )
        except _ConditionFailed:  # never backwards; the retry state starts afresh all the same
            try:
                await self._update(key, set=fresh, condition=f"attribute_exists(#PK){held}", values=values or None)
            except _ConditionFailed:
                return False
        return True

    async def record_consumer_failure(
        self, name: str, attempts: int, next_attempt_at: float, error: str, *, owner: str | None = None
    ) -> bool:
        held, values = _lease_held(owner)
        try:
            await self._update(
                _consumer_key(name),
                set={
                    "attempts": attempts,
                    "next_attempt_at": next_attempt_at,
                    "last_error": error,
                    "updated_at": now_rfc3339(),
                },
                condition=f"attribute_exists(#PK){held}",
                values=values or None,
            )
        except _ConditionFailed:
            return False
        return True

    async def acquire_consumer_lease(self, name: str, owner: str, until: float, now: float) -> bool:
        """A conditional update: the lease is free, expired, or already ``owner``'s."""
        try:
            await self._update(
                _consumer_key(name),
                set={"lease_owner": owner, "lease_until": until},
                condition="attribute_exists(#PK) AND (attribute_not_exists(#lease_owner) OR #lease_owner = :owner "
                "OR #lease_until < :now)",
                values={":owner": owner, ":now": now},
            )
        except _ConditionFailed:
            return False
        return True

    async def release_consumer_lease(self, name: str, owner: str) -> bool:
        try:
            await self._update(
                _consumer_key(name),
                set={"lease_owner": None, "lease_until": 0},
                condition="attribute_exists(#PK) AND #lease_owner = :owner",
                values={":owner": owner},
            )
        except _ConditionFailed:
            return False
        return True

    async def delete_consumer(self, name: str) -> None:
        await self._delete(_consumer_key(name))
