"""OpenID Connect sign-in for the web UI (and so for ``terraform login``'s authorize page).

``GET /oidc/login?next=PATH`` starts a sign-in: a fresh ``state``, ``nonce`` and PKCE verifier
go in a short-lived cookie (``mirror_oidc``: HttpOnly, ``SameSite=Lax`` so the provider's
redirect back brings it, path ``/oidc/``), and the browser goes to the provider.
``GET /oidc/callback`` checks the ``state`` against that cookie, has the relying party
(``mirror.services.oidc``) exchange the code and check the ID token, stores a server-side
session (``mirror.domain.sessions``) and sets its cookie, then goes on to ``next``. A person
whose claims match no ``[[oidc.grants]]`` rule is signed in all the same, with no access, and
every page says so. Sign-out (``POST /logout``) revokes the session in the store.

Every refusal is an HTML page: a sign-in cancelled at the provider, a callback without a
pending sign-in in this browser or with another ``state``, a provider that cannot be reached or
whose answer fails a check.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from yarl import URL

from mirror.domain.errors import BadRequest, Forbidden, NotFound
from mirror.domain.sessions import SessionRecord, hash_secret, new_session_secret
from mirror.domain.timeutil import rfc3339
from mirror.http.keys import AUTH, CONFIG, OIDC, STORE
from mirror.http.ui import session
from mirror.services.oidc import Pending

log = structlog.get_logger("mirror.oidc")

LOGIN_PATH = "/oidc/login"
CALLBACK_PATH = "/oidc/callback"
PENDING_COOKIE = "mirror_oidc"
PENDING_SECONDS = 600
#: the longest ``next`` path kept across a sign-in, the longest code and state read back
MAX_NEXT = 2000
MAX_PARAM = 4096
#: sessions that ended this long ago are purged when someone signs in
PURGE_AFTER_SECONDS = 24 * 3600

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def login_url(next_path: str) -> str:
    """Where a sign-in that comes back to ``next_path`` starts."""
    return str(URL(LOGIN_PATH).with_query(next=next_path))


def _encode(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(text: str) -> dict[str, Any] | None:
    if not text or len(text) > 8192:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(key), str) for key in ("s", "n", "v", "next")):
        return None
    return data if isinstance(data.get("e"), int) else None


class OidcPages:
    def routes(self, page: Callable[[PageHandler], PageHandler]) -> list[web.RouteDef]:
        return [web.get(LOGIN_PATH, page(self.login)), web.get(CALLBACK_PATH, page(self.callback))]

    @staticmethod
    def _party(request: web.Request):  # type: ignore[no-untyped-def]
        party = request.app.get(OIDC)
        if party is None:
            raise NotFound("sign-in through an OpenID Provider is not configured here ([oidc] issuer)")
        return party

    async def login(self, request: web.Request) -> web.Response:
        """``GET /oidc/login``: to the provider, with this sign-in's state kept in a cookie."""
        party = self._party(request)
        next_path = session.safe_next(request.query.get("next"))
        if len(next_path) > MAX_NEXT:
            next_path = "/"
        pending = Pending.new()
        location = await party.authorization_url(pending)
        response = web.Response(status=303, headers={"Location": location})
        cookie = _encode(
            {"s": pending.state, "n": pending.nonce, "v": pending.verifier, "next": next_path, "e": int(time.time()) + PENDING_SECONDS}
        )
        response.set_cookie(
            PENDING_COOKIE, cookie, max_age=PENDING_SECONDS, path="/oidc/", httponly=True, samesite="Lax",
            secure=session.is_secure(request, request.app[CONFIG].server.public_url),
        )  # fmt: skip
        return response

    async def callback(self, request: web.Request) -> web.Response:
        """``GET /oidc/callback``: the provider's answer; a session, then on to ``next``."""
        party = self._party(request)
        query = request.query
        error = query.get("error")
        if error is not None:
            described = query.get("error_description", "")
            detail = f"{error[:100]}" + (f": {described[:300]}" if described else "")
            raise Forbidden(f"The sign-in was not completed at the provider ({detail}).")
        pending_data = _decode(request.cookies.get(PENDING_COOKIE, ""))
        if pending_data is None or pending_data["e"] < time.time():
            raise BadRequest(
                "This browser has no sign-in under way (it started more than 10 minutes ago, or cookies are "
                "blocked for this site). Sign in again."
            )
        state, code = query.get("state", ""), query.get("code", "")
        if not state or len(state) > MAX_PARAM or not _same(state, pending_data["s"]):
            raise BadRequest("The provider's answer is not for the sign-in this browser started (state). Sign in again.")
        if not code or len(code) > MAX_PARAM:
            raise BadRequest("The provider's answer holds no authorization code.")
        issuer = query.get("iss")  # RFC 9207: when the provider names itself, it must be ours
        if issuer is not None and issuer != party.issuer:
            raise BadRequest("The answer came from another OpenID Provider than this registry's (iss).")
        identity = await party.sign_in(code, Pending(pending_data["s"], pending_data["n"], pending_data["v"]))
        config = request.app[CONFIG]
        now = time.time()
        session_id, secret = new_session_secret()
        record = SessionRecord(
            id=session_id,
            secret_hash=hash_secret(secret),
            issuer=identity.issuer,
            subject=identity.subject,
            person=identity.person,
            name=identity.name,
            grants=identity.grants,
            created_at=rfc3339(now),
            expires_at=rfc3339(math.floor(now + config.oidc.session_seconds)),
        )
        store = request.app[STORE]
        await store.create_session(record)
        try:
            await store.purge_sessions(rfc3339(now - PURGE_AFTER_SECONDS))
        except Exception as exc:  # an old session left in the store is harmless
            log.warning("session_purge_failed", error=str(exc) or type(exc).__name__)
        log.info(
            "signed_in", session=session_id, person=identity.person, subject=identity.subject,
            grants=[f"{g.namespace}:{g.scope}" for g in identity.grants],
        )  # fmt: skip
        secure = session.is_secure(request, config.server.public_url)
        response = web.Response(status=303, headers={"Location": session.safe_next(pending_data["next"])})
        response.del_cookie(PENDING_COOKIE, path="/oidc/", httponly=True, samesite="Lax", secure=secure)
        session.set_session_cookie(response, secret, max_age=config.oidc.session_seconds, secure=secure)
        return response


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def sign_out(request: web.Request) -> None:
    """Revoke the browser's session (if it holds one) in the store and in this process's cache."""
    secret = session.session_secret(request)
    if secret is None:
        return
    store = request.app[STORE]
    found = await store.find_session(hash_secret(secret))
    if found is not None and found.revoked_at is None:
        await store.revoke_session(found.id, rfc3339(time.time()))
        request.app[AUTH].forget(found.id)
        log.info("signed_out", session=found.id, person=found.person)
