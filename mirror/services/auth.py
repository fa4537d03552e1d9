"""Who is calling, and may they? Bearer tokens, looked up by hash with a short-lived cache.

A credential is checked for shape before anything else is done with it: an ``Authorization``
header longer than ``MAX_AUTHORIZATION_CHARS``, a token longer than ``MAX_TOKEN_CHARS``, or a
token holding anything but RFC 6750's token characters (non-ASCII, bytes that were not UTF-8,
spaces, controls, quotes...) is refused as malformed (401) before it is hashed or looked up.
Messages never repeat what was presented.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import structlog
from multidict import MultiMapping

from mirror.domain.models import Scope, TokenRecord
from mirror.domain.sessions import is_session_secret, principal
from mirror.domain.timeutil import rfc3339
from mirror.domain.tokens import hash_token, token_allows
from mirror.domain.errors import Forbidden, Unauthorized
from mirror.services.singleflight import SingleFlight
from mirror.services.tokens import timestamp
from mirror.storage.protocols import SessionStore, TokenStore

#: the longest ``Authorization`` header read at all (a token of ours is 50 characters)
MAX_AUTHORIZATION_CHARS = 1024
#: the longest bearer token looked up; anything longer is refused before it is hashed
MAX_TOKEN_CHARS = 512
#: RFC 6750's b64token: the only characters a bearer token may hold
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: how often one process records a token's last use, at most (seconds)
TOUCH_SECONDS = 600.0
_MALFORMED = "the Authorization header must be 'Bearer <token>'"

log = structlog.get_logger("mirror.auth")


def authorization_header(headers: MultiMapping[str]) -> str | None:
    """The request's ``Authorization`` value. Several headers are joined with ", " (as a proxy
    folding them would), which no token matches: the request is then refused, never judged by
    one of them while something in front of the registry judged it by another."""
    values = headers.getall("Authorization", None)
    if values is None:
        return None
    return values[0] if len(values) == 1 else ", ".join(values)


class Authenticator:
    """Resolves ``Authorization`` headers to token records and checks scopes.

    Lookups are cached for ``cache_seconds`` (positive and negative); a revoked token stops
    working on every replica within that time. Granted checks are remembered too, keyed by the
    header, namespace and scope, and expire with the token lookup they came from: a repeated
    call (Terraform's ``versions`` and ``download``) then costs one dict lookup, hashing nothing.
    Those keys hold the header as the request did; expired ones are dropped by a later miss.
    Concurrent misses of one token make one store lookup.

    A token with an expiry is refused from that instant on: no cached lookup or remembered grant
    of it lasts past its ``expires_at`` (by ``clock``, unix time). Its last use is recorded
    coarsely: when a lookup (not a remembered grant) finds that this process has not recorded it
    for ``touch_seconds``, a background write records it; that write never delays or fails the
    request, and ``drain`` waits for the ones under way.
    """

    def __init__(
        self,
        tokens: TokenStore,
        *,
        anonymous_read: bool,
        sessions: SessionStore | None = None,
        cache_seconds: float = 5.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        touch_seconds: float = TOUCH_SECONDS,
    ) -> None:
        self._tokens = tokens
        self._sessions = sessions
        self._clock = clock
        self.anonymous_read = anonymous_read
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}
        self._next_purge = 0.0
        self._granted: dict[tuple[str | None, str | None, Scope], tuple[float, TokenRecord | None]] = {}
        self._lookups: SingleFlight[str, tuple[float, TokenRecord | None]] = SingleFlight()
        self._touch_seconds = touch_seconds
        self._touched: dict[str, float] = {}  # token id: when this process last recorded its use
        self._touches: set[asyncio.Task[None]] = set()

    async def identify(self, authorization: str | None) -> TokenRecord | None:
        """The token record for the header, None when there is no header.

        Raises Unauthorized for a malformed header (see the module's docstring) or an unknown or
        revoked token.
        """
        return (await self._identify(authorization))[1]

    async def _identify(self, authorization: str | None) -> tuple[float, TokenRecord | None]:
        """``identify``, with the time until which its answer may be reused."""
        if not authorization:
            return self._clock() + self._cache_seconds, None
        if len(authorization) > MAX_AUTHORIZATION_CHARS:
            raise Unauthorized(f"{_MALFORMED}: it is longer than {MAX_AUTHORIZATION_CHARS} characters")
        scheme, _, token = authorization.partition(" ")
        token = token.strip(" \t")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(_MALFORMED)
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized(f"{_MALFORMED}: the token is longer than {MAX_TOKEN_CHARS} characters")
        if _B64TOKEN.fullmatch(token) is None:
            raise Unauthorized(
                f"{_MALFORMED}: one token of the characters A-Z a-z 0-9 - . _ ~ + / (and = at its end)"
            )
        session = is_session_secret(token)
        expires, record = await self._lookup(hash_token(token), session)
        if record is None or record.revoked_at is not None:
            if session:
                raise Unauthorized("the sign-in has ended (signed out or revoked): sign in again")
            raise Unauthorized("the token is not valid (unknown or revoked)")
        now = self._clock()
        if record.expires_at is not None:
            ends = timestamp(record.expires_at)
            if ends <= now:
                if session:
                    raise Unauthorized(f"the sign-in ended at {record.expires_at}: sign in again")
                raise Unauthorized(f"the token expired at {record.expires_at}")
            expires = min(expires, ends)
        if not session:
            self._maybe_touch(record.id, now)
        return expires, record

    def check(self, record: TokenRecord | None, namespace: str | None, scope: Scope) -> None:
        """Raise unless ``record`` (or anonymous access) grants ``scope`` on ``namespace``."""
        if record is None:
            if scope == "read" and self.anonymous_read:
                return
            raise Unauthorized("a bearer token is required")
        if not token_allows(record, namespace, scope):
            where = f"namespace {namespace!r}" if namespace else "this registry"
            if record.grants is not None:
                raise Forbidden(f"{record.person or 'this person'} has no {scope!r} grant on {where}")
            raise Forbidden(f"the token lacks the {scope!r} scope on {where}")

    async def authorize(self, authorization: str | None, namespace: str | None, scope: Scope) -> TokenRecord | None:
        key = (authorization, namespace, scope)
        granted = self._granted.get(key)
        if granted is not None and granted[0] > self._clock():
            return granted[1]
        expires, record = await self._identify(authorization)
        self.check(record, namespace, scope)
        self._remember(self._granted, key, (expires, record))
        return record

    def _maybe_touch(self, token_id: str, now: float) -> None:
        """Record the token's use in the background unless this process did within ``touch_seconds``."""
        last = self._touched.get(token_id)
        if last is not None and now - last < self._touch_seconds:
            return
        if len(self._touched) >= self._cache_size:
            self._touched.clear()
        self._touched[token_id] = now
        task = asyncio.get_running_loop().create_task(self._touch(token_id, rfc3339(now)))
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _touch(self, token_id: str, when: str) -> None:
        try:
            await self._tokens.touch_token(token_id, when)
        except Exception as exc:  # a lost last-use mark is harmless; the request has its answer
            log.warning("token_touch_failed", token_id=token_id, error=str(exc) or type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the last-use writes under way."""
        while self._touches:
            await asyncio.gather(*self._touches, return_exceptions=True)

    def forget(self, token_id: str) -> None:
        """Drop what this process remembers of a token (it was just revoked here)."""
        for cache in (self._cache, self._granted):
            for key in [k for k, (_, record) in cache.items() if record is not None and record.id == token_id]:
                del cache[key]

    async def _lookup(self, token_hash: str, session: bool = False) -> tuple[float, TokenRecord | None]:
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > self._clock():
            return cached
        return await self._lookups.do(token_hash, lambda: self._fetch(token_hash, session))

    async def _fetch(self, token_hash: str, session: bool) -> tuple[float, TokenRecord | None]:
        """One store lookup, shared by the requests that missed the cache at once."""
        if session:
            found = None if self._sessions is None else await self._sessions.find_session(token_hash)
            record = None if found is None else principal(found)
        else:
            record = await self._tokens.find_token(token_hash)
        entry = (self._clock() + self._cache_seconds, record)
        self._remember(self._cache, token_hash, entry)
        return entry

    def _remember(self, cache: dict[Any, tuple[float, TokenRecord | None]], key: Any, entry: tuple[float, TokenRecord | None]) -> None:
        """Add an entry; all of them go when the cache is full, the expired ones once a period."""
        now = self._clock()
        if len(cache) >= self._cache_size:
            cache.clear()
        elif now >= self._next_purge:
            self._next_purge = now + self._cache_seconds
            for stale in [k for k, (expires, _) in cache.items() if expires <= now]:
                del cache[stale]
        cache[key] = entry
