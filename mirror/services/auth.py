"""Who is calling, and may they? Bearer tokens, looked up by hash with a short-lived cache."""

from __future__ import annotations

import time

from mirror.domain.models import Scope, TokenRecord
from mirror.domain.tokens import hash_token, token_allows
from mirror.errors import Forbidden, Unauthorized
from mirror.storage.protocols import TokenStore


class Authenticator:
    """Resolves ``Authorization`` headers to token records and checks scopes.

    Lookups are cached for ``cache_seconds`` (positive and negative), so a hot path costs one
    dict lookup; a revoked token stops working on every replica within that time.
    """

    def __init__(
        self,
        tokens: TokenStore,
        *,
        anonymous_read: bool,
        cache_seconds: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self._tokens = tokens
        self.anonymous_read = anonymous_read
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}

    async def identify(self, authorization: str | None) -> TokenRecord | None:
        """The token record for the header, None when there is no header.

        Raises Unauthorized for a malformed header or an unknown or revoked token.
        """
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        record = await self._lookup(hash_token(token))
        if record is None or record.revoked_at is not None:
            raise Unauthorized("the token is not valid (unknown or revoked)")
        return record

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
        record = await self.identify(authorization)
        self.check(record, namespace, scope)
        return record

    async def _lookup(self, token_hash: str) -> TokenRecord | None:
        now = time.monotonic()
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self._tokens.find_token(token_hash)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[token_hash] = (now + self._cache_seconds, record)
        return record
