"""DynamoDB metadata store: one table shared by every replica, through one aiobotocore client.

The table has string keys ``PK`` (partition) and ``SK`` (sort) and one global secondary index,
``GSI1`` (``GSI1PK``/``GSI1SK``, all attributes projected). Names are matched case-insensitively by
putting the lowercased namespace and name in the keys and keeping the first spelling in attributes.

| item | PK | SK | GSI1PK / GSI1SK |
|---|---|---|---|
| namespace | ``NAMESPACE#<ns>`` | ``NAMESPACE#<ns>`` | |
| module (with its latest-version summary) | ``NAMESPACE#<ns>`` | ``MODULE#<name>#PROVIDER#<provider>`` | ``MODULES`` / ``<ns>#<name>#<provider>``, only while it has a live version |
| version | ``NAMESPACE#<ns>`` | ``NAME#<name>#PROVIDER#<provider>#VERSION#<version>`` | |
| repository -> module | ``REPOSITORY#<id>`` | ``REPOSITORY`` | |
| archive reference count | ``BLOB#<blob key>`` | ``BLOB`` | |
| event | ``EVENTS#<serial // 1000>`` | ``<serial, 20 digits>`` | |
| counters (events, jobs, failures) | ``COUNTER#<name>`` | ``COUNTER`` | |
| token | ``TOKENS`` and ``TOKEN#<sha256>`` | ``TOKEN#<id>`` and ``TOKEN`` | |
| installation | ``INSTALLATIONS`` | ``INSTALLATION#<id, 20 digits>`` | |
| consumer | ``CONSUMERS`` | ``CONSUMER#<name>`` | |
| webhook subscription | ``WEBHOOKS`` | ``SUBSCRIPTION#<id>`` | |
| delivery failure (+ pointer) | ``WEBHOOK#<subscription>`` (``FAILURE#<id>``) | ``FAILURE#<id, 20 digits>`` (``FAILURE``) | |
| setting | ``SETTINGS`` | ``SETTING#<key>`` | |
| job (+ dedupe key) | ``JOB#<id, 20 digits>`` (``JOBDEDUPE#<key>``) | ``JOB`` (``JOBDEDUPE``) | ``JOBS#<state>`` / due time (queued), lease end (running) or id (done, failed) |

Every write that appends events is one ``TransactWriteItems``: its items, the events, and the
event counter moved from the serial read before the write's own reads to that serial plus the
number of events, on the condition that it still holds that serial. Writers are therefore
serialized on the counter (a loser re-reads and tries again), serials have no gaps, and readers
read events only up to the counter's committed value, so they never see a gap either.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import zlib
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AsyncExitStack, aclosing, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from mirror.domain.addresses import ModuleAddress
from mirror.domain import provenance
from mirror.domain.provenance import Owner
from mirror.domain.models import (
    JOB_STATES,
    Consumer,
    DeliveryFailure,
    Event,
    Installation,
    Job,
    ModuleRecord,
    ModuleVersion,
    NewVersion,
    PublishOutcome,
    TokenRecord,
    WebhookSubscription,
)
from mirror.domain.readme import first_paragraph
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.versions import Version
from mirror.domain.errors import Conflict, MirrorError, StorageUnavailable
from mirror.storage.protocols import ModuleSummary, new_lease_owner

if TYPE_CHECKING:
    from mirror.config import Config

INDEX = "GSI1"
#: events per partition: a partition holds serials [n * EVENT_BUCKET, (n + 1) * EVENT_BUCKET)
EVENT_BUCKET = 1000
#: DynamoDB's limits on one TransactWriteItems: 100 actions and 4 MB (we stay well under)
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 3_000_000
#: texts (README, analysis) longer than this are stored zlib-compressed, so that a version item
#: stays under DynamoDB's 400 KB item limit for all but extreme READMEs
INLINE_TEXT_BYTES = 16 * 1024
#: how often a write that lost a race (another writer took the serial, a condition moved) is tried
COMMIT_ATTEMPTS = 50
#: claims tried per round, from each of the queued and expired-lease lists
CLAIM_CANDIDATES = 10
#: concurrent requests of one ``add_downloads``
DOWNLOAD_WRITERS = 16

_VERSION_FIELDS = (
    "namespace",
    "name",
    "provider",
    "version",
    "raw_version",
    "sha256",
    "size",
    "blob_key",
    "published_at",
    "readme",
    "readme_z",
    "source",
    "commit_sha",
    "revoked_at",
)
_VERSION_FIELDS_NO_README = tuple(f for f in _VERSION_FIELDS if f not in ("readme", "readme_z"))
#: what the latest-version summary is computed from (no README, no analysis)
_BRIEF_FIELDS = (
    "version",
    "raw_version",
    "sha256",
    "size",
    "blob_key",
    "published_at",
    "source",
    "commit_sha",
    "revoked_at",
    "description",
)
_LATEST_FIELDS = ("version", "raw_version", "sha256", "size", "blob_key", "published_at", "source", "commit_sha")
#: cancellation reasons a transaction is simply tried again for (its reads are redone first)
_RETRYABLE_REASONS = frozenset(
    {"None", "ConditionalCheckFailed", "TransactionConflict", "ProvisionedThroughputExceeded", "ThrottlingError"}
)
_NAME_RE = re.compile(r"#(\w+)")


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


@dataclass(frozen=True, slots=True)
class _Raw:
    """An update value that is an expression (``if_not_exists(...)``, ``#n + :one``)."""

    expression: str


class DynamoMetadataStore:
    """The MetadataStore on one DynamoDB table (see the module docstring for the items)."""

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
    def from_config(cls, config: Config) -> DynamoMetadataStore:
        metadata = config.metadata
        return cls(table=metadata.table, region=metadata.region, endpoint_url=metadata.endpoint_url)

    # -- lifecycle -------------------------------------------------------------------------

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

    # -- plumbing ----------------------------------------------------------------------------

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

    # -- the event counter and the commit of writes that append events ------------------------

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
                count = len(decided.events)
                items.append(
                    self._tx_update(_COUNTER_EVENTS, set={"serial": serial + count}, condition=condition, values=values)
                )
                for number, (kind, data) in enumerate(decided.events, start=serial + 1):
                    items.append(
                        self._tx_put(_event_item(number, kind, data, decided.when), "attribute_not_exists(#PK)")
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

    # -- modules and versions ------------------------------------------------------------------

    async def list_versions(self, address: ModuleAddress, *, readme: bool = True) -> list[ModuleVersion]:
        return [v for v in await self._versions(address, readme) if v.revoked_at is None]

    async def all_versions(self, address: ModuleAddress) -> list[ModuleVersion]:
        """Every version, revoked ones included: one query of the module's version prefix."""
        return await self._versions(address, readme=True)

    async def _versions(self, address: ModuleAddress, readme: bool) -> list[ModuleVersion]:
        fields = _VERSION_FIELDS if readme else _VERSION_FIELDS_NO_README
        items = await self._query(_ns_pk(address.namespace), prefix=_version_prefix(address), fields=fields)
        return [_version_from_item(item) for item in items]

    async def get_version(self, address: ModuleAddress, version: str) -> ModuleVersion | None:
        item = await self._get(_version_key(address, version), _VERSION_FIELDS)
        return _version_from_item(item) if item else None

    async def version_analysis(self, address: ModuleAddress, version: str) -> dict[str, Any] | None:
        item = await self._get(_version_key(address, version), ("analysis", "analysis_z"))
        text = _unpack(item, "analysis") if item else None
        return json.loads(text) if text else None

    async def publish_version(self, new: NewVersion) -> PublishOutcome:
        mv = new.version
        address = mv.address
        module_key, version_key = _module_key(address), _version_key(address, mv.version)

        async def plan() -> _Plan:
            module, existing, briefs = await asyncio.gather(
                self._get(module_key), self._get(version_key, _VERSION_FIELDS), self._briefs(address)
            )
            if new.expected_owner != "any":
                # a change of owner bumps ``vrev``, which ``_tx_latest`` holds the write to
                current = _owner_of(module) if module is not None else None
                if current != new.expected_owner:
                    raise provenance.changed(address, current, new.expected_owner)
            if existing is not None:
                stored = _version_from_item(existing)
                if stored.sha256 != mv.sha256:
                    return _Plan(PublishOutcome("conflict", stored))
                if stored.revoked_at is None or module is None:
                    return _Plan(PublishOutcome("unchanged", stored))
                # the same bytes again after a revocation (a tag deleted and pushed back)
                briefs = [{**b, "revoked_at": None} if b["version"] == mv.version else b for b in briefs]
                items = [
                    self._tx_update(version_key, remove=["revoked_at"], condition="attribute_exists(#revoked_at)"),
                    self._tx_latest(module, briefs),
                ]
                return _Plan(
                    PublishOutcome("created", replace(stored, revoked_at=None)),
                    items,
                    list(new.events),
                    mv.published_at,
                )

            now = mv.published_at
            display = address if module is None else _address_of(module)
            item = _version_item(display, mv, new.analysis)
            briefs.append({f: item.get(f) for f in _BRIEF_FIELDS})
            events = list(new.events)
            items = [
                self._tx_put(item, "attribute_not_exists(#PK)"),
                self._tx_namespace(address.namespace, now),
                self._tx_update(_blob_key(mv.blob_key), add={"refs": 1}),
            ]
            if module is None:
                module_item = (
                    _new_module_item(address, now, new.owner)
                    | _latest_fields(address, _pick_latest(briefs), put=True)
                )
                items.append(self._tx_put(module_item, "attribute_not_exists(#PK)"))
                if new.owner.repository_id is not None:
                    items.append(self._tx_put(_repository_pointer(new.owner.repository_id, module_key)))
                events.insert(0, ("module.created", _address_data(address)))
            else:
                items.append(self._tx_latest(module, briefs))
            return _Plan(PublishOutcome("created", mv), items, events, now)

        return await self._commit(plan)

    async def _briefs(self, address: ModuleAddress) -> list[dict[str, Any]]:
        return await self._query(_ns_pk(address.namespace), prefix=_version_prefix(address), fields=_BRIEF_FIELDS)

    def _tx_latest(self, module: dict[str, Any], briefs: list[dict[str, Any]]) -> dict[str, Any]:
        """The module's summary pointed at its latest live version, if nobody changed its versions
        since they were read (``vrev`` counts those changes)."""
        fields = _latest_fields(_address_of(module), _pick_latest(briefs))
        return self._tx_update(
            (module["PK"], module["SK"]),
            set={**fields, "vrev": _Raw("#vrev + :one")},
            condition="#vrev = :vrev",
            values={":vrev": module["vrev"], ":one": 1},
        )

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

    # -- tokens ------------------------------------------------------------------------------

    async def create_token(self, record: TokenRecord) -> None:
        fields = _token_fields(record)
        try:
            await self._transact(
                [
                    self._tx_put({"PK": "TOKENS", "SK": f"TOKEN#{record.id}", **fields}, "attribute_not_exists(#PK)"),
                    self._tx_put(
                        {"PK": f"TOKEN#{record.token_hash}", "SK": "TOKEN", **fields}, "attribute_not_exists(#PK)"
                    ),
                ]
            )
        except _Cancelled as exc:
            raise MirrorError(f"token could not be stored: its id or hash exists ({exc})") from None

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        item = await self._get((f"TOKEN#{token_hash}", "TOKEN"))
        return _token_from_item(item) if item else None

    async def list_tokens(self) -> list[TokenRecord]:
        tokens = [_token_from_item(item) for item in await self._query("TOKENS", prefix="TOKEN#")]
        return sorted(tokens, key=lambda t: (t.created_at, t.id))

    async def revoke_token(self, token_id: str) -> bool:
        item = await self._get(("TOKENS", f"TOKEN#{token_id}"))
        if item is None or item.get("revoked_at"):
            return False
        now = now_rfc3339()
        try:
            await self._transact(
                [
                    self._tx_update(
                        ("TOKENS", f"TOKEN#{token_id}"),
                        set={"revoked_at": now},
                        condition="attribute_exists(#PK) AND attribute_not_exists(#revoked_at)",
                    ),
                    self._tx_update(
                        (f"TOKEN#{item['token_hash']}", "TOKEN"),
                        set={"revoked_at": now},
                        condition="attribute_exists(#PK)",
                    ),
                ]
            )
        except _Cancelled:
            return False
        return True

    # -- events ------------------------------------------------------------------------------

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
                                Event(int(item["serial"]), item["type"], item["occurred_at"], json.loads(item["data"]))
                            )
                    if len(found) >= limit:
                        break
            start = (bucket + 1) * EVENT_BUCKET
        return found[:limit] if limit > 0 else []

    async def latest_serial(self) -> int:
        return await self._read_serial()

    # -- event consumers -----------------------------------------------------------------------

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

    # -- webhook subscriptions -----------------------------------------------------------------

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

    # -- dead letters --------------------------------------------------------------------------

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

    async def _next_id(self, counter: str) -> int:
        """The next number of an atomic counter (ids of jobs and failures; gaps are harmless)."""
        answer = await self._update((f"COUNTER#{counter}", "COUNTER"), add={"value": 1}, return_new=True)
        assert answer is not None
        return int(answer["value"])

    # -- settings ----------------------------------------------------------------------------

    async def get_or_create_setting(self, key: str, default: str) -> str:
        while True:
            try:
                await self._put(
                    {"PK": "SETTINGS", "SK": f"SETTING#{key}", "value": default}, "attribute_not_exists(#PK)"
                )
            except _ConditionFailed:
                pass
            item = await self._get(("SETTINGS", f"SETTING#{key}"))
            if item is not None:
                return item["value"]

    # -- browsing and download counts ----------------------------------------------------------

    async def latest_versions(
        self, *, namespace: str | None = None, name: str | None = None, provider: str | None = None
    ) -> list[ModuleSummary]:
        """Each matching module with a live version, with its latest one, sorted by address."""
        if namespace is not None and name is not None and provider is not None:
            module = await self._get(_module_key(ModuleAddress(namespace, name, provider)))
            items = [module] if module else []
        elif namespace is not None:
            prefix = "MODULE#" if name is None else f"MODULE#{name.lower()}#PROVIDER#"
            items = await self._query(_ns_pk(namespace), prefix=prefix)
        else:
            items = await self._query("MODULES", index=True)
        items = [
            item
            for item in items
            if "latest" in item
            and (name is None or item["name"].lower() == name.lower())
            and (provider is None or item["provider"] == provider)
        ]
        items.sort(key=_browse_sort)
        readmes = {
            (i["PK"], i["SK"]): _unpack(i, "readme")
            for i in await self._batch_get([_latest_version_key(item) for item in items], ("readme", "readme_z"))
        }
        return [_summary_from_item(item, readmes.get(_latest_version_key(item))) for item in items]

    async def browse_modules(
        self,
        *,
        namespace: str | None = None,
        provider: str | None = None,
        query: str = "",
        only_namespaces: Collection[str] | None = None,
        exclude_namespaces: Collection[str] = (),
        offset: int = 0,
        limit: int = 15,
    ) -> tuple[list[ModuleSummary], bool]:
        """A page in address order. One namespace (or a list of them) is read from its partition;
        everything else walks GSI1's ``MODULES`` partition, whose sort key is the address.
        Filters and ``offset`` are applied while walking (DynamoDB has no OFFSET)."""
        excluded = {n.lower() for n in exclude_namespaces}
        only = None if only_namespaces is None else {n.lower() for n in only_namespaces}
        needle = query.lower()

        def wanted(item: dict[str, Any]) -> bool:
            if "latest" not in item or item["namespace"].lower() in excluded:
                return False
            if only is not None and item["namespace"].lower() not in only:
                return False
            if namespace is not None and item["namespace"].lower() != namespace.lower():
                return False
            if provider is not None and item["provider"] != provider:
                return False
            fields = (item["namespace"], item["name"], item["provider"], item.get("description", ""))
            return not needle or any(needle in field.lower() for field in fields)

        if namespace is not None:
            partitions: list[str] | None = [namespace.lower()]
        elif only is not None:
            partitions = sorted(only - excluded)
        else:
            partitions = None
        page: list[dict[str, Any]] = []
        skipped = 0
        async with aclosing(self._browse_pages(partitions)) as pages:
            async for items in pages:
                for item in items:
                    if not wanted(item):
                        continue
                    if skipped < offset:
                        skipped += 1
                        continue
                    page.append(item)
                if len(page) > limit:
                    break
        return [_summary_from_item(item, None) for item in page[:limit]], len(page) > limit

    async def _browse_pages(self, partitions: list[str] | None) -> AsyncIterator[list[dict[str, Any]]]:
        sources = (
            [self._pages("MODULES", index=True)]
            if partitions is None  # the sorted lowercased names give the addresses' order:
            else [self._pages(_ns_pk(namespace), prefix="MODULE#") for namespace in partitions]
        )
        for source in sources:
            async with aclosing(source):
                async for page in source:
                    yield page

    async def add_downloads(self, counts: Mapping[tuple[ModuleAddress, str], int]) -> None:
        """Add counted downloads to their versions and modules (``ADD``: replicas never lose counts)."""
        if not counts:
            return
        per_module: Counter[tuple[str, str]] = Counter()
        writes: list[tuple[tuple[str, str], dict[str, int]]] = []
        for (address, version), count in counts.items():
            writes.append((_version_key(address, version), {"downloads": count}))
            per_module[_module_key(address)] += count
        writes += [(key, {"downloads": count, "rev": 1}) for key, count in per_module.items()]
        gate = asyncio.Semaphore(DOWNLOAD_WRITERS)

        async def add(key: tuple[str, str], amounts: dict[str, int]) -> None:
            async with gate:
                try:  # only to what exists: a count never makes an item up
                    await self._update(key, add=amounts, condition="attribute_exists(#PK)")
                except _ConditionFailed:
                    pass

        await asyncio.gather(*(add(key, amounts) for key, amounts in writes))

    # -- modules, namespaces, installations ------------------------------------------------

    async def ensure_module(
        self,
        address: ModuleAddress,
        *,
        owner: Owner = Owner("upload"),
        source_url: str | None = None,
        installation_id: int | None = None,
    ) -> bool:
        """Create the module (and its namespace) for ``owner`` if it is new, with ``module.created``;
        True if created. An existing module of ``owner`` takes the given source URL and installation;
        one of another owner is left alone (NotOwner)."""
        now = now_rfc3339()
        key = _module_key(address)

        async def plan() -> _Plan:
            module = await self._get(key)
            if module is not None:
                return _Plan(module)
            item = _new_module_item(address, now, owner) | {"source_url": source_url, "installation_id": installation_id}
            items = [self._tx_put(item, "attribute_not_exists(#PK)"), self._tx_namespace(address.namespace, now)]
            if owner.repository_id is not None:
                items.append(self._tx_put(_repository_pointer(owner.repository_id, key)))
            return _Plan(None, items, [("module.created", _address_data(address))], now)

        for attempt in range(COMMIT_ATTEMPTS):
            existing = await self._commit(plan)
            if existing is None:
                return True
            current = _owner_of(existing)
            if current != owner:
                raise provenance.refusal(address, current, owner, "change")
            changes: dict[str, Any] = {}
            if source_url is not None:
                changes["source_url"] = source_url
            if installation_id is not None:
                changes["installation_id"] = installation_id
            if not changes:
                return False
            # on the condition that the owner is unchanged (``vrev`` moves with every change of it)
            items = [
                self._tx_update(
                    key, set=changes, add={"rev": 1}, condition="#vrev = :vrev", values={":vrev": existing["vrev"]}
                )
            ]
            try:
                await self._transact(items)
                return False
            except _Cancelled:  # renamed, deleted or given another owner meanwhile: look again
                await asyncio.sleep(_backoff(attempt))
        raise StorageUnavailable(f"DynamoDB table {self.table!r} is too busy to update module {address}")

    async def get_module(self, address: ModuleAddress) -> ModuleRecord | None:
        item = await self._get(_module_key(address))
        return _record_from_item(item) if item else None

    async def list_modules(self, namespace: str) -> list[ModuleRecord]:
        return [_record_from_item(item) for item in await self._query(_ns_pk(namespace), prefix="MODULE#")]

    async def module_by_repository(self, repository_id: int) -> ModuleRecord | None:
        pointer = await self._get((f"REPOSITORY#{repository_id}", "REPOSITORY"))
        if pointer is None:
            return None
        module = await self._get((pointer["module_pk"], pointer["module_sk"]))
        if module is None or _owner_of(module) != Owner.github(repository_id):
            return None
        return _record_from_item(module)

    async def set_module_policy(
        self, address: ModuleAddress, *, owner: Owner | None = None, allow_uploads: bool | None = None
    ) -> ModuleRecord | None:
        """An admin's change of the module's owner source or upload allowance, with
        ``module.policy_changed``; None when there is no such module."""
        now = now_rfc3339()
        key = _module_key(address)

        async def plan() -> _Plan:
            module = await self._get(key)
            if module is None:
                return _Plan(None)
            current = _owner_of(module)
            new_owner = current if owner is None else owner
            changes: dict[str, Any] = {"owner": str(new_owner), "vrev": _Raw("#vrev + :one")}
            if allow_uploads is not None:
                changes["allow_uploads"] = allow_uploads
            remove = []
            if new_owner != current:
                remove.append("installation_id")
            if new_owner.repository_id is None:
                remove.append("repository_id")
            else:
                changes["repository_id"] = new_owner.repository_id
            items = [
                self._tx_update(
                    key, set=changes, remove=remove, condition="#vrev = :vrev", values={":vrev": module["vrev"], ":one": 1}
                )
            ]
            if new_owner != current and new_owner.repository_id is not None:
                other = await self.module_by_repository(new_owner.repository_id)
                if other is not None:
                    raise Conflict(f"another module is already owned by {new_owner}: a repository owns one module")
                items.append(self._tx_put(_repository_pointer(new_owner.repository_id, key)))
            if new_owner != current and current.repository_id is not None:
                pointer_key = (f"REPOSITORY#{current.repository_id}", "REPOSITORY")
                items.append(self._tx_delete(pointer_key, "#module_pk = :pk AND #module_sk = :sk", {":pk": key[0], ":sk": key[1]}))
            record = replace(
                _record_from_item(module),
                owner=new_owner,
                repository_id=new_owner.repository_id,
                installation_id=module.get("installation_id") if new_owner == current else None,
                allow_uploads=bool(module.get("allow_uploads")) if allow_uploads is None else allow_uploads,
            )
            if record.installation_id is not None:
                record = replace(record, installation_id=int(record.installation_id))
            data = {**_address_data(address), "owner_source": str(new_owner), "allow_uploads": record.allow_uploads}
            return _Plan(record, items, [("module.policy_changed", data)], now)

        return await self._commit(plan)

    async def delete_module(self, address: ModuleAddress, *, owner: Owner | None = None) -> list[str]:
        """Remove a module and its versions (``module.deleted``); return blob keys nothing uses any more.
        With ``owner``, only while the module is that owner's (NotOwner otherwise).

        Up to 48 versions go in one transaction with the event; a larger module loses its versions
        in transactions of 48 first, then the module and the event go last."""
        return await self._delete_module(address, now_rfc3339(), owner)

    async def _delete_module(self, address: ModuleAddress, now: str, owner: Owner | None = None) -> list[str]:
        key = _module_key(address)

        async def plan() -> _Plan:
            module = await self._get(key)
            if module is None:
                return _Plan(None)
            _check_owner(address, module, owner)
            versions = await self._query(
                _ns_pk(address.namespace), prefix=_version_prefix(address), fields=("PK", "SK", "blob_key")
            )
            fixed = 4  # the module, its repository pointer, the event, the counter
            fits = _fitting(versions, per_item=2, fixed=fixed)
            final = fits == len(versions)
            batch = versions if final else versions[: _fitting(versions, per_item=2, fixed=1)]
            refs = Counter(v["blob_key"] for v in batch)
            # a version deleted twice (two replicas at once) would release its archive twice
            items = [self._tx_delete((v["PK"], v["SK"]), "attribute_exists(#PK)") for v in batch]
            items += [self._tx_update(_blob_key(blob), add={"refs": -n}) for blob, n in refs.items()]
            if not final:
                return _Plan((_AGAIN, set(refs)), items)
            items.append(self._tx_delete(key, "#vrev = :vrev", {":vrev": module["vrev"]}))
            if module.get("repository_id") is not None:
                pointer_key = (f"REPOSITORY#{module['repository_id']}", "REPOSITORY")
                pointer = await self._get(pointer_key)
                if pointer is not None and (pointer["module_pk"], pointer["module_sk"]) == key:
                    items.append(
                        self._tx_delete(
                            pointer_key, "#module_pk = :pk AND #module_sk = :sk", {":pk": key[0], ":sk": key[1]}
                        )
                    )
            return _Plan((None, set(refs)), items, [("module.deleted", _address_data(address))], now)

        touched: set[str] = set()
        while True:
            outcome = await self._commit(plan)
            if outcome is None:
                break
            again, blobs = outcome
            touched |= blobs
            if again is not _AGAIN:
                break
        return [blob for blob in sorted(touched) if await self._release_blob(blob)]

    async def _release_blob(self, blob_key: str) -> bool:
        """Drop an archive's reference count once nothing refers to it; True when it went."""
        try:
            await self._delete(_blob_key(blob_key), "attribute_not_exists(#refs) OR #refs <= :zero", {":zero": 0})
        except _ConditionFailed:
            return False
        return True

    async def rename_module(self, address: ModuleAddress, new_name: str, *, owner: Owner | None = None) -> bool:
        """Rename a module in place (``module.renamed``); False when there is no such module.

        Versions carry the name in their keys, so they move: up to 47 in the transaction with the
        event; a larger module has its other versions moved first, 47 per transaction."""
        now = now_rfc3339()
        key = _module_key(address)
        target = ModuleAddress(address.namespace, new_name, address.provider)
        target_key = _module_key(target)

        async def plan() -> _Plan:
            module = await self._get(key)
            if module is None:
                return _Plan(False)
            _check_owner(address, module, owner)
            if target_key == key or await self._get(target_key) is not None:
                raise Conflict(f"cannot rename {address} to {target}: that module exists")
            versions = await self._query(key[0], prefix=_version_prefix(address))
            final = _fitting(versions, per_item=2, fixed=5) == len(versions)
            batch = versions if final else versions[: _fitting(versions, per_item=2, fixed=1)]
            items: list[dict[str, Any]] = []
            for version in batch:
                moved = {**version, "SK": _version_sk(new_name, address.provider, version["version"]), "name": new_name}
                items.append(
                    self._tx_delete(
                        (version["PK"], version["SK"]), "#downloads = :downloads", {":downloads": version["downloads"]}
                    )
                )
                items.append(self._tx_put(moved))
            if not final:
                return _Plan(_AGAIN, items)
            moved_module = {**module, "SK": target_key[1], "name": new_name}
            if "latest" in module:
                moved_module["GSI1SK"] = _browse_key(module["namespace"], new_name, module["provider"])
            items.append(
                self._tx_delete(key, "#rev = :rev AND #vrev = :vrev", {":rev": module["rev"], ":vrev": module["vrev"]})
            )
            items.append(self._tx_put(moved_module, "attribute_not_exists(#PK)"))
            if module.get("repository_id") is not None:
                items.append(self._tx_put(_repository_pointer(module["repository_id"], target_key)))
            data = {**_address_data(target), "old_name": address.name}
            return _Plan(True, items, [("module.renamed", data)], now)

        while (result := await self._commit(plan)) is _AGAIN:
            pass
        return result

    async def revoke_version(self, address: ModuleAddress, version: str, *, owner: Owner | None = None) -> bool:
        """Take a version out of service (``module.version_revoked``); False if not live."""
        now = now_rfc3339()
        key = _version_key(address, version)

        async def plan() -> _Plan:
            module, target, briefs = await asyncio.gather(
                self._get(_module_key(address)), self._get(key, ("revoked_at",)), self._briefs(address)
            )
            if module is not None:
                _check_owner(address, module, owner)
            if module is None or target is None or target.get("revoked_at"):
                return _Plan(False)
            briefs = [{**b, "revoked_at": now} if b["version"] == version else b for b in briefs]
            items = [
                self._tx_update(
                    key,
                    set={"revoked_at": now},
                    condition="attribute_exists(#PK) AND attribute_not_exists(#revoked_at)",
                ),
                self._tx_latest(module, briefs),
            ]
            return _Plan(True, items, [("module.version_revoked", {**_address_data(address), "version": version})], now)

        return await self._commit(plan)

    async def record_installation(self, installation: Installation) -> bool:
        """Remember an installation and create its namespace (``app.installed``); True if new."""
        key = _installation_key(installation.id)

        async def plan() -> _Plan:
            if await self._get(key) is not None:
                return _Plan(False)
            item = {
                "PK": key[0],
                "SK": key[1],
                "id": installation.id,
                "account": installation.account,
                "namespace": installation.namespace,
                "created_at": installation.created_at,
            }
            items = [
                self._tx_put(item, "attribute_not_exists(#PK)"),
                self._tx_namespace(installation.namespace, installation.created_at),
            ]
            return _Plan(
                True, items, [("app.installed", {"namespace": installation.namespace})], installation.created_at
            )

        return await self._commit(plan)

    async def installation(self, installation_id: int) -> Installation | None:
        item = await self._get(_installation_key(installation_id))
        return _installation_from_item(item) if item else None

    async def list_installations(self) -> list[Installation]:
        return [_installation_from_item(item) for item in await self._query("INSTALLATIONS", prefix="INSTALLATION#")]

    async def remove_installation(self, installation_id: int) -> list[str]:
        """Remove an installation's namespace and everything in it: ``module.deleted`` for each
        module (a transaction each), then ``app.uninstalled`` with the installation. Returns blob
        keys nothing uses any more. Interrupted, it is simply run again."""
        key = _installation_key(installation_id)
        now = now_rfc3339()
        orphans: list[str] = []
        for _ in range(COMMIT_ATTEMPTS):
            installation = await self._get(key)
            if installation is None:
                return orphans
            namespace = installation["namespace"]
            for record in await self._brought_by(installation_id, namespace):
                orphans += await self._delete_module(record.address, now, record.owner)

            if await self._commit(lambda ns=namespace: self._uninstall_plan(key, installation_id, ns, now)) is not _AGAIN:
                return orphans
        raise StorageUnavailable(f"DynamoDB table {self.table!r} is too busy to remove installation {installation_id}")

    async def _brought_by(self, installation_id: int, namespace: str) -> list[ModuleRecord]:
        """The modules of ``namespace`` an installation brought (owned by a repository through it)."""
        return [
            record
            for record in await self.list_modules(namespace)
            if record.owner.kind == "github" and record.installation_id == installation_id
        ]

    async def _uninstall_plan(self, key: tuple[str, str], installation_id: int, namespace: str, now: str) -> _Plan:
        if await self._get(key) is None:
            return _Plan(None)
        if await self._brought_by(installation_id, namespace):
            return _Plan(_AGAIN)  # a module arrived meanwhile: delete it too
        items = [self._tx_delete(key, "attribute_exists(#PK)")]
        others = [i for i in await self.list_installations() if i.id != installation_id and i.namespace.lower() == namespace.lower()]
        if not others and not await self._query(_ns_pk(namespace), prefix="MODULE#", limit=1):
            items.append(self._tx_delete(_namespace_key(namespace)))  # nothing else lives there
        return _Plan(True, items, [("app.uninstalled", {"namespace": namespace})], now)

    # -- jobs --------------------------------------------------------------------------------

    async def enqueue_job(
        self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None, run_after: float | None = None
    ) -> Job | None:
        """Queue a job; None when ``dedupe_key`` was seen before (a conditional put of the key
        in the same transaction as the job)."""
        now, stamp = time.time(), now_rfc3339()
        due = run_after or now
        job_id = await self._next_id("JOBS")
        item = {
            "PK": _job_pk(job_id),
            "SK": "JOB",
            "id": job_id,
            "kind": kind,
            "payload": _dumps(payload),
            "dedupe_key": dedupe_key,
            "state": "queued",
            "attempts": 0,
            "run_after": due,
            "created_at": stamp,
            "updated_at": stamp,
            **_job_index("queued", job_id, due),
        }
        job = Job(job_id, kind, payload, "queued", 0, due, stamp, stamp, None, dedupe_key)
        if dedupe_key is None:
            await self._put(item)
            return job
        dedupe = {"PK": f"JOBDEDUPE#{dedupe_key}", "SK": "JOBDEDUPE", "job_id": job_id}
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                await self._transact([self._tx_put(item), self._tx_put(dedupe, "attribute_not_exists(#PK)")])
                return job
            except _Cancelled:
                if await self._get((dedupe["PK"], "JOBDEDUPE")) is not None:
                    return None
                await asyncio.sleep(_backoff(attempt))
        raise StorageUnavailable(f"DynamoDB table {self.table!r} is too busy to queue a job")

    async def claim_job(self, now: float, lease_seconds: float) -> Job | None:
        """Take a runnable job: queued and due, or running with an expired lease (its worker died).

        Candidates come from GSI1 (queued by due time, running by lease end); each claim is a
        conditional update on the job's state and lease, so exactly one replica wins it. The
        claim counts as an attempt."""
        until = now + lease_seconds
        for _ in range(5):
            queued, running = await asyncio.gather(
                self._query("JOBS#queued", index=True, upto=f"{_time_key(now)}#~", limit=CLAIM_CANDIDATES),
                self._query("JOBS#running", index=True, before=_time_key(now), limit=CLAIM_CANDIDATES),
            )
            candidates = sorted(queued + running, key=lambda item: (float(item["run_after"]), int(item["id"])))
            if not candidates:
                return None
            for candidate in candidates:
                job_id = int(candidate["id"])
                try:
                    item = await self._update(
                        (_job_pk(job_id), "JOB"),
                        set={
                            "state": "running",
                            "lease_until": until,
                            "lease_owner": new_lease_owner(),
                            "updated_at": now_rfc3339(),
                            **_job_index("running", job_id, until),
                        },
                        add={"attempts": 1},
                        condition="(#state = :queued AND #run_after <= :now) OR (#state = :running AND #lease_until < :now)",
                        values={":queued": "queued", ":running": "running", ":now": now},
                        return_new=True,
                    )
                except _ConditionFailed:  # another replica took it, or the index was behind
                    continue
                assert item is not None
                return _job_from_item(item)
        return None

    async def renew_job_lease(self, job_id: int, until: float, *, owner: str | None = None) -> bool:
        held, values = _lease_held(owner)
        try:
            await self._update(
                (_job_pk(job_id), "JOB"),
                set={"lease_until": until, **_job_index("running", job_id, until)},
                condition=f"#state = :running{held}",
                values={":running": "running", **values},
            )
        except _ConditionFailed:
            return False
        return True

    async def finish_job(self, job_id: int, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "done", None, None, owner)

    async def retry_job(self, job_id: int, error: str, run_after: float, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "queued", error, run_after, owner)

    async def fail_job(self, job_id: int, error: str, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "failed", error, None, owner)

    async def _set_job(
        self, job_id: int, state: str, error: str | None, run_after: float | None, owner: str | None
    ) -> bool:
        """A conditional update: the job exists (and, with ``owner``, still carries that claim)."""
        changes: dict[str, Any] = {"state": state, "updated_at": now_rfc3339(), **_job_index(state, job_id, run_after)}
        if error is not None:
            changes["last_error"] = error
        if run_after is not None:
            changes["run_after"] = run_after
        held, values = _lease_held(owner)
        try:
            await self._update(
                (_job_pk(job_id), "JOB"),
                set=changes,
                remove=["lease_until", "lease_owner"],
                condition=f"attribute_exists(#PK){held}",
                values=values or None,
            )
        except _ConditionFailed:
            return False
        return True

    async def requeue_job(self, job_id: int) -> bool:
        """Put a failed job back in the queue with fresh attempts; False unless it had failed."""
        now = time.time()
        try:
            await self._update(
                (_job_pk(job_id), "JOB"),
                set={
                    "state": "queued",
                    "attempts": 0,
                    "run_after": now,
                    "updated_at": now_rfc3339(),
                    **_job_index("queued", job_id, now),
                },
                remove=["lease_until", "lease_owner"],
                condition="#state = :failed",
                values={":failed": "failed"},
            )
        except _ConditionFailed:
            return False
        return True

    async def get_job(self, job_id: int) -> Job | None:
        item = await self._get((_job_pk(job_id), "JOB"))
        return _job_from_item(item) if item else None

    async def list_jobs(self, state: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs newest first: ids from GSI1 (done and failed in id order, the queue whole), then
        the jobs themselves read consistently."""
        states = [state] if state else list(JOB_STATES)

        async def ids_in(name: str) -> list[int]:
            if name in ("done", "failed"):
                items = await self._query(f"JOBS#{name}", index=True, forward=False, limit=limit, fields=("id",))
            else:
                items = await self._query(f"JOBS#{name}", index=True, fields=("id",))
            return [int(item["id"]) for item in items]

        found = sorted({i for ids in await asyncio.gather(*(ids_in(s) for s in states)) for i in ids}, reverse=True)
        items = await self._batch_get([(_job_pk(i), "JOB") for i in found[:limit]])
        jobs = [_job_from_item(item) for item in items if state is None or item["state"] == state]
        return sorted(jobs, key=lambda job: job.id, reverse=True)[:limit]


# -- keys ------------------------------------------------------------------------------------------

_COUNTER_EVENTS = ("COUNTER#EVENTS", "COUNTER")


def _ns_pk(namespace: str) -> str:
    return f"NAMESPACE#{namespace.lower()}"


def _namespace_key(namespace: str) -> tuple[str, str]:
    return (_ns_pk(namespace), _ns_pk(namespace))


def _module_key(address: ModuleAddress) -> tuple[str, str]:
    return (_ns_pk(address.namespace), f"MODULE#{address.name.lower()}#PROVIDER#{address.provider}")


def _version_prefix(address: ModuleAddress) -> str:
    return f"NAME#{address.name.lower()}#PROVIDER#{address.provider}#VERSION#"


def _version_sk(name: str, provider: str, version: str) -> str:
    return f"NAME#{name.lower()}#PROVIDER#{provider}#VERSION#{version}"


def _version_key(address: ModuleAddress, version: str) -> tuple[str, str]:
    return (_ns_pk(address.namespace), _version_sk(address.name, address.provider, version))


def _browse_key(namespace: str, name: str, provider: str) -> str:
    # '#' sorts before every character a name may hold, so this orders like (ns, name, provider)
    return f"{namespace.lower()}#{name.lower()}#{provider}"


def _blob_key(blob_key: str) -> tuple[str, str]:
    return (f"BLOB#{blob_key}", "BLOB")


def _lease_held(owner: str | None) -> tuple[str, dict[str, Any]]:
    """The condition (to append) and values that a write applies only while ``owner`` holds the
    item's lease; nothing when no owner is given."""
    if owner is None:
        return "", {}
    return " AND #lease_owner = :lease_owner", {":lease_owner": owner}


def _consumer_key(name: str) -> tuple[str, str]:
    return ("CONSUMERS", f"CONSUMER#{name}")


def _installation_key(installation_id: int) -> tuple[str, str]:
    return ("INSTALLATIONS", f"INSTALLATION#{installation_id:020d}")


def _job_pk(job_id: int) -> str:
    return f"JOB#{job_id:020d}"


def _serial_sk(serial: int) -> str:
    return f"{serial:020d}"


def _time_key(moment: float) -> str:
    return f"{max(0.0, moment):017.6f}"


def _job_index(state: str, job_id: int, moment: float | None) -> dict[str, str]:
    """GSI1 keys of a job: the queue by due time, running jobs by lease end, the rest by id."""
    if state in ("queued", "running"):
        assert moment is not None
        return {"GSI1PK": f"JOBS#{state}", "GSI1SK": f"{_time_key(moment)}#{job_id:020d}"}
    return {"GSI1PK": f"JOBS#{state}", "GSI1SK": f"{job_id:020d}"}


def _repository_pointer(repository_id: int, module_key: tuple[str, str]) -> dict[str, Any]:
    return {
        "PK": f"REPOSITORY#{repository_id}",
        "SK": "REPOSITORY",
        "module_pk": module_key[0],
        "module_sk": module_key[1],
    }


# -- items -----------------------------------------------------------------------------------------


def _address_data(address: ModuleAddress) -> dict[str, str]:
    return {"namespace": address.namespace, "name": address.name, "provider": address.provider}


def _address_of(item: dict[str, Any]) -> ModuleAddress:
    return ModuleAddress(item["namespace"], item["name"], item["provider"])


def _new_module_item(address: ModuleAddress, now: str, owner: Owner) -> dict[str, Any]:
    pk, sk = _module_key(address)
    return {
        "owner": str(owner),
        "repository_id": owner.repository_id,
        "PK": pk,
        "SK": sk,
        "kind": "module",
        "namespace": address.namespace,
        "name": address.name,
        "provider": address.provider,
        "created_at": now,
        "downloads": 0,
        "description": "",
        "rev": 0,  # bumped by writes outside the event counter (source, downloads)
        "vrev": 0,  # bumped by every change of the module's versions
    }


def _version_item(display: ModuleAddress, mv: ModuleVersion, analysis: dict[str, Any] | None) -> dict[str, Any]:
    pk, sk = _version_key(display, mv.version)
    item = {
        "PK": pk,
        "SK": sk,
        "kind": "version",
        "namespace": display.namespace,
        "name": display.name,
        "provider": display.provider,
        "version": mv.version,
        "raw_version": mv.raw_version,
        "sha256": mv.sha256,
        "size": mv.size,
        "blob_key": mv.blob_key,
        "published_at": mv.published_at,
        "source": mv.source,
        "commit_sha": mv.commit_sha,
        "description": first_paragraph(mv.readme),
        "downloads": 0,
    }
    item.update(_pack("readme", mv.readme))
    item.update(_pack("analysis", _dumps(analysis) if analysis is not None else None))
    return item


def _pick_latest(briefs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest live version: the highest release, else the highest prerelease (SemVer order)."""
    best: tuple[tuple[bool, Version], dict[str, Any]] | None = None
    for brief in briefs:
        if brief.get("revoked_at"):
            continue
        parsed = Version.parse(brief["version"])
        rank = (not parsed.is_prerelease, parsed)
        if best is None or rank > best[0]:
            best = (rank, brief)
    return best[1] if best else None


def _latest_fields(display: ModuleAddress, latest: dict[str, Any] | None, *, put: bool = False) -> dict[str, Any]:
    """The module's summary attributes; None values are removed (or left out of a put)."""
    if latest is None:
        fields: dict[str, Any] = {"latest": None, "description": "", "GSI1PK": None, "GSI1SK": None}
    else:
        fields = {
            "latest": {f: latest[f] for f in _LATEST_FIELDS if latest.get(f) is not None},
            "description": latest.get("description") or "",
            "GSI1PK": "MODULES",
            "GSI1SK": _browse_key(display.namespace, display.name, display.provider),
        }
    return {k: v for k, v in fields.items() if v is not None} if put else fields


def _latest_version_key(module: dict[str, Any]) -> tuple[str, str]:
    return (module["PK"], _version_sk(module["name"], module["provider"], module["latest"]["version"]))


def _browse_sort(module: dict[str, Any]) -> str:
    return _browse_key(module["namespace"], module["name"], module["provider"])


def _summary_from_item(module: dict[str, Any], readme: str | None) -> ModuleSummary:
    latest = module["latest"]
    version = ModuleVersion(
        address=_address_of(module),
        version=latest["version"],
        raw_version=latest["raw_version"],
        sha256=latest["sha256"],
        size=int(latest["size"]),
        blob_key=latest["blob_key"],
        published_at=latest["published_at"],
        readme=readme,
        source=latest.get("source"),
        commit_sha=latest.get("commit_sha"),
    )
    return ModuleSummary(
        version, module.get("source_url"), int(module.get("downloads", 0)), module.get("description", "")
    )


def _version_from_item(item: dict[str, Any]) -> ModuleVersion:
    return ModuleVersion(
        address=_address_of(item),
        version=item["version"],
        raw_version=item["raw_version"],
        sha256=item["sha256"],
        size=int(item["size"]),
        blob_key=item["blob_key"],
        published_at=item["published_at"],
        readme=_unpack(item, "readme"),
        source=item.get("source"),
        commit_sha=item.get("commit_sha"),
        revoked_at=item.get("revoked_at"),
    )


def _owner_of(item: dict[str, Any]) -> Owner:
    """A module item's owner; an item written before owners were kept has its legacy owner."""
    if item.get("owner"):
        return Owner.parse(item["owner"])
    repository_id = item.get("repository_id")
    latest = item.get("latest") or {}
    return provenance.legacy_owner(None if repository_id is None else int(repository_id), latest.get("source"))


def _check_owner(address: ModuleAddress, module: dict[str, Any], owner: Owner | None) -> None:
    """NotOwner unless the module item is ``owner``'s; nothing to check without ``owner``."""
    if owner is not None and (current := _owner_of(module)) != owner:
        raise provenance.changed(address, current, owner)


def _record_from_item(item: dict[str, Any]) -> ModuleRecord:
    repository_id = item.get("repository_id")
    installation_id = item.get("installation_id")
    return ModuleRecord(
        _address_of(item),
        item["created_at"],
        item.get("source_url"),
        None if repository_id is None else int(repository_id),
        _owner_of(item),
        None if installation_id is None else int(installation_id),
        bool(item.get("allow_uploads")),
    )


def _token_fields(record: TokenRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "token_hash": record.token_hash,
        "namespace": record.namespace,
        "scope": record.scope,
        "created_at": record.created_at,
        "description": record.description,
        "revoked_at": record.revoked_at,
    }


def _token_from_item(item: dict[str, Any]) -> TokenRecord:
    return TokenRecord(
        item["id"],
        item["token_hash"],
        item["namespace"],
        item["scope"],
        item["created_at"],
        item.get("description", ""),
        item.get("revoked_at"),
    )


def _event_item(serial: int, kind: str, data: dict[str, Any], when: str) -> dict[str, Any]:
    return {
        "PK": f"EVENTS#{serial // EVENT_BUCKET}",
        "SK": _serial_sk(serial),
        "serial": serial,
        "type": kind,
        "occurred_at": when,
        "data": _dumps(data),
    }


def _consumer_from_item(item: dict[str, Any]) -> Consumer:
    return Consumer(
        item["name"],
        int(item["serial"]),
        int(item["attempts"]),
        float(item["next_attempt_at"]),
        item.get("last_error"),
        item["updated_at"],
    )


def _subscription_from_item(item: dict[str, Any]) -> WebhookSubscription:
    return WebhookSubscription(
        item["id"],
        item["url"],
        item["secret"],
        tuple(item.get("events", [])),
        tuple(item.get("namespaces", [])),
        item["source"],
        item["created_at"],
    )


def _installation_from_item(item: dict[str, Any]) -> Installation:
    return Installation(int(item["id"]), item["account"], item["namespace"], item["created_at"])


def _job_from_item(item: dict[str, Any]) -> Job:
    return Job(
        int(item["id"]),
        item["kind"],
        json.loads(item["payload"]),
        item["state"],
        int(item["attempts"]),
        float(item["run_after"]),
        item["created_at"],
        item["updated_at"],
        item.get("last_error"),
        item.get("dedupe_key"),
        item.get("lease_owner"),
    )


def _pack(name: str, text: str | None) -> dict[str, Any]:
    """A text attribute: as is when short, zlib-compressed (``<name>_z``) when long."""
    if text is None:
        return {}
    raw = text.encode("utf-8")
    return {name: text} if len(raw) <= INLINE_TEXT_BYTES else {f"{name}_z": zlib.compress(raw, 6)}


def _unpack(item: dict[str, Any], name: str) -> str | None:
    if name in item:
        return item[name]
    packed = item.get(f"{name}_z")
    return zlib.decompress(packed).decode("utf-8") if packed is not None else None


def _fitting(items: list[dict[str, Any]], *, per_item: int, fixed: int) -> int:
    """How many of ``items`` fit in one transaction with ``fixed`` other actions."""
    count, size = 0, 0
    for item in items:
        size += _size(item) * 2
        if fixed + (count + 1) * per_item > MAX_TRANSACTION_ITEMS or (count and size > MAX_TRANSACTION_BYTES):
            break
        count += 1
    return count


def _size(value: Any) -> int:
    if isinstance(value, dict):
        return sum(len(k) + _size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value) + 1
    if isinstance(value, (str, bytes)):
        return len(value)
    return 8


def _backoff(attempt: int) -> float:
    """Seconds before trying a lost race again: short, growing, jittered."""
    return random.uniform(0.002, min(0.2, 0.005 * 2 ** min(attempt, 6)))


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# -- the wire format ---------------------------------------------------------------------------------


def _expressions(values: Mapping[str, Any] | None = None, **expressions: str | None) -> dict[str, Any]:
    """Expressions with every ``#name`` declared and every ``:value`` marshalled."""
    out: dict[str, Any] = {key: text for key, text in expressions.items() if text}
    names = {f"#{name}": name for text in out.values() for name in _NAME_RE.findall(text)}
    if names:
        out["ExpressionAttributeNames"] = names
    if values:
        out["ExpressionAttributeValues"] = {key: _value(value) for key, value in values.items()}
    return out


def _put_args(
    table: str, item: dict[str, Any], condition: str | None, values: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {"TableName": table, "Item": _to_item(item), **_expressions(values, ConditionExpression=condition)}


def _update_args(
    table: str,
    key: tuple[str, str],
    *,
    set: Mapping[str, Any] | None = None,
    remove: Sequence[str] = (),
    add: Mapping[str, int | float] | None = None,
    condition: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """UpdateItem arguments: ``set`` (a None value removes the attribute), ``remove``, ``add``."""
    all_values = dict(values or {})
    assignments, removals = [], list(remove)
    for number, (name, value) in enumerate((set or {}).items()):
        if value is None:
            removals.append(name)
        elif isinstance(value, _Raw):
            assignments.append(f"#{name} = {value.expression}")
        else:
            assignments.append(f"#{name} = :set{number}")
            all_values[f":set{number}"] = value
    clauses = []
    if assignments:
        clauses.append("SET " + ", ".join(assignments))
    if removals:
        clauses.append("REMOVE " + ", ".join(f"#{name}" for name in removals))
    if add:
        for number, (name, amount) in enumerate(add.items()):
            all_values[f":add{number}"] = amount
        clauses.append("ADD " + ", ".join(f"#{name} :add{number}" for number, name in enumerate(add)))
    return {
        "TableName": table,
        "Key": _key(*key),
        **_expressions(all_values, UpdateExpression=" ".join(clauses), ConditionExpression=condition),
    }


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _to_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _value(value) for name, value in item.items() if value is not None}


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, (list, tuple)):
        return {"L": [_value(v) for v in value]}
    if isinstance(value, Mapping):
        return {"M": {k: _value(v) for k, v in value.items() if v is not None}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _python(value) for name, value in item.items()}


def _python(value: Mapping[str, Any]) -> Any:
    [(kind, data)] = value.items()
    if kind == "S" or kind == "BOOL":
        return data
    if kind == "N":
        return int(data) if re.fullmatch(r"-?\d+", data) else float(data)
    if kind == "B":
        return bytes(data)
    if kind == "NULL":
        return None
    if kind == "L":
        return [_python(v) for v in data]
    if kind == "M":
        return {k: _python(v) for k, v in data.items()}
    raise TypeError(f"unexpected DynamoDB type {kind}")
