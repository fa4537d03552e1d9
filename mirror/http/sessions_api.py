"""Signed-in people's sessions (``mirror.domain.sessions``): list them, revoke one.

Registry-wide admins (``*``/admin) only: a person manages their own sessions on the web UI's
``/sessions`` page. A revoked session stops working on every replica within the
Authenticator's cache time.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from mirror.domain.errors import NotFound
from mirror.domain.sessions import SessionRecord, session_state
from mirror.domain.timeutil import rfc3339
from mirror.http.common import authorize
from mirror.http.keys import AUTH, STORE

_ID = r"{id:[0-9a-f]{12}}"


def session_to_json(record: SessionRecord, now: float, current: str | None = None) -> dict[str, Any]:
    """A session's public fields (never its secret's hash)."""
    return {
        "id": record.id,
        "person": record.person,
        "name": record.name,
        "issuer": record.issuer,
        "subject": record.subject,
        "grants": [{"namespace": grant.namespace, "scope": grant.scope} for grant in record.grants],
        "state": session_state(record, now),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "current": record.id == current,
    }


async def list_sessions(request: web.Request) -> web.Response:
    """``GET /api/v1/sessions``: every stored session, oldest first (ended ones until purged)."""
    caller = await authorize(request, "*", "admin")
    now = time.time()
    current = caller.id if caller is not None and caller.grants is not None else None
    records = await request.app[STORE].list_sessions()
    return web.json_response({"sessions": [session_to_json(record, now, current) for record in records]})


async def revoke(request: web.Request) -> web.Response:
    """``DELETE /api/v1/sessions/{id}``: 204; 404 for an unknown or already revoked session."""
    await authorize(request, "*", "admin")
    session_id = request.match_info["id"]
    if not await request.app[STORE].revoke_session(session_id, rfc3339(time.time())):
        raise NotFound(f"no active session with id {session_id!r}")
    request.app[AUTH].forget(session_id)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/v1/sessions", list_sessions), web.delete(f"/api/v1/sessions/{_ID}", revoke)]
