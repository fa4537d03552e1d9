"""Event sinks: whatever receives the registry's events as they are committed.

Every write that changes the registry appends events to the store's events table (the event
catalogue is ``mirror.domain``'s). A sink reads them from there, each with its own cursor, so a
sink that is down or slow loses nothing and holds no one up. ``mirror.app.sinks`` starts every
configured sink after the stores open, calls ``wake`` after each commit that appended events, and
stops the sinks (in reverse order) before the stores close.

Built-in sinks (always configured as before): ``log``, the local JSONL event log
(``mirror.services.eventlog.EventLogWriter``, when ``[events] log_path`` is set, which it is by
default), and ``webhooks``, the outbound webhook dispatcher (``mirror.services.webhooks``).

A plug-in sink is an entry point in the group ``mirror.event_sinks`` naming an object with

- ``create(context: SinkContext) -> EventSink``: the sink, not started yet;
- optionally ``validate(table) -> list[str]``: the problems of its ``[plugins.NAME]`` table, as
  ``mirror.app.plugins`` describes.

It runs when the config has a ``[plugins.NAME]`` table, NAME being the entry point's name (an
empty table switches it on with its defaults). ``ConsumerSink`` below does the bookkeeping for
most sinks: give it an async function that takes a batch of events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from mirror.config import Config
from mirror.domain.models import Consumer, Event

log = structlog.get_logger("mirror.sinks")

#: events handed to a ConsumerSink's function at a time
BATCH_SIZE = 100
#: longest wait after a failed delivery before trying again
MAX_RETRY_SECONDS = 30.0


class EventSink(Protocol):
    """A receiver of events, started once and stopped once."""

    async def start(self) -> None:
        """Begin receiving (a sink reads the events after its own cursor)."""

    def wake(self) -> None:
        """Events were committed: look for them now (cheap, non-blocking)."""

    async def stop(self) -> None:
        """Deliver what is pending if it can, then release what ``start`` took."""


class SinkStore(Protocol):
    """What a sink may read from the metadata store: the events and its own cursor."""

    async def events_after(self, serial: int, limit: int, types: Sequence[str] = ()) -> list[Event]: ...

    async def latest_serial(self) -> int: ...

    async def consumer(self, name: str, *, start_serial: int = 0) -> Consumer: ...

    async def advance_consumer(self, name: str, serial: int, *, owner: str | None = None) -> bool: ...


@dataclass(frozen=True)
class SinkContext:
    """What a plug-in sink is created with."""

    name: str  # the entry point's name, which is also its table's: ``[plugins.NAME]``
    table: Mapping[str, Any]  # that table, already accepted by the plug-in's ``validate``
    config: Config
    store: SinkStore


class ConsumerSink:
    """An EventSink that hands batches of events to ``deliver``, in serial order, at least once.

    Its cursor is the store consumer ``sink:NAME``: after ``deliver`` returns, the cursor moves
    past the batch; when it raises, the same batch is offered again later (backing off up to
    ``MAX_RETRY_SECONDS``). A new consumer starts at the first event (``from_start``) or after
    the latest one. ``stop`` delivers what is pending once more before returning.
    """

    def __init__(
        self,
        store: SinkStore,
        name: str,
        deliver: Callable[[list[Event]], Awaitable[None]],
        *,
        from_start: bool = True,
        poll_interval: float = 1.0,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.consumer = f"sink:{name}"
        self._store = store
        self._deliver = deliver
        self._from_start = from_start
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._serial = 0
        self._lock = asyncio.Lock()
        self._woken = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def serial(self) -> int:
        """The last event delivered."""
        return self._serial

    async def start(self) -> None:
        start = 0 if self._from_start else await self._store.latest_serial()
        self._serial = (await self._store.consumer(self.consumer, start_serial=start)).serial
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"mirror-{self.consumer}")

    def wake(self) -> None:
        self._woken.set()

    async def stop(self) -> None:
        self._stopping = True
        self.wake()
        task, self._task = self._task, None
        if task is not None:
            await task
        try:
            await self.catch_up()
        except Exception as exc:  # a plug-in's own failure: logged, retried at the next start
            log.warning("event sink: cannot deliver the last events before stopping", sink=self.consumer, error=str(exc))

    async def catch_up(self) -> int:
        """Deliver every event up to the latest serial; return the last one delivered."""
        async with self._lock:
            target = await self._store.latest_serial()
            while self._serial < target:
                events = await self._store.events_after(self._serial, self._batch_size)
                if not events:
                    break
                await self._deliver(events)
                self._serial = events[-1].serial
                await self._store.advance_consumer(self.consumer, self._serial)
            return self._serial

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._woken.clear()
            delay = self._poll_interval
            try:
                await self.catch_up()
                failures = 0
            except Exception as exc:  # the plug-in's deliver, or the store: try again later
                failures += 1
                delay = min(MAX_RETRY_SECONDS, self._poll_interval * 2**failures)
                log.warning("event sink: delivery failed, will retry", sink=self.consumer, error=str(exc), retry_in=delay)
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._woken.wait(), delay)
            except TimeoutError:
                pass
