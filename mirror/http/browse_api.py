"""The registry's browse and search API (PROTOCOL section 4): module lists, search, and the
latest version of every provider of a module (what they show: ``mirror.http.module_views``;
the download counts: ``mirror.services.browse``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from mirror.domain.addresses import ModuleAddress, valid_namespace, valid_provider
from mirror.domain.errors import BadRequest, NotFound
from mirror.http.keys import AUTH, STORE
from mirror.http.common import authorize
from mirror.http.module_views import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    ModulePage,
    find_modules,
    list_item,
    visible_namespace,
)
from mirror.services.auth import authorization_header

# -- query parameters ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Query:
    offset: int
    limit: int
    provider: str | None
    verified: bool | None
    namespace: str | None
    q: str


def _query(request: web.Request, allowed: Sequence[str]) -> _Query:
    params = request.query
    problems: list[str] = []

    def number(name: str, default: int, low: int, high: int) -> int:
        text = params.get(name, "")
        if name not in allowed or text == "":
            return default
        if not (text.isascii() and text.isdigit() and len(text) <= 10) or not low <= int(text) <= high:
            problems.append(f"{name} must be an integer from {low} to {high}")
            return default
        return int(text)

    offset = number("offset", 0, 0, MAX_OFFSET)
    limit = number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    provider = params.get("provider") if "provider" in allowed else None
    if provider is not None and not valid_provider(provider):
        problems.append(f"invalid provider {provider!r} (lowercase letters and digits only)")
    namespace = params.get("namespace") if "namespace" in allowed else None
    if namespace is not None and not valid_namespace(namespace):
        problems.append(f"invalid namespace {namespace!r}")
    verified = None
    if "verified" in allowed and "verified" in params:
        text = params["verified"].lower()
        if text not in ("true", "false"):
            problems.append("verified must be true or false")
        verified = text == "true"
    q = params.get("q", "").strip() if "q" in allowed else ""
    if "q" in allowed and not q:
        problems.append("q (the search text) is required")
    if problems:
        raise BadRequest("; ".join(problems))
    return _Query(offset, limit, provider, verified, namespace, q)


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
    query = _query(request, ("offset", "limit", "provider", "verified"))
    namespace = await visible_namespace(request.app[AUTH], authorization_header(request.headers), namespace)
    page = await find_modules(
        request.app,
        namespace=namespace,
        provider=query.provider,
        verified=query.verified,
        offset=query.offset,
        limit=query.limit,
    )
    return _page(request, page)


async def search_modules(request: web.Request) -> web.Response:
    """``GET /v1/modules/search?q=``: case-insensitive substring of namespace, name, provider or
    description."""
    query = _query(request, ("q", "offset", "limit", "provider", "verified", "namespace"))
    namespace = await visible_namespace(request.app[AUTH], authorization_header(request.headers), query.namespace)
    page = await find_modules(
        request.app,
        namespace=namespace,
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
    query = _query(request, ("offset", "limit"))
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
