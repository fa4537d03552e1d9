"""The audit trail: ``GET /api/v1/audit?actor=&namespace=&since=&until=&after=&limit=``.

The changes (events) with who made each (``actor``, ``mirror.domain.audit``), oldest first, paged
by serial as the event feed is. Who may read what is the feed's rule (``events_api``): a read
token is required; a registry-wide (``*``) token sees every change, a namespace token only its
namespace's (asking for another namespace is a 403).

Filters: ``actor`` (a kind, or a token id, delivery, job, host or bundle file), ``namespace``
(``data.namespace``, case-insensitive), ``since``/``until`` (RFC 3339, on ``occurred_at``, both
ends included). One request reads at most ``MAX_SCAN`` events from the store, so a page may hold
fewer than ``limit`` changes, even none: ``next_after`` is the last serial read, to pass as
``after`` next time; ``next_after >= latest`` means everything was read. The scan is
``mirror.services.audit.scan_events``, which a module page's History tab reads the log with too.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from mirror.domain.audit import actor_matches
from mirror.domain.errors import Unauthorized
from mirror.domain.models import Event
from mirror.http.keys import AUTH, STORE
from mirror.http.models.audit import MAX_LIMIT, MAX_SCAN, AuditQuery, parse_time
from mirror.http.models.base import parse_query
from mirror.services.audit import scan_events
from mirror.services.auth import authorization_header


async def list_changes(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    record = await auth.identify(authorization_header(request.headers))
    if record is None:
        raise Unauthorized("a bearer token with the 'read' scope is required")
    query = parse_query(AuditQuery, request)
    own = None if record.namespace == "*" else record.namespace
    auth.check(record, query.namespace or own or "*", "read")  # another namespace than a token's own: 403
    wanted = query.namespace or own
    match = _Filter(
        query.actor,
        wanted.lower() if wanted else None,
        parse_time(query.since, "since") if query.since else None,
        parse_time(query.until, "until") if query.until else None,
    )
    scan = await scan_events(
        request.app[STORE], query.after, match, limit=query.limit, max_scan=MAX_SCAN, page_size=MAX_LIMIT
    )
    return web.json_response(
        {"events": [e.to_json() for e in scan.events], "next_after": scan.next_after, "latest": scan.latest}
    )


class _Filter:
    def __init__(self, actor: str | None, namespace: str | None, since: datetime | None, until: datetime | None):
        self.actor, self.namespace, self.since, self.until = actor, namespace, since, until

    def __call__(self, event: Event) -> bool:
        if self.namespace is not None and str(event.data.get("namespace", "")).lower() != self.namespace:
            return False
        if self.actor is not None and not actor_matches(event.actor, self.actor):
            return False
        if self.since is not None or self.until is not None:
            try:
                when = parse_time(event.occurred_at, "occurred_at")
            except ValueError:
                return False
            if (self.since is not None and when < self.since) or (self.until is not None and when > self.until):
                return False
        return True


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/audit", list_changes),
    ]
