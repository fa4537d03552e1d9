"""Tokens: creating them (the secret is returned once and only its hash is stored), who may make
which, who sees and revokes which.

A token makes tokens within its own grant: its namespace (any namespace for a ``*`` token), the
same scope or a lower one (read < publish < admin), and (unless it is a registry-wide admin) no
later expiry than its own. Registry-wide admins (``*``/admin) make tokens for anyone. A token
sees and revokes itself and the tokens it made; a namespace admin also its namespace's tokens;
a registry-wide admin every token.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

from mirror.domain.errors import BadRequest, Forbidden
from mirror.domain.models import Scope, TokenRecord
from mirror.domain.timeutil import rfc3339
from mirror.domain.tokens import hash_token, is_registry_admin, new_token, readable_namespaces, scope_allows, token_allows
from mirror.storage.protocols import TokenStore

#: the longest expiry a request may ask for whatever the config allows (a timestamp stays valid)
LONGEST_EXPIRY = 100 * 365 * 24 * 3600


async def create_token(
    store: TokenStore,
    namespace: str,
    scope: Scope,
    description: str = "",
    *,
    expires_in: float | None = None,
    created_by: str = "",
    now: float | None = None,
) -> tuple[TokenRecord, str]:
    """Store a new token and return it with its secret. ``expires_in`` seconds from ``now``
    (rounded up to the second, so it never ends early); None: it never expires."""
    when = time.time() if now is None else now
    token_id, secret = new_token()
    record = TokenRecord(
        id=token_id,
        token_hash=hash_token(secret),
        namespace=namespace,
        scope=scope,
        created_at=rfc3339(when),
        description=description,
        expires_at=None if expires_in is None else rfc3339(math.ceil(when + expires_in)),
        created_by=created_by,
    )
    await store.create_token(record)
    return record, secret


def timestamp(rfc3339_text: str) -> float:
    """An RFC 3339 timestamp (``...Z`` or with an offset) as unix time."""
    return datetime.fromisoformat(rfc3339_text.replace("Z", "+00:00")).timestamp()


def expires_at_of(record: TokenRecord) -> float | None:
    """When the token stops working, as unix time; None: never."""
    return None if record.expires_at is None else timestamp(record.expires_at)


def creator_of(record: TokenRecord) -> str:
    """What a token made by ``record`` records as ``created_by``: a signed-in person (the same
    through all their sessions), else the token's id."""
    return record.person or record.id


def state_of(record: TokenRecord, now: float) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if record.revoked_at is not None:
        return "revoked"
    expires = expires_at_of(record)
    return "expired" if expires is not None and expires <= now else "active"


def granted_expiry(
    creator: TokenRecord,
    asked: int | None,
    *,
    default_seconds: int,
    max_seconds: int,
    now: float,
) -> float | None:
    """The new token's lifetime in seconds (None: it never expires) for what was ``asked``
    (None: the default), within the config's maximum (``0``: none) and the creator's own expiry.

    Raises BadRequest beyond the maximum, Forbidden beyond the creator's expiry (a token cannot
    outlive the one that made it, unless that one is a registry-wide admin); the default is cut
    to the creator's expiry instead."""
    if asked is not None:
        if not 1 <= asked <= LONGEST_EXPIRY:
            raise BadRequest(f"expires_in must be between 1 and {LONGEST_EXPIRY} seconds")
        if max_seconds and asked > max_seconds:
            raise BadRequest(f"expires_in may be at most {max_seconds} seconds ([auth] token_max_expiry_seconds)")
    lifetime: float | None = asked if asked is not None else (default_seconds or None)
    creator_expires = expires_at_of(creator)
    if creator_expires is None or is_registry_admin(creator) or creator.person:  # a session's end is not a cap
        return lifetime
    remaining = creator_expires - now
    if lifetime is None or lifetime > remaining:
        if asked is not None:
            raise Forbidden(f"the new token would outlive this token, which expires at {creator.expires_at}")
        return max(remaining, 1.0)
    return lifetime


def check_grant(creator: TokenRecord, namespace: str, scope: Scope) -> None:
    """Raise Forbidden unless ``creator`` may make a ``scope`` token on ``namespace`` (or ``*``)."""
    if is_registry_admin(creator):
        return
    if namespace == "*" and readable_namespaces(creator, scope) is not None or not token_allows(
        creator, None if namespace == "*" else namespace, scope
    ):
        who = f"person {creator.person!r}" if creator.person else f"a {creator.scope!r} token on namespace {creator.namespace!r}"
        where = "every namespace ('*')" if namespace == "*" else f"namespace {namespace!r}"
        raise Forbidden(f"{who} cannot make a {scope!r} token for {where} (read < publish < admin)")


def may_manage(viewer: TokenRecord, record: TokenRecord) -> bool:
    """May ``viewer`` see and revoke ``record``?"""
    if is_registry_admin(viewer) or record.id == viewer.id or record.created_by == creator_of(viewer):
        return True
    return record.namespace != "*" and token_allows(viewer, record.namespace, "admin")


def token_to_json(record: TokenRecord, now: float, creators: dict[str, TokenRecord]) -> dict[str, Any]:
    """A token's public fields (never its hash); ``creators`` by id name who made it."""
    creator = creators.get(record.created_by) if record.created_by else None
    return {
        "id": record.id,
        "namespace": record.namespace,
        "scope": record.scope,
        "description": record.description,
        "state": state_of(record, now),
        "created_at": record.created_at,
        "created_by": record.created_by,
        "created_by_description": None if creator is None else creator.description,
        "expires_at": record.expires_at,
        "last_used_at": record.last_used_at,
        "revoked_at": record.revoked_at,
    }
