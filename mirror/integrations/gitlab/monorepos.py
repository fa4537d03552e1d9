"""GitLab projects that release several modules (``mirror.domain.monorepo``): a tag ingested into the
module its prefix names, from that module's directory only; the project's modules kept in line
with its tags.

A project is a monorepo when ``[plugins.gitlab] monorepos`` lists it (with its modules, or without
to read them from ``.mirror.toml`` in each tag), or, for a project of a watched group whose path
holds no module, when one of its tags looks like a monorepo's (``<prefix>/<version>``,
``<prefix>-<version>``) and the tagged tree has a ``.mirror.toml``; it stays one while it owns
modules of its mapping. Each module it releases is an ordinary module owned by the project
(``gitlab:<project id>``). The rules shared with every source are in
``mirror.services.monorepo_releases``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from mirror.domain import provenance
from mirror.domain.errors import BadRequest, InvalidArchive
from mirror.domain.models import ModuleRecord
from mirror.domain.provenance import Owner
from mirror.formats.archive import ArchiveLimits
from mirror.formats.subtree import Skipped, release_for_tag
from mirror.integrations.gitlab.api import GitLabClient, Project
from mirror.integrations.gitlab.naming import GitLabNaming
from mirror.services.catalog import ModuleCatalog
from mirror.services.ingest import Ingestor
from mirror.services.monorepo_releases import file_missing, plan_sync, publish_release
from mirror.storage.protocols import MetadataStore

log = structlog.get_logger("mirror.gitlab")

#: (project id, tag, commit sha) -> None: queue one ``gitlab.ingest_tag`` job
QueueTag = Callable[[int, str, str], Awaitable[Any]]


class GitLabMonorepos:
    def __init__(
        self,
        *,
        store: MetadataStore,
        ingestor: Ingestor,
        catalog: ModuleCatalog,
        client: GitLabClient,
        naming: GitLabNaming,
        limits: ArchiveLimits,
        spool_dir: Path,
        max_tags: int,
    ) -> None:
        self._store = store
        self._ingestor = ingestor
        self._catalog = catalog
        self._client = client
        self._naming = naming
        self._limits = limits
        self._spool_dir = spool_dir
        self._max_tags = max_tags

    def declared(self, project: Project) -> bool:
        return self._naming.monorepo_for(project.namespace_path, project.path) is not None

    def takes_tag(self, project: Project, tag: str) -> bool:
        return self._naming.takes_tag(project.namespace_path, project.path, tag)

    # -- one tag -------------------------------------------------------------------------------

    async def ingest_tag(self, project: Project, tag: str, commit_sha: str) -> None:
        """Ingest ``tag`` into the module it names. A tag that names none fails the job with the
        reason (permanent), unless the project was only found by its tags and has no mapping."""
        entry = self._naming.monorepo_for(project.namespace_path, project.path)
        mapping = entry.mapping if entry is not None else None
        namespace = self._naming.namespace_for(project.namespace_path)
        if namespace is None:
            return
        source = Owner.gitlab(project.id)
        where = f"tag {tag} of {project.path_with_namespace}"
        for release in self._naming.releases_for_tag(project.namespace_path, project.path, tag):
            module = await self._store.get_module(release.address)  # before anything is fetched
            if module is not None:
                provenance.check(release.address, module.owner, source, "add versions to", source_url=module.source_url)
        with tempfile.TemporaryDirectory(prefix="gitlab-", dir=self._spool_dir) as tmp:
            raw, out = Path(tmp) / "gitlab.tar.gz", Path(tmp) / "module.tar.gz"
            with raw.open("wb") as sink:
                await self._client.download_archive(project.id, commit_sha, sink, self._limits.max_archive_bytes)
            try:
                outcome = await asyncio.to_thread(release_for_tag, raw, tag, mapping, out, self._limits)
            except InvalidArchive as exc:
                raise InvalidArchive(f"{where}: {exc}") from None
            if isinstance(outcome, Skipped):
                if entry is None and file_missing(outcome, tag):
                    log.info("tag ignored: not a monorepo", project=project.path_with_namespace, tag=tag)
                    return
                log.warning("tag skipped: it releases no module", project=project.path_with_namespace, tag=tag, reason=outcome.reason)
                raise BadRequest(f"{project.path_with_namespace}: {outcome.reason}; the tag was skipped")
            published = await publish_release(
                self._store,
                self._ingestor,
                outcome,
                namespace=namespace,
                owner=source,
                source_url=project.web_url,
                commit_sha=commit_sha,
                origin="gitlab",
                where=where,
            )
        self._catalog.invalidate(published.address)
        log.info(
            "tag ingested", module=str(published.address), version=published.version, tag=tag,
            path=outcome.match.module.path or ".", mapping=outcome.mapping_from, status=published.status,
        )

    # -- the whole project ---------------------------------------------------------------------

    async def sync(self, project: Project, owned: list[ModuleRecord], queue: QueueTag) -> None:
        """Queue every tag that releases a version not yet in its module, revoke the versions whose
        tag is gone, and delete the modules the project left behind in another namespace (a
        transfer: the sync makes them anew where it went)."""
        source = Owner.gitlab(project.id)
        namespace = self._naming.namespace_for(project.namespace_path)
        here = [record for record in owned if namespace is not None and record.address.namespace.lower() == namespace.lower()]
        for record in owned:
            if record not in here:
                await self._store.delete_module(record.address, owner=source)
                self._catalog.invalidate(record.address)
                log.info("module deleted: its project moved", module=str(record.address))
        if namespace is None or not (here or self.declared(project)):
            return
        entry = self._naming.monorepo_for(project.namespace_path, project.path)
        tags, truncated = await self._client.tags(project.id, limit=self._max_tags)
        released = {record.address: {v.version: v for v in await self._store.all_versions(record.address)} for record in here}
        plan = plan_sync(
            entry.mapping if entry is not None else None,
            namespace,
            {tag.name: tag.commit_sha for tag in tags},
            released,
            lambda tag: self.takes_tag(project, tag),
        )
        by_name = {tag.name: tag.commit_sha for tag in tags}
        for tag in plan.ingest:
            await queue(project.id, tag, by_name[tag])
        if truncated:
            log.warning("tags beyond max_tags not read; no version revoked", project=project.path_with_namespace)
        else:
            for address, version in plan.revoke:
                if await self._store.revoke_version(address, version, owner=source):
                    log.info("version revoked: its tag is gone", module=str(address), version=version)
        for record in here:
            self._catalog.invalidate(record.address)
