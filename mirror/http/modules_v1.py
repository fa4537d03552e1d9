"""Terraform's module registry protocol: what ``terraform init`` calls.

Discovery, the versions list (from the metadata store, never a bucket listing), the download
answer (200 with a JSON ``location`` for OpenTofu AND ``X-Terraform-Get`` for Terraform), the
latest-version redirect, and the signed archive route of ``proxy`` mode.

Namespaces that proxy an upstream (``[[upstreams]] proxy_namespaces``) answer ``versions`` and
``download`` through the pull-through cache (``mirror.services.pullthrough``): ``versions`` lists
the upstream's versions too, and ``download`` of a version that is not here yet fetches it first.
Other namespaces pay nothing for it: without proxied namespaces the handlers are the plain ones,
and ``download`` only looks for a proxy after the catalog has missed. The latest-version redirect
and the detail routes show what is here (versions already pulled through) only.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from mirror.domain.addresses import ModuleAddress
from mirror.domain.blobs import archive_key, is_sha256
from mirror.domain.models import ModuleVersion
from mirror.domain.versions import normalize
from mirror.domain.errors import NotFound, Unauthorized
from mirror.http.keys import CATALOG, CONFIG, DOWNLOADS, LOCATOR, METRICS, PULLTHROUGH
from mirror.http.common import authorize, module_address, serve_blob
from mirror.http.module_views import detail_body
from mirror.services.downloads import ARCHIVE_ROUTE_PREFIX, archive_path

MODULES_BASE = "/v1/modules/"
PROVIDERS_BASE = "/v1/providers/"
_MODULE = MODULES_BASE + "{namespace}/{name}/{provider}"


async def discovery(request: web.Request) -> web.Response:
    await authorize(request, None, "read")
    base = (request.app[CONFIG].server.public_url or "").rstrip("/")
    login_v1 = {
        "client": "terraform-cli",
        "grant_types": ["authz_code"],
        "authz": base + "/oauth/authorize",
        "token": base + "/oauth/token",
        "ports": [10000, 10010],
    }
    return web.json_response(
        {"modules.v1": base + MODULES_BASE, "providers.v1": base + PROVIDERS_BASE, "login.v1": login_v1}
    )


async def versions(request: web.Request) -> web.Response:
    address = module_address(request)
    await authorize(request, address.namespace, "read")
    body = (await request.app[CATALOG].module(address)).versions_body
    if body is None:
        raise NotFound(f"module {address} not found")
    return web.Response(body=body, content_type="application/json")


def proxied_versions(proxied: frozenset[str]) -> Handler:
    """``versions`` for an app where the (lowercase) namespaces ``proxied`` pull through from an
    upstream: theirs come from the pull-through cache, the rest as in ``versions``."""

    async def versions_or_pull_through(request: web.Request) -> web.Response:
        address = module_address(request)
        await authorize(request, address.namespace, "read")
        if address.namespace.lower() in proxied:
            body = await request.app[PULLTHROUGH].versions_body(address)
        else:
            body = (await request.app[CATALOG].module(address)).versions_body
            if body is None:
                raise NotFound(f"module {address} not found")
        return web.Response(body=body, content_type="application/json")

    return versions_or_pull_through


async def download(request: web.Request) -> web.Response:
    address = module_address(request)
    await authorize(request, address.namespace, "read")
    version = normalize(request.match_info["version"])
    found = await request.app[CATALOG].version(address, version)
    if found is None:
        found = await _pull_through(request, address, version)
    answer = await request.app[LOCATOR].answer(found)
    request.app[DOWNLOADS].hit(address, version)  # counted in memory, flushed in the background
    request.app[METRICS].downloads += 1
    return web.Response(body=answer.body, content_type="application/json", headers={"X-Terraform-Get": answer.location})


async def _pull_through(request: web.Request, address: ModuleAddress, version: str) -> ModuleVersion:
    """A version the catalog does not have: fetched from the upstream when the namespace proxies
    one and the upstream lists it (the first download of it), else NotFound."""
    pull_through = request.app.get(PULLTHROUGH)
    if pull_through is not None and pull_through.proxies(address.namespace):
        await pull_through.ensure_version(address, version)
        found = await request.app[CATALOG].version(address, version)
        if found is not None:
            return found
    raise NotFound(f"version {version} of module {address} not found")


async def download_latest(request: web.Request) -> web.Response:
    address = module_address(request)
    await authorize(request, address.namespace, "read")
    newest = (await request.app[CATALOG].module(address)).latest
    if newest is None:
        raise NotFound(f"module {address} not found")
    target = "/".join(quote(part, safe="") for part in (address.namespace, address.name, address.provider, newest))
    return web.Response(status=302, headers={"Location": f"{MODULES_BASE}{target}/download"})


async def version_detail(request: web.Request) -> web.Response:
    """``GET .../:provider/:version``: the version in the public registry's detail shape."""
    address = module_address(request)
    await authorize(request, address.namespace, "read")
    return web.json_response(await detail_body(request.app, address, normalize(request.match_info["version"])))


async def latest_detail(request: web.Request) -> web.Response:
    """``GET .../:provider``: the latest version (highest release, else prerelease) in detail."""
    address = module_address(request)
    await authorize(request, address.namespace, "read")
    newest = (await request.app[CATALOG].module(address)).latest
    if newest is None:
        raise NotFound(f"module {address} not found")
    return web.json_response(await detail_body(request.app, address, newest))


async def archive(request: web.Request) -> web.StreamResponse:
    """Serve an archive to whoever holds a valid signed URL (no bearer token: Terraform sends none)."""
    sha256 = request.match_info["sha256"]
    path = archive_path(sha256)
    if not is_sha256(sha256) or not request.app[LOCATOR].verify(
        path, request.query.get("expires"), request.query.get("signature")
    ):
        raise Unauthorized("the download link is invalid or has expired; ask the registry for a new one")
    return await serve_blob(request, archive_key(sha256), "application/gzip", sha256)


def routes(proxied: frozenset[str] = frozenset()) -> list[web.RouteDef]:
    """In the order the router tries them (all share the ``/v1/modules`` bucket, tried in order,
    each try a regex match): the two calls ``terraform init`` makes first. Only ``{version}``
    overlaps others (``versions``, ``download``), so it comes after them. ``proxied``: the
    namespaces (lowercase) that pull through from an upstream."""
    return [
        web.get(_MODULE + "/versions", proxied_versions(proxied) if proxied else versions),
        web.get(_MODULE + "/{version}/download", download),
        web.get(_MODULE + "/download", download_latest),
        web.get(_MODULE, latest_detail),
        web.get(_MODULE + "/{version}", version_detail),
        web.get("/.well-known/terraform.json", discovery),
        web.get(ARCHIVE_ROUTE_PREFIX + "{sha256}.tar.gz", archive),
    ]
