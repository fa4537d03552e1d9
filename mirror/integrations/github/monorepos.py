"""GitHub repositories that release several modules (``mirror.domain.monorepo``): their tags
ingested into the module each one names, their modules kept in line on sync.

A repository is a monorepo when ``[[github.monorepos]]`` lists it (with its modules, or without to
read them from ``.mirror.toml`` in each tag), or when it already owns modules of a mapping, or,
for a repository whose name holds no module, when one of its tags looks like a monorepo's
(``<prefix>/<version>``, ``<prefix>-<version>``) and the tagged tree has a ``.mirror.toml``.
Every module it releases is an ordinary module owned by the repository (``github:<id>``). The
rules shared with every source are in ``mirror.services.monorepo_releases``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from mirror.domain import monorepo
from mirror.domain.errors import BadRequest, InvalidArchive
from mirror.domain.models import ModuleRecord
from mirror.domain.monorepo import Mapping
from mirror.domain.provenance import Owner
from mirror.formats.archive import ArchiveLimits
from mirror.formats.subtree import Skipped, release_for_tag
from mirror.integrations.github.api import GitHubClient, Repository
from mirror.integrations.github.naming import Naming
from mirror.services.ingest import Ingestor
from mirror.services.monorepo_releases import file_missing, owned_modules, plan_sync, publish_release
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
        return await owned_modules(self._store, namespace, Owner.github(repository_id))

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
                if self.declared(repository.owner, repository.name) or not file_missing(outcome, tag):
                    log.warning("tag skipped: it releases no module", repository=repository.full_name, tag=tag, reason=outcome.reason)
                    raise BadRequest(f"{repository.full_name}: {outcome.reason}; the tag was skipped")
                log.info("tag ignored: not a monorepo", repository=repository.full_name, tag=tag)
                return
            published = await publish_release(
                self._store,
                self._ingestor,
                outcome,
                namespace=namespace,
                owner=Owner.github(repository.id),
                source_url=repository.html_url,
                commit_sha=commit_sha,
                origin="github",
                where=f"tag {tag} of {repository.full_name}",
                installation_id=installation_id,
            )
        if published.status == "present":
            return
        log.info(
            "tag ingested", module=str(published.address), version=published.version, tag=tag,
            path=outcome.match.module.path or ".", mapping=outcome.mapping_from, status=published.status,
        )

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
        released = {record.address: {v.version: v for v in await self._store.all_versions(record.address)} for record in owned}
        plan = plan_sync(mapping, namespace, tags, released, lambda tag: self.takes_tag(repository.owner, repository.name, tag))
        for tag in plan.ingest:
            await queue(
                {"installation_id": installation_id, "owner": repository.owner, "name": repository.name, "tag": tag, "commit_sha": tags[tag]}
            )
        for address, version in plan.revoke:
            if await self._store.revoke_version(address, version, owner=source):
                log.info("version revoked: its tag is gone", module=str(address), version=version)
