"""The browse API for this registry's own providers, in the public Terraform Registry's
``/v1/providers`` shape: lists of providers with their latest version, and a version in detail.
The web UI's provider pages read the same data (``find_providers``, ``provider_versions``).

Providers copied from an upstream registry are not listed: only those recorded under
``LOCAL_HOST``. The latest version is the highest release, else the highest prerelease.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from mirror.domain.addresses import valid_namespace
from mirror.domain.errors import BadRequest, NotFound
from mirror.domain.provider_records import LOCAL_HOST, ProviderRecord, ProviderVersion
from mirror.domain.providers import ProviderAddress
from mirror.domain.versions import Version, normalize
from mirror.http.common import authorize
from mirror.http.keys import AUTH, STORE
from mirror.http.models.base import parse_query
from mirror.http.models.browse import DEFAULT_LIMIT, PageQuery
from mirror.http.models.provider_browse import ProviderListQuery
from mirror.http.module_views import visible_namespaces
from mirror.services.auth import authorization_header
from mirror.services.browse import source_of

#: how many providers' versions are read at once while a list is built
_BATCH = 16


def newest_first(found: list[ProviderVersion]) -> list[ProviderVersion]:
    return sorted(found, key=lambda v: Version.parse(v.version), reverse=True)


def latest_of(found: list[ProviderVersion]) -> ProviderVersion:
    """The highest release, else the highest prerelease (``found`` is not empty)."""
    ordered = newest_first(found)
    return next((v for v in ordered if not Version.parse(v.version).is_prerelease), ordered[0])


def list_entry(version: ProviderVersion, source_url: str | None) -> dict[str, object]:
    address = version.address
    return {
        "id": f"{address.namespace}/{address.type}/{version.version}",
        "owner": "",
        "namespace": address.namespace,
        "name": address.type,
        "alias": address.type,
        "version": version.version,
        "tag": "v" + version.version,
        "description": "",
        "source": source_of(version.source, source_url),
        "published_at": version.published_at,
        "downloads": 0,
        "tier": "community",
        "logo_url": "",
    }


def detail_entry(version: ProviderVersion, found: list[ProviderVersion], source_url: str | None) -> dict[str, object]:
    """A version as a list entry, plus every live version, its platforms and protocols."""
    return {
        **list_entry(version, source_url),
        "versions": [v.version for v in newest_first(found)],
        "platforms": [
            {"os": p.platform.os, "arch": p.platform.arch, "filename": p.filename, "shasum": p.sha256}
            for p in version.platforms
        ],
        "protocols": list(version.protocols),
    }


@dataclass(frozen=True, slots=True)
class ProviderPage:
    """One page of providers, each as a list entry (``list_entry``)."""

    items: list[dict[str, object]]
    offset: int
    limit: int
    next_offset: int | None
    prev_offset: int | None


async def find_providers(
    app: web.Application,
    *,
    namespace: str | None = None,
    namespaces: frozenset[str] | None = None,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> ProviderPage:
    """This registry's providers with a live version, sorted by address: all of ``namespace``
    (any case; None: every one), only of ``namespaces`` (lower case) when given. The caller has
    checked that the namespaces may be seen."""
    store = app[STORE]
    records = await store.list_providers(LOCAL_HOST)
    if namespace is not None:
        records = [r for r in records if r.address.namespace.lower() == namespace.lower()]
    if namespaces is not None:
        records = [r for r in records if r.address.namespace.lower() in namespaces]
    items: list[dict[str, object]] = []
    live = 0  # providers with a live version seen so far
    for start in range(0, len(records), _BATCH):
        batch = records[start : start + _BATCH]
        found = await asyncio.gather(*(store.provider_versions(LOCAL_HOST, r.address) for r in batch))
        for record, versions in zip(batch, found):
            if not versions:
                continue
            if live >= offset:
                items.append(list_entry(latest_of(versions), record.source_url))
            live += 1
        if len(items) > limit:  # one more than the page: there is a next page
            break
    return ProviderPage(
        items=items[:limit],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if len(items) > limit else None,
        prev_offset=max(0, offset - limit) if offset > 0 else None,
    )


async def provider_versions(
    app: web.Application, address: ProviderAddress
) -> tuple[ProviderRecord | None, list[ProviderVersion]]:
    """A provider's record and live versions, newest first; NotFound when it has none."""
    store = app[STORE]
    record, found = await asyncio.gather(
        store.get_provider(LOCAL_HOST, address), store.provider_versions(LOCAL_HOST, address)
    )
    if not found:
        raise NotFound(f"provider {address} not found")
    return record, newest_first(found)


def _address(request: web.Request) -> ProviderAddress:
    return ProviderAddress.parse_parts(request.match_info["namespace"], request.match_info["type"])


def _page(request: web.Request, page: ProviderPage) -> web.Response:
    meta: dict[str, object] = {"limit": page.limit, "current_offset": page.offset}
    if page.next_offset is not None:
        meta["next_offset"] = page.next_offset
        meta["next_url"] = str(request.rel_url.update_query(offset=page.next_offset))
    if page.prev_offset is not None:
        meta["prev_offset"] = page.prev_offset
    return web.json_response({"meta": meta, "providers": page.items})


# -- handlers -------------------------------------------------------------------------------------


async def list_providers(request: web.Request) -> web.Response:
    """``GET /v1/providers[?namespace=]``: a namespace token lists only its own namespace."""
    query = parse_query(ProviderListQuery, request)
    namespaces = await visible_namespaces(request.app[AUTH], authorization_header(request.headers), query.namespace)
    return _page(request, await find_providers(request.app, namespaces=namespaces, offset=query.offset, limit=query.limit))


async def namespace_providers(request: web.Request) -> web.Response:
    """``GET /v1/providers/{namespace}``."""
    namespace = request.match_info["namespace"]
    if not valid_namespace(namespace):
        raise BadRequest(f"invalid namespace {namespace!r}")
    query = parse_query(PageQuery, request)
    await authorize(request, namespace, "read")
    return _page(request, await find_providers(request.app, namespace=namespace, offset=query.offset, limit=query.limit))


async def latest_provider(request: web.Request) -> web.Response:
    """``GET /v1/providers/{namespace}/{type}``: the latest version in detail."""
    address = _address(request)
    await authorize(request, address.namespace, "read")
    record, found = await provider_versions(request.app, address)
    return web.json_response(detail_entry(latest_of(found), found, record.source_url if record else None))


async def provider_version(request: web.Request) -> web.Response:
    """``GET /v1/providers/{namespace}/{type}/{version}``: that version in detail."""
    address = _address(request)
    version = normalize(request.match_info["version"])
    await authorize(request, address.namespace, "read")
    record, found = await provider_versions(request.app, address)
    wanted = next((v for v in found if v.version == version), None)
    if wanted is None:
        raise NotFound(f"version {version} of provider {address} not found")
    return web.json_response(detail_entry(wanted, found, record.source_url if record else None))


def routes() -> list[web.RouteDef]:
    """Registered after ``providers_v1``: ``/v1/providers/{namespace}/{type}/versions`` and the
    download route (six segments) reach the protocol's handlers first, as aiohttp tries routes
    in the order they were added."""
    return [
        web.get("/v1/providers", list_providers),
        web.get("/v1/providers/{namespace}", namespace_providers),
        web.get("/v1/providers/{namespace}/{type}", latest_provider),
        web.get("/v1/providers/{namespace}/{type}/{version}", provider_version),
    ]
