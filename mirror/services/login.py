"""``terraform login``: this registry as the OAuth 2.0 authorization server Terraform talks to
(authorization code with PKCE, Terraform's loopback redirect, the public client ``terraform-cli``).

The authorize request is checked strictly: the client, a loopback ``redirect_uri`` on one of the
ports discovery announces, S256 only, and bounded ``code_challenge`` and ``state``. A person signs
in with a registry token, or through OpenID Connect (their session), and chooses a grant within
it (within their grants); the answer is a one-time authorization
code that lives ``CODE_SECONDS``.

A code is stateless and signed: its fields (a random nonce, the challenge, the redirect URI, the
signing-in token's id, the grant and the expiry) with an HMAC under a key kept in the metadata
store's settings (``oauth.code_key``), so every replica checks codes any replica issued. It is
usable once because the token it is exchanged for has an id derived from the code's nonce: both
metadata backends store a token id once, atomically, so a second exchange (on any replica) fails
to store its token. The token a reused code got is revoked then (RFC 6749 section 4.1.2), as the
code may have leaked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from mirror.domain.addresses import valid_namespace
from mirror.domain.errors import BadRequest, Forbidden, MirrorError, StorageUnavailable
from mirror.domain.models import SCOPES, Scope, TokenRecord
from mirror.domain.sessions import principal
from mirror.domain.timeutil import rfc3339
from mirror.domain.tokens import grants_of, hash_token, new_token
from mirror.storage.protocols import SessionStore, SettingsStore, TokenStore
from mirror.services.tokens import check_grant, creator_of, granted_expiry, state_of, timestamp

CLIENT_ID = "terraform-cli"
#: the loopback ports Terraform may listen on: it picks one in [first, last)
PORTS = (10000, 10010)
CODE_SECONDS = 60
CODE_KEY_SETTING = "oauth.code_key"
#: a code's creator that is a signed-in person's session, not a token, has its id after this
SESSION_MARK = "session:"
#: S256 of a verifier is 32 bytes: 43 base64url characters without padding
CHALLENGE_PATTERN = r"^[A-Za-z0-9_-]{43}$"
#: RFC 7636: 43 to 128 unreserved characters
VERIFIER_PATTERN = r"^[A-Za-z0-9._~-]{43,128}$"
#: RFC 6749 VSCHAR, bounded
STATE_PATTERN = r"^[\x20-\x7e]{1,500}$"
MAX_REDIRECT_URI = 300
MAX_CODE = 2048
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]{0,200}$")
_CHALLENGE, _VERIFIER, _STATE = re.compile(CHALLENGE_PATTERN), re.compile(VERIFIER_PATTERN), re.compile(STATE_PATTERN)


class InvalidGrant(Exception):
    """An OAuth error at the token endpoint: ``error`` code and a readable description."""

    def __init__(self, description: str, error: str = "invalid_grant", *, revoked: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        #: the id of a token revoked on the way (a reused code's), for caches to forget
        self.revoked = revoked


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """A checked authorize request (``response_type=code``, S256)."""

    redirect_uri: str
    code_challenge: str
    state: str


@dataclass(frozen=True, slots=True)
class Grant:
    """What a code carries: the token that signed in, the grant chosen and the PKCE binding."""

    nonce: str
    code_challenge: str
    redirect_uri: str
    creator_id: str
    namespace: str
    scope: Scope
    expires: int


def _one(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise BadRequest(f"{name} is required")
    return value


def check_redirect_uri(uri: str) -> str:
    """``uri`` when it is Terraform's loopback listener: ``http://localhost:PORT/login`` or
    ``http://127.0.0.1:PORT/PATH`` with PORT in ``PORTS`` (as discovery announces), written
    plainly (no user, query or fragment); else BadRequest."""
    problem = BadRequest(
        f"redirect_uri must be http://localhost:PORT/login or http://127.0.0.1:PORT/... with PORT from "
        f"{PORTS[0]} to {PORTS[1] - 1}"
    )
    if len(uri) > MAX_REDIRECT_URI or not uri.isascii():
        raise problem
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise problem from None
    if parts.scheme != "http" or parts.hostname not in ("localhost", "127.0.0.1") or port is None:
        raise problem
    if not PORTS[0] <= port < PORTS[1] or not _PATH.match(parts.path):
        raise problem
    if parts.hostname == "localhost" and parts.path != "/login":
        raise problem
    if uri != f"http://{parts.hostname}:{port}{parts.path}":  # no user, query, fragment or odd spelling
        raise problem
    return uri


def check_authorize(params: Mapping[str, str]) -> AuthorizeRequest:
    """The authorize request's parameters, checked; BadRequest names the first problem."""
    client_id = _one(params, "client_id")
    if client_id != CLIENT_ID:
        raise BadRequest(f"unknown client_id (this registry serves {CLIENT_ID!r} only)")
    redirect_uri = check_redirect_uri(_one(params, "redirect_uri"))
    if _one(params, "response_type") != "code":
        raise BadRequest("response_type must be code")
    if _one(params, "code_challenge_method") != "S256":
        raise BadRequest("code_challenge_method must be S256 (plain is not accepted)")
    challenge = _one(params, "code_challenge")
    if not _CHALLENGE.match(challenge):
        raise BadRequest("code_challenge must be 43 base64url characters (the S256 of the verifier)")
    state = _one(params, "state")
    if not _STATE.match(state):
        raise BadRequest("state must be 1 to 500 printable ASCII characters")
    return AuthorizeRequest(redirect_uri, challenge, state)


def check_choice(creator: TokenRecord, namespace: str, scope: str) -> tuple[str, Scope]:
    """The grant a person chose, within the signing-in token's; BadRequest or Forbidden."""
    if not grants_of(creator):
        raise Forbidden(f"{creator.person or 'this person'} has no grant on this registry: ask an administrator")
    first_namespace, first_scope = grants_of(creator)[0]
    namespace = namespace.strip() or first_namespace
    scope = scope.strip() or first_scope
    if scope not in SCOPES:
        raise BadRequest(f"scope must be one of {', '.join(SCOPES)}")
    if namespace != "*" and not valid_namespace(namespace):
        raise BadRequest(f"invalid namespace {namespace[:100]!r}")
    check_grant(creator, namespace, scope)  # type: ignore[arg-type]
    return namespace, scope  # type: ignore[return-value]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def s256(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


async def code_key(store: SettingsStore) -> bytes:
    """The HMAC key of codes, shared by every replica through the metadata store."""
    return bytes.fromhex(await store.get_or_create_setting(CODE_KEY_SETTING, secrets.token_hex(32)))


class Codes:
    """Issues and checks authorization codes with ``key``."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, label: str, data: str) -> bytes:
        return hmac.new(self._key, f"{label}\0{data}".encode(), hashlib.sha256).digest()

    def issue(self, request: AuthorizeRequest, creator: TokenRecord, namespace: str, scope: Scope, *, now: float) -> str:
        fields = {
            "n": _b64(secrets.token_bytes(16)),
            "c": request.code_challenge,
            "r": request.redirect_uri,
            "t": (SESSION_MARK if creator.grants is not None else "") + creator.id,
            "ns": namespace,
            "s": scope,
            "e": int(now) + CODE_SECONDS,
        }
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        return f"{payload}.{_b64(self._mac('code', payload))}"

    def token_id(self, grant: Grant) -> str:
        """The id of the token a code is exchanged for (12 hex digits, as ``new_token``'s)."""
        return self._mac("token-id", grant.nonce).hex()[:12]

    def check(self, code: str, *, redirect_uri: str, verifier: str, now: float) -> Grant:
        """The code's grant when it is ours, unexpired, for ``redirect_uri`` and ``verifier``."""
        payload, _, mac = code.partition(".")
        try:
            good = len(code) <= MAX_CODE and hmac.compare_digest(_unb64(mac), self._mac("code", payload))
            fields: dict[str, Any] = json.loads(_unb64(payload)) if good else {}
            grant = Grant(
                fields["n"], fields["c"], fields["r"], fields["t"], fields["ns"], fields["s"], int(fields["e"])
            ) if good else None
        except (ValueError, KeyError, TypeError):
            grant = None
        if grant is None:
            raise InvalidGrant("the authorization code is not one this registry issued")
        if now >= grant.expires:
            raise InvalidGrant(f"the authorization code expired (codes live {CODE_SECONDS} seconds)")
        if not hmac.compare_digest(redirect_uri.encode(), grant.redirect_uri.encode()):
            raise InvalidGrant("redirect_uri does not match the authorize request's")
        if not _VERIFIER.match(verifier) or not hmac.compare_digest(s256(verifier), grant.code_challenge):
            raise InvalidGrant("code_verifier does not match the code_challenge (PKCE)")
        return grant


@dataclass(frozen=True, slots=True)
class Issued:
    record: TokenRecord
    secret: str
    expires_in: int | None


async def exchange(
    store: TokenStore,
    codes: Codes,
    params: Mapping[str, str],
    *,
    sessions: SessionStore | None = None,
    default_seconds: int,
    max_seconds: int,
    now: float | None = None,
) -> Issued:
    """The token endpoint: a new registry token for a valid code, within the grant it carries
    and the signing-in token's (still active) grant and expiry. Raises InvalidGrant; a reused
    code also revokes the token its first exchange made (its id is ``codes.token_id``)."""
    when = time.time() if now is None else now
    if params.get("grant_type") != "authorization_code":
        raise InvalidGrant("grant_type must be authorization_code", "unsupported_grant_type")
    if params.get("client_id") != CLIENT_ID:
        raise InvalidGrant(f"client_id must be {CLIENT_ID!r}", "invalid_client")
    for name in ("code", "redirect_uri", "code_verifier"):
        if not params.get(name):
            raise InvalidGrant(f"{name} is required", "invalid_request")
    grant = codes.check(params["code"], redirect_uri=params["redirect_uri"], verifier=params["code_verifier"], now=when)
    token_id = codes.token_id(grant)
    if grant.creator_id.startswith(SESSION_MARK):
        found = None if sessions is None else await sessions.get_session(grant.creator_id.removeprefix(SESSION_MARK))
        creator = None if found is None else principal(found)
    else:
        creator = next((record for record in await store.list_tokens() if record.id == grant.creator_id), None)
    if creator is None or state_of(creator, when) != "active":
        raise InvalidGrant("the token or sign-in that signed in is no longer valid (revoked, expired or signed out)")
    try:
        check_grant(creator, grant.namespace, grant.scope)
        lifetime = granted_expiry(creator, None, default_seconds=default_seconds, max_seconds=max_seconds, now=when)
    except (BadRequest, Forbidden) as exc:
        raise InvalidGrant(exc.message) from None
    _, secret = new_token()
    record = TokenRecord(
        id=token_id,
        token_hash=hash_token(secret),
        namespace=grant.namespace,
        scope=grant.scope,
        created_at=rfc3339(when),
        description=f"terraform login {rfc3339(when)[:10]}",
        expires_at=None if lifetime is None else rfc3339(math.ceil(when + lifetime)),
        created_by=creator_of(creator),
    )
    try:
        await store.create_token(record)
    except StorageUnavailable:
        raise
    except MirrorError:  # the id is taken: this code was exchanged before
        await store.revoke_token(token_id)
        raise InvalidGrant(
            "the authorization code was already used; the token it got is revoked", revoked=token_id
        ) from None
    if record.expires_at is None:
        return Issued(record, secret, None)
    return Issued(record, secret, max(int(timestamp(record.expires_at) - when), 1))  # never more than it lives
