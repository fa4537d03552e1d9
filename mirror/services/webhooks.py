"""Outbound webhooks: each subscription is a consumer of the event log with its own cursor.

Delivery is at least once and in serial order per subscriber. One task per subscription reads the
events after its cursor, skips those it does not ``want`` (the cursor simply moves past them), and
hands the others one at a time to its ``WebhookTransport`` (wired in by the composition root:
``mirror.integrations.webhook_transport`` POSTs them, signed like GitHub's webhooks). A failed
attempt is recorded on the consumer with the time of the next attempt (exponential backoff with
jitter); after ``max_attempts`` the event is parked in the subscription's dead-letter list (and the
cursor moves past it, atomically) so one bad event never blocks the stream. Cursors and retry state
live in the store, so a restart resumes where the last process stopped, including waiting out a
backoff. An event whose delivery was in flight when the process stopped is delivered again:
receivers dedupe on ``X-Mirror-Delivery``, which is stable per (subscription, serial).

Subscriptions and the ports of delivery live in ``mirror.services.webhook_subscriptions`` (their
names are importable from here too). A new subscription starts at the latest serial at the time it
is created: it receives the events written from then on, not the history (a subscriber that wants
the history reads the event feed).

Several processes (replicas on one metadata store) may each run a dispatcher: a subscriber's
cursor is leased, and only the dispatcher holding the lease delivers to it. Each dispatcher has a
random owner id; its task per subscription acquires the consumer's lease (a conditional write that
succeeds when the lease is free, expired or already its own), renews it while it works (before
each delivery once a third of it has passed, or when less than a delivery's timeout is left) and
releases it at shutdown, so another process's dispatcher takes over at once; after a crash it
takes over once the lease lapses. Every write of the cursor (advance, retry state, parking an
event) is itself conditional on still holding the lease, so a dispatcher that stalled past its
lease cannot move a cursor the new holder owns: it notices, drops its state and waits as a
standby. A delivery in flight while the lease was lost may be made again by the new holder (at
least once, as after a restart).
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from mirror.domain.errors import BadRequest, MirrorError
from mirror.domain.models import Consumer, Event, WebhookSubscription
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.urls import redact_url, redact_urls_in
from mirror.services.jobs import describe_error, retry_delay
from mirror.services.webhook_subscriptions import (
    MIN_SECRET_CHARS,
    DeliveryError,
    DestinationChecker,
    WebhookDispatchStore,
    WebhookTransport,
    consumer_name,
    create_subscription,
    failure_to_json,
    new_subscription,
    redeliver_failure,
    remove_subscription,
    subscription_from_config,
    subscription_to_json,
    validate_subscription_fields,
)
from mirror.storage.protocols import new_lease_owner

__all__ = [
    "BATCH_SIZE",
    "LEASE_SECONDS",
    "MIN_SECRET_CHARS",
    "STOP_GRACE_SECONDS",
    "DeliveryError",
    "DestinationChecker",
    "WebhookDispatchStore",
    "WebhookDispatcher",
    "WebhookTransport",
    "consumer_name",
    "create_subscription",
    "failure_to_json",
    "new_subscription",
    "redeliver_failure",
    "remove_subscription",
    "subscription_from_config",
    "subscription_to_json",
    "validate_subscription_fields",
]

log = structlog.get_logger("mirror.webhooks")

#: events read from the log per round trip
BATCH_SIZE = 100
#: a stopping dispatcher gives deliveries in flight this long before cancelling them
STOP_GRACE_SECONDS = 2.0
#: how long a dispatcher holds a subscriber (``[webhooks] lease_seconds``)
LEASE_SECONDS = 30.0


# -- the dispatcher ------------------------------------------------------------------------------


@dataclass
class _Counters:
    delivered: int = 0
    failed_attempts: int = 0
    parked: int = 0


@dataclass
class _Worker:
    subscription: WebhookSubscription
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    #: until when (unix time) this process holds the subscriber's lease; 0 when it does not
    lease_until: float = 0.0


class WebhookDispatcher:
    """Fans the event log out to every subscription, one task each (see the module docstring)."""

    def __init__(
        self,
        store: WebhookDispatchStore,
        transport: WebhookTransport,
        *,
        timeout: float,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        poll_interval: float = 0.5,
        lease_seconds: float = LEASE_SECONDS,
        owner: str | None = None,
        random: Callable[[], float] = _random.random,
        on_delivery: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        """``on_delivery`` is told each attempt's outcome, for ``/metrics``: "delivered",
        "failed", and "dead_lettered" when a failed event is parked.

        ``transport`` makes the deliveries and checks new subscriptions' destinations (with its
        ``allow_private``)."""
        self._store = store
        self._transport = transport
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        #: names this dispatcher in the subscribers' leases (one per process)
        self.owner = owner or new_lease_owner()
        self._random = random
        self._on_delivery = on_delivery
        self._workers: dict[str, _Worker] = {}
        self._counters: dict[str, _Counters] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def allow_private(self) -> bool:
        return self._transport.allow_private

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._stop.clear()
        await self._reconcile()
        self._supervisor = asyncio.create_task(self._supervise(), name="mirror-webhooks-supervisor")

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every task; deliveries in flight get ``grace`` seconds, then are cancelled (their
        events are delivered again after the next start)."""
        self._stop.set()
        self.wake()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        workers = list(self._workers.values())
        tasks = [worker.task for worker in workers if worker.task is not None]
        self._workers.clear()
        if tasks:
            _, busy = await asyncio.wait(tasks, timeout=grace)
            for task in busy:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for worker in workers:  # another process's dispatcher takes these subscribers over now
            await self._release(worker)

    def wake(self) -> None:
        """Deliver now: call after events were written (otherwise they are seen at the next poll).
        A subscriber waiting out a backoff keeps waiting."""
        self._wake.set()
        for worker in self._workers.values():
            worker.wake.set()

    # -- subscriptions -----------------------------------------------------------------------------

    async def sync_config(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Make the config's subscriptions the stored config-sourced ones (new ones start at the
        latest serial); API subscriptions are left alone."""
        now = now_rfc3339()
        wanted = {s.id: s for s in (subscription_from_config(entry, now) for entry in entries)}
        latest = await self._store.latest_serial()
        for subscription in wanted.values():
            await self._store.put_subscription(subscription)
            await self._store.consumer(consumer_name(subscription.id), start_serial=latest)
        for stored in await self._store.list_subscriptions():
            if stored.source == "config" and stored.id not in wanted:
                await self._store.delete_subscription(stored.id)
                log.info("webhook subscription removed from the config", subscription_id=stored.id)
        self.wake()

    async def add(self, subscription: WebhookSubscription) -> WebhookSubscription:
        await create_subscription(self._store, subscription, self._transport)
        log.info("webhook subscription created", subscription_id=subscription.id, url=redact_url(subscription.url))
        self.wake()
        return subscription

    async def remove(self, subscription_id: str) -> None:
        await remove_subscription(self._store, subscription_id)
        log.info("webhook subscription deleted", subscription_id=subscription_id)
        await self._stop_worker(subscription_id)

    async def redeliver(self, subscription_id: str, failure_id: int) -> None:
        await redeliver_failure(self._store, self._transport, subscription_id, failure_id, timeout=self._timeout)

    async def status(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        """Per subscription: its JSON (no secret), cursor, lag, retry state, pending dead letters,
        and this process's counters."""
        latest = await self._store.latest_serial()
        consumers = {c.name: c for c in await self._store.list_consumers()}
        rows = []
        for subscription in await self._store.list_subscriptions():
            if subscription_id is not None and subscription.id != subscription_id:
                continue
            consumer = consumers.get(consumer_name(subscription.id))
            serial = consumer.serial if consumer else latest
            counters = self._counters.get(subscription.id, _Counters())
            worker = self._workers.get(subscription.id)
            rows.append(
                {
                    **subscription_to_json(subscription),
                    "serial": serial,
                    "lag": max(0, latest - serial),
                    "attempts": consumer.attempts if consumer else 0,
                    "next_attempt_at": consumer.next_attempt_at if consumer else 0,
                    "last_error": redact_urls_in(consumer.last_error) if consumer and consumer.last_error else None,
                    "pending_failures": len(await self._store.list_delivery_failures(subscription.id)),
                    "delivered": counters.delivered,
                    "failed_attempts": counters.failed_attempts,
                    "parked": counters.parked,
                    "running": bool(worker and worker.task and not worker.task.done()),
                    "lease_held": bool(worker and worker.lease_until),
                }
            )
        return rows

    # -- tasks -------------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._stop.is_set():
            await _wait(self._wake, self._poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                await self._reconcile()
            except MirrorError as exc:
                log.error("webhook subscriptions could not be listed", error=str(exc))

    async def _reconcile(self) -> None:
        """Start a task per new subscription, stop those of deleted ones, restart crashed ones."""
        current = {s.id: s for s in await self._store.list_subscriptions()}
        if self._stop.is_set():
            return
        for subscription_id in [sid for sid in self._workers if sid not in current]:
            await self._stop_worker(subscription_id)
        for subscription_id, subscription in current.items():
            worker = self._workers.get(subscription_id)
            if worker is None:
                worker = self._workers[subscription_id] = _Worker(subscription)
                self._counters.setdefault(subscription_id, _Counters())
            worker.subscription = subscription  # url, secret or filters may have changed
            if worker.task is not None and worker.task.done():
                if not worker.task.cancelled() and (exc := worker.task.exception()) is not None:
                    log.error("webhook task crashed; restarting", subscription_id=subscription_id, error=describe_error(exc))
                worker.task = None
            if worker.task is None:
                worker.task = asyncio.create_task(self._run(worker), name=f"mirror-webhook-{subscription_id}")

    async def _stop_worker(self, subscription_id: str) -> None:
        worker = self._workers.pop(subscription_id, None)
        if worker is not None and worker.task is not None:
            worker.task.cancel()
            await asyncio.gather(worker.task, return_exceptions=True)
        if worker is not None:
            await self._release(worker)

    async def _release(self, worker: _Worker) -> None:
        if not worker.lease_until:
            return
        worker.lease_until = 0.0
        try:
            await self._store.release_consumer_lease(consumer_name(worker.subscription.id), self.owner)
        except MirrorError as exc:  # it lapses on its own
            log.warning("webhook lease not released", subscription_id=worker.subscription.id, error=str(exc))

    async def _hold_lease(self, worker: _Worker) -> bool:
        """Acquire the subscriber's lease, or renew it once a third of it has passed (or less
        than a delivery's timeout is left); False when another dispatcher holds it."""
        now = time.time()
        if worker.lease_until - now >= max(self._lease_seconds * 2 / 3, self._timeout):
            return True
        name = consumer_name(worker.subscription.id)
        if await self._store.acquire_consumer_lease(name, self.owner, now + self._lease_seconds, now):
            if not worker.lease_until:
                log.info("webhook lease acquired", subscription_id=worker.subscription.id, owner=self.owner)
            worker.lease_until = now + self._lease_seconds
            return True
        self._lost(worker)
        return False

    def _lost(self, worker: _Worker) -> None:
        """Another dispatcher holds the subscriber: forget the lease (and, at the caller, the state)."""
        if worker.lease_until:
            log.warning("webhook lease lost to another dispatcher", subscription_id=worker.subscription.id)
        worker.lease_until = 0.0

    async def _run(self, worker: _Worker) -> None:
        subscription_id = worker.subscription.id
        name = consumer_name(subscription_id)
        state: Consumer | None = None
        while not self._stop.is_set():
            try:
                if state is None:  # make sure the cursor exists before leasing it
                    if await self._store.get_subscription(subscription_id) is None:
                        await _wait(self._stop, self._poll_interval)  # deleted: the supervisor stops us
                        continue
                    await self._store.consumer(name, start_serial=await self._store.latest_serial())
                if not await self._hold_lease(worker):  # a standby: another dispatcher delivers
                    state = None
                    await _wait(self._stop, max(self._poll_interval, self._lease_seconds / 6))
                    continue
                if state is None:  # read after acquiring: the store is the truth, we its only writer
                    state = await self._store.consumer(name, start_serial=await self._store.latest_serial())
                state = await self._step(worker, state)
            except MirrorError as exc:  # the store failed: try again later from the stored state
                log.error("webhook dispatch failed", subscription_id=subscription_id, error=str(exc))
                state = None
                await _wait(self._stop, self._poll_interval)

    async def _step(self, worker: _Worker, state: Consumer) -> Consumer | None:
        """Wait out a backoff, or handle the next events; returns the new consumer state, None
        when the lease was lost (a write was refused)."""
        renew_every = self._lease_seconds / 3  # waits are cut so that the lease is renewed
        delay = state.next_attempt_at - time.time()
        if delay > 0:
            await _wait(self._stop, min(delay, renew_every))
            return state
        worker.wake.clear()
        events = await self._store.events_after(state.serial, BATCH_SIZE)
        if not events:
            await _wait(worker.wake, min(self._poll_interval, renew_every))
            return state
        skipped_to = 0
        for event in events:
            if self._stop.is_set():
                break
            subscription = worker.subscription
            if not subscription.wants(event):
                skipped_to = event.serial
                continue
            if skipped_to:
                if not await self._advance(worker, skipped_to):
                    return None
                state, skipped_to = _moved(state, skipped_to), 0
            if not await self._hold_lease(worker):
                return None
            moved = await self._attempt(worker, state, event)
            if moved is None:
                return None
            state = moved
            if state.serial < event.serial:  # failed: back off before the next attempt
                return state
        if skipped_to:
            if not await self._advance(worker, skipped_to):
                return None
            state = _moved(state, skipped_to)
        return state

    async def _advance(self, worker: _Worker, serial: int) -> bool:
        """Move the cursor while holding the lease; False (lease forgotten) when it was lost."""
        name = consumer_name(worker.subscription.id)
        if await self._store.advance_consumer(name, serial, owner=self.owner):
            return True
        self._lost(worker)
        return False

    async def _attempt(self, worker: _Worker, state: Consumer, event: Event) -> Consumer | None:
        subscription = worker.subscription
        name = consumer_name(subscription.id)
        counters = self._counters.setdefault(subscription.id, _Counters())
        bound = log.bind(subscription_id=subscription.id, serial=event.serial, event_type=event.type)
        try:
            await self._transport.check_destination(subscription.url, resolve=False)
            await self._transport.deliver(subscription, event, timeout=self._timeout)
        except (DeliveryError, BadRequest) as exc:
            error = str(exc)
            attempts = state.attempts + 1
            counters.failed_attempts += 1
            self._on_delivery("failed")
            if attempts >= self._max_attempts:
                if not await self._store.add_delivery_failure(
                    subscription.id, event.serial, attempts, error, owner=self.owner
                ):
                    self._lost(worker)
                    return None
                counters.parked += 1
                self._on_delivery("dead_lettered")
                bound.error("webhook delivery parked", attempts=attempts, error=error)
                return _moved(state, event.serial, last_error=error)
            jitter = self._random()
            next_at = time.time() + retry_delay(attempts, base=self._backoff_base, maximum=self._backoff_max, jitter=jitter)
            if not await self._store.record_consumer_failure(name, attempts, next_at, error, owner=self.owner):
                self._lost(worker)
                return None
            bound.warning("webhook delivery failed; will retry", attempts=attempts, next_attempt_at=next_at, error=error)
            return Consumer(state.name, state.serial, attempts, next_at, error, state.updated_at)
        if not await self._advance(worker, event.serial):
            return None  # delivered, but the new holder will deliver it again (at least once)
        counters.delivered += 1
        self._on_delivery("delivered")
        bound.info("webhook delivered", attempts=state.attempts + 1)
        return _moved(state, event.serial)


def _moved(state: Consumer, serial: int, *, last_error: str | None = None) -> Consumer:
    return Consumer(state.name, max(state.serial, serial), 0, 0, last_error, state.updated_at)


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Until ``event`` is set or ``timeout`` seconds passed."""
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        pass
