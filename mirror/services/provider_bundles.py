"""Providers in bundles: what ``mirror export`` adds beside modules, and how ``mirror import``
checks and records them.

Export takes every live provider version (of ``namespace``; released after ``since``) with the
zips this registry holds, under the hostname they are recorded with here: this registry's own stay
its own (``""``) on the importing registry, copies of an upstream's stay under that upstream's
hostname, which the importing registry's network mirror then serves without an upstream.

Import verifies before anything is written (phase 1, beside the modules' checks): each version's
SHA256SUMS signature with the key recorded with it, every zip listed with its sha256 (the zips
themselves were checked while the bundle was read: sha256, contents, ``h1``), no version here
with another SHA256SUMS, and no provider owned by another source. Phase 2 stores the zips and
records each version for the owner ``bundle``, with its events.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mirror.domain.errors import BadRequest, MirrorError, NotFound
from mirror.domain.events import PROVIDER_PLATFORMS_ADDED, PROVIDER_VERSION_RELEASED
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import NewProviderVersion, ProviderVersion, provider_name, provider_refusal
from mirror.domain.providers import parse_shasums
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.versions import Version
from mirror.formats.bundle import BundleError, BundleWriter, Manifest
from mirror.formats.openpgp import parse_public_key, verify_detached
from mirror.storage.protocols import BlobStore, MetadataStore

_EVENT_PAGE = 1000


# -- export ------------------------------------------------------------------------------------


async def collect_providers(store: MetadataStore, namespace: str | None, since: int | None, latest: int) -> list[ProviderVersion]:
    """Live provider versions with at least one stored zip, sorted by provider and SemVer."""
    released = await _released_after(store, since, latest) if since is not None else None
    chosen: list[ProviderVersion] = []
    for record in await store.list_providers():
        if namespace is not None and record.address.namespace.lower() != namespace.lower():
            continue
        live = await store.provider_versions(record.hostname, record.address)
        for version in sorted(live, key=lambda v: Version.parse(v.version)):
            key = (version.hostname, version.address.namespace.lower(), version.address.type, version.version)
            if released is not None and key not in released:
                continue
            if any(file.complete for file in version.platforms):
                chosen.append(version)
    return chosen


async def _released_after(store: MetadataStore, since: int, latest: int) -> set[tuple[str, str, str, str]]:
    found: set[tuple[str, str, str, str]] = set()
    after = since
    while after < latest:
        page = await store.events_after(after, _EVENT_PAGE, (PROVIDER_VERSION_RELEASED, PROVIDER_PLATFORMS_ADDED))
        for event in page:
            if event.serial <= latest:
                data = event.data
                found.add((str(data.get("hostname", "")), str(data.get("namespace", "")).lower(),
                           str(data.get("type", "")), str(data.get("version", ""))))
        if not page:
            break
        after = page[-1].serial
    return found


async def add_zips(writer: BundleWriter, blobs: BlobStore, versions: list[ProviderVersion]) -> tuple[int, int]:
    """Write each distinct complete zip once as ``providers/<sha256>.zip``; (count, bytes)."""
    written: set[str] = set()
    total = 0
    for version in versions:
        for file in version.platforms:
            if not file.complete or file.sha256 in written:
                continue
            assert file.size is not None
            written.add(file.sha256)
            total += file.size
            await _add_zip(writer, blobs, version, file.blob_key, file.sha256, file.size)
    return len(written), total


async def _add_zip(writer: BundleWriter, blobs: BlobStore, version: ProviderVersion, key: str, sha256: str, size: int) -> None:
    name = f"{provider_name(version.hostname, version.address)} {version.version}"
    await asyncio.to_thread(writer.begin, f"providers/{sha256}.zip", size)
    digest = hashlib.sha256()
    written = 0
    try:
        async for chunk in blobs.open(key):
            written += len(chunk)
            if written > size:
                break
            await asyncio.to_thread(writer.write, chunk, digest)
    except NotFound:
        raise MirrorError(f"a zip of {name} ({key}) is missing from the blob store; nothing was exported") from None
    if written != size or digest.hexdigest() != sha256:
        raise MirrorError(f"the stored zip {key} of {name} does not match its recorded sha256 and size; nothing was exported")
    await asyncio.to_thread(writer.end_member, size)


# -- import --------------------------------------------------------------------------------------


async def check_providers(store: MetadataStore, manifest: Manifest) -> set[tuple[str, str, str, str]]:
    """Phase 1 for the bundle's providers; the versions here already with the same SHA256SUMS."""
    present: set[tuple[str, str, str, str]] = set()
    owners_checked: set[tuple[str, str, str]] = set()
    for version in manifest.providers:
        name = f"{provider_name(version.hostname, version.address)} {version.version}"
        await asyncio.to_thread(_verify, name, version)
        provider_key = (version.hostname, version.address.namespace.lower(), version.address.type)
        if provider_key not in owners_checked:
            owners_checked.add(provider_key)
            record = await store.get_provider(version.hostname, version.address)
            if record is not None and record.owner != Owner.bundle():
                refusal = provider_refusal(version.hostname, version.address, record.owner, Owner.bundle(),
                                           "add versions to", source_url=record.source_url)
                raise BundleError(f"bundle refused: {refusal}; nothing was imported")
        stored = await store.get_provider_version(version.hostname, version.address, version.version)
        if stored is not None:
            if stored.shasums != version.shasums:
                raise BundleError(
                    f"bundle refused: {name} already exists in this registry with another SHA256SUMS; versions are "
                    "immutable; nothing was imported"
                )
            present.add((*provider_key, version.version))
    return present


def _verify(name: str, version: ProviderVersion) -> None:
    try:
        verify_recorded(version)
    except BadRequest as exc:
        raise BundleError(f"bundle refused: {name}: {exc}; nothing was imported") from None


def verify_recorded(version: ProviderVersion) -> None:
    """A copied version's own proof (BadRequest naming what fails): its SHA256SUMS signature
    verifies with the key recorded with it, and lists every platform's zip with its sha256."""
    try:
        key = parse_public_key(version.key_armor)
        verify_detached(version.shasums, version.signature, [key])
        sums = parse_shasums(version.shasums)
    except BadRequest as exc:
        raise BadRequest(f"its SHA256SUMS does not verify ({exc})") from None
    for file in version.platforms:
        if sums.get(file.filename) != file.sha256:
            raise BadRequest(f"{file.filename} with sha256 {file.sha256} is not in its signed SHA256SUMS")


async def import_providers(
    store: MetadataStore, blobs: BlobStore, manifest: Manifest, spooled: dict[str, Path], report: Callable[[str], None]
) -> tuple[int, int]:
    """Phase 2: store the zips and record each provider version for ``bundle``; (imported, unchanged)."""
    imported = unchanged = 0
    for version in manifest.providers:
        name = f"{provider_name(version.hostname, version.address)} {version.version}"
        for file in version.platforms:
            assert file.size is not None
            if not await blobs.exists(file.blob_key):
                await blobs.put_file(file.blob_key, spooled[file.sha256], sha256=file.sha256, size=file.size)
        recorded = replace(version, published_at=now_rfc3339(), source=version.source or "bundle")
        outcome = await store.publish_provider_version(NewProviderVersion(recorded, Owner.bundle()))
        if outcome.status in ("created", "extended"):
            imported += 1
            report(f"imported {name}" + (" (platforms added)" if outcome.status == "extended" else ""))
        else:
            unchanged += 1
            report(f"unchanged {name}")
    return imported, unchanged
