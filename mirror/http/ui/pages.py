"""The web UI's pages: the module list and search, a module's page, log in and log out, and the
UI's two static files.

Pages read the same data as the API (``module_views.find_modules`` and ``detail_body``) and
check access the same way, with the credential ``session.credential`` finds. Every error a page
handler raises becomes an HTML page with its status, never the API's JSON shape: a missing or
rejected credential is a 303 to ``/login?next=<page>``, a token without read scope on the
namespace a 403 page, an unknown module a 404 page, an invalid name a 400 page, anything
unexpected a 500 page naming the request id (the traceback goes to the log). The header names the
signed-in token (its description, else its id).

Templates are autoescaped, hold no inline script or style, and every answer carries a strict
Content-Security-Policy; README HTML comes from ``readme.render_readme`` only.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import structlog
from aiohttp import web
from markdown_it import MarkdownIt
from yarl import URL

from mirror.domain.addresses import ModuleAddress
from mirror.domain.urls import registry_host
from mirror.domain.versions import normalize
from mirror.domain.errors import BadRequest, Forbidden, MirrorError, NotFound, Unauthorized
from mirror.http.access_log import REQUEST_ID
from mirror.http.keys import AUTH, CATALOG, CONFIG, STORE
from mirror.http.models.base import parse_query
from mirror.http.models.ui import IndexQuery, ModuleQuery
from mirror.http.module_views import detail_body, find_modules, visible_namespaces
from mirror.http.ui import module_page, session
from mirror.http.ui.lifecycle_pages import LifecyclePages
from mirror.http.ui.namespace_pages import NamespacePages, namespace_url
from mirror.http.ui.session_pages import SessionPages
from mirror.http.ui.oidc_pages import OidcPages, login_url as oidc_login_url, sign_out
from mirror.http.ui.provider_lifecycle_pages import ProviderLifecyclePages
from mirror.http.ui.provider_pages import ProviderPages
from mirror.http.ui.readme import markdown_renderer, render_readme
from mirror.http.ui.token_pages import TokenPages
from mirror.http.ui.usage import source_address, usage_snippet

log = structlog.get_logger("mirror.web")

REGISTRY_NAME = "mirror"
PAGE_SIZE = 20
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: on every answer of the UI; a handler's own value (a static file's Cache-Control) wins
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_DIR = Path(__file__).with_name("static")
#: the only files ``/static/`` serves, with their types
STATIC_FILES = {"mirror.css": "text/css", "mirror.js": "text/javascript"}
STATIC_CACHE = "public, max-age=86400"

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Templates:
    """The Jinja2 environment (autoescaping every template) and the static files' URLs, which
    carry a digest of their content so a new release is fetched at once."""

    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("mirror.http.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._digests = {name: _digest(STATIC_DIR / name) for name in STATIC_FILES}
        self._env.globals.update(
            static=self.static_url, module_url=module_url, namespace_url=namespace_url, registry_name=REGISTRY_NAME
        )
        self._env.filters["hcl_value"] = hcl_value

    def static_url(self, name: str) -> str:
        return f"/static/{name}?v={self._digests[name]}"

    def render(self, request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
        """The template as an HTML answer; the header's search box shows the request's query."""
        context.setdefault("q", request.query.get("q", ""))
        context.setdefault("provider", request.query.get("provider", ""))
        text = self._env.get_template(name).render(
            signed_in=session.credential(request).from_cookie,
            person=request.get(session.PERSON, ""),
            no_access=getattr(request.get(session.PRINCIPAL), "grants", None) == (),
            is_person=getattr(request.get(session.PRINCIPAL), "grants", None) is not None,
            login_link=session.LOGIN_PATH if request.path == session.LOGIN_PATH else session.login_url(request),
            **context,
        )
        return web.Response(text=text, status=status, content_type="text/html")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def module_url(namespace: str, name: str, provider: str, version: str | None = None) -> str:
    parts = [namespace, name, provider] + ([version] if version else [])
    return "/modules/" + "/".join(quote(str(part), safe="") for part in parts)


def hcl_value(value: Any) -> str:
    """A default value as Terraform users read it: strings quoted, lists and maps as JSON."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


_PART_LISTS = ("inputs", "outputs", "dependencies", "provider_dependencies", "resources")


def module_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """The root or a submodule of a version's analysis, every list present (a version published
    before analysis existed has none)."""
    return {"path": part.get("path", ""), **{key: part.get(key) or [] for key in _PART_LISTS}}


def list_url(query: IndexQuery, offset: int | None) -> str | None:
    """The module list of ``query`` at another offset (None for None: no such page)."""
    if offset is None:
        return None
    params = {key: value for key, value in (("q", query.q), ("provider", query.provider or "")) if value}
    if offset:
        params["offset"] = str(offset)
    return str(URL("/").with_query(params))


class Pages:
    """The UI's handlers, sharing one template environment and one markdown renderer."""

    def __init__(self) -> None:
        self._templates = Templates()
        self._markdown: MarkdownIt = markdown_renderer()

    def routes(self) -> list[web.RouteDef]:
        page = self._page
        return [
            web.get("/", page(self.index)),
            web.get("/modules/{namespace}/{name}/{provider}", page(self.module)),
            web.get("/modules/{namespace}/{name}/{provider}/{version}", page(self.module)),
            *ProviderPages(self._templates.render).routes(page),
            *ProviderLifecyclePages().routes(page),
            *NamespacePages(self._templates.render).routes(page),
            *LifecyclePages(self._templates.render).routes(page),
            *TokenPages(self._templates.render).routes(page),
            web.get(session.LOGIN_PATH, page(self.login_form)),
            web.post(session.LOGIN_PATH, page(self.login)),
            *OidcPages().routes(page),
            *SessionPages(self._templates.render).routes(page),
            web.post("/logout", page(self.logout)),
            web.get("/static/{name}", self._page(self.static, person=False)),
        ]

    # -- the wrapper: errors as pages, security headers on everything ----------------------------

    def _page(self, handler: PageHandler, *, person: bool = True) -> PageHandler:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                if person:
                    request[session.PERSON], request[session.PRINCIPAL] = await session.who(request.app[AUTH], request)
                response = await handler(request)
            except Unauthorized:
                response = self._to_login(request)
            except MirrorError as exc:
                response = self.error_page(request, exc.status, exc.message)
            except web.HTTPException as exc:  # aiohttp's own, such as a form body over the size limit
                if exc.status < 400:
                    raise
                response = self.error_page(request, exc.status, exc.reason)
            except (ConnectionResetError, TimeoutError):
                raise
            except Exception:
                log.exception("page failed")
                response = self.error_page(
                    request, 500, f"Something went wrong on the server (request id {REQUEST_ID.get('')})."
                )
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return wrapped

    def _to_login(self, request: web.Request) -> web.Response:
        """No usable credential: to the login form, which comes back here. A cookie that no
        longer works (a revoked token) is dropped on the way."""
        response = web.Response(status=303, headers={"Location": session.login_url(request)})
        if session.credential(request).from_cookie:
            session.clear_token_cookie(response, secure=self._secure(request))
        return response

    def error_page(self, request: web.Request, status: int, message: str) -> web.Response:
        if status >= 500:
            log.error("page failed", error=message, status=status)
        return self._templates.render(
            request, "error.html", status=status, status_code=status, reason=_reason(status), message=message
        )

    def _secure(self, request: web.Request) -> bool:
        return session.is_secure(request, request.app[CONFIG].server.public_url)

    # -- pages ----------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        """``GET /``: modules the caller may see, filtered by ``q`` and ``provider``, a page at a time."""
        query = parse_query(IndexQuery, request)
        namespaces = await visible_namespaces(request.app[AUTH], session.credential(request).authorization, None)
        page = await find_modules(
            request.app, namespaces=namespaces, provider=query.provider, q=query.q, offset=query.offset, limit=PAGE_SIZE
        )
        return self._templates.render(
            request,
            "index.html",
            modules=page.items,
            query=query,
            prev_url=list_url(query, page.prev_offset),
            next_url=list_url(query, page.next_offset),
        )

    async def module(self, request: web.Request) -> web.Response:
        """``GET /modules/{namespace}/{name}/{provider}[/{version}][?tab=]``: the latest or a given
        version, with one tab shown."""
        info = request.match_info
        address = ModuleAddress.parse_parts(info["namespace"], info["name"], info["provider"])
        version = normalize(info["version"]) if "version" in info else None
        query = parse_query(ModuleQuery, request)
        authorization = session.credential(request).authorization
        await request.app[AUTH].authorize(authorization, address.namespace, "read")
        version = version or await self._latest(request.app, address)
        detail = await detail_body(request.app, address, version)
        store = request.app[STORE]
        found = await store.get_version(address, version)  # with its README
        record = await store.get_module(address)
        entry = await request.app[CATALOG].module(address)
        # with their deprecations, which the catalog's lean read leaves out
        live = {v.version: v for v in await store.list_versions(address)}
        server = request.app[CONFIG].server
        host = registry_host(server.registry_host, server.public_url, request.host)
        root = module_part(detail["root"])
        submodules = [module_part(sub) for sub in detail["submodules"]]
        base = module_url(address.namespace, address.name, address.provider, info.get("version") and version)
        url = functools.partial(module_url, address.namespace, address.name, address.provider)
        deprecation = found.deprecation if found else None
        return self._templates.render(
            request,
            "module.html",
            module=detail,
            root=root,
            submodules=submodules,
            address=address,
            tab=query.tab,
            tabs=module_page.tabs(base, query.tab, root, submodules, len(entry.newest_first)),
            versions=module_page.version_rows(live, entry.newest_first, entry.latest, version, url),
            latest=entry.latest,
            newer=module_page.newer_than_shown(version, entry.latest),
            deprecation=deprecation,
            replacement_url=await module_page.module_replacement_url(
                request, authorization, address, deprecation,
                lambda target, v: module_url(target.namespace, target.name, target.provider, v),
            ),  # fmt: skip
            owner=record.owner.describe(record.source_url) if record else "",
            **await module_page.extras(request, authorization, address, query.tab, record),
            readme=render_readme(self._markdown, found.readme if found else None) if query.tab == "readme" else "",
            usage=usage_snippet(host, address, version),
            source_of_submodule=functools.partial(source_address, host, address),
            source_link=detail["source"] if str(detail["source"]).startswith(("https://", "http://")) else "",
        )

    @staticmethod
    async def _latest(app: web.Application, address: ModuleAddress) -> str:
        newest = (await app[CATALOG].module(address)).latest
        if newest is None:
            raise NotFound(f"module {address} not found")
        return newest

    async def login_form(self, request: web.Request) -> web.Response:
        """``GET /login``: the token form."""
        return self._login_page(request, session.safe_next(request.query.get("next")))

    async def login(self, request: web.Request) -> web.Response:
        """``POST /login``: verify the token, keep it in the cookie, go to ``next`` (a local path)."""
        if not session.same_origin(request, request.app[CONFIG].server.public_url):
            raise Forbidden("the login form was sent from another site")
        if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise BadRequest("send the login form as application/x-www-form-urlencoded")
        try:
            form = await request.post()
        except ValueError as exc:  # a malformed body (a multipart one without its boundary...)
            raise BadRequest(f"the login form could not be read: {exc}") from None
        next_path = session.safe_next(_field(form, "next"))
        token = _field(form, "token").strip()
        if not token:
            return self._login_page(request, next_path, error="Enter a token.", status=400)
        try:
            await request.app[AUTH].identify(f"Bearer {token}")
        except Unauthorized:
            response = self._login_page(
                request, next_path, error="That token is not valid (unknown or revoked).", status=401
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="mirror"'
            return response
        response = web.Response(status=303, headers={"Location": next_path})
        session.set_token_cookie(response, token, secure=self._secure(request))
        return response

    def _login_page(self, request: web.Request, next_path: str, *, error: str = "", status: int = 200) -> web.Response:
        oidc = request.app[CONFIG].oidc
        return self._templates.render(
            request, "login.html", status=status, next_path=next_path, error=error,
            oidc_name=oidc.display_name if oidc.enabled else "", oidc_link=oidc_login_url(next_path),
        )  # fmt: skip

    async def logout(self, request: web.Request) -> web.Response:
        """``POST /logout``: end the session (revoked in the store) or drop the token's cookie,
        back to the list."""
        if not session.same_origin(request, request.app[CONFIG].server.public_url):
            raise Forbidden("the logout form was sent from another site")
        await sign_out(request)
        response = web.Response(status=303, headers={"Location": "/"})
        session.clear_token_cookie(response, secure=self._secure(request))
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        """``GET /static/{name}``: one of ``STATIC_FILES``, never any other path."""
        name = request.match_info["name"]
        content_type = STATIC_FILES.get(name)
        if content_type is None:
            raise NotFound(f"no static file {name!r}")
        return web.FileResponse(
            STATIC_DIR / name, headers={"Content-Type": content_type, "Cache-Control": STATIC_CACHE}
        )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def routes() -> list[web.RouteDef]:
    """The UI's routes, for ``RequestWrapper.register`` (none overlaps the API's paths)."""
    return Pages().routes()
