"""The registry's browse and search API (PROTOCOL section 4): module lists, search, the latest
version of every provider of a module, and the download counts they show.

Downloads are counted in memory by ``DownloadCounter`` (the ``/download`` hot path is one dict
increment) and flushed to the store every ``FLUSH_SECONDS`` and at shutdown, in one write per
flush. Lists add the counts not flushed yet, so a client sees its own downloads at once.

Lists and search read one page of modules from the store's per-module summary (latest live
version, description, download total), in address order. A module is ``verified`` when its
namespace is in ``[browse] verified_namespaces``; ``owner`` is its repository's account when the
source is known, else its namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import structlog
from aiohttp import web

from mirror.domain.addresses import ModuleAddress, valid_namespace, valid_provider
from mirror.domain.urls import http_url
from mirror.domain.errors import BadRequest, MirrorError, NotFound
from mirror.http.keys import AUTH, CONFIG, STORE
from mirror.http.common import authorize
from mirror.services.auth import Authenticator, authorization_header
from mirror.storage.protocols import ModuleBrowser, ModuleSummary

log = structlog.get_logger("mirror.browse")

FLUSH_SECONDS = 5.0
DEFAULT_LIMIT = 15
MAX_LIMIT = 100
MAX_OFFSET = 1_000_000_000  # far past any list; keeps the number inside SQL's integers

_Key = tuple[str, str, str]  # namespace and name lowercased (they match case-insensitively), provider


def _module_key(address: ModuleAddress) -> _Key:
    return (address.namespace.lower(), address.name.lower(), address.provider)


class DownloadCounter:
    """Answered downloads per module version, kept in memory until the next flush."""

    def __init__(self, store: ModuleBrowser, *, interval: float = FLUSH_SECONDS) -> None:
        self._store = store
        self._interval = interval
        self._pending: dict[tuple[_Key, str], int] = {}
        self._inflight: dict[tuple[_Key, str], int] = {}  # being written by a flush

    def hit(self, address: ModuleAddress, version: str) -> None:
        key = (_module_key(address), version)
        self._pending[key] = self._pending.get(key, 0) + 1

    def unflushed(self, address: ModuleAddress) -> int:
        """Downloads of the module's versions not in the store yet (the pending dicts are small:
        they hold only what arrived since the last flush)."""
        wanted = _module_key(address)
        return sum(n for batch in (self._pending, self._inflight) for (key, _), n in batch.items() if key == wanted)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        self._inflight = batch
        try:
            await self._store.add_downloads({(ModuleAddress(*key), version): n for (key, version), n in batch.items()})
        except BaseException:
            for key, n in batch.items():  # keep them for the next flush
                self._pending[key] = self._pending.get(key, 0) + n
            raise
        finally:
            self._inflight = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except MirrorError as exc:
                log.warning("download counts: flush failed, will retry", error=str(exc))


DOWNLOADS = web.AppKey("downloads", DownloadCounter)


async def downloads_context(app: web.Application) -> AsyncIterator[None]:
    """For ``app.cleanup_ctx`` after the storage context: flushes periodically and at shutdown."""
    counter = DownloadCounter(app[STORE])
    app[DOWNLOADS] = counter
    task = asyncio.create_task(counter.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        await counter.flush()
    except MirrorError as exc:
        log.warning("download counts: last flush failed, counts lost", error=str(exc))


def source_of(version_source: str | None, source_url: str | None) -> str:
    """The repository URL: the version's source when it is one, else the module's, else ""."""
    if version_source and version_source.startswith(("https://", "http://")):
        return version_source
    return source_url or ""


def owner_of(namespace: str, source_url: str) -> str:
    """Who owns the module: the account of its repository (``https://host/OWNER/REPO``) when
    known, else its namespace (the team that publishes into it)."""
    parts = http_url(source_url)
    owner = parts.path.strip("/").split("/")[0] if parts is not None else ""
    return owner or namespace


def is_verified(app: web.Application, namespace: str) -> bool:
    """Namespaces listed in ``[browse] verified_namespaces`` (matched in any case) are verified."""
    return namespace.lower() in {n.lower() for n in app[CONFIG].browse.verified_namespaces}


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
        "verified": is_verified(app, address.namespace),
    }


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


async def visible_namespace(auth: Authenticator, authorization: str | None, wanted: str | None) -> str | None:
    """The namespace a cross-namespace list is limited to: the one asked for (the token must
    allow it), else the token's own unless it is a ``*`` token or the call is anonymous."""
    if wanted is not None:
        await auth.authorize(authorization, wanted, "read")
        return wanted
    record = await auth.authorize(authorization, None, "read")
    return None if record is None or record.namespace == "*" else record.namespace


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
    provider: str | None = None,
    q: str = "",
    verified: bool | None = None,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> ModulePage:
    """Modules with a live version, sorted by address: all of ``namespace`` (None: every one),
    of ``provider``, whose namespace, name, provider or description contains ``q`` (any case),
    and verified or not. The caller has checked that the namespace may be seen."""
    verified_namespaces = app[CONFIG].browse.verified_namespaces
    summaries, more = await app[STORE].browse_modules(
        namespace=namespace,
        provider=provider,
        query=q,
        only_namespaces=verified_namespaces if verified else None,
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
