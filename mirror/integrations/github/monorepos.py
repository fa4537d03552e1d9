"""GitHub repositories that release several modules (``mirror.domain.monorepo``): their tags
ingested into the module each one names, their modules kept in line on sync.

A repository is a monorepo when ``[[github.monorepos]]`` lists it (with its modules, or without to
read them from ``.mirror.toml`` in each tag), or when it already owns modules of a mapping, or,
for a repository whose name holds no module, when one of its tags looks like a monorepo's
(``<prefix>/<version>``, ``<prefix>-<version>``) and the tagged tree has a ``.mirror.toml``.
Every module it releases is an ordinary module owned by the repository (``github:<id>``).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from mirror.domain import monorepo, provenance
from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import BadRequest, Conflict, InvalidArchive
from mirror.domain.models import ModuleRecord
from mirror.domain.monorepo import Mapping
from mirror.domain.provenance import Owner
from mirror.formats.archive import ArchiveLimits
from mirror.formats.subtree import Skipped, release_for_tag
from mirror.integrations.github.api import GitHubClient, Repository
from mirror.integrations.github.naming import Naming
from mirror.services.ingest import Archive, Ingestor
from mirror.storage.protocols import MetadataStore

log = structlog.get_logger("mirror.github")

#: (payload) -> None: queue one ``github.ingest_tag`` job
QueueTag = Callable[[dict[str, Any]], Awaitable[Any]]


class Monorepos:
    def __init__(
        self,
        *,
        store: MetadataStore,
        ingestor: Ingestor,
        client: GitHubClient,
        naming: Naming,
        limits: ArchiveLimits,
        spool_dir: Path,
    ) -> None:
        self._store = store
        self._ingestor = ingestor
        self._client = client
        self._naming = naming
        self._limits = limits
        self._spool_dir = spool_dir

    def declared(self, owner: str, name: str) -> bool:
        return self._naming.monorepo_for(owner, name) is not None

    def mapping(self, owner: str, name: str) -> Mapping | None:
        entry = self._naming.monorepo_for(owner, name)
        return entry.mapping if entry is not None else None

    def takes_tag(self, owner: str, name: str, tag: str) -> bool:
        """Whether a tag pushed to a repository that is not a single module's is worth an ingest job:
        in a declared monorepo, any tag that may name a version; elsewhere (discovery), only a
        prefixed one."""
        if not monorepo.may_release(tag):
            return False
        if self.declared(owner, name):
            return True
        return self._naming.provider_for(owner, name) is None and bool(monorepo.prefixed_versions(tag))

    async def owned_modules(self, namespace: str, repository_id: int) -> list[ModuleRecord]:
        owner = Owner.github(repository_id)
        return [record for record in await self._store.list_modules(namespace) if record.owner == owner]

    # -- one tag -------------------------------------------------------------------------------

    async def ingest_tag(self, repository: Repository, tag: str, commit_sha: str, installation_id: int | None) -> None:
        """Ingest ``tag`` into the module it names. A tag that names none is skipped; one that
        names none although the mapping exists fails the job with the reason (permanent)."""
        mapping = self.mapping(repository.owner, repository.name)
        namespace = self._naming.namespace_for(repository.owner)
        where = f"{repository.full_name} tag {tag}"
        with tempfile.TemporaryDirectory(prefix="github-", dir=self._spool_dir) as tmp:
            raw, out = Path(tmp) / "github.tar.gz", Path(tmp) / "module.tar.gz"
            with raw.open("wb") as sink:
                await self._client.download_tarball(
                    repository.owner, repository.name, tag, installation_id, sink, self._limits.max_archive_bytes
                )
            try:
                outcome = await asyncio.to_thread(release_for_tag, raw, tag, mapping, out, self._limits)
            except InvalidArchive as exc:
                raise InvalidArchive(f"{where}: {exc}") from None
            if isinstance(outcome, Skipped):
                declared = self.declared(repository.owner, repository.name)
                if declared or not outcome.reason.startswith(f"tag {tag}: no {monorepo.FILE_NAME}"):
                    log.warning("tag skipped: it releases no module", repository=repository.full_name, tag=tag, reason=outcome.reason)
                    raise BadRequest(f"{repository.full_name}: {outcome.reason}; the tag was skipped")
                log.info("tag ignored: not a monorepo", repository=repository.full_name, tag=tag)
                return
            match = outcome.match
            address = match.module.address(namespace)
            source = Owner.github(repository.id)
            if await self._released(address, source, match.version, tag, commit_sha, repository):
                return
            await self._store.ensure_module(
                address, owner=source, source_url=repository.html_url, installation_id=installation_id
            )
            result = await self._ingestor.publish(
                address,
                match.raw_version,
                Archive(outcome.archive.path, outcome.archive.sha256, outcome.archive.size),
                owner=source,
                source=repository.html_url,
                commit_sha=commit_sha,
                origin="github",
                reinstate=True,
            )
        log.info(
            "tag ingested", module=str(address), version=match.version, tag=tag, path=match.module.path or ".",
            mapping=outcome.mapping_from, status=result.status,
        )

    async def _released(
        self, address: ModuleAddress, source: Owner, version: str, tag: str, commit_sha: str, repository: Repository
    ) -> bool:
        """True when the version is already released from this commit; raises when the module is
        another source's or the tag moved."""
        module = await self._store.get_module(address)
        if module is not None:
            provenance.check(address, module.owner, source, "add versions to", source_url=module.source_url)
        existing = await self._store.get_version(address, version)
        if existing is not None and existing.commit_sha and existing.commit_sha != commit_sha:
            raise Conflict(
                f"tag {tag} of {repository.full_name} now points at {commit_sha}, but {address} {version} was "
                f"released from {existing.commit_sha}; versions are immutable, so it was not changed"
            )
        return existing is not None and existing.revoked_at is None

    # -- the whole repository ------------------------------------------------------------------

    async def sync(self, repository: Repository, tags: dict[str, str], installation_id: int | None, queue: QueueTag) -> None:
        """Queue every tag that releases a version not yet in its module, and revoke the versions
        whose tag is gone. With the mapping in config, each tag's module is known; with
        ``.mirror.toml``, a tag is queued unless a module of the repository already holds a
        version it may name at its commit."""
        namespace = self._naming.namespace_for(repository.owner)
        source = Owner.github(repository.id)
        mapping = self.mapping(repository.owner, repository.name)
        owned = await self.owned_modules(namespace, repository.id)
        released: dict[ModuleAddress, dict[str, Any]] = {}
        for record in owned:
            released[record.address] = {v.version: v for v in await self._store.all_versions(record.address)}
        wanted: set[tuple[ModuleAddress | None, str, str]] = set()  # (module or None: any, version, sha)
        for tag, sha in tags.items():
            payload = {"installation_id": installation_id, "owner": repository.owner, "name": repository.name, "tag": tag, "commit_sha": sha}
            if mapping is not None:
                match = mapping.match(tag)
                if match is None:
                    continue
                address = match.module.address(namespace)
                wanted.add((address, match.version, sha))
                current = released.get(address, {}).get(match.version)
                if current is None or current.revoked_at is not None or current.commit_sha != sha:
                    await queue(payload)
                continue
            versions = monorepo.candidate_versions(tag)
            wanted.update((None, version, sha) for version in versions)
            held = any(
                (v := by_version.get(version)) is not None and v.commit_sha == sha and v.revoked_at is None
                for by_version in released.values()
                for version in versions
            )
            if versions and not held and self.takes_tag(repository.owner, repository.name, tag):
                await queue(payload)
        for address, by_version in released.items():
            for version, record in by_version.items():
                if record.revoked_at is not None or not record.commit_sha:
                    continue  # uploads an admin allowed into the module stay
                key = (address if mapping is not None else None, version, record.commit_sha)
                if key not in wanted and await self._store.revoke_version(address, version, owner=source):
                    log.info("version revoked: its tag is gone", module=str(address), version=version)

