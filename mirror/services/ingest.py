"""The one path by which a module version enters the registry.

Uploads now, GitHub tags, syncs and bundles later: every archive is checked, stored under its
content address, and recorded with its events in one metadata transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from mirror.domain.addresses import ModuleAddress
from mirror.formats.archive import ArchiveLimits, check_archive
from mirror.domain.blobs import archive_key
from mirror.domain import events, provenance
from mirror.domain.events import EventSpec
from mirror.domain.models import ModuleVersion, NewVersion, PublishOutcome
from mirror.domain.provenance import NotOwner, Owner
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.versions import normalize
from mirror.domain.errors import Conflict, MirrorError
from mirror.services.analysis import Analyzer
from mirror.services.catalog import ModuleCatalog
from mirror.storage.protocols import BlobStore, ModuleAdmin, ModuleIndex, ModulePublisher

log = structlog.get_logger("mirror.ingest")

#: told each offered version's origin ("upload" or "github") and outcome ("created", "unchanged",
#: "rejected" when the version or archive is refused, "failed" otherwise), for ``/metrics``
IngestOutcomeCounter = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Archive:
    """A module archive spooled to a local file, with its digest and size."""

    path: Path
    sha256: str
    size: int


class Ingestor:
    def __init__(
        self,
        index: ModuleIndex | ModuleAdmin,
        publisher: ModulePublisher,
        blobs: BlobStore,
        catalog: ModuleCatalog,
        limits: ArchiveLimits,
        *,
        on_outcome: IngestOutcomeCounter = lambda origin, outcome: None,
        analyzer: Analyzer | None = None,
    ) -> None:
        self._index = index
        #: parses .tf files in child processes under limits; without one, default limits and no cache
        self._analyzer = analyzer or Analyzer()
        self._publisher = publisher
        self._blobs = blobs
        self._catalog = catalog
        self._limits = limits
        self._on_outcome = on_outcome

    async def publish(
        self,
        address: ModuleAddress,
        raw_version: str,
        archive: Archive,
        *,
        owner: Owner,
        source: str | None = None,
        commit_sha: str | None = None,
        origin: str | None = None,
        reinstate: bool = False,
    ) -> PublishOutcome:
        """Check, store and record one version, for the source ``owner``.

        The module's owner source decides first (``mirror.domain.provenance``): a module another
        source owns refuses the version with NotOwner (409), before anything is read or stored,
        unless it allows uploads and this is one. A new module is recorded as ``owner``'s.

        Same version with the same bytes: ``unchanged`` and nothing is written; but a revoked one
        is released again (``created``, ``module.version_released``) when ``reinstate`` is set,
        as a GitHub tag pushed back at its commit is. Same version with other bytes: Conflict
        (versions are immutable). Raises InvalidArchive / PayloadTooLarge before anything is
        stored. ``origin`` labels the metrics (upload, github, sync, bundle).
        """
        if origin is None:
            origin = "upload" if source == "upload" else "github"  # GitHub tags carry their repository's URL
        try:
            outcome = await self._publish_owned(
                address, raw_version, archive, owner=owner, source=source, commit_sha=commit_sha, reinstate=reinstate
            )
        except Exception as exc:  # counted, not handled
            self._on_outcome(origin, "rejected" if isinstance(exc, MirrorError) and exc.status < 500 else "failed")
            raise
        self._on_outcome(origin, outcome.status)
        return outcome

    async def _publish_owned(
        self,
        address: ModuleAddress,
        raw_version: str,
        archive: Archive,
        *,
        owner: Owner,
        source: str | None,
        commit_sha: str | None,
        reinstate: bool,
    ) -> PublishOutcome:
        """Decide against the module's owner as read; the store writes only while it still is,
        so an owner changed meanwhile (an admin's change, another source creating the module)
        means reading and deciding again."""
        for attempt in range(3):
            module = await self._index.get_module(address)
            expected = module.owner if module else None
            provenance.check(
                address,
                expected,
                owner,
                "add versions to",
                allow_uploads=module.allow_uploads if module else False,
                source_url=module.source_url if module else None,
            )
            try:
                return await self._publish(
                    address,
                    raw_version,
                    archive,
                    owner=owner,
                    expected_owner=expected,
                    source=source,
                    commit_sha=commit_sha,
                    reinstate=reinstate,
                )
            except NotOwner:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _publish(
        self,
        address: ModuleAddress,
        raw_version: str,
        archive: Archive,
        *,
        owner: Owner,
        expected_owner: Owner | None,
        source: str | None,
        commit_sha: str | None,
        reinstate: bool,
    ) -> PublishOutcome:
        version = normalize(raw_version)
        existing = await self._index.get_version(address, version)
        if existing is not None:
            if reinstate and existing.revoked_at is not None and existing.sha256 == archive.sha256:
                if expected_owner is not None and not provenance.released_by(
                    expected_owner, existing.commit_sha, existing.source
                ):
                    raise NotOwner(
                        f"{address} {version} was uploaded into the module, not released by "
                        f"{owner.describe()}; it stays revoked"
                    )
                return await self._reinstate(existing, owner, expected_owner)
            return self._same_or_conflict(existing, archive)

        info = await asyncio.to_thread(check_archive, archive.path, self._limits)
        analysis = await self._analyzer.analyze(archive.path, self._limits)
        key = archive_key(archive.sha256)
        if not await self._blobs.exists(key):
            await self._blobs.put_file(key, archive.path, sha256=archive.sha256, size=archive.size)

        record = ModuleVersion(
            address=address,
            version=version,
            raw_version=raw_version,
            sha256=archive.sha256,
            size=archive.size,
            blob_key=key,
            published_at=now_rfc3339(),
            readme=info.readme,
            source=source,
            commit_sha=commit_sha,
        )
        outcome = await self._publisher.publish_version(
            NewVersion(
                record,
                [self._released(record)],
                analysis=analysis,
                owner=owner,
                expected_owner=expected_owner,
            )
        )
        self._catalog.invalidate(address)
        if outcome.status != "created":  # another writer recorded it first
            return self._same_or_conflict(outcome.version, archive)
        log.info("version published", module=str(address), version=version, sha256=archive.sha256, size=archive.size)
        return outcome

    async def _reinstate(self, revoked: ModuleVersion, owner: Owner, expected_owner: Owner | None) -> PublishOutcome:
        """Release a revoked version again, as it was (same bytes, same record)."""
        outcome = await self._publisher.publish_version(
            NewVersion(
                revoked,
                [self._released(revoked)],
                owner=owner,
                expected_owner=expected_owner,
            )
        )
        self._catalog.invalidate(revoked.address)
        log.info("version reinstated", module=str(revoked.address), version=revoked.version, sha256=revoked.sha256)
        return outcome

    def _released(self, version: ModuleVersion) -> EventSpec:
        """The ``module.version_released`` event."""
        return events.version_released(version.address, version.version, self._blobs.url(version.blob_key))

    @staticmethod
    def _same_or_conflict(existing: ModuleVersion, archive: Archive) -> PublishOutcome:
        if existing.sha256 == archive.sha256:
            return PublishOutcome("unchanged", existing)
        raise Conflict(
            f"{existing.address} {existing.version} already exists with other content "
            f"(sha256 {existing.sha256}); versions are immutable, publish a new version instead"
        )
