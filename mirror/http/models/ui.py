"""The web UI's HTML pages in the route table, documented so that every route is (and fuzzed
like the API), and the list page's query, which the page validates as the API's handlers do theirs.
Their errors are pages, not the ``Errors`` shape."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator

from mirror.domain.addresses import valid_namespace, valid_provider
from mirror.http.models.base import Request, problem
from mirror.http.models.browse import MAX_OFFSET
from mirror.http.models.provider_routes import PROVIDER
from mirror.http.models.route import OPEN, Route
from mirror.http.models.routes import MODULE

#: the search text is cut to this many characters
MAX_QUERY_CHARS = 200


class IndexQuery(Request):
    """The module list page's parameters: search text, provider, offset. Forgiving where a person
    types (spaces around, the provider in any case, empty for "none"), strict otherwise."""

    q: Annotated[str, Field(description=f"The search text (at most {MAX_QUERY_CHARS} characters are used)")] = ""
    provider: Annotated[str | None, Field(description="Only this provider", pattern=r"^[0-9a-z]{0,64}$")] = None
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0

    @field_validator("q", mode="before")
    @classmethod
    def _q(cls, raw: Any) -> str:
        return str(raw).strip()[:MAX_QUERY_CHARS]

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, raw: Any) -> str | None:
        provider = str(raw).strip().lower() or None
        if provider is not None and not valid_provider(provider):
            raise problem(f"invalid provider {provider!r} (lowercase letters and digits only)")
        return provider

    @field_validator("offset", mode="before")
    @classmethod
    def _offset(cls, raw: Any) -> int:
        text = str(raw).strip() or "0"
        if not (text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= MAX_OFFSET):
            raise problem(f"offset must be a whole number from 0 to {MAX_OFFSET}")
        return int(text)


class ProviderIndexQuery(Request):
    """The provider list page's parameters: a namespace (empty for all) and the offset."""

    namespace: Annotated[str | None, Field(description="Only this namespace")] = None
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0

    @field_validator("namespace", mode="before")
    @classmethod
    def _namespace(cls, raw: Any) -> str | None:
        namespace = str(raw).strip() or None
        if namespace is not None and not valid_namespace(namespace):
            raise problem(f"invalid namespace {namespace[:100]!r}")
        return namespace

    @field_validator("offset", mode="before")
    @classmethod
    def _offset(cls, raw: Any) -> int:
        return IndexQuery._offset(raw)


#: a module page's tabs (``mirror.http.ui.module_page.TABS``)
ModuleTab = Literal["readme", "inputs", "outputs", "dependencies", "resources", "submodules", "versions", "history"]
MODULE_TABS: tuple[str, ...] = get_args(ModuleTab)


class ModuleQuery(Request):
    """A module page's tab (``readme`` when absent or empty)."""

    tab: Annotated[ModuleTab, Field(description="The tab shown")] = "readme"

    @field_validator("tab", mode="before")
    @classmethod
    def _tab(cls, raw: Any) -> str:
        tab = str(raw).strip().lower() or "readme"
        if tab not in MODULE_TABS:
            raise problem(f"unknown tab {tab[:40]!r}: one of {', '.join(MODULE_TABS)}")
        return tab


class NamespaceQuery(Request):
    """A namespace page's offset into its modules."""

    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0

    @field_validator("offset", mode="before")
    @classmethod
    def _offset(cls, raw: Any) -> int:
        return IndexQuery._offset(raw)


_UI_NOTE = (
    "Read scope, from the bearer header, else the `mirror_token` cookie set by `/login`, else "
    "anonymous when `auth.anonymous_read` is on."
)
PAGE_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}, {}]


def html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def html_errors(*statuses: int) -> dict[int, dict[str, Any]]:
    return {status: html(f"An error page ({status})") for status in statuses}


_TO_LOGIN = {
    303: {
        "description": "No usable credential: to the login form, with `next` set to this page",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}
_PROVIDER_PAGE = "A provider's page: versions with their dates and platforms, required_providers and network mirror snippets"
_MODULE_PAGE = (
    "A module's page: tabs with counts (Readme, Inputs, Outputs, Dependencies, Resources, Submodules, "
    "Versions with each version's downloads and the lifecycle forms the reader may use; History, the module's "
    "changes with who made them), a version picker, banners on an older or deprecated version, source, owner, "
    "downloads, usage snippet"
)

_LIFECYCLE_DONE = {
    303: {"description": "Done: to the page that shows the change", "headers": {"Location": {"schema": {"type": "string"}}}}
}


def _form(properties: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": properties}}}}  # fmt: skip


UI_ROUTES: list[Route] = [
    Route("get", "/", "uiIndex", "The module list, with search and a provider filter", "ui", _UI_NOTE,
          security=PAGE_SECURITY, query=IndexQuery,
          responses={200: html("The list"), **_TO_LOGIN, **html_errors(400, 403)}),
    Route("get", "/modules/{namespace}/{name}/{provider}", "uiModule", _MODULE_PAGE, "ui", _UI_NOTE,
          security=PAGE_SECURITY, params=MODULE, query=ModuleQuery,
          responses={200: html("The module page"), **_TO_LOGIN, **html_errors(400, 403, 404)}),
    Route("get", "/modules/{namespace}/{name}/{provider}/{version}", "uiModuleVersion", _MODULE_PAGE, "ui", _UI_NOTE,
          security=PAGE_SECURITY, params=(*MODULE, "version"), query=ModuleQuery,
          responses={200: html("The module page"), **_TO_LOGIN, **html_errors(400, 403, 404)}),
    Route("post", "/modules/{namespace}/{name}/{provider}/{version}/deprecate", "uiDeprecateModuleVersion",
          "The Versions tab's deprecate form (publish scope as uploads, else admin): to the version's page", "ui",
          _UI_NOTE, security=PAGE_SECURITY, params=(*MODULE, "version"), body=_form({"reason": {"type": "string"},
                                                                                   "replacement": {"type": "string"}}),
          responses={**_LIFECYCLE_DONE, **_TO_LOGIN, **html_errors(400, 403, 404, 409, 413)}),
    Route("post", "/modules/{namespace}/{name}/{provider}/{version}/revoke", "uiRevokeModuleVersion",
          "The Versions tab's revoke form (`confirm=yes`, a ticked box; else a 400 page asks again)", "ui",
          _UI_NOTE, security=PAGE_SECURITY, params=(*MODULE, "version"), body=_form({"confirm": {"type": "string"}}),
          responses={**_LIFECYCLE_DONE, **_TO_LOGIN, **html_errors(400, 403, 404, 409, 413)}),
    Route("post", "/modules/{namespace}/{name}/{provider}/delete", "uiDeleteModule",
          "The Versions tab's delete form (admin scope; `confirm` is the module's name typed again)", "ui",
          _UI_NOTE, security=PAGE_SECURITY, params=MODULE, body=_form({"confirm": {"type": "string"}}),
          responses={**_LIFECYCLE_DONE, **_TO_LOGIN, **html_errors(400, 403, 404, 409, 413)}),
    Route("post", "/providers/{namespace}/{type}/{version}/deprecate", "uiDeprecateProviderVersion",
          "The provider page's deprecate form (publish scope as uploads, else admin): to the version's page", "ui",
          _UI_NOTE, security=PAGE_SECURITY, params=(*PROVIDER, "version"), body=_form({"reason": {"type": "string"},
                                                                                     "replacement": {"type": "string"}}),
          responses={**_LIFECYCLE_DONE, **_TO_LOGIN, **html_errors(400, 403, 404, 409, 413)}),
    Route("post", "/providers/{namespace}/{type}/{version}/revoke", "uiRevokeProviderVersion",
          "The provider page's revoke form (`confirm=yes`, a ticked box; else a 400 page)", "ui",
          _UI_NOTE, security=PAGE_SECURITY, params=(*PROVIDER, "version"), body=_form({"confirm": {"type": "string"}}),
          responses={**_LIFECYCLE_DONE, **_TO_LOGIN, **html_errors(400, 403, 404, 409, 413)}),
    Route("post", "/providers/{namespace}/{type}/delete", "uiDeleteProvider",
          "The provider page's delete form (admin scope; `confirm` is the provider's type typed again)", "ui",
          _UI_NOTE, security=PAGE_SECURITY, params=PROVIDER, body=_form({"confirm": {"type": "string"}}),
          responses={**_LIFECYCLE_DONE, **_TO_LOGIN, **html_errors(400, 403, 404, 409, 413)}),
    Route("get", "/namespaces/{namespace}", "uiNamespace", "A namespace's modules and providers", "ui", _UI_NOTE,
          security=PAGE_SECURITY, params=("namespace",), query=NamespaceQuery,
          responses={200: html("The namespace page"), **_TO_LOGIN, **html_errors(400, 403, 404)}),
    Route("get", "/providers", "uiProviders", "This registry's providers with their latest version", "ui", _UI_NOTE,
          security=PAGE_SECURITY, query=ProviderIndexQuery,
          responses={200: html("The list"), **_TO_LOGIN, **html_errors(400, 403)}),
    Route("get", "/providers/{namespace}/{type}", "uiProvider", _PROVIDER_PAGE, "ui", _UI_NOTE,
          security=PAGE_SECURITY, params=PROVIDER,
          responses={200: html("The provider page"), **_TO_LOGIN, **html_errors(400, 403, 404)}),
    Route("get", "/providers/{namespace}/{type}/{version}", "uiProviderVersion", _PROVIDER_PAGE, "ui", _UI_NOTE,
          security=PAGE_SECURITY, params=(*PROVIDER, "version"),
          responses={200: html("The provider page"), **_TO_LOGIN, **html_errors(400, 403, 404)}),
    Route("get", "/tokens", "uiTokens", "The tokens the signed-in principal may manage, and the form to make one",
          "ui", "Any valid credential (a token or a person's session), as `GET /api/v1/tokens`.",
          security=PAGE_SECURITY, responses={200: html("The list and the form"), **_TO_LOGIN}),
    Route("post", "/tokens", "uiCreateToken", "Make a token (as `POST /api/v1/tokens`); the answer shows its secret once",
          "ui", "Any valid credential, within its own grant. A form from another site is a 403 page.",
          security=PAGE_SECURITY,
          body={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
              "type": "object", "required": ["namespace", "scope"],
              "properties": {"description": {"type": "string", "maxLength": 256}, "namespace": {"type": "string"},
                             "scope": {"type": "string", "enum": ["read", "publish", "admin"]},
                             "expiry": {"type": "string", "description": "`default`, `never` or a number of "
                                        "seconds the page offers"}}}}}},
          responses={201: html("The new token's secret, shown once, with the list and the form"), **_TO_LOGIN,
                     **html_errors(400, 403, 413)}),
    Route("post", "/tokens/{id}/revoke", "uiRevokeToken", "Revoke a token (as `DELETE /api/v1/tokens/{id}`)", "ui",
          "Any valid credential that may manage the token. A form from another site is a 403 page.",
          security=PAGE_SECURITY,
          params=({"name": "id", "in": "path", "required": True,
                   "schema": {"type": "string"}},),
          responses={303: {"description": "Revoked: to `/tokens` (no usable credential: to the login form)",
                           "headers": {"Location": {"schema": {"type": "string"}}}},
                     **html_errors(400, 403, 404, 413)}),
    Route("get", "/login", "uiLoginForm", "The login form", "ui", security=OPEN,
          params=({"name": "next", "in": "query", "schema": {"type": "string"}},),
          responses={200: html("The form")}),
    Route("post", "/login", "uiLogin", "Check a token and keep it in an HttpOnly, SameSite=Strict cookie", "ui",
          security=OPEN,
          body={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
              "type": "object", "required": ["token"],
              "properties": {"token": {"type": "string"}, "next": {"type": "string"}}}}}},
          responses={303: {"description": "Logged in: to `next` (a local path only, else `/`)",
                           "headers": {"Set-Cookie": {"schema": {"type": "string"}}}},
                     **html_errors(400, 401, 403)}),
    Route("post", "/logout", "uiLogout", "Sign out: revoke the session (OpenID Connect) or clear the login cookie",
          "ui", security=OPEN, responses={303: {"description": "Logged out: to `/`"}, **html_errors(403)}),
    Route("get", "/oidc/login", "uiOidcLogin", "Start a sign-in at the OpenID Provider of `[oidc]`", "ui",
          "A fresh state, nonce and PKCE verifier are kept in a short-lived cookie; 404 when `[oidc]` is not set.",
          security=OPEN, params=({"name": "next", "in": "query", "schema": {"type": "string"}},),
          responses={303: {"description": "To the provider's authorization endpoint",
                           "headers": {"Location": {"schema": {"type": "string"}}}},
                     **html_errors(404, 502)}),
    Route("get", "/oidc/callback", "uiOidcCallback", "The provider's answer: a server-side session, then `next`",
          "ui", "The redirect URI to register at the provider is `PUBLIC_URL/oidc/callback`. The state must be "
          "the one this browser's sign-in started with; the code is exchanged and the ID token checked.",
          security=OPEN, params=tuple({"name": name, "in": "query", "schema": {"type": "string"}}
                                      for name in ("code", "state", "error", "error_description")),
          responses={303: {"description": "Signed in: to `next` with the `mirror_session` cookie",
                           "headers": {"Set-Cookie": {"schema": {"type": "string"}}}},
                     **html_errors(400, 403, 404, 502)}),
    Route("get", "/sessions", "uiSessions", "A signed-in person's sessions (one per browser), each with a button "
          "to end it", "ui", "For people signed in through OpenID Connect; a token's is a 404 page.",
          security=PAGE_SECURITY, responses={200: html("The page"), **_TO_LOGIN, **html_errors(404)}),
    Route("post", "/sessions/{id}/revoke", "uiRevokeSession", "End one of the person's sessions (this one: sign out)",
          "ui", "A post from another site is a 403 page.", security=PAGE_SECURITY,
          params=({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},),
          responses={303: {"description": "Done: to `/sessions`, or to `/` when this session ended"},
                     **_TO_LOGIN, **html_errors(400, 403, 404)}),
    Route("post", "/sessions/revoke-all", "uiRevokeAllSessions", "Sign out everywhere: end every session of the person",
          "ui", "A post from another site is a 403 page.", security=PAGE_SECURITY,
          responses={303: {"description": "Done: to `/`"}, **_TO_LOGIN, **html_errors(400, 403, 404)}),
    Route("get", "/static/{name}", "uiStatic", "The UI's stylesheet and script (only those two files)", "ui",
          security=OPEN, params=({"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},),
          responses={200: {"description": "The file", "content": {"text/css": {"schema": {"type": "string"}},
                                                                  "text/javascript": {"schema": {"type": "string"}}}},
                     **html_errors(404)}),
]
