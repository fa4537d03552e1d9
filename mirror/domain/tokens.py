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


def grants_of(record: TokenRecord) -> tuple[tuple[str, Scope], ...]:
    """Every (namespace or ``*``, scope) the record holds: a token its one, a session its person's."""
    return record.grants if record.grants is not None else ((record.namespace, record.scope),)


def _grant_allows(granted_namespace: str, granted: Scope, namespace: str | None, needed: Scope) -> bool:
    if not scope_allows(granted, needed):
        return False
    return granted_namespace == "*" or namespace is None or granted_namespace.lower() == namespace.lower()


def token_allows(record: TokenRecord, namespace: str | None, needed: Scope) -> bool:
    """Does the token (or session) grant ``needed`` on ``namespace`` (None: any namespace will do)?"""
    if record.revoked_at is not None:
        return False
    return any(_grant_allows(ns, scope, namespace, needed) for ns, scope in grants_of(record))


def readable_namespaces(record: TokenRecord, needed: Scope = "read") -> frozenset[str] | None:
    """The namespaces (lower case) the record grants ``needed`` on; None when it is every one."""
    found: set[str] = set()
    for ns, scope in grants_of(record):
        if scope_allows(scope, needed):
            if ns == "*":
                return None
            found.add(ns.lower())
    return frozenset(found)


def is_registry_admin(record: TokenRecord) -> bool:
    """Admin on every namespace (``*``/admin)."""
    return any(ns == "*" and scope == "admin" for ns, scope in grants_of(record))
