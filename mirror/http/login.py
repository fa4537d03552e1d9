"""``terraform login``'s two endpoints (``login.v1`` in discovery): ``/oauth/authorize``, the page
a person signs in on, and ``/oauth/token``, where Terraform exchanges the code for a token.

The authorize page answers a browser: every refusal is an HTML page, and nothing redirects to a
``redirect_uri`` before it was checked (``mirror.services.login``). The person signs in with a
registry token (or confirms the one the browser's UI session holds) and chooses a grant within
it; the form is protected as the login form is (a post from another site is refused), its
answer is a 303 to Terraform's loopback listener with the code and the state. The token
endpoint answers in OAuth's error shape and the API's: ``error``, ``error_description`` and
``errors``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from multidict import MultiMapping

from mirror.domain.errors import BadRequest, Forbidden, MirrorError, Unauthorized
from mirror.domain.models import SCOPES, TokenRecord
from mirror.domain.tokens import grants_of
from mirror.http.forms import read_form
from mirror.http.keys import AUTH, CONFIG, STORE
from mirror.http.ui import session
from mirror.http.ui.oidc_pages import login_url as oidc_login_url
from mirror.http.ui.pages import CSP, SECURITY_HEADERS, Templates
from mirror.services.login import (
    AuthorizeRequest,
    Codes,
    InvalidGrant,
    check_authorize,
    check_choice,
    code_key,
    exchange,
)

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
OAUTH_FIELDS = ("client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method", "state")
#: the largest form read: the OAuth fields, a token, a namespace and a scope
MAX_FORM_BYTES = 16 * 1024


class Login:
    """The handlers, sharing one template environment and the code key (read once)."""

    def __init__(self) -> None:
        self._templates = Templates()
        self._codes: Codes | None = None

    async def _codes_of(self, app: web.Application) -> Codes:
        if self._codes is None:
            self._codes = Codes(await code_key(app[STORE]))
        return self._codes

    # -- the authorize page ---------------------------------------------------------------------

    async def authorize_form(self, request: web.Request) -> web.Response:
        """``GET /oauth/authorize``: the sign-in page for a valid request, else an error page."""
        try:
            oauth = check_authorize(_single(request.query))
        except BadRequest as exc:
            return self._error(request, 400, exc.message)
        return self._form(request, oauth, await self._session(request), "", "")

    async def authorize(self, request: web.Request) -> web.Response:
        """``POST /oauth/authorize``: sign in, check the grant, 303 to Terraform with a code."""
        if not session.same_origin(request, request.app[CONFIG].server.public_url):
            return self._error(request, 403, "the sign-in form was sent from another site")
        form = await _read_form(request)
        if isinstance(form, MirrorError):
            return self._error(request, form.status, form.message)
        try:
            oauth = check_authorize(form)
        except BadRequest as exc:
            return self._error(request, 400, exc.message)
        if form.get("decision") == "deny":
            return _to_terraform(oauth, error="access_denied")
        namespace, scope = form.get("namespace", ""), form.get("scope", "")
        token = form.get("token", "").strip()
        current = await self._session(request)
        try:
            creator = await request.app[AUTH].identify(f"Bearer {token}") if token else current
        except Unauthorized:
            creator = None
        if creator is None:
            message = "That token is not valid (unknown, revoked or expired)." if token else "Enter a token."
            return self._form(request, oauth, current, namespace, scope, error=message, status=401)
        try:
            chosen_namespace, chosen_scope = check_choice(creator, namespace, scope)
        except (BadRequest, Forbidden) as exc:
            status = 403 if isinstance(exc, Forbidden) else 400
            return self._form(request, oauth, current, namespace, scope, error=exc.message, status=status)
        codes = await self._codes_of(request.app)
        code = codes.issue(oauth, creator, chosen_namespace, chosen_scope, now=time.time())
        return _to_terraform(oauth, code=code)

    async def _session(self, request: web.Request) -> TokenRecord | None:
        """The token the browser already holds (the UI's cookie, or a bearer header), if valid."""
        credential = session.credential(request)
        if credential.authorization is None:
            return None
        try:
            return await request.app[AUTH].identify(credential.authorization)
        except Unauthorized:
            return None

    def _form(
        self,
        request: web.Request,
        oauth: AuthorizeRequest,
        current: TokenRecord | None,
        namespace: str,
        scope: str,
        *,
        error: str = "",
        status: int = 200,
    ) -> web.Response:
        fields = {
            "client_id": "terraform-cli",
            "redirect_uri": oauth.redirect_uri,
            "response_type": "code",
            "code_challenge": oauth.code_challenge,
            "code_challenge_method": "S256",
            "state": oauth.state,
        }
        days = request.app[CONFIG].auth.token_default_expiry_seconds // 86400
        oidc = request.app[CONFIG].oidc
        response = self._templates.render(
            request,
            "oauth_authorize.html",
            status=status,
            oauth_fields=list(fields.items()),
            signed_in_as=current,
            namespace=namespace,
            scope=scope if scope in SCOPES else "",
            scopes=SCOPES,
            redirect_uri=oauth.redirect_uri,
            expiry_text=f"in {days} days or when the signing token does" if days else "",
            error=error,
            grants=grants_of(current) if current is not None else (),
            oidc_name=oidc.display_name if oidc.enabled and (current is None or current.grants is None) else "",
            oidc_link=oidc_login_url(_authorize_url(fields)),
        )
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(oauth.redirect_uri))
        # the form's answer redirects to Terraform's listener: browsers check form-action on it
        _secure_headers(response, CSP.replace("form-action 'self'", f"form-action 'self' {origin}"))
        return response

    def _error(self, request: web.Request, status: int, message: str) -> web.Response:
        response = self._templates.render(
            request, "error.html", status=status, status_code=status, reason=_REASONS[status], message=message
        )
        _secure_headers(response, CSP)
        return response

    # -- the token endpoint ---------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        """``POST /oauth/token``: the code, its verifier and redirect URI for a registry token."""
        form = await _read_form(request)
        if isinstance(form, MirrorError):
            return _oauth_error("invalid_request", form.message, form.status)
        auth = request.app[CONFIG].auth
        try:
            issued = await exchange(
                request.app[STORE],
                await self._codes_of(request.app),
                form,
                default_seconds=auth.token_default_expiry_seconds,
                max_seconds=auth.token_max_expiry_seconds,
                sessions=request.app[STORE],
            )
        except InvalidGrant as exc:
            if exc.revoked:
                request.app[AUTH].forget(exc.revoked)
            return _oauth_error(exc.error, exc.description)
        body: dict[str, Any] = {"access_token": issued.secret, "token_type": "bearer"}
        if issued.expires_in is not None:
            body["expires_in"] = issued.expires_in
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(AUTHORIZE_PATH, self.authorize_form),
            web.post(AUTHORIZE_PATH, self.authorize),
            web.post(TOKEN_PATH, self.token),
        ]


_REASONS = {400: "Bad Request", 403: "Forbidden", 413: "Payload Too Large"}


def _secure_headers(response: web.Response, csp: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers["Content-Security-Policy"] = csp


def _single(params: MultiMapping[str]) -> dict[str, str]:
    """The parameters, each given at most once (RFC 6749 section 3.1); a repeated one is dropped,
    so the check reports it missing."""
    return {name: values[0] for name in set(params) if len(values := params.getall(name)) == 1}


async def _read_form(request: web.Request) -> dict[str, str] | MirrorError:
    """The urlencoded form, each field once; the error when it cannot be read."""
    try:
        return await read_form(request, max_bytes=MAX_FORM_BYTES)
    except MirrorError as exc:
        return exc


def _authorize_url(fields: dict[str, str]) -> str:
    """The authorize page of these OAuth fields (where an OpenID Connect sign-in comes back to)."""
    return f"{AUTHORIZE_PATH}?{urlencode(fields)}"


def _to_terraform(oauth: AuthorizeRequest, **params: str) -> web.Response:
    """The 303 to Terraform's (checked) loopback listener with ``params`` and the state."""
    location = f"{oauth.redirect_uri}?{urlencode({**params, 'state': oauth.state})}"
    response = web.Response(status=303, headers={"Location": location})
    _secure_headers(response, CSP)
    return response


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    body = {"error": error, "error_description": description, "errors": [description]}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def routes() -> list[web.RouteDef]:
    """The routes, for ``RequestWrapper.register``."""
    return Login().routes()
