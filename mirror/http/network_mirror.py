"""Terraform's provider network mirror protocol at ``/v1/mirror/``.

``provider_installation { network_mirror { url = "https://HOST/v1/mirror/" } }`` makes Terraform
ask ``HOSTNAME/ns/type/index.json`` and ``HOSTNAME/ns/type/VERSION.json`` here for every provider,
whatever registry its address names. The hostname that names this registry
(``[server] registry_host``, by default ``public_url``'s host or the request's ``Host``) serves
this registry's own providers; the hostname of an upstream configured for providers
(``[[upstreams]] providers`` or ``proxy_providers``) serves that upstream's, pulled through on
demand (``mirror.services.provider_mirror``); any other hostname serves what is stored under it
(copied by ``mirror sync`` or imported from a bundle), so an air-gapped registry with no upstream
serves the providers its bundles brought. Both answers take the caller's token (read scope on
the namespace); archive URLs authenticate themselves, as the download answers of ``providers.v1``
do. A zip not fetched from its upstream yet is served at a signed
``HOSTNAME/ns/type/VERSION/OS_ARCH.zip`` here, which fetches it on that first request. Terraform
accepts a network mirror over https only.
"""

from __future__ import annotations

from aiohttp import web

from mirror.domain.errors import NotFound, Unauthorized
from mirror.domain.provider_protocol import mirror_index_answer, mirror_version_answer
from mirror.domain.provider_records import LOCAL_HOST, ProviderVersion
from mirror.domain.providers import Platform, ProviderAddress
from mirror.domain.urls import registry_host, valid_registry_host
from mirror.domain.versions import normalize
from mirror.http.common import authorize, serve_blob
from mirror.http.keys import CONFIG, LOCATOR, PROVIDER_MIRROR, PROVIDERS
from mirror.services.provider_mirror import ProviderMirror

MIRROR_BASE = "/v1/mirror/"
_PROVIDER = MIRROR_BASE + "{hostname}/{namespace}/{type}"


def _where(request: web.Request) -> tuple[str, ProviderAddress]:
    """(the hostname providers are recorded under, the address) the request asks for."""
    info = request.match_info
    address = ProviderAddress.parse_parts(info["namespace"], info["type"])
    server = request.app[CONFIG].server
    own = registry_host(server.registry_host, server.public_url, request.host)
    hostname = info["hostname"].lower()
    if hostname == own:
        return LOCAL_HOST, address
    if not valid_registry_host(hostname):
        raise NotFound(f"this mirror serves no providers of {info['hostname'][:255]!r}; it serves {own}")
    return hostname, address


def _mirror(request: web.Request, hostname: str) -> ProviderMirror | None:
    """The pull-through mirror when an upstream serves ``hostname``; None for providers served
    only as stored here (this registry's own, or another registry's copied by sync or a bundle)."""
    mirror = request.app.get(PROVIDER_MIRROR)
    return mirror if mirror is not None and hostname != LOCAL_HOST and mirror.serves(hostname) else None


async def index(request: web.Request) -> web.Response:
    """``GET /v1/mirror/:hostname/:ns/:type/index.json``: ``{"versions": {"1.0.0": {}}}``."""
    hostname, address = _where(request)
    await authorize(request, address.namespace, "read")
    mirror = _mirror(request, hostname)
    if mirror is None:
        versions = [v.version for v in await request.app[PROVIDERS].versions(address, hostname)]
    else:
        versions = await mirror.versions(hostname, address)
    return web.json_response(mirror_index_answer(versions))


async def version(request: web.Request) -> web.Response:
    """``GET /v1/mirror/:hostname/:ns/:type/:version.json``: each platform's zip and its hashes."""
    hostname, address = _where(request)
    await authorize(request, address.namespace, "read")
    text = normalize(request.match_info["version"])
    mirror = _mirror(request, hostname)
    if mirror is None:
        found = await request.app[PROVIDERS].version(address, text, hostname)
    else:
        found = await mirror.version(hostname, address, text)
    return web.json_response(await version_body(request, found))


def archive_path(found: ProviderVersion, platform: Platform) -> str:
    address = found.address
    return f"{MIRROR_BASE}{found.hostname}/{address.namespace}/{address.type}/{found.version}/{platform}.zip"


async def version_body(request: web.Request, found: ProviderVersion) -> dict:
    locator = request.app[LOCATOR]
    archives = {}
    for file in found.platforms:
        if file.complete:
            url = await locator.provider_archive_url(file)
        else:  # not fetched from the upstream yet: this registry fetches it on the first download
            url = locator.signed_url(archive_path(found, file.platform))
        archives[file.platform] = (url, file.hashes)
    return mirror_version_answer(archives)


async def pulled_archive(request: web.Request) -> web.StreamResponse:
    """A pulled-through zip by signed URL: fetched from the upstream once, then from the blob store."""
    if not request.app[LOCATOR].verify(request.path, request.query.get("expires"), request.query.get("signature")):
        raise Unauthorized("the download link is invalid or has expired; ask the registry for a new one")
    hostname, address = _where(request)
    mirror = _mirror(request, hostname)
    if mirror is None:
        raise NotFound("no upstream serves these providers; their stored zips are served at /v1/archives/")
    platform = Platform.parse(request.match_info["platform"])
    file = await mirror.archive(hostname, address, normalize(request.match_info["version"]), platform)
    return await serve_blob(request, file.blob_key, "application/zip", file.sha256)


def routes() -> list[web.RouteDef]:
    return [
        web.get(_PROVIDER + "/index.json", index),
        web.get(_PROVIDER + "/{version}.json", version),
        web.get(_PROVIDER + "/{version}/{platform}.zip", pulled_archive),
    ]
