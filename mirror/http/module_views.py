"""Modules as the browse API and the web UI both show them: pages of list items and a version
in detail, read with the same checks by the API's handlers and the UI's pages.

Lists and search read one page of modules from the store's per-module summary (latest live
version, description, download total), in address order. A module is ``verified`` when its
namespace is in ``[browse] verified_namespaces``; ``owner`` is its repository's account when the
source is known, else its namespace.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import NotFound
from mirror.domain.readme import first_paragraph
from mirror.domain.tokens import readable_namespaces
from mirror.http.keys import CATALOG, CONFIG, DOWNLOADS, STORE
from mirror.http.models.browse import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from mirror.services.auth import Authenticator
from mirror.services.browse import is_verified, owner_of, source_of
from mirror.storage.protocols import ModuleSummary

__all__ = [
    "DEFAULT_LIMIT", "MAX_LIMIT", "MAX_OFFSET", "ModulePage", "detail_body", "find_modules", "list_item", "visible_namespaces",
]


def list_item(app: web.Application, summary: ModuleSummary) -> dict[str, object]:
    version = summary.version
    address = version.address
    source = source_of(version.source, summary.source_url)
    return {
        "id": f"{address}/{version.version}",
        "owner": owner_of(address.namespace, source),
        "namespace": address.namespace,
        "name": address.name,
        "version": version.version,
        "provider": address.provider,
        "description": summary.description,
        "source": source,
        "published_at": version.published_at,
        "downloads": summary.downloads + app[DOWNLOADS].unflushed(address),
        "verified": is_verified(app[CONFIG].browse.verified_namespaces, address.namespace),
    }


async def visible_namespaces(auth: Authenticator, authorization: str | None, wanted: str | None) -> frozenset[str] | None:
    """The namespaces (lower case) a cross-namespace list is limited to: the one asked for (the
    caller must may read it), else the caller's own (a token's one, a signed-in person's every
    granted one); None for every namespace (a ``*`` grant, or an anonymous call)."""
    if wanted is not None:
        await auth.authorize(authorization, wanted, "read")
        return frozenset({wanted.lower()})
    record = await auth.authorize(authorization, None, "read")
    return None if record is None else readable_namespaces(record)


def _one_of(namespaces: frozenset[str] | None) -> str | None:
    return next(iter(namespaces)) if namespaces is not None and len(namespaces) == 1 else None


@dataclass(frozen=True, slots=True)
class ModulePage:
    """One page of modules, each as a list item (``list_item``)."""

    items: list[dict[str, object]]
    offset: int
    limit: int
    next_offset: int | None
    prev_offset: int | None


async def find_modules(
    app: web.Application,
    *,
    namespace: str | None = None,
    namespaces: frozenset[str] | None = None,
    provider: str | None = None,
    q: str = "",
    verified: bool | None = None,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> ModulePage:
    """Modules with a live version, sorted by address: all of ``namespace`` (None: every one),
    of ``provider``, whose namespace, name, provider or description contains ``q`` (any case),
    and verified or not; only of ``namespaces`` (lower case) when given. The caller has checked
    that the namespaces may be seen."""
    verified_namespaces = app[CONFIG].browse.verified_namespaces
    only: frozenset[str] | None = frozenset(n.lower() for n in verified_namespaces) if verified else None
    namespace = namespace or _one_of(namespaces)
    if namespaces is not None and namespace is None:
        only = namespaces if only is None else only & namespaces
    summaries, more = await app[STORE].browse_modules(
        namespace=namespace,
        provider=provider,
        query=q,
        only_namespaces=only,
        exclude_namespaces=verified_namespaces if verified is False else (),
        offset=offset,
        limit=limit,
    )
    return ModulePage(
        items=[list_item(app, s) for s in summaries],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if more else None,
        prev_offset=max(0, offset - limit) if offset > 0 else None,
    )


async def detail_body(app: web.Application, address: ModuleAddress, version: str) -> dict[str, Any]:
    """A live version as a list item plus what its HCL declares (inputs, outputs, dependencies,
    resources) for the root and submodules, its providers and the module's versions."""
    catalog = app[CATALOG]
    found = await catalog.version(address, version)
    if found is None:
        raise NotFound(f"version {version} of module {address} not found")
    store = app[STORE]
    stored, analysis, module = await asyncio.gather(  # the catalog keeps no READMEs
        store.get_version(address, version), store.version_analysis(address, version), store.get_module(address)
    )
    analysis = analysis or {}
    summaries = await store.latest_versions(namespace=address.namespace, name=address.name, provider=address.provider)
    source = source_of(found.source, summaries[0].source_url if summaries else None)
    return {
        "id": f"{address}/{version}",
        "owner": owner_of(address.namespace, source),
        "namespace": address.namespace,
        "name": address.name,
        "provider": address.provider,
        "version": version,
        "description": first_paragraph(stored.readme if stored else None),
        "source": source,
        "published_at": found.published_at,
        "downloads": (summaries[0].downloads if summaries else 0) + app[DOWNLOADS].unflushed(address),
        "verified": is_verified(app[CONFIG].browse.verified_namespaces, address.namespace),
        "owner_source": str(module.owner) if module else None,
        "allow_uploads": module.allow_uploads if module else False,
        "deprecation": stored.deprecation.to_json() if stored is not None and stored.deprecation else None,
        "root": analysis.get("root", {}),
        "submodules": analysis.get("submodules", []),
        "analysis_errors": analysis.get("errors", []),
        "providers": [address.provider],
        "versions": list((await catalog.module(address)).newest_first),
    }
