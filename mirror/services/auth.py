"""Who is calling, and may they? Bearer tokens, looked up by hash with a short-lived cache.

A credential is checked for shape before anything else is done with it: an ``Authorization``
header longer than ``MAX_AUTHORIZATION_CHARS``, a token longer than ``MAX_TOKEN_CHARS``, or a
token holding anything but RFC 6750's token characters (non-ASCII, bytes that were not UTF-8,
spaces, controls, quotes...) is refused as malformed (401) before it is hashed or looked up.
Messages never repeat what was presented.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from multidict import MultiMapping

from mirror.domain.models import Scope, TokenRecord
from mirror.domain.tokens import hash_token, token_allows
from mirror.domain.errors import Forbidden, Unauthorized
from mirror.services.singleflight import SingleFlight
from mirror.storage.protocols import TokenStore

#: the longest ``Authorization`` header read at all (a token of ours is 50 characters)
MAX_AUTHORIZATION_CHARS = 1024
#: the longest bearer token looked up; anything longer is refused before it is hashed
MAX_TOKEN_CHARS = 512
#: RFC 6750's b64token: the only characters a bearer token may hold
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MALFORMED = "the Authorization header must be 'Bearer <token>'"


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
    """

    def __init__(
        self,
        tokens: TokenStore,
        *,
        anonymous_read: bool,
        cache_seconds: float = 5.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens = tokens
        self._clock = clock
        self.anonymous_read = anonymous_read
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}
        self._next_purge = 0.0
        self._granted: dict[tuple[str | None, str | None, Scope], tuple[float, TokenRecord | None]] = {}
        self._lookups: SingleFlight[str, tuple[float, TokenRecord | None]] = SingleFlight()

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
        expires, record = await self._lookup(hash_token(token))
        if record is None or record.revoked_at is not None:
            raise Unauthorized("the token is not valid (unknown or revoked)")
        return expires, record

    def check(self, record: TokenRecord | None, namespace: str | None, scope: Scope) -> None:
        """Raise unless ``record`` (or anonymous access) grants ``scope`` on ``namespace``."""
        if record is None:
            if scope == "read" and self.anonymous_read:
                return
            raise Unauthorized("a bearer token is required")
        if not token_allows(record, namespace, scope):
            where = f"namespace {namespace!r}" if namespace else "this registry"
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

    async def _lookup(self, token_hash: str) -> tuple[float, TokenRecord | None]:
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > self._clock():
            return cached
        return await self._lookups.do(token_hash, lambda: self._fetch(token_hash))

    async def _fetch(self, token_hash: str) -> tuple[float, TokenRecord | None]:
        """One store lookup, shared by the requests that missed the cache at once."""
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
