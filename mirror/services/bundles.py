"""Verified bundles for air-gapped registries: ``mirror export`` writes one, ``mirror import`` reads it.

The file itself (a plain tar: ``manifest.json``, ``manifest.sig`` when signed, then the archives)
is read and written by ``mirror.formats.bundle``; this module moves it to and from the stores.

Import runs in two phases. Phase 1 verifies everything and writes nothing to the registry: the
tar read to its end, the signature, the manifest, every archive's size and sha256 (while it is
copied to a spool directory), the archive checks of a publish, names and versions, and that no
version exists here with other bytes. Phase 2 then ingests each version through the one ingest
path (``Ingestor.publish``), so the usual events are written and a version already present with
the same bytes is left unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror.domain.audit import Actor, acting_as
from mirror.domain import provenance
from mirror.domain.events import MODULE_RENAMED, VERSION_RELEASED
from mirror.domain.errors import BadRequest, MirrorError, NotFound, StorageUnavailable
from mirror.domain.models import ModuleVersion
from mirror.domain.provenance import Owner
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.versions import Version
from mirror.formats.archive import ArchiveLimits
from mirror.formats.bundle import (
    MANIFEST_NAME,
    MAX_MANIFEST_DEPTH,
    SIGNATURE_NAME,
    BundleError,
    BundleReader,
    BundleVersion,
    BundleWriter,
    Manifest,
    discard,
    encode_manifest,
    manifest_signature,
    parse_manifest,
    replace_synced,
)
from mirror.domain.provider_records import provider_name
from mirror.formats.bundle_providers import provider_entries
from mirror.formats.provider_zip import ProviderZipLimits
from mirror.services.ingest import Archive, Ingestor
from mirror.services.provider_bundles import add_zips, check_providers, collect_providers, import_providers
from mirror.storage.protocols import BlobStore, MetadataStore

__all__ = [
    "MAX_MANIFEST_DEPTH",
    "BundleError",
    "BundleVersion",
    "ExportResult",
    "ImportResult",
    "Manifest",
    "describe_size",
    "export_bundle",
    "import_bundle",
    "manifest_signature",
    "parse_manifest",
    "plural",
    "summarize_versions",
]

_EVENT_PAGE = 1000


# -- export ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    modules: int
    versions: int
    archives: int
    archive_bytes: int
    events_from: int
    events_to: int
    signed: bool
    provider_versions: int = 0
    zips: int = 0
    zip_bytes: int = 0


async def export_bundle(
    store: MetadataStore,
    blobs: BlobStore,
    out: Path,
    *,
    namespace: str | None = None,
    since: int | None = None,
    source: str | None = None,
    key: bytes | None = None,
) -> ExportResult:
    """Write the live versions (of ``namespace``, released after serial ``since``) to ``out``.

    The bundle is written to ``OUT.part`` and renamed into place once complete and synced, so a
    crash never leaves a half bundle under the final name. Archives are streamed from the blob
    store, and their sha256 and size checked on the way: a damaged blob fails the export.
    """
    latest = await store.latest_serial()
    if since is not None and since > latest:
        raise BadRequest(f"--since {since} is past this registry's latest event serial ({latest})")
    released = await _released_after(store, since, latest) if since is not None else None
    modules, versions = await _collect(store, namespace, released)

    archives: dict[str, ModuleVersion] = {}  # sha256 -> a version stored under it, in manifest order
    for version in versions:
        archives.setdefault(version.sha256, version)
    providers = await collect_providers(store, namespace, since, latest)
    manifest_bytes = encode_manifest(
        created_at=now_rfc3339(), source=source, namespace=namespace, since=since, latest=latest, modules=modules,
        providers=provider_entries(providers),
    )

    part = out.with_name(out.name + ".part")
    try:
        writer = await asyncio.to_thread(BundleWriter.create, part)
        try:
            await asyncio.to_thread(writer.add_bytes, MANIFEST_NAME, manifest_bytes)
            if key is not None:
                await asyncio.to_thread(writer.add_bytes, SIGNATURE_NAME, manifest_signature(manifest_bytes, key).encode() + b"\n")
            for version in archives.values():
                await _add_archive(writer, blobs, version)
            zips, zip_bytes = await add_zips(writer, blobs, providers)
            await asyncio.to_thread(writer.finish)
        finally:
            await asyncio.to_thread(writer.close)
        await asyncio.to_thread(replace_synced, part, out)
    except OSError as exc:
        discard(part)
        raise MirrorError(f"cannot write the bundle {out}: {exc.strerror or exc}") from None
    except BaseException:  # a refused blob, a storage error, an interrupt: no half bundle is left
        discard(part)
        raise
    return ExportResult(
        path=out,
        modules=len(modules),
        versions=len(versions),
        archives=len(archives),
        archive_bytes=sum(v.size for v in archives.values()),
        events_from=(since or 0) + 1,
        events_to=latest,
        signed=key is not None,
        provider_versions=len(providers),
        zips=zips,
        zip_bytes=zip_bytes,
    )


async def _released_after(store: MetadataStore, since: int, latest: int) -> _Released:
    """What the events in ``(since, latest]`` released: versions, and modules renamed since
    (a renamed module's versions go again under the new name)."""
    released = _Released()
    after = since
    while after < latest:
        page = await store.events_after(after, _EVENT_PAGE, (VERSION_RELEASED, MODULE_RENAMED))
        for event in page:
            if event.serial > latest:
                return released
            data = event.data
            module = (str(data.get("namespace", "")).lower(), str(data.get("name", "")).lower(), data.get("provider"))
            if event.type == VERSION_RELEASED:
                released.versions.add((*module, data.get("version")))
            else:
                released.modules.add(module)
        if not page:
            break
        after = page[-1].serial
    return released


@dataclass
class _Released:
    versions: set[tuple[Any, ...]] = field(default_factory=set)
    modules: set[tuple[Any, ...]] = field(default_factory=set)

    def __contains__(self, version: ModuleVersion) -> bool:
        a = version.address
        module = (a.namespace.lower(), a.name.lower(), a.provider)
        return module in self.modules or (*module, version.version) in self.versions


async def _collect(
    store: MetadataStore, namespace: str | None, released: _Released | None
) -> tuple[list[dict[str, Any]], list[ModuleVersion]]:
    """The manifest's ``modules`` entries and the versions they list, sorted by address and SemVer."""
    modules: list[dict[str, Any]] = []
    chosen: list[ModuleVersion] = []
    for summary in await store.latest_versions(namespace=namespace):
        address = summary.version.address
        live = [v for v in await store.list_versions(address) if released is None or v in released]
        if not live:
            continue
        live.sort(key=lambda v: Version.parse(v.version))
        entries = []
        for v in live:
            entries.append(
                {
                    "version": v.version,
                    "raw_version": v.raw_version,
                    "sha256": v.sha256,
                    "size": v.size,
                    "published_at": v.published_at,
                    "readme": v.readme,
                    "source": v.source,
                    "commit_sha": v.commit_sha,
                    "analysis": await store.version_analysis(address, v.version),
                }
            )
        modules.append(
            {"namespace": address.namespace, "name": address.name, "provider": address.provider, "versions": entries}
        )
        chosen += live
    return modules, chosen


async def _add_archive(writer: BundleWriter, blobs: BlobStore, version: ModuleVersion) -> None:
    await asyncio.to_thread(writer.begin, f"archives/{version.sha256}.tar.gz", version.size)
    digest = hashlib.sha256()
    size = 0
    stream = blobs.open(version.blob_key)
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > version.size:
                break
            await asyncio.to_thread(writer.write, chunk, digest)
    except NotFound:
        raise MirrorError(
            f"the archive of {version.address} {version.version} ({version.blob_key}) is missing from the blob "
            "store; nothing was exported"
        ) from None
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    if size != version.size or digest.hexdigest() != version.sha256:
        raise MirrorError(
            f"the stored archive of {version.address} {version.version} ({version.blob_key}) does not match "
            f"its recorded sha256 and size ({version.sha256}, {version.size} bytes): the blob store is damaged; "
            "nothing was exported"
        )
    await asyncio.to_thread(writer.end_member, version.size)


# -- import --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportResult:
    imported: int
    unchanged: int
    manifest: Manifest
    signature: str  # "verified", "unchecked" (present, no key given) or "absent"
    providers_imported: int = 0
    providers_unchanged: int = 0


async def import_bundle(
    store: MetadataStore,
    ingestor: Ingestor,
    path: Path,
    *,
    spool_dir: Path,
    limits: ArchiveLimits,
    key: bytes | None = None,
    dry_run: bool = False,
    report: Callable[[str], None] = lambda line: None,
    blobs: BlobStore | None = None,
    zip_limits: ProviderZipLimits = ProviderZipLimits(),
) -> ImportResult:
    """Verify the bundle at ``path`` completely, then (unless ``dry_run``) ingest its versions.

    ``report`` is told one line per version, and about the signature. Raises BundleError, with
    nothing written, for a bundle that is damaged, tampered with, badly signed, holds an archive
    a publish would refuse, or a version this registry has with other bytes.
    """
    with acting_as(Actor.bundle(path.name)):  # its changes are the bundle's (mirror.domain.audit)
        try:
            await asyncio.to_thread(spool_dir.mkdir, parents=True, exist_ok=True)
            spool = await asyncio.to_thread(tempfile.TemporaryDirectory, prefix="bundle-", dir=spool_dir)
        except OSError as exc:
            raise StorageUnavailable(f"spool directory {spool_dir} is not usable: {exc.strerror or exc}") from None
        try:
            reader = await asyncio.to_thread(BundleReader.open, path)
            try:
                manifest, signature = await asyncio.to_thread(reader.read_head, key)
                existing = await _existing(store, manifest)  # refuses other bytes before any archive is copied
                present = await check_providers(store, manifest)
                if manifest.providers and blobs is None:
                    raise BundleError("bundle refused: it holds providers, and no blob store was given to import them into")
                spooled = await asyncio.to_thread(reader.read_archives, manifest, Path(spool.name), limits, zip_limits)
            finally:
                await asyncio.to_thread(reader.close)
            report(_SIGNATURE_LINES[signature])  # phase 1 is over: the whole bundle is verified
            if dry_run:
                for version in manifest.versions:
                    report(f"{'unchanged' if existing.get(version) else 'would import'} {version}")
                for pv in manifest.providers:
                    here = (pv.hostname, pv.address.namespace.lower(), pv.address.type, pv.version) in present
                    report(f"{'unchanged' if here else 'would import'} {provider_name(pv.hostname, pv.address)} {pv.version}")
                return ImportResult(0, sum(1 for v in manifest.versions if existing.get(v)), manifest, signature, 0, len(present))
            result = await _ingest(ingestor, manifest, spooled, report, signature)
            if not manifest.providers:
                return result
            assert blobs is not None
            imported, unchanged = await import_providers(store, blobs, manifest, spooled, report)
            return dataclasses.replace(result, providers_imported=imported, providers_unchanged=unchanged)
        finally:
            await asyncio.to_thread(spool.cleanup)


_SIGNATURE_LINES = {
    "verified": "signature: verified (HMAC-SHA256 of manifest.json)",
    "unchecked": "signature: present but NOT checked (no signing key given: --signing-key-file or $MIRROR_BUNDLE_KEY)",
    "absent": "signature: none (unsigned bundle)",
}


async def _existing(store: MetadataStore, manifest: Manifest) -> dict[BundleVersion, ModuleVersion]:
    """The bundle's versions this registry already has with the same bytes; refuses other bytes,
    then modules that another source than bundles owns (``mirror.domain.provenance``)."""
    found: dict[BundleVersion, ModuleVersion] = {}
    for version in manifest.versions:
        stored = await store.get_version(version.address, version.version)
        if stored is None:
            continue
        if stored.sha256 != version.sha256:
            raise BundleError(
                f"bundle refused: {version} already exists in this registry with other content "
                f"(sha256 {stored.sha256}, the bundle has {version.sha256}); versions are immutable; nothing was imported"
            )
        found[version] = stored
    checked: set[str] = set()
    for version in manifest.versions:
        if str(version.address).lower() in checked:
            continue
        checked.add(str(version.address).lower())
        module = await store.get_module(version.address)
        if module is not None and module.owner != Owner.bundle():
            refusal = provenance.refusal(
                version.address, module.owner, Owner.bundle(), "add versions to", source_url=module.source_url
            )
            raise BundleError(f"bundle refused: {refusal}; nothing was imported")
    return found


async def _ingest(
    ingestor: Ingestor, manifest: Manifest, spooled: dict[str, Path], report: Callable[[str], None], signature: str
) -> ImportResult:
    imported = unchanged = 0
    for version in manifest.versions:
        archive = Archive(path=spooled[version.sha256], sha256=version.sha256, size=version.size)
        try:
            outcome = await ingestor.publish(
                version.address,
                version.raw_version,
                archive,
                source=version.source,
                commit_sha=version.commit_sha,
                origin="bundle",
                owner=Owner.bundle(),
            )
        except MirrorError as exc:
            raise MirrorError(
                f"import stopped at {version}: {exc} ({imported} versions imported before it; "
                "the import is idempotent, run it again once the cause is fixed)"
            ) from None
        if outcome.status == "created":
            imported += 1
            report(f"imported {version}")
        else:
            unchanged += 1
            revoked = " (revoked in this registry; left revoked)" if outcome.version.revoked_at else ""
            report(f"unchanged {version}{revoked}")
    return ImportResult(imported, unchanged, manifest, signature)


def describe_size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summarize_versions(versions: Iterable[BundleVersion]) -> tuple[int, int]:
    """(modules, versions) counted in ``versions``."""
    items = list(versions)
    return len({(v.address.namespace.lower(), v.address.name.lower(), v.address.provider) for v in items}), len(items)
