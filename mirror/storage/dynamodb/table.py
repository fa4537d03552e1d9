"""The DynamoDB store's client, table, and the primitive reads and writes every aggregate builds on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from mirror.domain.audit import actor_json
from mirror.domain.errors import StorageUnavailable
from mirror.storage.dynamodb.wire import _Raw, _code, _expressions, _put_args, _update_args, _key, _from_item
from mirror.storage.dynamodb.keys import (
    INDEX,
    MAX_TRANSACTION_ITEMS,
    COMMIT_ATTEMPTS,
    _COUNTER_EVENTS,
    _namespace_key,
)
from mirror.storage.dynamodb.items import _event_item, _backoff


if TYPE_CHECKING:
    from mirror.config import Config


#: cancellation reasons a transaction is simply tried again for (its reads are redone first)
_RETRYABLE_REASONS = frozenset(
    {"None", "ConditionalCheckFailed", "TransactionConflict", "ProvisionedThroughputExceeded", "ThrottlingError"}
)


def table_definition(table: str) -> dict[str, Any]:
    """``CreateTable`` arguments for mirror's table (on-demand capacity)."""
    return {
        "TableName": table,
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": INDEX,
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


class _Cancelled(Exception):
    """A transaction was cancelled for a reason that trying again may cure."""


class _ConditionFailed(Exception):
    """A single-item write's condition did not hold."""


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: a plan's result when it wrote one part of a larger change and wants to be run again
_AGAIN = _Marker("AGAIN")


@dataclass
class _Plan:
    """What a write decided after its reads: its result, and the items and events to commit."""

    result: Any
    items: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    when: str = ""


class DynamoTable:
    """The client on mirror's table: reads, writes, transactions and the commit of writes that append events."""

    def __init__(
        self,
        *,
        table: str,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        connect_timeout: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        self.table = table
        self.region = region
        self.endpoint_url = endpoint_url
        self._connect_timeout = connect_timeout
        self._max_attempts = max_attempts
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._event_listeners: list[Callable[[], None]] = []

    @classmethod
    def from_config(cls, config: Config) -> Self:
        metadata = config.metadata
        return cls(table=metadata.table, region=metadata.region, endpoint_url=metadata.endpoint_url)

    async def open(self) -> None:
        """Create the client and check that the table is there and has mirror's keys."""
        await self._open_client()
        try:
            with self._errors("DescribeTable"):
                try:
                    described = (await self._client.describe_table(TableName=self.table))["Table"]
                except ClientError as exc:
                    if _code(exc) == "ResourceNotFoundException":
                        raise StorageUnavailable(
                            f"DynamoDB table {self.table!r} does not exist: create it with `mirror dynamodb create-table`"
                        ) from None
                    raise
            keys = {k["AttributeName"]: k["KeyType"] for k in described.get("KeySchema", [])}
            indexes = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
            if keys != {"PK": "HASH", "SK": "RANGE"} or INDEX not in indexes:
                raise StorageUnavailable(
                    f"DynamoDB table {self.table!r} is not a mirror table (keys PK/SK and index {INDEX} expected)"
                )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def ping(self) -> None:
        await self._get(_COUNTER_EVENTS)

    async def create_table(self) -> bool:
        """Create the table and wait until it is active; False when it already existed."""
        opened_here = self._client is None
        if opened_here:
            await self._open_client()
        try:
            with self._errors("CreateTable"):
                created = True
                try:
                    await self._client.create_table(**table_definition(self.table))
                except ClientError as exc:
                    if _code(exc) != "ResourceInUseException":
                        raise
                    created = False
                waiter = self._client.get_waiter("table_exists")
                await waiter.wait(TableName=self.table, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
            return created
        finally:
            if opened_here:
                await self.close()

    async def _open_client(self) -> None:
        if self._client is not None:
            return
        stack = AsyncExitStack()
        config = AioConfig(
            connect_timeout=self._connect_timeout,
            read_timeout=30,
            max_pool_connections=50,
            retries={"mode": "standard", "total_max_attempts": self._max_attempts},
        )
        with self._errors("connect"):
            self._client = await stack.enter_async_context(
                get_session().create_client(
                    "dynamodb", region_name=self.region, endpoint_url=self.endpoint_url, config=config
                )
            )
        self._stack = stack

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Translate client errors into StorageUnavailable (conditions and cancellations apart)."""
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed() from exc
            if code == "TransactionCanceledException":
                reasons = [r.get("Code") or "None" for r in exc.response.get("CancellationReasons", [])]
                if all(reason in _RETRYABLE_REASONS for reason in reasons):
                    raise _Cancelled(reasons) from exc
                raise StorageUnavailable(
                    f"DynamoDB {operation} on table {self.table!r} was refused: {', '.join(reasons)}"
                ) from exc
            if code in ("TransactionConflictException", "TransactionInProgressException"):
                raise _Cancelled([code]) from exc
            if code == "ResourceNotFoundException":
                raise StorageUnavailable(f"DynamoDB table {self.table!r} does not exist") from exc
            message = exc.response.get("Error", {}).get("Message", "")
            raise StorageUnavailable(f"DynamoDB {operation} on table {self.table!r} failed: {code}: {message}") from exc
        except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StorageUnavailable(f"DynamoDB {operation} on table {self.table!r} failed: {exc}") from exc

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        if self._client is None:
            raise RuntimeError("DynamoMetadataStore.open() must be awaited before use")
        with self._errors(operation):
            return await getattr(self._client, operation)(**kwargs)

    async def _get(self, key: tuple[str, str], fields: Sequence[str] = ()) -> dict[str, Any] | None:
        args: dict[str, Any] = {"TableName": self.table, "Key": _key(*key), "ConsistentRead": True}
        if fields:  # with PK, so that an item without the fields still reads as present
            args.update(_expressions(ProjectionExpression=", ".join(f"#{f}" for f in ("PK", *fields))))
        answer = await self._call("get_item", **args)
        return _from_item(answer["Item"]) if "Item" in answer else None

    async def _pages(
        self,
        pk: str,
        *,
        prefix: str | None = None,
        between: tuple[str, str] | None = None,
        before: str | None = None,
        upto: str | None = None,
        index: bool = False,
        forward: bool = True,
        fields: Sequence[str] = (),
        page_size: int | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Query one partition (of the table, or of GSI1 with ``index``), a page at a time."""
        pk_name, sk_name = ("GSI1PK", "GSI1SK") if index else ("PK", "SK")
        condition, values = f"#{pk_name} = :pk", {":pk": pk}
        if prefix is not None:
            condition += f" AND begins_with(#{sk_name}, :prefix)"
            values[":prefix"] = prefix
        elif between is not None:
            condition += f" AND #{sk_name} BETWEEN :low AND :high"
            values[":low"], values[":high"] = between
        elif before is not None:
            condition += f" AND #{sk_name} < :before"
            values[":before"] = before
        elif upto is not None:
            condition += f" AND #{sk_name} <= :upto"
            values[":upto"] = upto
        args: dict[str, Any] = {
            "TableName": self.table,
            "ScanIndexForward": forward,
            **_expressions(
                values,
                KeyConditionExpression=condition,
                ProjectionExpression=", ".join(f"#{f}" for f in fields) or None,
            ),
        }
        if index:
            args["IndexName"] = INDEX
        else:
            args["ConsistentRead"] = True
        if page_size is not None:
            args["Limit"] = page_size
        while True:
            answer = await self._call("query", **args)
            yield [_from_item(item) for item in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer:
                return
            args["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    async def _query(self, pk: str, *, limit: int | None = None, **options: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async with aclosing(self._pages(pk, page_size=limit, **options)) as pages:
            async for page in pages:
                found += page
                if limit is not None and len(found) >= limit:
                    return found[:limit]
        return found

    async def _batch_get(self, keys: Sequence[tuple[str, str]], fields: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Items by key (consistent reads), in no particular order; missing ones are left out."""
        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {"Keys": [_key(*k) for k in unique[start : start + 100]], "ConsistentRead": True}
            if fields:
                request.update(_expressions(ProjectionExpression=", ".join(f"#{f}" for f in ("PK", "SK", *fields))))
            pending = {self.table: request}
            delay = 0.01
            while pending:
                answer = await self._call("batch_get_item", RequestItems=pending)
                found += [_from_item(item) for item in answer.get("Responses", {}).get(self.table, [])]
                pending = answer.get("UnprocessedKeys") or {}
                if pending:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
        return found

    async def _put(
        self, item: dict[str, Any], condition: str | None = None, values: Mapping[str, Any] | None = None
    ) -> None:
        await self._call("put_item", **_put_args(self.table, item, condition, values))

    async def _update(self, key: tuple[str, str], *, return_new: bool = False, **spec: Any) -> dict[str, Any] | None:
        args = _update_args(self.table, key, **spec)
        if return_new:
            args["ReturnValues"] = "ALL_NEW"
        answer = await self._call("update_item", **args)
        return _from_item(answer["Attributes"]) if return_new else None

    async def _delete(
        self, key: tuple[str, str], condition: str | None = None, values: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        args: dict[str, Any] = {"TableName": self.table, "Key": _key(*key), "ReturnValues": "ALL_OLD"}
        args.update(_expressions(values, ConditionExpression=condition))
        answer = await self._call("delete_item", **args)
        return _from_item(answer["Attributes"]) if answer.get("Attributes") else None

    async def _transact(self, items: list[dict[str, Any]]) -> None:
        """One TransactWriteItems; _Cancelled when it lost a race."""
        if len(items) > MAX_TRANSACTION_ITEMS:
            raise StorageUnavailable(f"a DynamoDB transaction of {len(items)} items is over the limit")
        await self._call("transact_write_items", TransactItems=items)

    def _tx_put(
        self, item: dict[str, Any], condition: str | None = None, values: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"Put": _put_args(self.table, item, condition, values)}

    def _tx_update(self, key: tuple[str, str], **spec: Any) -> dict[str, Any]:
        return {"Update": _update_args(self.table, key, **spec)}

    def _tx_delete(
        self, key: tuple[str, str], condition: str | None = None, values: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table,
                "Key": _key(*key),
                **_expressions(values, ConditionExpression=condition),
            }
        }

    def _tx_namespace(self, namespace: str, now: str) -> dict[str, Any]:
        return self._tx_update(
            _namespace_key(namespace),
            set={
                "kind": "namespace",
                "name": _Raw("if_not_exists(#name, :ns_name)"),
                "created_at": _Raw("if_not_exists(#created_at, :ns_created)"),
            },
            values={":ns_name": namespace, ":ns_created": now},
        )

    async def _next_id(self, counter: str) -> int:
        """The next number of an atomic counter (ids of jobs and failures; gaps are harmless)."""
        answer = await self._update((f"COUNTER#{counter}", "COUNTER"), add={"value": 1}, return_new=True)
        assert answer is not None
        return int(answer["value"])

    async def _read_serial(self) -> int:
        item = await self._get(_COUNTER_EVENTS, ("serial",))
        return int(item["serial"]) if item and "serial" in item else 0

    def _serial_condition(self, serial: int) -> tuple[str, dict[str, Any]]:
        if serial == 0:
            return "attribute_not_exists(#serial)", {}
        return "#serial = :seen", {":seen": serial}

    async def _commit(self, plan: Callable[[], Awaitable[_Plan]]) -> Any:
        """Run ``plan`` (its reads and decision) and commit what it decided, in one transaction with
        its events and the counter; if another writer committed meanwhile, read and decide again."""
        for attempt in range(COMMIT_ATTEMPTS):
            serial = await self._read_serial()  # before the plan's reads: any later commit moves it
            decided = await plan()
            if not decided.items and not decided.events:
                return decided.result
            items = list(decided.items)
            condition, values = self._serial_condition(serial)
            if decided.events:
                actor = actor_json()  # who the work under way is done for (mirror.domain.audit)
                count = len(decided.events)
                items.append(
                    self._tx_update(_COUNTER_EVENTS, set={"serial": serial + count}, condition=condition, values=values)
                )
                for number, (kind, data) in enumerate(decided.events, start=serial + 1):
                    items.append(
                        self._tx_put(_event_item(number, kind, data, decided.when, actor), "attribute_not_exists(#PK)")
                    )
            else:  # a part of a larger change: no events, but ordered with the writes that have some
                items.append(
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": _key(*_COUNTER_EVENTS),
                            **_expressions(values, ConditionExpression=condition),
                        }
                    }
                )
            try:
                await self._transact(items)
            except _Cancelled:
                await asyncio.sleep(_backoff(attempt))
                continue
            if decided.events:
                for listener in self._event_listeners:
                    listener()
            return decided.result
        raise StorageUnavailable(
            f"DynamoDB table {self.table!r} is too busy: a write lost {COMMIT_ATTEMPTS} races in a row; try again"
        )

    def add_event_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit of this process that appended events (other
        replicas' events are found by the consumers' polling)."""
        self._event_listeners.append(listener)
