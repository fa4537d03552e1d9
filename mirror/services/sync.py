"""``mirror sync``: copy module versions from other registries into this one.

Two ways in, one way down:

* ``Syncer.sync_modules(client, specs)``: for each ``NS/NAME/PROVIDER CONSTRAINT`` spec, list the
  upstream's versions, keep those the constraint admits (Terraform's rules), and copy each;
* ``Syncer.follow_mirror(client)``: read another mirror's event feed after a cursor kept in this
  registry's metadata store: a ``module.version_released`` is copied, a
  ``module.version_revoked`` revokes the local copy. The cursor moves only past events that are
  done, so a chain of mirrors (connected -> DMZ -> air gap) stays current incrementally.

Copying one version: a version this registry already has is checked by sha256: skipped when the
bytes are the same, reported as a conflict (and never overwritten) when they differ. The sha256
is known without a download when the location names its content (``<sha256>.tar.gz``, as
mirror's own locations do); otherwise the archive is fetched and compared (``verify=False``
trusts what is here instead). A missing version is fetched (``mirror.integrations.upstream.fetch``) into the
spool directory and handed to the one ingest path, ``Ingestor.publish``: the same archive checks,
analysis, events and immutability as an upload.

Resuming is re-running: each version is done or not, and a download that did not finish is never
ingested. An upstream that stops answering fails the versions left (they are not even tried once
it is known to be down), keeps those done, and the next run completes the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from mirror.domain import provenance
from mirror.domain.addresses import ModuleAddress
from mirror.domain.providers import ProviderAddress
from mirror.domain.events import VERSION_RELEASED, VERSION_REVOKED
from mirror.domain.errors import (
    Conflict,
    InvalidArchive,
    MirrorError,
    PayloadTooLarge,
    UnsupportedSource,
    UpstreamError,
    UpstreamUnavailable,
)
from mirror.domain.models import Consumer, ModuleRecord, ModuleVersion
from mirror.domain.provenance import Owner
from mirror.domain.sources import Source
from mirror.domain.specs import ModuleSpec
from mirror.domain.audit import Actor, acting_as
from mirror.domain.versions import Version, matching, normalize
from mirror.services.ingest import Ingestor
from mirror.services.upstream import ModuleFetcher, UpstreamRegistry

#: events asked for per page of a mirror's feed
FEED_PAGE = 200
MiB = 1024 * 1024

#: failures that another try will not fix: a feed's cursor moves past them (they are reported)
_PERMANENT = (Conflict, InvalidArchive, PayloadTooLarge, UnsupportedSource)


class SyncStore(Protocol):
    """What sync needs of the metadata store beyond the Ingestor."""

    async def get_version(self, address: ModuleAddress, version: str) -> ModuleVersion | None: ...

    async def get_module(self, address: ModuleAddress) -> ModuleRecord | None: ...

    async def revoke_version(self, address: ModuleAddress, version: str, *, owner: Owner | None = None) -> bool: ...

    async def consumer(self, name: str, *, start_serial: int = 0) -> Consumer: ...

    async def advance_consumer(self, name: str, serial: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class VersionResult:
    """What happened to one version (``version`` is "" for a module whose versions could not be listed)."""

    upstream: str
    source: ModuleAddress | ProviderAddress
    target: ModuleAddress | ProviderAddress
    version: str
    #: copied, skipped, conflict, failed, revoked, planned (a dry run's "would copy/revoke")
    status: str
    detail: str = ""
    size: int = 0
    seconds: float = 0.0
    #: a failure no retry fixes (a conflict, an archive refused): a feed's cursor moves past it
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "conflict")

    def line(self) -> str:
        name = f"{self.source} {self.version}".rstrip()
        if self.target != self.source:
            name += f" -> {self.target}"
        text = f"{self.status:<9} {name}"
        if self.status == "copied":
            text += f"  {human_size(self.size)} in {self.seconds:.2f} s"
        if self.detail:
            text += f" ({self.detail})" if self.status in ("copied", "skipped", "planned", "revoked") else f": {self.detail}"
        return text


@dataclass
class SyncReport:
    results: list[VersionResult] = field(default_factory=list)
    #: failures that are no one version's (an event feed that cannot be read)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return not self.failures and all(result.ok for result in self.results)

    def summary(self) -> list[str]:
        """One line per module (what happened to its versions), then the totals."""
        modules: dict[tuple[str, ModuleAddress, ModuleAddress], list[VersionResult]] = {}
        for result in self.results:
            modules.setdefault((result.upstream, result.source, result.target), []).append(result)
        lines = [f"  failed: {failure}" for failure in self.failures]
        for (upstream, source, target), results in sorted(modules.items(), key=lambda item: (item[0][0], str(item[0][1]))):
            name = f"{upstream} {source}" + (f" -> {target}" if target != source else "")
            lines.append(f"  {name}: {_counts(results)}")
        elapsed = max(time.monotonic() - self.started, 1e-9)
        copied = [r for r in self.results if r.status == "copied"]
        megabytes = sum(r.size for r in copied) / MiB
        lines.append(
            f"total: {_counts(self.results)}; {elapsed:.1f} s, "
            f"{len(copied) / elapsed:.1f} versions/s, {megabytes / elapsed:.2f} MB/s copied"
        )
        return lines


def _counts(results: Sequence[VersionResult]) -> str:
    """``2 copied (1.2 MB), 1 skipped, 1 conflict``: the statuses that occur."""
    counts = Counter(r.status for r in results)
    parts = []
    for status in ("copied", "planned", "skipped", "revoked", "conflict", "failed"):
        if counts[status]:
            text = f"{counts[status]} {'conflicts' if status == 'conflict' and counts[status] > 1 else status}"
            if status == "copied":
                text += f" ({human_size(sum(r.size for r in results if r.status == 'copied'))})"
            parts.append(text)
    return ", ".join(parts) or "nothing to do"


def human_size(size: int) -> str:
    if size >= MiB:
        return f"{size / MiB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} B"


class _UpstreamRun:
    """One upstream within a run: its client, and why it is known to be down."""

    def __init__(self, client: UpstreamRegistry) -> None:
        self.client = client
        self.down: str | None = None
        self.label = client.host


class Syncer:
    def __init__(
        self,
        *,
        store: SyncStore,
        ingestor: Ingestor,
        fetcher: ModuleFetcher,
        jobs: int = 4,
        verify: bool = True,
        dry_run: bool = False,
        on_line: Callable[[str], None] = print,
        on_change: Callable[[ModuleAddress], None] = lambda address: None,
        providers: Any = None,
    ) -> None:
        """``on_line`` gets one progress line per version; ``on_change`` is told of every module
        whose versions changed here (a server passes its catalog's ``invalidate``)."""
        self._store = store
        self._ingestor = ingestor
        self._fetcher = fetcher
        self._semaphore = asyncio.Semaphore(max(1, jobs))
        self._verify = verify
        self._dry_run = dry_run
        self._on_line = on_line
        self._on_change = on_change
        #: applies a followed mirror's provider events (``provider_follow.ProviderFollower``)
        self.providers = providers
        self.report = SyncReport()
        self._planned = 0
        self._finished = 0

    # -- module specs ---------------------------------------------------------------------------

    async def sync_modules(self, client: UpstreamRegistry, specs: Sequence[ModuleSpec], *, namespace: str | None = None) -> None:
        """Copy the versions of ``specs`` that their constraints admit from ``client``'s registry,
        into ``namespace`` when given (else the upstream's)."""
        run = _UpstreamRun(client)
        with acting_as(Actor.upstream(client.host)):  # its changes are that upstream's (mirror.domain.audit)
            listed = await asyncio.gather(*(self._list(run, spec) for spec in specs))
            work = []
            for spec, versions in zip(specs, listed, strict=True):
                if versions is None:
                    continue
                target = _renamed(spec.address, namespace)
                wanted = matching(versions, spec.constraints)
                if not wanted:
                    self._on_line(f"nothing   {spec}: none of its {len(versions)} upstream versions matches")
                work += [(spec.address, target, raw) for raw in wanted]
            self._planned += len(work)
            await asyncio.gather(*(self._copy(run, source, target, raw) for source, target, raw in work))

    async def _list(self, run: _UpstreamRun, spec: ModuleSpec) -> list[str] | None:
        async with self._semaphore:
            if run.down:
                self._module_failed(run, spec.address, f"not tried: {run.down}")
                return None
            try:
                return await run.client.versions(spec.address)
            except UpstreamUnavailable as exc:
                run.down = str(exc)
                self._module_failed(run, spec.address, str(exc))
            except MirrorError as exc:
                self._module_failed(run, spec.address, str(exc))
            return None

    def _module_failed(self, run: _UpstreamRun, address: ModuleAddress, reason: str) -> None:
        result = VersionResult(run.label, address, address, "", "failed", reason)
        self.report.results.append(result)
        self._on_line(result.line())

    # -- one version ------------------------------------------------------------------------------

    async def _copy(
        self, run: _UpstreamRun, source: ModuleAddress, target: ModuleAddress, raw: str, *, from_feed: bool = False
    ) -> VersionResult:
        async with self._semaphore:
            started = time.monotonic()
            version = normalize(raw)

            def result(status: str, detail: str = "", size: int = 0, permanent: bool = False) -> VersionResult:
                elapsed = time.monotonic() - started
                return self._record(VersionResult(run.label, source, target, version, status, detail, size, elapsed, permanent))

            if run.down:
                return result("failed", f"not tried: {run.down}")
            local = await self._store.get_version(target, version)
            if local is not None and local.revoked_at is not None:
                return result("skipped", "revoked in this registry; not copied again")
            if local is not None and not self._verify:
                return result("skipped", "already here; not verified")
            module = await self._store.get_module(target)
            if module is not None:  # another source's module: refused before anything is downloaded
                try:
                    provenance.check(
                        target,
                        module.owner,
                        Owner.upstream(run.client.base_url),
                        "add versions to",
                        source_url=module.source_url,
                    )
                except Conflict as exc:
                    return result("conflict", str(exc), permanent=True)
            if self._dry_run:
                return result("skipped", "already here") if local is not None else result("planned", "would copy")
            try:
                location = await run.client.download(source, version)
            except UpstreamUnavailable as exc:
                run.down = str(exc)
                return result("failed", str(exc))
            except UpstreamError as exc:
                if from_feed and exc.status_code == 404:
                    return result("skipped", "no longer available upstream (revoked or removed since)")
                return result("failed", str(exc))
            try:
                where = location.source()
                if local is not None and where.content_address() == local.sha256:
                    return result("skipped", "same sha256")
                self._on_line(f"fetching  {source} {version} from {where.describe()}")
                async with self._fetcher.fetch(location.location, base_url=location.download_url) as fetched:
                    outcome = await self._ingestor.publish(
                        target,
                        raw,
                        fetched.archive,
                        source=_source_label(run, source, fetched.source),
                        commit_sha=fetched.commit_sha,
                        origin="sync",
                        owner=Owner.upstream(run.client.base_url),
                    )
            except Conflict as exc:
                return result("conflict", str(exc), permanent=True)
            except MirrorError as exc:
                return result("failed", str(exc), permanent=isinstance(exc, _PERMANENT))
            self._on_change(target)
            if outcome.status == "created":
                return result("copied", size=outcome.version.size)
            return result("skipped", "same sha256")

    def _record(self, result: VersionResult) -> VersionResult:
        self.report.results.append(result)
        self._finished += 1
        width = len(str(self._planned))
        self._on_line(f"[{self._finished:>{width}}/{self._planned}] {result.line()}")
        return result

    # -- another mirror's event feed --------------------------------------------------------------

    async def follow_mirror(
        self,
        client: UpstreamRegistry,
        *,
        namespace: str | None = None,
        specs: Sequence[ModuleSpec] = (),
    ) -> int:
        """Apply the upstream mirror's released and revoked events after the stored cursor;
        return the cursor reached. ``specs``, when given, limit which modules (and versions) come."""
        run = _UpstreamRun(client)
        with acting_as(Actor.upstream(client.host)):
            cursor = cursor_name(client)
            after = (await self._store.consumer(cursor)).serial
            self._on_line(f"following {run.label} from event {after}")
            types: tuple[str, ...] = (VERSION_RELEASED, VERSION_REVOKED)
            if self.providers is not None and not specs:  # module specs limit the run to modules
                types += tuple(self.providers.event_types)
            while True:
                try:
                    page = await client.events(after, types=types, limit=FEED_PAGE)
                except MirrorError as exc:
                    self.report.failures.append(str(exc))
                    self._on_line(f"failed    {exc}")
                    return after
                done, complete = await self._apply_page(run, page.events, namespace, specs)
                reached = max(after, page.next_after if complete else done)
                if reached > after and not self._dry_run:
                    await self._store.advance_consumer(cursor, reached)
                if not complete:
                    self._on_line(f"stopped at event {reached}: the next run goes on from there")
                    return reached
                previous, after = after, reached
                if after <= previous or after >= page.latest:
                    self._on_line(f"caught up with {run.label} at event {after} (latest {page.latest})")
                    return after

    async def _apply_page(
        self, run: _UpstreamRun, events: list[dict[str, Any]], namespace: str | None, specs: Sequence[ModuleSpec]
    ) -> tuple[int, bool]:
        """Apply a page, each version's events in order, different versions concurrently; the
        last serial up to which every event is done, and whether all are."""
        chains: dict[tuple[Any, ...], list[tuple[int, str, Any, str]]] = {}
        outcomes: dict[int, bool] = {}
        for event in events:
            parsed = _parse_event(event)
            serial = _serial(event)
            provider = self.providers.parse(event) if self.providers is not None and not specs else None
            if provider is not None:
                kind, hostname, address, version = provider
                key = ("provider", hostname, address.namespace.lower(), address.type, version)
                chains.setdefault(key, []).append((serial, kind, (hostname, address), version))
                continue
            if parsed is None:
                outcomes[serial] = True
                continue
            kind, address, raw = parsed
            if not _wanted(specs, address, raw, kind):
                outcomes[serial] = True
                continue
            chains.setdefault((address, normalize(raw)), []).append((serial, kind, address, raw))
        self._planned += sum(len(chain) for chain in chains.values())

        async def apply(chain: list[tuple[int, str, Any, str]]) -> None:
            for serial, kind, address, raw in chain:
                if isinstance(address, tuple):  # a provider event
                    hostname, provider = address
                    result = self._record(await self.providers.apply(run.label, kind, hostname, provider, raw))
                    outcomes[serial] = result.ok or result.permanent
                    if not outcomes[serial]:
                        return
                    continue
                target = _renamed(address, namespace)
                if kind == VERSION_RELEASED:
                    result = await self._copy(run, address, target, raw, from_feed=True)
                else:
                    result = await self._revoke(run, address, target, raw)
                outcomes[serial] = result.ok or result.permanent
                if not outcomes[serial]:
                    return

        await asyncio.gather(*(apply(chain) for chain in chains.values()))
        done = 0
        for serial in sorted(_serial(event) for event in events):
            if not outcomes.get(serial):
                return done, False
            done = serial
        return done, True

    async def _revoke(self, run: _UpstreamRun, source: ModuleAddress, target: ModuleAddress, raw: str) -> VersionResult:
        version = normalize(raw)

        def result(status: str, detail: str = "") -> VersionResult:
            return self._record(VersionResult(run.label, source, target, version, status, detail))

        local = await self._store.get_version(target, version)
        if local is None or local.revoked_at is not None:
            return result("skipped", "revoked upstream; not live here")
        owner, module = Owner.upstream(run.client.base_url), await self._store.get_module(target)
        try:
            if module is not None:
                provenance.check(target, module.owner, owner, "revoke versions of", source_url=module.source_url)
                if not provenance.released_by(module.owner, local.commit_sha, local.source):
                    return result("skipped", "revoked upstream; uploaded here, so left as it is")
            if self._dry_run:
                return result("planned", "would revoke")
            if await self._store.revoke_version(target, version, owner=owner):
                self._on_change(target)
        except Conflict as exc:
            return self._record(VersionResult(run.label, source, target, version, "conflict", str(exc), permanent=True))
        return result("revoked", "revoked upstream")


def cursor_name(client: UpstreamRegistry) -> str:
    """The consumer (cursor) in this registry's store that remembers how far a feed was read."""
    return f"sync:{client.base_url}"


def _renamed(address: ModuleAddress, namespace: str | None) -> ModuleAddress:
    return ModuleAddress(namespace, address.name, address.provider) if namespace else address


def _source_label(run: _UpstreamRun, address: ModuleAddress, where: Source) -> str:
    """What the version records as its source: the repository for an http(s) git source (shown
    as the module's repository), else the Terraform source address ``HOST/NS/NAME/PROVIDER``."""
    if where.getter == "git" and where.url.startswith(("https://", "http://")) and "@" not in urlsplit(where.url).netloc:
        return where.url.removesuffix(".git")
    return f"{urlsplit(run.client.base_url).netloc}/{address}"


def _serial(event: dict[str, Any]) -> int:
    try:
        return int(event["serial"])
    except (KeyError, TypeError, ValueError):
        return 0


def _parse_event(event: dict[str, Any]) -> tuple[str, ModuleAddress, str] | None:
    kind, data = event.get("type"), event.get("data")
    if kind not in (VERSION_RELEASED, VERSION_REVOKED) or not isinstance(data, dict):
        return None
    try:
        address = ModuleAddress.parse_parts(str(data["namespace"]), str(data["name"]), str(data["provider"]))
        raw = str(data["version"])
        normalize(raw)
    except (KeyError, MirrorError):
        return None
    return kind, address, raw


def _wanted(specs: Sequence[ModuleSpec], address: ModuleAddress, raw: str, kind: str) -> bool:
    if not specs:
        return True
    for spec in specs:
        if str(spec.address).lower() == str(address).lower():
            return kind == VERSION_REVOKED or spec.constraints.allows(Version.parse(raw))
    return False
