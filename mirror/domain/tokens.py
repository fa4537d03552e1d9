"""API tokens: generated once, shown once, stored only as a SHA-256 hash.

Tokens carry 256 bits of randomness, so a fast hash is enough (there is nothing to brute-force
that a slow hash would protect); a prefix makes leaked tokens easy to spot by secret scanners.
"""

from __future__ import annotations

import hashlib
import secrets

from mirror.domain.models import SCOPES, Scope, TokenRecord

TOKEN_PREFIX = "mirror_"
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}


def new_token() -> tuple[str, str]:
    """Return ``(token_id, secret_token)``; the id is public, the token is shown once."""
    return secrets.token_hex(6), TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def scope_allows(granted: Scope, needed: Scope) -> bool:
    """``read`` < ``publish`` < ``admin``."""
    return _RANK[granted] >= _RANK[needed]


def token_allows(record: TokenRecord, namespace: str | None, needed: Scope) -> bool:
    """Does the token grant ``needed`` on ``namespace`` (None: any namespace will do)?"""
    if record.revoked_at is not None or not scope_allows(record.scope, needed):
        return False
    if record.namespace == "*" or namespace is None:
        return True
    return record.namespace.lower() == namespace.lower()
