"""A person signed in through OpenID Connect: the server-side session the browser's cookie names.

The cookie holds a random secret (``SESSION_PREFIX`` and 256 bits); the store keeps its SHA-256
only, with who the person is and the grants their claims gave at sign-in (``[[oidc.grants]]``).
A session ends at ``expires_at`` or when it is revoked (sign-out, an admin, or the person from
another browser), on every replica within the Authenticator's cache time.

To the rest of the registry a session is a principal like an API token: ``principal`` makes it a
``TokenRecord`` whose ``grants`` hold every (namespace, scope) the person has, and whose
``person`` names them. A person with no grant is signed in with no access.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from mirror.domain.models import Scope, TokenRecord

#: what a session's secret starts with; an API token starts with ``mirror_``, so neither can be
#: taken for the other
SESSION_PREFIX = "mirrorsession_"


@dataclass(frozen=True, slots=True)
class Grant:
    """One namespace (or ``*``) and the scope on it."""

    namespace: str
    scope: Scope


@dataclass(frozen=True, slots=True)
class SessionRecord:
    #: public id (12 hex digits), as listed and revoked by
    id: str
    #: SHA-256 (hex) of the cookie's secret
    secret_hash: str
    #: the OpenID Provider's ``iss`` and the person's ``sub`` there
    issuer: str
    subject: str
    #: who the person is to people: their e-mail, else user name, else subject
    person: str
    #: their display name ("" when the provider gives none)
    name: str
    grants: tuple[Grant, ...]
    created_at: str
    expires_at: str
    revoked_at: str | None = None


def new_session_secret() -> tuple[str, str]:
    """``(session_id, secret)``: the id is public, the secret goes in the cookie only."""
    return secrets.token_hex(6), SESSION_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def is_session_secret(credential: str) -> bool:
    return credential.startswith(SESSION_PREFIX)


def session_state(session: SessionRecord, now: float) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if session.revoked_at is not None:
        return "revoked"
    ends = datetime.fromisoformat(session.expires_at.replace("Z", "+00:00")).timestamp()
    return "expired" if ends <= now else "active"


def same_person(a: SessionRecord, b: SessionRecord) -> bool:
    return a.issuer == b.issuer and a.subject == b.subject


def principal(session: SessionRecord) -> TokenRecord:
    """The session as the Authenticator's record: its grants, its person, its end."""
    return TokenRecord(
        id=session.id,
        token_hash=session.secret_hash,
        namespace="",
        scope="read",
        created_at=session.created_at,
        description=session.name or session.person,
        revoked_at=session.revoked_at,
        expires_at=session.expires_at,
        created_by="oidc",
        grants=tuple((grant.namespace, grant.scope) for grant in session.grants),
        person=session.person,
    )
