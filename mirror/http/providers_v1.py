"""Terraform's provider registry protocol (``providers.v1``) for this registry's own providers,
and the self-authenticating locations it hands out.

``versions`` and ``download`` take the caller's bearer token (read scope on the namespace).
Terraform sends no token to the three URLs of a download answer, so each carries an expiring
signature (``DownloadLocator.signed_url``): the zip (``/v1/archives/SHA256.zip``, or a presigned
S3 URL in the ``s3`` and ``presigned`` modes), SHA256SUMS and its signature
(``/v1/provider-files/NS/TYPE/VERSION/NAME``), served byte for byte as they were signed.
"""

from __future__ import annotations

import functools

from aiohttp import web

from mirror.domain.blobs import is_sha256, provider_archive_key
from mirror.domain.errors import NotFound, Unauthorized
from mirror.domain.provider_protocol import ProviderVersionInfo, download_answer, versions_answer
from mirror.domain.provider_records import ProviderVersion, deprecation_warnings
from mirror.domain.providers import Platform, ProviderAddress, shasums_name, signature_name
from mirror.domain.versions import normalize
from mirror.formats.openpgp import SigningKey
from mirror.http.common import authorize, serve_blob
from mirror.http.keys import LOCATOR, PROVIDERS
from mirror.services.downloads import ARCHIVE_ROUTE_PREFIX

PROVIDERS_BASE = "/v1/providers/"
PROVIDER_FILES_PREFIX = "/v1/provider-files/"
_PROVIDER = PROVIDERS_BASE + "{namespace}/{type}"

#: remembered per (namespace, type) pair (invalid ones raise, and are not remembered)
_parse_address = functools.lru_cache(maxsize=4096)(ProviderAddress.parse_parts)


def provider_address(request: web.Request) -> ProviderAddress:
    return _parse_address(request.match_info["namespace"], request.match_info["type"])


def version_infos(found: list[ProviderVersion]) -> list[ProviderVersionInfo]:
    return [ProviderVersionInfo(v.version, v.protocols, tuple(p.platform for p in v.platforms)) for v in found]


async def versions(request: web.Request) -> web.Response:
    """``GET /v1/providers/:ns/:type/versions``."""
    address = provider_address(request)
    await authorize(request, address.namespace, "read")
    found = await request.app[PROVIDERS].versions(address)
    return web.json_response(versions_answer(address, version_infos(found), deprecation_warnings(found)))


def files_path(address: ProviderAddress, version: str, name: str) -> str:
    return f"{PROVIDER_FILES_PREFIX}{address.namespace}/{address.type}/{version}/{name}"


async def download(request: web.Request) -> web.Response:
    """``GET /v1/providers/:ns/:type/:version/download/:os/:arch``."""
    address = provider_address(request)
    await authorize(request, address.namespace, "read")
    info = request.match_info
    version_text = normalize(info["version"])
    platform = Platform.parse_parts(info["os"], info["arch"])
    version = await request.app[PROVIDERS].version(address, version_text)
    file = version.platform(platform)
    if file is None:
        raise NotFound(
            f"provider {address} {version_text} has no package for {platform}; it has "
            f"{', '.join(version.platform_names) or 'none'}"
        )
    locator = request.app[LOCATOR]
    body = download_answer(
        platform,
        protocols=version.protocols,
        filename=file.filename,
        download_url=await locator.provider_archive_url(file),
        shasums_url=locator.signed_url(files_path(address, version.version, shasums_name(address.type, version.version))),
        shasums_signature_url=locator.signed_url(
            files_path(address, version.version, signature_name(address.type, version.version))
        ),
        shasum=file.sha256,
        signing_keys=[SigningKey(version.key_id, "", "", version.key_armor)],
    )
    return web.json_response(body)


def _check_signature(request: web.Request) -> None:
    if not request.app[LOCATOR].verify(request.path, request.query.get("expires"), request.query.get("signature")):
        raise Unauthorized("the download link is invalid or has expired; ask the registry for a new one")


async def release_file(request: web.Request) -> web.Response:
    """SHA256SUMS or its signature, byte for byte, to whoever holds a valid signed URL."""
    _check_signature(request)
    info = request.match_info
    address = ProviderAddress.parse_parts(info["namespace"], info["type"])
    version = await request.app[PROVIDERS].version(address, normalize(info["version"]))
    name = info["name"]
    if name == shasums_name(address.type, version.version):
        return web.Response(body=version.shasums, content_type="text/plain", charset="utf-8")
    if name == signature_name(address.type, version.version):
        return web.Response(body=version.signature, content_type="application/octet-stream")
    raise NotFound(f"provider {address} {version.version} has no file {name[:200]!r}")


async def archive(request: web.Request) -> web.StreamResponse:
    """A provider zip to whoever holds a valid signed URL (no bearer token: Terraform sends none)."""
    sha256 = request.match_info["sha256"]
    if not is_sha256(sha256):
        raise Unauthorized("the download link is invalid or has expired; ask the registry for a new one")
    _check_signature(request)
    return await serve_blob(request, provider_archive_key(sha256), "application/zip", sha256)


def routes() -> list[web.RouteDef]:
    return [
        web.get(_PROVIDER + "/versions", versions),
        web.get(_PROVIDER + "/{version}/download/{os}/{arch}", download),
        web.get(PROVIDER_FILES_PREFIX + "{namespace}/{type}/{version}/{name}", release_file),
        web.get(ARCHIVE_ROUTE_PREFIX + "{sha256}.zip", archive),
    ]
