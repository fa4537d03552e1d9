"""The web UI's ``/sessions`` page: a signed-in person's sessions (every browser they signed in
on through OpenID Connect), each with when it started and ends, and a button to end it; and one
to end all of them. Only for people signed in through OpenID Connect: a token has no sessions.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from mirror.domain.errors import BadRequest, Forbidden, NotFound, Unauthorized
from mirror.domain.models import TokenRecord
from mirror.domain.sessions import session_state
from mirror.domain.timeutil import rfc3339
from mirror.http.keys import AUTH, CONFIG, STORE
from mirror.http.ui import session

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[..., web.Response]
#: any id: one that names no session of the person's is a 404 page (never the API's JSON 404)
_ID = "{id}"


class SessionPages:
    def __init__(self, render: Render) -> None:
        self._render = render

    def routes(self, page: Callable[[PageHandler], PageHandler]) -> list[web.RouteDef]:
        return [
            web.get("/sessions", page(self.sessions)),
            web.post(f"/sessions/{_ID}/revoke", page(self.revoke)),
            web.post("/sessions/revoke-all", page(self.revoke_all)),
        ]

    @staticmethod
    async def _person(request: web.Request) -> TokenRecord:
        record = await request.app[AUTH].identify(session.credential(request).authorization)
        if record is None:
            raise Unauthorized("sign in to see your sessions")
        if record.grants is None:
            raise NotFound("a token has no sessions: only people who signed in through the OpenID Provider do")
        return record

    @staticmethod
    async def _own(request: web.Request, me: TokenRecord) -> list:  # type: ignore[type-arg]
        store = request.app[STORE]
        mine = await store.get_session(me.id)
        if mine is None:
            raise Unauthorized("this session is not stored any more: sign in again")
        return [s for s in await store.list_sessions() if s.issuer == mine.issuer and s.subject == mine.subject]

    async def sessions(self, request: web.Request) -> web.Response:
        """``GET /sessions``: the person's sessions, newest first."""
        me = await self._person(request)
        now = time.time()
        rows = [
            {"record": s, "state": session_state(s, now), "current": s.id == me.id}
            for s in reversed(await self._own(request, me))
        ]
        return self._render(request, "sessions.html", rows=rows, days=request.app[CONFIG].oidc.session_seconds / 86400)

    def _check_post(self, request: web.Request) -> None:
        if not session.same_origin(request, request.app[CONFIG].server.public_url):
            raise Forbidden("the form was sent from another site")
        if request.content_length is not None and request.content_length > 4096:
            raise BadRequest("the form is too large")

    async def revoke(self, request: web.Request) -> web.Response:
        """``POST /sessions/{id}/revoke``: end one of the person's sessions (this one signs out)."""
        self._check_post(request)
        me = await self._person(request)
        target = request.match_info["id"]
        own = {s.id for s in await self._own(request, me) if s.revoked_at is None}
        if target not in own:
            raise NotFound(f"you have no active session {target!r}")
        await self._end(request, [target])
        return self._back(request, signed_out=target == me.id)

    async def revoke_all(self, request: web.Request) -> web.Response:
        """``POST /sessions/revoke-all``: end every session of the person, this one included."""
        self._check_post(request)
        me = await self._person(request)
        await self._end(request, [s.id for s in await self._own(request, me) if s.revoked_at is None])
        return self._back(request, signed_out=True)

    @staticmethod
    async def _end(request: web.Request, ids: list[str]) -> None:
        when = rfc3339(time.time())
        for session_id in ids:
            await request.app[STORE].revoke_session(session_id, when)
            request.app[AUTH].forget(session_id)

    @staticmethod
    def _back(request: web.Request, *, signed_out: bool) -> web.Response:
        response = web.Response(status=303, headers={"Location": "/" if signed_out else "/sessions"})
        if signed_out:
            session.clear_token_cookie(response, secure=session.is_secure(request, request.app[CONFIG].server.public_url))
        return response
