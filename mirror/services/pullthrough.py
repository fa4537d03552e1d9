"""The pull-through cache: local namespaces that proxy an upstream registry.

A namespace listed in an upstream's ``proxy_namespaces`` is served from this registry and that
upstream together, under the same ``NAMESPACE/NAME/PROVIDER``:

* ``versions_body``: the module's live versions here together with the versions the upstream lists
  (normalized; versions revoked here left out), encoded as the catalog encodes them. The
  upstream's list of each module is reused for ``proxy_ttl_seconds``. When the upstream cannot be
  reached (or refuses), the last list is served, however old, and a warning is logged once per
  module per TTL; with no list ever fetched, the local versions are served, and with none of
  those either the answer is a 502. An upstream 404 means the upstream does not know the module:
  that is reused for the TTL as well (only local versions, or 404).
* ``ensure_version``: a version the upstream lists but this registry lacks is fetched on its first
  download: its location from the upstream's ``/download`` (with the upstream's token), the
  archive from there (with no credentials at all), then ``Ingestor.publish(origin="pullthrough")``,
  so the archive checks, the analysis and the events (``module.created``,
  ``module.version_released``) are a publish's. Concurrent downloads of one version wait for one
  fetch, which goes on even when the request that started it goes away (Terraform gives up on a
  registry after 10 s and asks again: the retry joins it). Once ingested, the catalog finds the
  version here and the upstream is never asked about it again.

The upstream is asked again no sooner than ``RETRY_SECONDS`` (or the TTL, when shorter) after a
failure, so an outage costs one failed request per module per interval rather than one per
``terraform init``; a request holding a stale list waits at most ``STALE_WAIT_SECONDS`` for the
upstream before it is answered from that list. Archives the checks refuse are not fetched again
for the TTL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import structlog

from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import (
    Conflict,
    InvalidArchive,
    MirrorError,
    NotFound,
    PayloadTooLarge,
    UnsupportedSource,
    UpstreamError,
    UpstreamUnavailable,
)
from mirror.domain.models import ModuleRecord, ModuleVersion
from mirror.domain.provenance import Owner
from mirror.domain.sources import Source
from mirror.domain.audit import Actor, acting_as
from mirror.domain.versions import Version, normalize
from mirror.services.catalog import ModuleCatalog, ModuleEntry
from mirror.services.ingest import Ingestor
from mirror.services.upstream import ModuleFetcher, UpstreamRegistry

log = structlog.get_logger("mirror.pullthrough")

#: the ``origin`` of versions ingested here (the ``source`` label of ``mirror_ingest_total``)
ORIGIN = "pullthrough"
#: after a failed look-up, the upstream is asked about the module again no sooner than this (or
#: the TTL, when that is shorter)
RETRY_SECONDS = 15.0
#: how long a request that holds a stale list waits for the upstream's fresh one
STALE_WAIT_SECONDS = 2.0
#: versions fetched from upstreams at once (more wait their turn)
MAX_PULLS = 8
#: modules remembered at most (the lists are cleared when full, as the catalog's entries are)
MAX_ENTRIES = 50_000

_Key = tuple[str, str, str]
_T = TypeVar("_T")


class PullThroughStore(Protocol):
    """What the pull-through cache reads of the metadata store."""

    async def get_version(self, address: ModuleAddress, version: str) -> ModuleVersion | None: ...

    async def get_module(self, address: ModuleAddress) -> ModuleRecord | None: ...

    async def all_versions(self, address: ModuleAddress) -> list[ModuleVersion]: ...


@dataclass(frozen=True, slots=True)
class ProxiedUpstream:
    """An upstream registry and the local namespaces (lowercase) that proxy it."""

    client: UpstreamRegistry
    namespaces: frozenset[str]
    ttl_seconds: float


@dataclass(frozen=True, slots=True)
class _Listing:
    """What the upstream said of one module, and when to ask it again."""

    #: normalized version -> as the upstream spells it; None: the upstream was never reached
    versions: Mapping[str, str] | None
    #: False: the upstream answered 404 (it does not know the module)
    known: bool
    #: versions revoked in this registry: neither listed nor fetched again
    revoked: frozenset[str]
    #: monotonic time from which the upstream is asked again
    refresh_at: float
    #: monotonic time of the last successful look-up
    listed_at: float = -math.inf
    #: the last look-up's failure, until one succeeds
    error: MirrorError | None = None
    #: monotonic time of the last warning about this module
    warned_at: float = -math.inf


def _key(address: ModuleAddress) -> _Key:
    # namespace and name match case-insensitively, as in the store and the catalog
    return (address.namespace.lower(), address.name.lower(), address.provider)


class PullThrough:
    def __init__(
        self,
        upstreams: Iterable[ProxiedUpstream],
        *,
        store: PullThroughStore,
        catalog: ModuleCatalog,
        ingestor: Ingestor,
        fetcher: ModuleFetcher,
        max_pulls: int = MAX_PULLS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstreams = {namespace: upstream for upstream in upstreams for namespace in upstream.namespaces}
        #: the proxied namespaces, lowercase
        self.namespaces = frozenset(self._upstreams)
        self._store = store
        self._catalog = catalog
        self._ingestor = ingestor
        self._fetcher = fetcher
        self._clock = clock
        self._pull_slots = asyncio.Semaphore(max(1, max_pulls))
        self._listings: dict[_Key, _Listing] = {}
        self._bodies: dict[_Key, tuple[ModuleEntry, _Listing, bytes]] = {}
        self._lookups: dict[_Key, asyncio.Task[_Listing]] = {}
        self._pulls: dict[tuple[_Key, str], asyncio.Task[None]] = {}
        #: archives the checks refused: (error, until) per module and version
        self._refused: dict[tuple[_Key, str], tuple[MirrorError, float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def proxies(self, namespace: str) -> bool:
        return namespace.lower() in self._upstreams

    async def close(self) -> None:
        """Stop the look-ups and fetches still running (at shutdown)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- versions ---------------------------------------------------------------------------------

    async def versions_body(self, address: ModuleAddress) -> bytes:
        """The ``versions`` answer of a module of a proxied namespace: its versions here and at
        the upstream, newest first. NotFound when neither has any; a 502 (UpstreamUnavailable,
        UpstreamError) when there are none here and the upstream never answered."""
        upstream = self._upstream(address)
        listing = await self._listing(address, upstream)
        entry = await self._catalog.module(address)
        if listing.versions is None:  # the upstream never answered: what is here
            if entry.versions_body is not None:
                return entry.versions_body
            raise _unreachable(f"module {address}", upstream, listing.error)
        key = _key(address)
        cached = self._bodies.get(key)
        if cached is not None and cached[0] is entry and cached[1] is listing:
            return cached[2]
        merged = set(entry.newest_first)
        merged.update(version for version in listing.versions if version not in listing.revoked)
        if not merged:
            raise NotFound(f"module {address} not found, here or at its upstream {upstream.client.host}")
        newest_first = sorted((Version.parse(version) for version in merged), reverse=True)
        answer = {"modules": [{"source": str(address), "versions": [{"version": str(v)} for v in newest_first]}]}
        body = json.dumps(answer, separators=(",", ":")).encode()
        _remember(self._bodies, key, (entry, listing, body))
        return body

    async def _listing(self, address: ModuleAddress, upstream: ProxiedUpstream) -> _Listing:
        """The module's upstream list: the cached one while fresh, else a new look-up (one at a
        time per module); a stale list when the look-up takes longer than STALE_WAIT_SECONDS."""
        key = _key(address)
        listing = self._listings.get(key)
        if listing is not None and listing.refresh_at > self._clock():
            return listing
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = self._spawn(self._look_up(key, address, upstream))
            lookup.add_done_callback(lambda task: _forget(self._lookups, key, task))
        if listing is None or listing.versions is None:
            return await asyncio.shield(lookup)
        try:
            return await asyncio.wait_for(asyncio.shield(lookup), STALE_WAIT_SECONDS)
        except TimeoutError:
            return listing  # the upstream is slow: the last list now, the new one when it comes

    async def _look_up(self, key: _Key, address: ModuleAddress, upstream: ProxiedUpstream) -> _Listing:
        client = upstream.client
        module = await self._store.get_module(address)
        if module is not None and module.owner != Owner.upstream(client.base_url):
            # another source's module: the upstream's versions could not be pulled, so none is offered
            now = self._clock()
            listing = _Listing({}, True, frozenset(), refresh_at=now + upstream.ttl_seconds, listed_at=now)
            _remember(self._listings, key, listing)
            return listing
        raw_versions: list[str] | None = None
        error: MirrorError | None = None
        try:
            await client.modules_url()  # discovery (asked once): a 404 there is not the module's
        except (UpstreamError, UpstreamUnavailable) as exc:
            error = exc
        if error is None:
            try:
                raw_versions = await client.versions(address)
            except UpstreamError as exc:
                if exc.status_code != 404:
                    error = exc
            except UpstreamUnavailable as exc:
                error = exc
        now = self._clock()
        previous = self._listings.get(key)
        if error is not None:
            listing = self._failed(address, upstream, previous, error, now)
        else:
            stored = await self._store.all_versions(address)
            revoked = frozenset(v.version for v in stored if v.revoked_at is not None)
            versions: dict[str, str] = {}
            for raw in raw_versions or ():
                try:
                    versions.setdefault(normalize(raw), raw)
                except MirrorError:
                    log.info("upstream version is not SemVer; left out", module=str(address), version=raw)
            listing = _Listing(
                versions, raw_versions is not None, revoked, refresh_at=now + upstream.ttl_seconds, listed_at=now
            )
            if previous is not None and previous.error is not None:
                log.info("upstream answers again", module=str(address), upstream=client.host)
        _remember(self._listings, key, listing)
        return listing

    def _failed(
        self,
        address: ModuleAddress,
        upstream: ProxiedUpstream,
        previous: _Listing | None,
        error: MirrorError,
        now: float,
    ) -> _Listing:
        """The listing after a failed look-up: the last list kept (however old), asked again
        after the retry interval; a warning once per module per TTL."""
        retry_at = now + min(upstream.ttl_seconds, RETRY_SECONDS)
        warned_at = previous.warned_at if previous is not None else -math.inf
        if now - warned_at >= upstream.ttl_seconds:
            warned_at = now
            if previous is not None and previous.versions is not None:
                log.warning(
                    "upstream failed: serving the module's last versions list",
                    module=str(address),
                    upstream=upstream.client.host,
                    listed_seconds_ago=round(now - previous.listed_at, 1),
                    error=str(error),
                )
            else:
                log.warning(
                    "upstream failed: the module has no versions list yet",
                    module=str(address),
                    upstream=upstream.client.host,
                    error=str(error),
                )
        if previous is None:
            return _Listing(None, True, frozenset(), refresh_at=retry_at, error=error, warned_at=warned_at)
        return dataclasses.replace(previous, refresh_at=retry_at, error=error, warned_at=warned_at)

    # -- downloads --------------------------------------------------------------------------------

    async def ensure_version(self, address: ModuleAddress, version: str) -> None:
        """Fetch ``version`` (normalized) of a module of a proxied namespace from the upstream
        and ingest it, when the upstream lists it and it is not here; return once it is here.
        Returns without doing anything when the upstream does not list it (the caller answers
        404). Raises NotFound for a version revoked here, and a 502 when it cannot be fetched."""
        upstream = self._upstream(address)
        listing = await self._listing(address, upstream)
        what = f"version {version} of module {address}"
        if listing.versions is None:
            raise _unreachable(what, upstream, listing.error)
        raw = listing.versions.get(version)
        if raw is None:
            if listing.error is not None:  # an old list, and the upstream cannot be asked now
                raise _unreachable(what, upstream, listing.error)
            return
        if version in listing.revoked:
            return
        if isinstance(listing.error, UpstreamUnavailable):  # down a moment ago: do not wait for it again
            raise _unreachable(what, upstream, listing.error)
        slot = (_key(address), version)
        refused = self._refused.get(slot)
        if refused is not None:
            if refused[1] > self._clock():
                raise refused[0]
            del self._refused[slot]
        pull = self._pulls.get(slot)
        if pull is None:
            pull = self._pulls[slot] = self._spawn(self._pull(address, version, raw, upstream))
            pull.add_done_callback(lambda task: _forget(self._pulls, slot, task))
        try:
            await asyncio.shield(pull)
        except UpstreamUnavailable as exc:
            raise _unreachable(what, upstream, exc) from None

    async def _pull(self, address: ModuleAddress, version: str, raw: str, upstream: ProxiedUpstream) -> None:
        with acting_as(Actor.upstream(upstream.client.host)):  # (mirror.domain.audit)
            async with self._pull_slots:
                existing = await self._store.get_version(address, version)
                if existing is not None:
                    if existing.revoked_at is not None:
                        raise NotFound(f"version {version} of module {address} was revoked in this registry")
                    return  # recorded meanwhile (by another process): the catalog finds it in the store
                client, started = upstream.client, self._clock()
                module = await self._store.get_module(address)
                if module is not None and module.owner != Owner.upstream(client.base_url):
                    # another source's module: nothing is fetched (the publish would be refused)
                    raise NotFound(
                        f"version {version} of module {address} not found: the module belongs to owner source "
                        f"{module.owner}, so {client.host} does not add versions to it"
                    )
                try:
                    location = await client.download(address, version)
                except UpstreamError as exc:
                    if exc.status_code == 404:
                        raise NotFound(f"version {version} of {address} not found at its upstream {client.host}") from None
                    raise
                try:
                    async with self._fetcher.fetch(location.location, base_url=location.download_url) as fetched:
                        outcome = await self._ingestor.publish(
                            address,
                            raw,
                            fetched.archive,
                            source=_source_label(client, address, fetched.source),
                            commit_sha=fetched.commit_sha,
                            origin=ORIGIN,
                            owner=Owner.upstream(client.base_url),
                        )
                except Conflict:
                    return  # published here meanwhile with other bytes: this registry's version is served
                except (InvalidArchive, PayloadTooLarge, UnsupportedSource) as exc:
                    error = UpstreamError(f"the archive of {address} {version} from {client.host} was refused: {exc}")
                    _remember(self._refused, (_key(address), version), (error, self._clock() + upstream.ttl_seconds))
                    log.warning("pulled archive refused", module=str(address), version=version, error=str(exc))
                    raise error from None
                log.info(
                    "version pulled through",
                    module=str(address),
                    version=version,
                    upstream=client.host,
                    status=outcome.status,
                    sha256=outcome.version.sha256,
                    size=outcome.version.size,
                    seconds=round(self._clock() - started, 3),
                )

        # -- helpers ----------------------------------------------------------------------------------

    def _upstream(self, address: ModuleAddress) -> ProxiedUpstream:
        upstream = self._upstreams.get(address.namespace.lower())
        if upstream is None:
            raise NotFound(f"module {address} not found")  # callers check ``proxies`` first
        return upstream

    def _spawn(self, coroutine: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """A task that outlives the request that started it (others may be waiting for it)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here: every request waiting for it may have gone


def _forget(tasks: dict[Any, asyncio.Task[Any]], key: Any, task: asyncio.Task[Any]) -> None:
    if tasks.get(key) is task:
        del tasks[key]


def _remember(cache: dict[Any, _T], key: Any, value: _T) -> None:
    if len(cache) >= MAX_ENTRIES and key not in cache:
        cache.clear()
    cache[key] = value


def _unreachable(what: str, upstream: ProxiedUpstream, error: MirrorError | None) -> MirrorError:
    """The 502 for something that is not here and cannot be had from the upstream now."""
    reason = str(error) if error is not None else "no answer"
    host = upstream.client.host
    if isinstance(error, UpstreamError):
        return UpstreamError(f"{what} is not in this registry, and its upstream {host} refused: {reason}")
    return UpstreamUnavailable(
        f"{what} is not in this registry, and its upstream {host} cannot be reached now: {reason}"
    )


def _source_label(client: UpstreamRegistry, address: ModuleAddress, where: Source) -> str:
    """What the version records as its source, as ``mirror sync`` records it: the repository
    for an http(s) git source, else the Terraform source address ``HOST/NS/NAME/PROVIDER``."""
    url = where.url
    if where.getter == "git" and url.startswith(("https://", "http://")) and "@" not in urlsplit(url).netloc:
        return url.removesuffix(".git")
    return f"{urlsplit(client.base_url).netloc}/{address}"
