"""The web UI's namespace page, ``/namespaces/{namespace}`` (the public Terraform Registry's
address for it): the namespace's modules, a page at a time, and its providers.

It reads what the lists read (``find_modules``, ``find_providers``) and checks read access on the
namespace as the API does; a namespace with neither a module nor a provider is a 404 page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

from mirror.domain.errors import BadRequest, NotFound
from mirror.domain.addresses import valid_namespace
from mirror.http.keys import AUTH, CONFIG
from mirror.http.models.base import parse_query
from mirror.http.models.ui import NamespaceQuery
from mirror.http.module_views import find_modules
from mirror.http.provider_browse import find_providers
from mirror.http.ui import session
from mirror.http.ui.provider_pages import provider_url
from mirror.services.browse import is_verified

PAGE_SIZE = 20
#: providers shown on the page; more are a link to the provider list of the namespace
PROVIDERS_SHOWN = 50

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[..., web.Response]


def namespace_url(namespace: str, offset: int | None = 0) -> str | None:
    """The namespace's page at ``offset`` (None for None: no such page)."""
    if offset is None:
        return None
    url = URL.build(path="/namespaces/" + namespace, encoded=False)
    return str(url.with_query(offset=str(offset)) if offset else url)


class NamespacePages:
    def __init__(self, render: Render) -> None:
        self._render = render

    def routes(self, page: Callable[[PageHandler], PageHandler]) -> list[web.RouteDef]:
        return [web.get("/namespaces/{namespace}", page(self.namespace))]

    async def namespace(self, request: web.Request) -> web.Response:
        """``GET /namespaces/{namespace}``: its modules and providers."""
        namespace = request.match_info["namespace"]
        if not valid_namespace(namespace):
            raise BadRequest(f"invalid namespace {namespace[:100]!r}")
        query = parse_query(NamespaceQuery, request)
        await request.app[AUTH].authorize(session.credential(request).authorization, namespace, "read")
        modules = await find_modules(request.app, namespace=namespace, offset=query.offset, limit=PAGE_SIZE)
        providers = await find_providers(request.app, namespace=namespace, limit=PROVIDERS_SHOWN)
        if not modules.items and not providers.items and query.offset == 0:
            raise NotFound(f"namespace {namespace} has no modules or providers here")
        return self._render(
            request,
            "namespace.html",
            namespace=namespace,
            verified=is_verified(request.app[CONFIG].browse.verified_namespaces, namespace),
            modules=modules.items,
            providers=providers.items,
            more_providers=providers.next_offset is not None,
            provider_url=provider_url,
            prev_url=namespace_url(namespace, modules.prev_offset),
            next_url=namespace_url(namespace, modules.next_offset),
        )
