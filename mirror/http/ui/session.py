"""How a browser is authenticated: a signed-in person's session, or a token in an HttpOnly cookie.

A page takes the same credential as the API: the ``Authorization`` header when there is one,
else the ``mirror_session`` cookie (a session's secret, from OpenID Connect sign-in:
``mirror.http.oidc``), else the ``mirror_token`` cookie (the token form), each as
``Bearer <secret>``, else none (anonymous, allowed only with ``[auth] anonymous_read``).

The token cookie is set only after the token was verified, is ``HttpOnly`` and
``SameSite=Strict`` (so no other site can make the browser send it). The session cookie is
``HttpOnly`` and ``SameSite=Lax``: the provider's redirect back to ``/oidc/callback`` is a
navigation from another site, and the page it leads to must see the new session; every form that
changes something also checks the ``Origin`` (``same_origin``). Both are ``Secure`` when the
registry is reached over https, and never logged: request lines carry the path only.

A cookie is checked as the header is (``mirror.services.auth``): one holding bytes that were not
UTF-8, controls or an over-long value is a cookie that does not work, so the page goes to the
login form and the cookie is dropped, as for a revoked token.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from yarl import URL

from mirror.domain.errors import Unauthorized
from mirror.domain.models import TokenRecord
from mirror.services.auth import Authenticator, authorization_header

COOKIE = "mirror_token"
COOKIE_MAX_AGE = 12 * 3600
SESSION_COOKIE = "mirror_session"
LOGIN_PATH = "/login"
#: who the page's header names as signed in ("" for nobody)
PERSON = web.RequestKey("mirror_ui_person", str)
#: the request's principal (a token's or a session's record), None when anonymous or not working
PRINCIPAL = web.RequestKey("mirror_ui_principal", TokenRecord | None)


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request authenticates with, as an ``Authorization`` header value."""

    authorization: str | None
    from_cookie: bool


def credential(request: web.Request) -> Credential:
    """The ``Authorization`` header, else the cookie's token, else anonymous."""
    header = authorization_header(request.headers)
    if header:
        return Credential(header, from_cookie=False)
    token = request.cookies.get(SESSION_COOKIE, "").strip() or request.cookies.get(COOKIE, "").strip()
    if token:
        return Credential(f"Bearer {token}", from_cookie=True)
    return Credential(None, from_cookie=False)


async def who(auth: Authenticator, request: web.Request) -> tuple[str, TokenRecord | None]:
    """Who the request's credential is, for the page's header: a person's name (else e-mail), a
    token's description (else its id); "" when anonymous or when the credential does not work
    (the page itself then decides). And its record."""
    try:
        record = await auth.identify(credential(request).authorization)
    except Unauthorized:
        return "", None
    if record is None:
        return "", None
    return record.description or record.person or f"token {record.id}", record


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else ``/``: it must start with a single ``/``,
    and hold only printable ASCII without backslashes (browsers read ``/\\host`` and
    ``/<tab>/host`` as ``//host``, another site)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if any(not "\x21" <= char <= "\x7e" or char == "\\" for char in target):
        return "/"
    return target


def login_url(request: web.Request) -> str:
    """``/login?next=<this page>``."""
    return str(URL(LOGIN_PATH).with_query(next=str(request.rel_url)))


def is_secure(request: web.Request, public_url: str | None) -> bool:
    """Reached over https: directly, or behind a proxy that terminates TLS for ``public_url``."""
    return request.secure or (public_url is not None and urlsplit(public_url).scheme == "https")


def set_token_cookie(response: web.StreamResponse, token: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True, samesite="Strict", secure=secure
    )


def clear_token_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    """Drop both cookies: the token form's and a session's."""
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=secure)
    response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=secure)


def set_session_cookie(response: web.StreamResponse, secret: str, *, max_age: int, secure: bool) -> None:
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=secure)
    response.set_cookie(
        SESSION_COOKIE, secret, max_age=max_age, path="/", httponly=True, samesite="Lax", secure=secure
    )


def session_secret(request: web.Request) -> str | None:
    """The session secret the browser holds, if any."""
    return request.cookies.get(SESSION_COOKIE, "").strip() or None


def same_origin(request: web.Request, public_url: str | None) -> bool:
    """A form post from this site: no ``Origin`` header (older clients), or one naming this host
    (as the request reached it, or as ``public_url`` names it). Refusing other origins keeps
    other sites from logging a browser in with their own token, or out."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = urlsplit(origin).netloc
    return bool(host) and host in {request.host, urlsplit(public_url or "").netloc}
