"""OpenID Connect sign-in: this registry as a relying party of one OpenID Provider (``[oidc]``).

The authorization code flow with PKCE (S256), a ``state`` and a ``nonce``:

* ``authorization_url`` sends the browser to the provider's ``authorization_endpoint`` (from its
  discovery document, whose ``issuer`` must be the configured one exactly);
* ``sign_in`` exchanges the code at the ``token_endpoint`` (``client_secret_basic``, or
  ``client_secret_post`` when the provider supports only that; no secret for a public client),
  then checks the ID token: signed with one of the provider's published keys (``jwks_uri``, fetched
  again when a new ``kid`` shows, at most once a minute) by an asymmetric algorithm, ``iss`` the
  issuer, ``aud`` holding the client id (and ``azp`` the client id when there are several), not
  expired, issued no later than now, and the ``nonce`` of this sign-in. The person's claims are the
  ID token's, with the ``userinfo`` endpoint's added when the groups claim is not in it (the
  ``sub`` must match);
* the claims go through ``[[oidc.grants]]`` (``mirror.domain.oidc``) to the person's grants.

Everything the provider sends is bounded: ``MAX_RESPONSE_BYTES`` per answer and
``TIMEOUT_SECONDS`` per request; a provider that cannot be reached or answers something unusable
is an ``UpstreamUnavailable`` / ``UpstreamError`` naming what went wrong (never a secret).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mirror.domain.errors import UpstreamError, UpstreamUnavailable
from mirror.domain.oidc import GrantRule, claim_values, grants_for, name_of, person_of
from mirror.domain.sessions import Grant

MAX_RESPONSE_BYTES = 1024 * 1024
TIMEOUT_SECONDS = 15.0
#: the discovery document and keys are read again after this long
METADATA_SECONDS = 3600.0
#: a new ``kid`` makes the keys be fetched again, at most this often
KEYS_REFRESH_SECONDS = 60.0
#: clock skew allowed on ``exp`` and ``iat``
LEEWAY_SECONDS = 60
#: the ID token's signature algorithms accepted (never ``none``, never a shared-secret HMAC)
log = structlog.get_logger("mirror.oidc")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    auth_methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed in, and what their claims give them."""

    issuer: str
    subject: str
    person: str
    name: str
    grants: tuple[Grant, ...]
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Pending:
    """What the browser keeps between ``/oidc/login`` and ``/oidc/callback`` (in a cookie)."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Pending:
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _endpoint(document: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http") or not urlsplit(value).netloc:
        raise UpstreamError(f"the OpenID Provider's discovery document has no usable {name}")
    return value


class RelyingParty:
    """Signs people in at one OpenID Provider. ``session`` is the HTTP client it talks through."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        scopes: Sequence[str],
        redirect_uri: str,
        rules: Sequence[GrantRule],
        groups_claim: str,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self._scopes = " ".join(scopes)
        self.redirect_uri = redirect_uri
        self._rules = tuple(rules)
        self._groups_claim = groups_claim
        self._session = session
        self._clock = clock
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._lock = asyncio.Lock()

    # -- talking to the provider ------------------------------------------------------------------

    async def _get_json(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        try:
            async with self._session.request(
                method, url, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS), allow_redirects=False, **kwargs
            ) as response:
                body = b""
                while len(body) <= MAX_RESPONSE_BYTES:
                    chunk = await response.content.read(MAX_RESPONSE_BYTES + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(f"the OpenID Provider could not be reached for its {what}: {type(exc).__name__}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise UpstreamError(f"the OpenID Provider's {what} is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if status >= 500:
            raise UpstreamUnavailable(f"the OpenID Provider answered {status} for its {what}")
        if status != 200:
            detail = ""
            if isinstance(document, dict) and isinstance(document.get("error"), str):
                detail = f" ({document['error'][:100]}"
                described = document.get("error_description")
                detail += f": {described[:200]})" if isinstance(described, str) else ")"
            raise UpstreamError(f"the OpenID Provider refused the {what} request with {status}{detail}", status_code=status)
        if not isinstance(document, dict):
            raise UpstreamError(f"the OpenID Provider's {what} is not a JSON object")
        return document

    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document, read at most once per ``METADATA_SECONDS``."""
        now = self._clock()
        if self._metadata is not None and self._metadata[0] > now:
            return self._metadata[1]
        async with self._lock:
            if self._metadata is not None and self._metadata[0] > now:
                return self._metadata[1]
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json("GET", url, "discovery document")
            if document.get("issuer") != self.issuer:
                raise UpstreamError(
                    f"the OpenID Provider's discovery document names issuer {str(document.get('issuer'))[:200]!r}, "
                    f"not {self.issuer!r} ([oidc] issuer must be the same, exactly)"
                )
            methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            found = ProviderMetadata(
                issuer=self.issuer,
                authorization_endpoint=_endpoint(document, "authorization_endpoint"),  # type: ignore[arg-type]
                token_endpoint=_endpoint(document, "token_endpoint"),  # type: ignore[arg-type]
                jwks_uri=_endpoint(document, "jwks_uri"),  # type: ignore[arg-type]
                userinfo_endpoint=_endpoint(document, "userinfo_endpoint", required=False),
                end_session_endpoint=_endpoint(document, "end_session_endpoint", required=False),
                auth_methods=tuple(m for m in methods if isinstance(m, str)) if isinstance(methods, list) else (),
            )
            self._metadata = (now + METADATA_SECONDS, found)
            return found

    async def _key_set(self, kid: str | None) -> KeySet:
        """The provider's keys; fetched again for a ``kid`` they lack (at most once a minute)."""
        now = self._clock()
        cached = self._keys
        if cached is not None and now < cached[0] + METADATA_SECONDS:
            if kid is None or _has_kid(cached[1], kid) or now < cached[0] + KEYS_REFRESH_SECONDS:
                return cached[1]
        metadata = await self.metadata()
        document = await self._get_json("GET", metadata.jwks_uri, "signing keys")
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise UpstreamError("the OpenID Provider's signing keys are not a JWK set")
        usable = [key for key in keys if isinstance(key, dict) and key.get("use", "sig") == "sig" and key.get("kty") in ("RSA", "EC", "OKP")]
        try:
            key_set = KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError) as exc:
            raise UpstreamError(f"the OpenID Provider's signing keys could not be read: {exc}") from None
        self._keys = (now, key_set)
        return key_set

    # -- the flow ---------------------------------------------------------------------------------

    async def authorization_url(self, pending: Pending) -> str:
        metadata = await self.metadata()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self._scopes,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": pending.challenge,
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if urlsplit(metadata.authorization_endpoint).query else "?"
        return f"{metadata.authorization_endpoint}{separator}{query}"

    async def sign_in(self, code: str, pending: Pending) -> Identity:
        """The person the code is for, checked as the module's docstring says."""
        metadata = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri, "code_verifier": pending.verifier}
        headers = {"Accept": "application/json"}
        if self._secret is None:
            form["client_id"] = self.client_id
        elif "client_secret_basic" in metadata.auth_methods or "client_secret_post" not in metadata.auth_methods:
            pair = f"{_form_encode(self.client_id)}:{_form_encode(self._secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            form |= {"client_id": self.client_id, "client_secret": self._secret}
        answer = await self._get_json("POST", metadata.token_endpoint, "token", data=form, headers=headers)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or len(id_token) > MAX_RESPONSE_BYTES:
            raise UpstreamError("the OpenID Provider's token answer holds no ID token (is the openid scope allowed?)")
        claims = await self._check_id_token(id_token, pending.nonce)
        if self._groups_claim.split(".")[0] not in claims and metadata.userinfo_endpoint:
            access = answer.get("access_token")
            if isinstance(access, str) and access:
                claims = await self._with_userinfo(metadata.userinfo_endpoint, access, claims)
        return Identity(
            issuer=self.issuer,
            subject=claims["sub"],
            person=person_of(claims),
            name=name_of(claims),
            grants=grants_for(claims, self._rules),
            claims=claims,
        )

    async def _with_userinfo(self, endpoint: str, access: str, claims: dict[str, Any]) -> dict[str, Any]:
        """The ID token's claims with the userinfo endpoint's added (the ID token's win); only
        when that endpoint answers for the same ``sub``. A failure there leaves the ID token's
        claims as they are (the person may then have fewer grants), and is logged."""
        try:
            info = await self._get_json(
                "GET", endpoint, "userinfo", headers={"Authorization": f"Bearer {access}", "Accept": "application/json"}
            )
        except (UpstreamError, UpstreamUnavailable) as exc:
            log.warning("oidc_userinfo_failed", error=exc.message)
            return claims
        return {**info, **claims} if info.get("sub") == claims["sub"] else claims

    async def _check_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
        except (ValueError, IndexError):
            raise UpstreamError("the OpenID Provider's ID token is not a JWT") from None
        kid = header.get("kid") if isinstance(header, dict) and isinstance(header.get("kid"), str) else None
        keys = await self._key_set(kid)
        try:
            token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
        except JoseError as exc:
            raise UpstreamError(f"the OpenID Provider's ID token failed its signature check: {exc.error}") from None
        claims = dict(token.claims)
        now = int(self._clock())
        sub = claims.get("sub")
        if claims.get("iss") != self.issuer:
            raise UpstreamError("the ID token was issued by another issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.client_id not in audiences:
            raise UpstreamError("the ID token is not for this client (aud)")
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise UpstreamError("the ID token names several audiences but another authorized party (azp)")
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, (int, float)) or expires + LEEWAY_SECONDS <= now:
            raise UpstreamError("the ID token has expired")
        if not isinstance(issued, (int, float)) or issued - LEEWAY_SECONDS > now:
            raise UpstreamError("the ID token was issued in the future (is a clock wrong?)")
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], nonce):
            raise UpstreamError("the ID token's nonce is not this sign-in's")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise UpstreamError("the ID token has no usable subject (sub)")
        return claims

    def grants(self, claims: Mapping[str, Any]) -> tuple[Grant, ...]:
        return grants_for(claims, self._rules)

    def groups(self, claims: Mapping[str, Any]) -> frozenset[str]:
        return claim_values(claims, self._groups_claim)


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _form_encode(text: str) -> str:
    """RFC 6749 section 2.3.1: the client id and secret are form-encoded before Basic."""
    return quote_plus(text)
