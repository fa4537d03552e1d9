"""The web UI's provider pages: the list of this registry's own providers, and a provider's
page with its versions (dates and platforms), the shown version's packages, and the two blocks
a user copies: ``required_providers`` naming the provider under this registry's host, and the
CLI configuration's ``network_mirror`` pointing at this registry.

They read what the browse API reads (``mirror.http.provider_browse``) and check access the same
way, with the credential ``session.credential`` finds; ``pages.Pages`` wraps them, so errors are
pages as for the module pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from aiohttp import web
from yarl import URL

from mirror.domain.errors import MirrorError, NotFound
from mirror.domain.lifecycle import Deprecation
from mirror.domain.provider_records import ProviderRecord, ProviderVersion
from mirror.domain.models import TokenRecord
from mirror.domain.providers import ProviderAddress
from mirror.domain.urls import registry_host
from mirror.domain.versions import Version, normalize
from mirror.http.keys import AUTH, CONFIG
from mirror.http.models.base import parse_query
from mirror.http.models.ui import ProviderIndexQuery
from mirror.http.module_views import visible_namespaces
from mirror.http.provider_browse import detail_entry, find_providers, latest_of, provider_versions
from mirror.http.ui import session
from mirror.http.ui.lifecycle_pages import Allowed, allowed_on
from mirror.http.ui.module_page import newer_than_shown
from mirror.http.ui.usage import version_constraint

PAGE_SIZE = 20
MIRROR_PATH = "/v1/mirror/"

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[..., web.Response]


def provider_url(namespace: str, type_: str, version: str | None = None) -> str:
    parts = [namespace, type_] + ([version] if version else [])
    return "/providers/" + "/".join(quote(str(part), safe="") for part in parts)


def provider_allowed(principal: TokenRecord | None, address: ProviderAddress, record: ProviderRecord | None) -> Allowed:
    """What the API would let ``principal`` do to the provider (as a module's ``allowed``)."""
    return allowed_on(principal, address, None if record is None else record.owner)


def list_url(query: ProviderIndexQuery, offset: int | None) -> str | None:
    """The provider list of ``query`` at another offset (None for None: no such page)."""
    if offset is None:
        return None
    params = {"namespace": query.namespace} if query.namespace else {}
    if offset:
        params["offset"] = str(offset)
    return str(URL("/providers").with_query(params))


def local_name(type_: str) -> str:
    """The provider's local name in ``required_providers``: its type, which must not start with
    a digit there."""
    return type_ if type_[:1].isalpha() else f"p_{type_}"


def required_providers_snippet(host: str, address: ProviderAddress, version: str) -> str:
    return (
        "terraform {\n"
        "  required_providers {\n"
        f"    {local_name(address.type)} = {{\n"
        f'      source  = "{host}/{address.namespace}/{address.type}"\n'
        f'      version = "{version_constraint(version)}"\n'
        "    }\n"
        "  }\n"
        "}\n"
    )


def mirror_url(public_url: str | None, host: str) -> str:
    """The network mirror's base URL: under ``public_url`` (without credentials) when it is set,
    else ``https://`` and ``host``, ``[server] registry_host`` or the request's ``Host``
    (Terraform uses a network mirror over https only)."""
    if public_url:
        parts = urlsplit(public_url)
        base = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))
        return base + MIRROR_PATH
    return f"https://{host}{MIRROR_PATH}"


def replacement_url(address: ProviderAddress, deprecation: Deprecation | None, found: list[ProviderVersion]) -> str | None:
    """The page of a deprecation's replacement when it names a live version of this provider
    (``2.0.0``, ``v2.0.0``); None otherwise (it is then shown as text)."""
    if deprecation is None or not deprecation.replacement:
        return None
    try:
        version = normalize(deprecation.replacement.strip())
    except MirrorError:
        return None
    if any(v.version == version for v in found):
        return provider_url(address.namespace, address.type, version)
    return None


def network_mirror_snippet(url: str) -> str:
    return (
        "provider_installation {\n"
        "  network_mirror {\n"
        f'    url = "{url}"\n'
        "  }\n"
        "}\n"
    )


class ProviderPages:
    """The provider pages, rendered with the UI's one template environment."""

    def __init__(self, render: Render) -> None:
        self._render = render

    def routes(self, page: Callable[[PageHandler], PageHandler]) -> list[web.RouteDef]:
        """The routes, each handler wrapped by ``page`` (errors as pages, security headers)."""
        return [
            web.get("/providers", page(self.providers)),
            web.get("/providers/{namespace}/{type}", page(self.provider)),
            web.get("/providers/{namespace}/{type}/{version}", page(self.provider)),
        ]

    async def providers(self, request: web.Request) -> web.Response:
        """``GET /providers``: the providers the caller may see, a page at a time."""
        query = parse_query(ProviderIndexQuery, request)
        authorization = session.credential(request).authorization
        namespaces = await visible_namespaces(request.app[AUTH], authorization, query.namespace)
        found = await find_providers(request.app, namespaces=namespaces, offset=query.offset, limit=PAGE_SIZE)
        return self._render(
            request,
            "provider_list.html",
            providers=found.items,
            query=query,
            provider_url=provider_url,
            prev_url=list_url(query, found.prev_offset),
            next_url=list_url(query, found.next_offset),
        )

    async def provider(self, request: web.Request) -> web.Response:
        """``GET /providers/{namespace}/{type}[/{version}]``: the latest or a given version."""
        info = request.match_info
        address = ProviderAddress.parse_parts(info["namespace"], info["type"])
        wanted = normalize(info["version"]) if "version" in info else None
        await request.app[AUTH].authorize(session.credential(request).authorization, address.namespace, "read")
        record, found = await provider_versions(request.app, address)
        shown = latest_of(found) if wanted is None else next((v for v in found if v.version == wanted), None)
        if shown is None:
            raise NotFound(f"version {wanted} of provider {address} not found")
        server = request.app[CONFIG].server
        host = registry_host(server.registry_host, server.public_url, request.host)
        detail: dict[str, Any] = detail_entry(shown, found, record.source_url if record else None)
        source = str(detail["source"])
        latest = latest_of(found).version
        return self._render(
            request,
            "provider.html",
            entry=detail,
            address=address,
            versions=found,
            provider_url=provider_url,
            usage=required_providers_snippet(host, address, shown.version),
            mirror=network_mirror_snippet(mirror_url(server.public_url, server.registry_host or request.host)),
            source_link=source if source.startswith(("https://", "http://")) else "",
            latest=latest,
            prereleases={v.version for v in found if Version.parse(v.version).is_prerelease},
            newer=newer_than_shown(shown.version, latest),
            deprecation=shown.deprecation,
            replacement_url=replacement_url(address, shown.deprecation, found),
            may=provider_allowed(request.get(session.PRINCIPAL), address, record),
        )
