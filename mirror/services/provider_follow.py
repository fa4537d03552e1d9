"""``mirror sync --from-mirror`` for providers: the other mirror's provider events, applied here.

- ``provider.version_released`` and ``provider.platforms_added``: the version is read whole from
  the other mirror (``GET /api/v1/providers/.../release``): its signed SHA256SUMS is verified with
  the key recorded with it, every zip is fetched by its self-authenticating URL, checked against
  the signed list and for its ``h1``, and stored; the version is recorded under the same hostname
  (that mirror's own providers become this registry's own, as with bundles), owned by
  ``upstream:HOST``. A version here with the same SHA256SUMS and all its zips is skipped.
- ``provider.version_revoked``: the local copy is revoked, when the other mirror owns it here.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mirror.domain.errors import BadRequest, Conflict, MirrorError
from mirror.domain.events import PROVIDER_PLATFORMS_ADDED, PROVIDER_VERSION_RELEASED, PROVIDER_VERSION_REVOKED
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import NewProviderVersion, ProviderVersion, provider_name
from mirror.domain.providers import ProviderAddress
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.urls import valid_registry_host
from mirror.domain.versions import normalize
from mirror.formats.provider_zip import ProviderZipLimits, check_provider_zip
from mirror.services.provider_bundles import verify_recorded
from mirror.services.sync import VersionResult
from mirror.services.upstream import MirrorProviders
from mirror.storage.protocols import BlobStore, MetadataStore

EVENT_TYPES = (PROVIDER_VERSION_RELEASED, PROVIDER_PLATFORMS_ADDED, PROVIDER_VERSION_REVOKED)


def parse_event(event: dict[str, Any]) -> tuple[str, str, ProviderAddress, str] | None:
    """(type, hostname, address, version) of a provider event, None for anything else."""
    kind, data = event.get("type"), event.get("data")
    if kind not in EVENT_TYPES or not isinstance(data, dict):
        return None
    try:
        hostname = str(data.get("hostname", "")).lower()
        if hostname and not valid_registry_host(hostname):
            return None
        address = ProviderAddress.parse_parts(str(data["namespace"]), str(data["type"]))
        return str(kind), hostname, address, normalize(str(data["version"]))
    except (KeyError, MirrorError):
        return None


class ProviderFollower:
    """Applies another mirror's provider events (``Syncer.follow_mirror`` hands them over)."""

    event_types = EVENT_TYPES
    parse = staticmethod(parse_event)

    def __init__(
        self,
        *,
        store: MetadataStore,
        blobs: BlobStore,
        source: MirrorProviders,
        owner: Owner,
        spool_dir: Path,
        limits: ProviderZipLimits = ProviderZipLimits(),
        dry_run: bool = False,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._source = source
        self._owner = owner
        self._spool_dir = spool_dir
        self._limits = limits
        self._dry_run = dry_run

    async def apply(self, label: str, kind: str, hostname: str, address: ProviderAddress, version: str) -> VersionResult:
        name = provider_name(hostname, address)
        started = time.monotonic()

        def result(status: str, detail: str = "", size: int = 0, permanent: bool = False) -> VersionResult:
            return VersionResult(label, address, address, version, status, detail, size,
                                 time.monotonic() - started, permanent)

        try:
            if kind == PROVIDER_VERSION_REVOKED:
                return await self._revoke(hostname, address, version, result)
            return await self._copy(hostname, address, version, name, result)
        except (Conflict, BadRequest) as exc:  # a conflict, a refused release: no retry fixes it
            return result("conflict" if isinstance(exc, Conflict) else "failed", str(exc), permanent=True)
        except MirrorError as exc:
            return result("failed", str(exc))

    async def _revoke(self, hostname: str, address: ProviderAddress, version: str, result: Any) -> VersionResult:
        local = await self._store.get_provider_version(hostname, address, version)
        if local is None or local.revoked_at is not None:
            return result("skipped", "revoked upstream; not live here")
        if self._dry_run:
            return result("planned", "would revoke")
        await self._store.revoke_provider_version(hostname, address, version, owner=self._owner)
        return result("revoked", "revoked upstream")

    async def _copy(self, hostname: str, address: ProviderAddress, version: str, name: str, result: Any) -> VersionResult:
        record, urls = await self._source.provider_release(hostname, address, version)
        local = await self._store.get_provider_version(hostname, address, version)
        if local is not None and local.shasums == record.shasums and await self._have(local, record):
            return result("skipped", "already here")
        if self._dry_run:
            return result("planned", "would copy")
        try:
            verify_recorded(record)
        except BadRequest as exc:
            raise BadRequest(f"{name} {version}: {exc}; nothing stored") from None
        size = 0
        for file in record.platforms:
            if not await self._blobs.exists(file.blob_key):
                await self._fetch(name, version, record, file.filename, urls.get(file.filename, ""))
            size += file.size or 0
        copied = replace(record, published_at=now_rfc3339(), source=f"upstream:{self._owner.ref}")
        outcome = await self._store.publish_provider_version(NewProviderVersion(copied, self._owner))
        if outcome.status == "conflict":
            raise Conflict(f"{name} {version} exists here with another SHA256SUMS; versions are immutable")
        return result("copied", ", ".join(record.platform_names), size)

    async def _have(self, local: ProviderVersion, record: ProviderVersion) -> bool:
        platforms = {f.platform for f in local.platforms if f.complete}
        if any(f.platform not in platforms for f in record.platforms):
            return False
        for file in local.platforms:
            if not await self._blobs.exists(file.blob_key):
                return False
        return True

    async def _fetch(self, name: str, version: str, record: ProviderVersion, filename: str, url: str) -> None:
        file = next(f for f in record.platforms if f.filename == filename)
        what = f"downloading {filename} of {name} {version}"
        if not url:
            raise BadRequest(f"{what}: the other mirror gave no URL for it")
        await asyncio.to_thread(self._spool_dir.mkdir, parents=True, exist_ok=True)
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sync-", dir=self._spool_dir))
        try:
            path = workdir / "provider.zip"
            sha256, size = await self._source.download_file(url, path, self._limits.max_zip_bytes, what)
            if sha256 != file.sha256 or size != file.size:
                raise BadRequest(f"{what}: it is not the zip the signed SHA256SUMS lists; nothing stored")
            try:
                h1 = (await asyncio.to_thread(check_provider_zip, path, record.address.type, self._limits)).h1
            except MirrorError as exc:
                raise BadRequest(f"{what}: the zip is refused: {exc}") from None
            if h1 != file.h1:
                raise BadRequest(f"{what}: its h1 is {h1}, not {file.h1} as recorded; nothing stored")
            await self._blobs.put_file(file.blob_key, path, sha256=sha256, size=size)
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
