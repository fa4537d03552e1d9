"""The registry's browse and search API (PROTOCOL section 4): module lists, search, and the
latest version of every provider of a module (what they show: ``mirror.http.module_views``;
the download counts: ``mirror.services.browse``)."""

from __future__ import annotations

from aiohttp import web

from mirror.domain.addresses import ModuleAddress, valid_namespace
from mirror.domain.errors import BadRequest, NotFound
from mirror.http.keys import AUTH, STORE
from mirror.http.common import authorize
from mirror.http.models.base import parse_query
from mirror.http.models.browse import ListQuery, PageQuery, SearchQuery
from mirror.http.module_views import ModulePage, find_modules, list_item, visible_namespaces
from mirror.services.auth import authorization_header

def _page(request: web.Request, page: ModulePage) -> web.Response:
    meta: dict[str, object] = {"limit": page.limit, "current_offset": page.offset}
    if page.next_offset is not None:
        meta["next_offset"] = page.next_offset
        meta["next_url"] = str(request.rel_url.update_query(offset=page.next_offset))
    if page.prev_offset is not None:
        meta["prev_offset"] = page.prev_offset
    return web.json_response({"meta": meta, "modules": page.items})


# -- handlers -------------------------------------------------------------------------------------


async def list_modules(request: web.Request) -> web.Response:
    """``GET /v1/modules`` and ``GET /v1/modules/{namespace}``."""
    namespace = request.match_info.get("namespace")
    if namespace is not None and not valid_namespace(namespace):
        raise BadRequest(f"invalid namespace {namespace!r}")
    query = parse_query(ListQuery, request)
    namespaces = await visible_namespaces(request.app[AUTH], authorization_header(request.headers), namespace)
    page = await find_modules(
        request.app,
        namespaces=namespaces,
        provider=query.provider,
        verified=query.verified,
        offset=query.offset,
        limit=query.limit,
    )
    return _page(request, page)


async def search_modules(request: web.Request) -> web.Response:
    """``GET /v1/modules/search?q=``: case-insensitive substring of namespace, name, provider or
    description."""
    query = parse_query(SearchQuery, request)
    namespaces = await visible_namespaces(request.app[AUTH], authorization_header(request.headers), query.namespace)
    page = await find_modules(
        request.app,
        namespaces=namespaces,
        provider=query.provider,
        q=query.q,
        verified=query.verified,
        offset=query.offset,
        limit=query.limit,
    )
    return _page(request, page)


async def module_providers(request: web.Request) -> web.Response:
    """``GET /v1/modules/{namespace}/{name}``: the latest version of every provider."""
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    ModuleAddress.parse_parts(namespace, name, "x")  # validates both names as module_address does
    await authorize(request, namespace, "read")
    query = parse_query(PageQuery, request)
    summaries = await request.app[STORE].latest_versions(namespace=namespace, name=name)
    if not summaries:
        raise NotFound(f"module {namespace}/{name} not found")
    end = query.offset + query.limit
    page = ModulePage(
        items=[list_item(request.app, s) for s in summaries[query.offset : end]],
        offset=query.offset,
        limit=query.limit,
        next_offset=end if end < len(summaries) else None,
        prev_offset=max(0, query.offset - query.limit) if query.offset > 0 else None,
    )
    return _page(request, page)


def routes() -> list[web.RouteDef]:
    """Registered after ``modules_v1``: the hot Terraform routes stay first in their bucket, and
    no pattern here matches theirs (a ``{var}`` is one path segment; theirs have four or more).
    ``/search`` precedes ``/{namespace}`` so it is never read as a namespace."""
    return [
        web.get("/v1/modules", list_modules),
        web.get("/v1/modules/", list_modules),
        web.get("/v1/modules/search", search_modules),
        web.get("/v1/modules/{namespace}", list_modules),
        web.get("/v1/modules/{namespace}/{name}", module_providers),
    ]
