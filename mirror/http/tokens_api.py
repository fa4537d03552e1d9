"""Tokens as a resource: make one (its secret answered once), list them, revoke one.

Any valid token may call these: it makes tokens within its own grant and sees and revokes
itself and the tokens it made (``mirror.services.tokens`` has the rules); registry-wide admins
(``*``/admin) make tokens for anyone and see and revoke every token.
"""

from __future__ import annotations

import time
from aiohttp import web

from mirror.domain.errors import NotFound, Unauthorized
from mirror.domain.models import TokenRecord
from mirror.http.common import authorize
from mirror.http.keys import AUTH, CONFIG, STORE
from mirror.http.models.base import read_json_object, validate
from mirror.http.models.tokens import NewToken
from mirror.services.tokens import check_grant, create_token, creator_of, granted_expiry, may_manage, token_to_json

_ID = r"{id:[A-Za-z0-9_-]{1,64}}"
#: the largest body read: a namespace, a scope, a description of 256 characters and a number
MAX_BODY_BYTES = 16 * 1024


async def _caller(request: web.Request) -> TokenRecord:
    """The calling token (any scope, any namespace); 401 without one."""
    record = await authorize(request, None, "read")
    if record is None:  # anonymous reads are on: they still make and see no tokens
        raise Unauthorized("a bearer token is required")
    return record


async def create(request: web.Request) -> web.Response:
    """``POST /api/v1/tokens`` {namespace, scope, description?, expires_in?}: 201 with the secret."""
    caller = await _caller(request)
    body = validate(NewToken, await read_json_object(request, MAX_BODY_BYTES))
    check_grant(caller, body.namespace, body.scope)
    auth, now = request.app[CONFIG].auth, time.time()
    lifetime = granted_expiry(
        caller,
        body.expires_in,
        default_seconds=auth.token_default_expiry_seconds,
        max_seconds=auth.token_max_expiry_seconds,
        now=now,
    )
    record, secret = await create_token(
        request.app[STORE], body.namespace, body.scope, body.description,
        expires_in=lifetime, created_by=creator_of(caller), now=now,
    )  # fmt: skip
    answer = token_to_json(record, now, {caller.id: caller}) | {"secret": secret}
    return web.json_response({"token": answer}, status=201, headers={"Cache-Control": "no-store"})


async def list_tokens(request: web.Request) -> web.Response:
    """``GET /api/v1/tokens``: the tokens the caller may manage, oldest first."""
    caller = await _caller(request)
    records = await request.app[STORE].list_tokens()
    by_id = {record.id: record for record in records}
    now = time.time()
    visible = [token_to_json(record, now, by_id) for record in records if may_manage(caller, record)]
    return web.json_response({"tokens": visible})


async def revoke(request: web.Request) -> web.Response:
    """``DELETE /api/v1/tokens/{id}``: 204; 404 for a token the caller may not manage (or none)."""
    caller = await _caller(request)
    token_id = request.match_info["id"]
    records = await request.app[STORE].list_tokens()
    target = next((record for record in records if record.id == token_id), None)
    if target is None or not may_manage(caller, target) or not await request.app[STORE].revoke_token(token_id):
        raise NotFound(f"no active token with id {token_id!r} that this token may revoke")
    request.app[AUTH].forget(token_id)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/tokens", create),
        web.get("/api/v1/tokens", list_tokens),
        web.delete(f"/api/v1/tokens/{_ID}", revoke),
    ]
