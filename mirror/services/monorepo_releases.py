"""What every source does with a monorepo (``mirror.domain.monorepo``), whatever the forge: publish
the release a tag made (``mirror.formats.subtree.release_for_tag``) into its module, and bring the
modules a repository owns in line with its tags.

A source reads its forge (the tagged tarball, the tag list) and calls these with what it read and
the owner source its modules belong to (``github:<id>``, ``gitlab:<id>``); the rules are the same
for all: a module another source owns is refused, a tag moved to another commit is refused
(versions are immutable), a version whose tag is gone is revoked unless it was uploaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mirror.domain import monorepo, provenance
from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import Conflict
from mirror.domain.models import ModuleRecord, ModuleVersion
from mirror.domain.monorepo import Mapping
from mirror.domain.provenance import Owner
from mirror.formats.subtree import Release, Skipped
from mirror.services.ingest import Archive, Ingestor
from mirror.storage.protocols import MetadataStore


@dataclass(frozen=True, slots=True)
class Published:
    address: ModuleAddress
    version: str
    status: str  # the ingestor's status, or "present" when the version was already released


@dataclass(slots=True)
class SyncPlan:
    """The tags to ingest and the versions to revoke, from a repository's tags and its modules."""

    ingest: list[str] = field(default_factory=list)
    revoke: list[tuple[ModuleAddress, str]] = field(default_factory=list)


def file_missing(outcome: Skipped, tag: str) -> bool:
    """Whether a skipped tag was skipped only because its tree has no ``.mirror.toml`` (a project
    found by its tags that is no monorepo after all: ignored, not a failure)."""
    return outcome.reason.startswith(f"tag {tag}: no {monorepo.FILE_NAME}")


async def owned_modules(store: MetadataStore, namespace: str, owner: Owner) -> list[ModuleRecord]:
    return [record for record in await store.list_modules(namespace) if record.owner == owner]


async def publish_release(
    store: MetadataStore,
    ingestor: Ingestor,
    release: Release,
    *,
    namespace: str,
    owner: Owner,
    source_url: str,
    commit_sha: str,
    origin: str,
    where: str,
    installation_id: int | None = None,
) -> Published:
    """Publish ``release`` (a tag's module and archive) into ``<namespace>/<name>/<provider>``,
    owned by ``owner``. NotOwner when another source owns the module; Conflict when the version
    was released from another commit; nothing happens when it is already released from this one."""
    match = release.match
    address = match.module.address(namespace)
    module = await store.get_module(address)
    if module is not None:
        provenance.check(address, module.owner, owner, "add versions to", source_url=module.source_url)
    existing = await store.get_version(address, match.version)
    if existing is not None and existing.commit_sha and existing.commit_sha != commit_sha:
        raise Conflict(
            f"{where} now points at {commit_sha}, but {address} {match.version} was released from "
            f"{existing.commit_sha}; versions are immutable, so it was not changed"
        )
    if existing is not None and existing.revoked_at is None:
        return Published(address, match.version, "present")
    await store.ensure_module(address, owner=owner, source_url=source_url, installation_id=installation_id)
    result = await ingestor.publish(
        address,
        match.raw_version,
        Archive(release.archive.path, release.archive.sha256, release.archive.size),
        owner=owner,
        source=source_url,
        commit_sha=commit_sha,
        origin=origin,
        reinstate=True,
    )
    return Published(address, match.version, result.status)


def plan_sync(
    mapping: Mapping | None,
    namespace: str,
    tags: dict[str, str],
    released: dict[ModuleAddress, dict[str, ModuleVersion]],
    takes_tag: Callable[[str], bool],
) -> SyncPlan:
    """Which of ``tags`` (name -> commit) to ingest and which released versions to revoke.

    With ``mapping`` (from config) each tag's module is known: a tag is ingested unless its module
    holds its version from its commit. Without (``.mirror.toml`` in each tag), a tag that
    ``takes_tag`` is ingested unless some module of the repository holds a version it may name at
    its commit. A version released from a commit whose tag is gone is revoked; uploads stay."""
    plan = SyncPlan()
    wanted: set[tuple[ModuleAddress | None, str, str]] = set()  # (module, or None: any; version; commit)
    for tag, sha in tags.items():
        if mapping is not None:
            match = mapping.match(tag)
            if match is None:
                continue
            address = match.module.address(namespace)
            wanted.add((address, match.version, sha))
            current = released.get(address, {}).get(match.version)
            if current is None or current.revoked_at is not None or current.commit_sha != sha:
                plan.ingest.append(tag)
            continue
        versions = monorepo.candidate_versions(tag)
        wanted.update((None, version, sha) for version in versions)
        held = any(
            (record := by_version.get(version)) is not None and record.commit_sha == sha and record.revoked_at is None
            for by_version in released.values()
            for version in versions
        )
        if versions and not held and takes_tag(tag):
            plan.ingest.append(tag)
    for address, by_version in released.items():
        for version, record in by_version.items():
            if record.revoked_at is not None or not record.commit_sha:
                continue
            if (address if mapping is not None else None, version, record.commit_sha) not in wanted:
                plan.revoke.append((address, version))
    return plan
