"""Terraform's provider network mirror protocol at ``/v1/mirror/``.

``provider_installation { network_mirror { url = "https://HOST/v1/mirror/" } }`` makes Terraform
ask ``HOSTNAME/ns/type/index.json`` and ``HOSTNAME/ns/type/VERSION.json`` here for every provider,
whatever registry its address names. The hostname that names this registry
(``[server] registry_host``, by default ``public_url``'s host or the request's ``Host``) serves
this registry's own providers. Both answers take the caller's token (read scope on the
namespace); archive URLs authenticate themselves, as the download answers of ``providers.v1`` do.
Terraform accepts a network mirror over https only.
"""

from __future__ import annotations

from aiohttp import web

from mirror.domain.errors import NotFound
from mirror.domain.provider_protocol import mirror_index_answer, mirror_version_answer
from mirror.domain.provider_records import LOCAL_HOST, ProviderVersion
from mirror.domain.providers import ProviderAddress
from mirror.domain.urls import registry_host
from mirror.domain.versions import normalize
from mirror.http.common import authorize
from mirror.http.keys import CONFIG, LOCATOR, PROVIDERS

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
    raise NotFound(f"this mirror serves no providers of {info['hostname'][:255]!r}; it serves {own}")


async def index(request: web.Request) -> web.Response:
    """``GET /v1/mirror/:hostname/:ns/:type/index.json``: ``{"versions": {"1.0.0": {}}}``."""
    hostname, address = _where(request)
    await authorize(request, address.namespace, "read")
    found = await request.app[PROVIDERS].versions(address, hostname)
    return web.json_response(mirror_index_answer(v.version for v in found))


async def version(request: web.Request) -> web.Response:
    """``GET /v1/mirror/:hostname/:ns/:type/:version.json``: each platform's zip and its hashes."""
    hostname, address = _where(request)
    await authorize(request, address.namespace, "read")
    found = await request.app[PROVIDERS].version(address, normalize(request.match_info["version"]), hostname)
    return web.json_response(await version_body(request, found))


async def version_body(request: web.Request, found: ProviderVersion) -> dict:
    locator = request.app[LOCATOR]
    archives = {file.platform: (await locator.provider_archive_url(file), file.hashes) for file in found.platforms}
    return mirror_version_answer(archives)


def routes() -> list[web.RouteDef]:
    return [
        web.get(_PROVIDER + "/index.json", index),
        web.get(_PROVIDER + "/{version}.json", version),
    ]
