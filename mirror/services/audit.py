"""Reading the event log for who changed what: the bounded scan behind the audit trail
(``GET /api/v1/audit``) and a module's history (the web UI's History tab).

Both read the log forward in serial order, a page at a time, keep the events a predicate
accepts and stop after a set number of events read, so one request never reads the whole log.
A module's history reads backwards from the newest event, in windows: the newest changes of a
module are found quickly, older ones only as far back as the bound allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import Event
from mirror.storage.protocols import EventReader

#: a module's history: the most changes shown, and the most events read to find them
HISTORY_SHOWN = 50
HISTORY_SCAN = 5000
#: events read per request of the store
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Scan:
    """Events a scan kept, oldest first; ``next_after`` is the last serial read (to go on from),
    ``latest`` the log's newest serial when the scan began."""

    events: list[Event]
    next_after: int
    latest: int


async def scan_events(
    store: EventReader,
    after: int,
    match: Callable[[Event], bool],
    *,
    limit: int,
    max_scan: int,
    page_size: int = _PAGE,
    latest: int | None = None,
) -> Scan:
    """The events after serial ``after`` that ``match`` keeps, oldest first: at most ``limit`` of
    them, reading at most ``max_scan`` events (``page_size`` a request), and none past ``latest``
    (the log's newest serial when None)."""
    if latest is None:
        latest = await store.latest_serial()
    found: list[Event] = []
    cursor, scanned = after, 0
    while scanned < max_scan and len(found) < limit:
        page = await store.events_after(cursor, min(page_size, max_scan - scanned))
        for event in page:
            cursor = event.serial
            if match(event):
                found.append(event)
                if len(found) == limit:
                    break
        scanned += len(page)
        if not page or cursor >= latest:
            break
    return Scan(found, cursor, latest)


def module_events(address: ModuleAddress) -> Callable[[Event], bool]:
    """Whether an event is a change of the module at ``address`` (``module.*`` events whose data
    names it, in any case)."""
    wanted = (address.namespace.lower(), address.name.lower(), address.provider.lower())

    def match(event: Event) -> bool:
        if not event.type.startswith("module."):
            return False
        data = event.data
        return (
            str(data.get("namespace", "")).lower(),
            str(data.get("name", "")).lower(),
            str(data.get("provider", "")).lower(),
        ) == wanted

    return match


@dataclass(frozen=True, slots=True)
class History:
    """A module's changes, newest first; ``searched_from`` is the serial after which the log was
    read (0: all of it), ``latest`` the newest serial then, ``more`` whether changes were found
    beyond those kept."""

    events: list[Event]
    searched_from: int
    latest: int
    more: bool = False

    @property
    def complete(self) -> bool:
        """Whether these are all the module's changes (the whole log read, none left out)."""
        return self.searched_from == 0 and not self.more


async def module_history(
    store: EventReader, address: ModuleAddress, *, shown: int = HISTORY_SHOWN, max_scan: int = HISTORY_SCAN
) -> History:
    """The module's newest ``shown`` changes, newest first, reading at most ``max_scan`` events
    back from the newest (serials have no gaps, so a window of serials is a window of events)."""
    match = module_events(address)
    latest = await store.latest_serial()
    found: list[Event] = []
    end, scanned = latest, 0
    while end > 0 and scanned < max_scan and len(found) < shown:
        start = max(0, end - min(_PAGE, max_scan - scanned))
        window = end - start

        def in_window(event: Event, end: int = end) -> bool:
            return event.serial <= end and match(event)

        scan = await scan_events(store, start, in_window, limit=window, max_scan=window, latest=end)
        found = scan.events + found
        scanned += window
        end = start
    return History(found[::-1][:shown], end, latest, more=len(found) > shown)
