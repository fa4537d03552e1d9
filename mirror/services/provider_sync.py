"""``mirror sync`` for providers: copy the versions of ``[[upstreams]] providers`` specs that
their constraints admit, for the upstream's platforms, with their signed SHA256SUMS.

Each version goes through the network mirror's pull-through path (``ProviderMirror``): the
SHA256SUMS signature is verified with the keys the upstream lists, every package is checked
against the signed list, each zip is fetched, checked and stored. A version already here with all
its zips is skipped; a run that stopped half way is finished by the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from mirror.domain.errors import MirrorError, NotFound, UpstreamError, UpstreamUnavailable
from mirror.domain.provider_records import ProviderVersion, provider_name
from mirror.domain.specs import ProviderSpec
from mirror.domain.audit import Actor, acting_as
from mirror.domain.versions import matching, normalize
from mirror.services.provider_mirror import ProviderMirror, UpstreamProviders
from mirror.services.sync import SyncReport, VersionResult
from mirror.storage.protocols import BlobStore, MetadataStore


async def sync_providers(
    *,
    store: MetadataStore,
    blobs: BlobStore,
    mirror: ProviderMirror,
    upstream: UpstreamProviders,
    specs: Sequence[ProviderSpec],
    report: SyncReport,
    dry_run: bool = False,
    on_line: Callable[[str], None] = print,
) -> None:
    """Copy every version ``specs`` admit from ``upstream`` (whose ``patterns`` must admit them)."""
    host = upstream.hostname
    with acting_as(Actor.upstream(host)):  # its changes are that upstream's (mirror.domain.audit)
        def record(result: VersionResult) -> None:
            report.results.append(result)
            on_line(result.line())

        for spec in specs:
            address = spec.address
            try:
                listed = await upstream.client.provider_versions(address)
            except (UpstreamError, UpstreamUnavailable) as exc:
                record(VersionResult(host, address, address, "", "failed", str(exc)))
                continue
            for text in matching(listed, spec.constraints):
                version = normalize(text)
                started = time.monotonic()
                name = provider_name(host, address)
                try:
                    stored = await store.get_provider_version(host, address, version)
                    if stored is not None and stored.revoked_at is None and await _all_stored(blobs, stored):
                        record(VersionResult(host, address, address, version, "skipped", "already here"))
                        continue
                    if dry_run:
                        record(VersionResult(host, address, address, version, "planned", "would copy"))
                        continue
                    pulled = await mirror.version(host, address, version)
                    size = 0
                    for file in pulled.platforms:
                        fetched = await mirror.archive(host, address, version, file.platform)
                        size += fetched.size or 0
                    platforms = ", ".join(pulled.platform_names)
                    record(VersionResult(host, address, address, version, "copied", platforms, size,
                                         time.monotonic() - started))
                except NotFound as exc:
                    record(VersionResult(host, address, address, version, "failed", f"{name}: {exc}"))
                except MirrorError as exc:
                    record(VersionResult(host, address, address, version, "failed", str(exc)))


async def _all_stored(blobs: BlobStore, version: ProviderVersion) -> bool:
    for file in version.platforms:
        if not file.complete or not await blobs.exists(file.blob_key):
            return False
    return True
