"""Providers of upstream registries, served by the network mirror: pulled through on demand
(``proxy_providers``) and copied ahead of time (``mirror sync``, bundles).

For a provider an upstream proxies:

- its versions are the upstream's list (reused for the upstream's ``proxy_ttl_seconds``; the last
  list is served while the upstream cannot be reached) together with the versions stored here;
- the first request for a version's JSON asks the upstream's ``providers.v1`` for each configured
  platform, fetches the release's SHA256SUMS and signature once, verifies the signature with the
  keys the upstream lists, checks every package's file name and sha256 against the signed list,
  and records the version (no zip yet): a bad signature is refused and nothing is stored;
- the first download of a platform's zip fetches it once for every concurrent requester, checks its
  sha256 against the signed list and its contents as an upload's, streams it into the blob store
  and completes the record; later downloads never leave the site.

Everything recorded here is owned by ``upstream:HOST`` and recorded under the upstream's hostname.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from mirror.domain.errors import BadRequest, MirrorError, NotFound, UpstreamError, UpstreamUnavailable
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import (
    NewProviderVersion,
    ProviderPlatformFile,
    ProviderVersion,
    provider_name,
)
from mirror.domain.providers import (
    MAX_SHASUMS_BYTES,
    Platform,
    ProviderAddress,
    ReleaseFileKind,
    parse_release_file_name,
    parse_shasums,
)
from mirror.domain.specs import provider_pattern_matches
from mirror.domain.timeutil import rfc3339
from mirror.domain.audit import Actor, acting_as
from mirror.domain.versions import Version
from mirror.formats.openpgp import MAX_SIGNATURE_BYTES, SigningKey, parse_public_key, verify_detached
from mirror.formats.provider_zip import ProviderZipLimits, check_provider_zip
from mirror.services.singleflight import SingleFlight
from mirror.services.upstream import ProviderUpstream, UpstreamPackage
from mirror.storage.protocols import BlobStore, MetadataStore

log = structlog.get_logger("mirror.provider_mirror")


@dataclass(frozen=True, slots=True)
class UpstreamProviders:
    """One upstream's providers as configured: its hostname, client, platforms and proxied patterns."""

    hostname: str
    client: ProviderUpstream
    platforms: tuple[Platform, ...]
    patterns: tuple[str, ...] = ()  # proxy_providers
    ttl_seconds: float = 300.0

    def proxies(self, address: ProviderAddress) -> bool:
        return any(provider_pattern_matches(pattern, address) for pattern in self.patterns)


class ProviderMirror:
    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        upstreams: Sequence[UpstreamProviders],
        *,
        spool_dir: Path,
        limits: ProviderZipLimits = ProviderZipLimits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._upstreams = {upstream.hostname: upstream for upstream in upstreams}
        self._spool_dir = spool_dir
        self._limits = limits
        self._clock = clock
        self._lists: dict[tuple[str, str, str], tuple[float, list[str]]] = {}
        self._flights: SingleFlight[tuple[str, ...], object] = SingleFlight()

    def serves(self, hostname: str) -> bool:
        return hostname.lower() in self._upstreams

    @property
    def hostnames(self) -> list[str]:
        return sorted(self._upstreams)

    def _upstream(self, hostname: str) -> UpstreamProviders:
        try:
            return self._upstreams[hostname.lower()]
        except KeyError:
            raise NotFound(f"this mirror serves no providers of {hostname[:255]!r}") from None

    # -- versions ----------------------------------------------------------------------------------

    async def versions(self, hostname: str, address: ProviderAddress) -> list[str]:
        """The versions stored here and, for a proxied provider, the upstream's; NotFound for none."""
        upstream = self._upstream(hostname)
        stored = [v.version for v in await self._store.provider_versions(upstream.hostname, address)]
        listed: list[str] = []
        if upstream.proxies(address):
            try:
                listed = await self._upstream_versions(upstream, address)
            except (UpstreamUnavailable, UpstreamError):
                if not stored:
                    raise
                log.warning("upstream provider list unavailable; serving what is stored", provider=f"{hostname}/{address}")
        found = sorted(set(stored) | set(listed), key=Version.parse, reverse=True)
        if not found:
            raise NotFound(f"provider {provider_name(upstream.hostname, address)} not found")
        return found

    async def _upstream_versions(self, upstream: UpstreamProviders, address: ProviderAddress) -> list[str]:
        key = (upstream.hostname, address.namespace.lower(), address.type)
        cached = self._lists.get(key)
        now = self._clock()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            raw = await self._flights.do(("list", *key), lambda: upstream.client.provider_versions(address))
        except UpstreamError as exc:
            if exc.status_code != 404:
                raise
            raw = []
        except UpstreamUnavailable:
            if cached is not None:  # stale, while the upstream is down
                return cached[1]
            raise
        versions = []
        for text in raw:  # type: ignore[union-attr]
            try:
                versions.append(str(Version.parse(text)))
            except BadRequest:
                continue  # what Terraform could not install either
        if len(self._lists) > 10_000:
            self._lists.clear()
        self._lists[key] = (now + upstream.ttl_seconds, versions)
        return versions

    # -- one version -------------------------------------------------------------------------------

    async def version(self, hostname: str, address: ProviderAddress, version: str) -> ProviderVersion:
        """The version as stored, pulled through first when it is not and the upstream proxies it."""
        upstream = self._upstream(hostname)
        found = await self._store.get_provider_version(upstream.hostname, address, version)
        if found is not None and found.revoked_at is None:
            return found
        if found is None and upstream.proxies(address):
            key = ("version", upstream.hostname, address.namespace.lower(), address.type, version)
            pulled = await self._flights.do(key, lambda: self._pull_version(upstream, address, version))
            assert isinstance(pulled, ProviderVersion)
            return pulled
        raise NotFound(f"version {version} of provider {provider_name(upstream.hostname, address)} not found")

    async def _pull_version(self, upstream: UpstreamProviders, address: ProviderAddress, version: str) -> ProviderVersion:
        with acting_as(Actor.upstream(upstream.hostname)):  # (mirror.domain.audit)
            name = f"{provider_name(upstream.hostname, address)} {version}"
            client = upstream.client
            answers = await asyncio.gather(*(client.provider_package(address, version, p) for p in upstream.platforms))
            present = [(platform, package) for platform, package in zip(upstream.platforms, answers) if package is not None]
            if not present:
                raise NotFound(f"{name} has no package for {', '.join(str(p) for p in upstream.platforms)} at the upstream")
            first = present[0][1]
            shasums = await client.read_file(first.shasums_url, MAX_SHASUMS_BYTES, f"fetching the SHA256SUMS of {name}")
            signature = await client.read_file(
                first.shasums_signature_url, MAX_SIGNATURE_BYTES, f"fetching the SHA256SUMS signature of {name}"
            )
            key = await asyncio.to_thread(_verify, name, shasums, signature, first.signing_keys)
            try:
                sums = parse_shasums(shasums)
            except MirrorError as exc:
                raise UpstreamError(f"{name}: the upstream's SHA256SUMS is refused: {exc}") from None
            files = []
            for platform, package in present:
                if package.shasums_url != first.shasums_url:
                    other = await client.read_file(package.shasums_url, MAX_SHASUMS_BYTES, f"fetching the SHA256SUMS of {name}")
                    if other != shasums:
                        raise UpstreamError(f"{name}: the upstream lists different SHA256SUMS for {platform}; refused")
                files.append(_platform_file(name, address, version, platform, package, sums))
            new = ProviderVersion(
                hostname=upstream.hostname,
                address=address,
                version=version,
                protocols=first.protocols,
                platforms=tuple(sorted(files, key=lambda item: item.platform)),
                shasums=shasums,
                signature=signature,
                key_id=key.key_id,
                key_armor=key.ascii_armor,
                published_at=rfc3339(self._clock()),
                source=f"upstream:{upstream.hostname}",
            )
            outcome = await self._store.publish_provider_version(NewProviderVersion(new, Owner.upstream(upstream.hostname)))
            if outcome.status == "conflict":
                raise UpstreamError(f"{name}: the upstream's SHA256SUMS is not the one recorded here; refused")
            log.info("provider version pulled through", provider=name, platforms=new.platform_names, key_id=key.key_id)
            return outcome.version

    # -- archives ----------------------------------------------------------------------------------

    async def archive(self, hostname: str, address: ProviderAddress, version: str, platform: Platform) -> ProviderPlatformFile:
        """The platform's zip, in the blob store: fetched from the upstream first when it is not."""
        upstream = self._upstream(hostname)
        stored = await self.version(hostname, address, version)
        file = stored.platform(platform)
        if file is None:
            raise NotFound(f"{provider_name(upstream.hostname, address)} {version} has no package for {platform}")
        if file.complete and await self._blobs.exists(file.blob_key):
            return file
        fetched = await self._flights.do(("zip", file.sha256), lambda: self._fetch_zip(upstream, stored, file))
        assert isinstance(fetched, ProviderPlatformFile)
        return fetched

    async def _fetch_zip(self, upstream: UpstreamProviders, stored: ProviderVersion, file: ProviderPlatformFile) -> ProviderPlatformFile:
        what = f"downloading {file.filename} from {upstream.hostname}"
        if not file.upstream_url:
            raise NotFound(f"{file.filename} is not stored here and has no upstream location")
        await asyncio.to_thread(self._spool_dir.mkdir, parents=True, exist_ok=True)
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="provider-", dir=self._spool_dir))
        try:
            path = workdir / "provider.zip"
            sha256, size = await upstream.client.download_file(file.upstream_url, path, self._limits.max_zip_bytes, what)
            if sha256 != file.sha256:
                raise UpstreamError(
                    f"{what}: its sha256 is {sha256}, but the signed SHA256SUMS lists {file.sha256}; refused, nothing stored"
                )
            try:
                info = await asyncio.to_thread(check_provider_zip, path, stored.address.type, self._limits)
            except MirrorError as exc:
                raise UpstreamError(f"{what}: the zip is refused: {exc}") from None
            await self._blobs.put_file(file.blob_key, path, sha256=sha256, size=size)
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        complete = replace(file, size=size, h1=info.h1)
        with acting_as(Actor.upstream(upstream.hostname)):
            await self._store.publish_provider_version(
                NewProviderVersion(replace(stored, platforms=(complete,)), Owner.upstream(upstream.hostname))
            )
        log.info("provider zip pulled through", file=file.filename, upstream=upstream.hostname, size=size)
        return complete


def _verify(name: str, shasums: bytes, signature: bytes, armored: Sequence[str]) -> SigningKey:
    keys = []
    for text in armored:
        try:
            keys.append(parse_public_key(text))
        except BadRequest:
            continue
    if not keys:
        raise UpstreamError(f"{name}: the upstream lists no signing key this registry can use; refused")
    try:
        return verify_detached(shasums, signature, keys)
    except BadRequest as exc:
        raise UpstreamError(f"{name}: the upstream's SHA256SUMS signature does not verify ({exc}); refused, nothing stored") from None


def _platform_file(
    name: str, address: ProviderAddress, version: str, platform: Platform, package: UpstreamPackage, sums: dict[str, str]
) -> ProviderPlatformFile:
    try:
        parsed = parse_release_file_name(package.filename)
    except BadRequest:
        parsed = None
    if (
        parsed is None
        or parsed.kind is not ReleaseFileKind.ZIP
        or parsed.type != address.type
        or parsed.version != version
        or parsed.platform != platform
    ):
        raise UpstreamError(f"{name}: the upstream names the {platform} package {package.filename[:200]!r}; refused")
    listed = sums.get(package.filename)
    if listed is None:
        raise UpstreamError(f"{name}: {package.filename} is not in the signed SHA256SUMS; refused")
    if listed != package.shasum:
        raise UpstreamError(f"{name}: the upstream's shasum of {package.filename} is not the signed one; refused")
    return ProviderPlatformFile(platform, package.filename, listed, upstream_url=package.download_url)
