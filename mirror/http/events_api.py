"""The event feed: ``GET /api/v1/events?after=SERIAL&limit=N&type=T`` (read scope, a token required).

A registry-wide (``*``) token sees every event; a token for namespace X sees only the events whose
``data.namespace`` is X (case-insensitive). Filtering happens while reading pages from the store, so
a page may hold fewer than ``limit`` events, even none: ``next_after`` is the last serial scanned and
is what the client passes as ``after`` next time; ``latest`` is the newest serial in the store (read
before the scan), so ``next_after >= latest`` means the client has caught up.
"""

from __future__ import annotations

from aiohttp import web

from mirror.domain.models import Event
from mirror.domain.errors import Unauthorized
from mirror.http.keys import AUTH, STORE
from mirror.http.models.base import parse_query
from mirror.http.models.events import MAX_LIMIT, EventsQuery
from mirror.services.auth import authorization_header

#: at most this many events are read from the store per request when a namespace filter hides them
MAX_SCAN = 10 * MAX_LIMIT


async def list_events(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    record = await auth.identify(authorization_header(request.headers))
    if record is None:
        raise Unauthorized("a bearer token with the 'read' scope is required")
    namespace = None if record.namespace == "*" else record.namespace
    auth.check(record, namespace or "*", "read")
    query = parse_query(EventsQuery, request)
    store = request.app[STORE]
    latest = await store.latest_serial()
    events, next_after = await _scan(store, query.after, query.limit, tuple(query.type), namespace)
    return web.json_response({"events": [e.to_json() for e in events], "next_after": next_after, "latest": latest})


async def _scan(store, after: int, limit: int, types: tuple[str, ...], namespace: str | None) -> tuple[list[Event], int]:
    """Up to ``limit`` visible events after ``after`` and the last serial scanned."""
    if namespace is None:
        events = await store.events_after(after, limit, types)
        return events, events[-1].serial if events else after
    wanted = namespace.lower()
    found: list[Event] = []
    cursor, scanned = after, 0
    while scanned < MAX_SCAN:
        page = await store.events_after(cursor, MAX_LIMIT, types)
        for event in page:
            cursor = event.serial
            if str(event.data.get("namespace", "")).lower() == wanted:
                found.append(event)
                if len(found) == limit:
                    return found, cursor
        scanned += len(page)
        if len(page) < MAX_LIMIT:
            break
    return found, cursor


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/events", list_events),
    ]
