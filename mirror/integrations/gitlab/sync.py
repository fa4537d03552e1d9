"""GitLab as a source of modules: the work behind group webhook deliveries and polls, run as jobs.

A delivery becomes one ``gitlab.delivery`` job. A tag push queues one ``gitlab.ingest_tag``; a
tag deleted (``after`` all zeros) revokes its version; a project event (created, deleted, renamed,
transferred) queues one ``gitlab.sync_project``, which brings the project's module in line with
GitLab: moved along a rename, deleted with its project (or when it leaves the watched groups), every
tag a version and versions whose tag is gone revoked. A ``gitlab.poll`` lists the watched groups'
projects and queues one sync per module project, and one for every module whose project the
listing no longer holds, so polling alone finds every project and tag. Projects that release
several modules (monorepos) are handled by ``mirror.integrations.gitlab.monorepos``.

A module belongs to the project that first published it (owner source ``gitlab:<project id>``,
``mirror.domain.provenance``): a module another source owns is never changed, and the job that
tries fails naming its owner.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from mirror.domain.audit import Actor, acting_as, current_actor
from mirror.domain import monorepo, provenance
from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import BadRequest, Conflict
from mirror.domain.models import Job, ModuleRecord
from mirror.domain.provenance import NotOwner, Owner
from mirror.formats.archive import ArchiveLimits, strip_top_level_directory
from mirror.formats.subtree import extract_subtree
from mirror.integrations.gitlab.api import GitLabClient, GitLabError, Project
from mirror.integrations.gitlab.monorepos import GitLabMonorepos
from mirror.integrations.gitlab.naming import ZERO_SHA, GitLabNaming, TagRelease, tag_from_ref, version_for_tag
from mirror.integrations.gitlab.settings import GitLabSettings
from mirror.services.catalog import ModuleCatalog
from mirror.services.ingest import Archive, Ingestor
from mirror.storage.protocols import MetadataStore

log = structlog.get_logger("mirror.gitlab")

DELIVERY = "gitlab.delivery"
SYNC_PROJECT = "gitlab.sync_project"
INGEST_TAG = "gitlab.ingest_tag"
POLL = "gitlab.poll"
#: the events a group webhook (or a system hook) sends that say a project changed
PROJECT_EVENTS = frozenset({"project_create", "project_destroy", "project_rename", "project_transfer", "project_update"})

Enqueue = Callable[..., Awaitable[Job | None]]


class GitLabSync:
    def __init__(
        self,
        *,
        store: MetadataStore,
        ingestor: Ingestor,
        catalog: ModuleCatalog,
        client: GitLabClient,
        enqueue: Enqueue,
        settings: GitLabSettings,
        limits: ArchiveLimits,
        spool_dir: Path,
    ) -> None:
        self._store = store
        self._ingestor = ingestor
        self._catalog = catalog
        self._client = client
        self._enqueue = enqueue
        self._settings = settings
        self._naming = GitLabNaming(settings.groups, settings.module_prefix, settings.monorepos)
        self._limits = limits
        self._spool_dir = spool_dir
        self._monorepos = GitLabMonorepos(
            store=store, ingestor=ingestor, catalog=catalog, client=client, naming=self._naming,
            limits=limits, spool_dir=spool_dir, max_tags=settings.max_tags,
        )

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[None]]]:
        """Job kind -> handler, for the job queue."""
        return {
            DELIVERY: as_gitlab(self.process_delivery),
            SYNC_PROJECT: as_gitlab(self.sync_project),
            INGEST_TAG: as_gitlab(self.ingest_tag),
            POLL: as_gitlab(self.poll),
        }

    # -- deliveries --------------------------------------------------------------------------

    async def process_delivery(self, payload: dict[str, Any]) -> None:
        data = payload["data"]
        if payload["event"] == "Tag Push Hook":
            await self._tag_pushed(data)
        elif data.get("event_name") in PROJECT_EVENTS:
            project_id = data.get("project_id")
            if type(project_id) is int:
                await self._enqueue(SYNC_PROJECT, {"project_id": project_id})

    async def _tag_pushed(self, data: dict[str, Any]) -> None:
        tag = tag_from_ref(str(data.get("ref", "")))
        project_id = data.get("project_id")
        if tag is None or type(project_id) is not int:
            raise BadRequest("a tag push needs a ref refs/tags/TAG and a numeric project_id")
        if not monorepo.may_release(tag):  # SemVer, or a monorepo's <prefix>/<version>
            log.info("tag ignored: not a SemVer version", project=project_id, tag=tag)
            return
        if data.get("after") == ZERO_SHA:
            await self._revoke_tag(project_id, tag)
            return
        commit = data.get("checkout_sha")  # the commit; ``after`` is the tag object of an annotated tag
        await self._enqueue(
            INGEST_TAG, {"project_id": project_id, "tag": tag, "commit_sha": commit if isinstance(commit, str) else None}
        )

    async def _revoke_tag(self, project_id: int, tag: str) -> None:
        """A deleted tag revokes what it released from the project's module; versions uploaded
        into the module stay, and a module of that name another source owns is not touched."""
        project = await self._project_or_none(project_id)
        if project is not None and await self._is_monorepo(project):
            await self._enqueue(SYNC_PROJECT, {"project_id": project_id})  # revokes what a gone tag released
            return
        version = version_for_tag(tag)
        if version is None:
            return
        releases = self._releases(project, tag) if project is not None else []
        source = Owner.gitlab(project_id)
        record = await self._module_of(project_id, releases[0].address if releases else None)
        if record is None:
            for release in releases:
                other = await self._store.get_module(release.address)
                if other is not None and await self._store.get_version(release.address, release.version) is not None:
                    raise provenance.refusal(
                        release.address, other.owner, source, "revoke versions of", source_url=other.source_url
                    )
            return
        existing = await self._store.get_version(record.address, version)
        if existing is None or existing.revoked_at is not None:
            return
        if not provenance.released_by(record.owner, existing.commit_sha, existing.source):
            raise NotOwner(
                f"{record.address} {version} was uploaded into the module, not released from its project "
                f"(tag {tag}); a tag delete does not revoke it"
            )
        if await self._store.revoke_version(record.address, version, owner=source):
            self._catalog.invalidate(record.address)
            log.info("version revoked", module=str(record.address), version=version, tag=tag)

    # -- projects ----------------------------------------------------------------------------

    async def sync_project(self, payload: dict[str, Any]) -> None:
        """Bring one project's module in line with GitLab: it follows a rename, goes with its
        project, every SemVer tag is a version (queued for ingest), versions whose tag is gone
        are revoked."""
        project_id = int(payload["project_id"])
        project = await self._project_or_none(project_id)
        if project is None or await self._is_monorepo(project):
            # a monorepo's modules, or every module of a project that is gone
            owned = [r for r in await self._owned_modules() if r.owner == Owner.gitlab(project_id)]
            if project is not None:
                await self._monorepos.sync(project, owned, self._queue_tag)
                return
            for record in owned:
                await self._follow(record, None, Owner.gitlab(project_id))
            return
        address = self._naming.module_for(project.namespace_path, project.path) if project is not None else None
        source = Owner.gitlab(project_id)
        current = await self._module_of(project_id, address)
        if current is not None and current.address != address:
            await self._follow(current, address, source)
        if project is None or address is None:
            return
        await self._store.ensure_module(address, owner=source, source_url=project.web_url)
        tags, truncated = await self._client.tags(project_id, limit=self._settings.max_tags)
        stored = {v.version: v for v in await self._store.all_versions(address)}
        wanted: set[str] = set()
        for tag in tags:
            for release in self._releases(project, tag.name):
                wanted.add(release.version)
                current_version = stored.get(release.version)
                if current_version is None or current_version.revoked_at is not None or current_version.commit_sha != tag.commit_sha:
                    await self._enqueue(INGEST_TAG, {"project_id": project_id, "tag": tag.name, "commit_sha": tag.commit_sha})
        if truncated:
            log.warning("tags beyond max_tags not read; no version revoked", project=project.path_with_namespace)
        else:
            for version, record in stored.items():
                # released from a commit: the project's; uploads allowed by an admin stay
                if record.revoked_at is None and record.commit_sha and version not in wanted:
                    if await self._store.revoke_version(address, version, owner=source):
                        log.info("version revoked: its tag is gone", module=str(address), version=version)
        self._catalog.invalidate(address)

    async def _follow(self, current: ModuleRecord, target: ModuleAddress | None, source: Owner) -> None:
        """The project's module moves to ``target``: renamed within its namespace and provider,
        else deleted (its project is gone, left the watched groups, or went to another namespace,
        where a sync makes it anew)."""
        old = current.address
        if target is not None and (old.namespace.lower(), old.provider) == (target.namespace.lower(), target.provider):
            taken = await self._store.get_module(target)
            if taken is not None and taken.owner != source:
                raise provenance.refusal(target, taken.owner, source, "rename", source_url=taken.source_url)
            await self._store.rename_module(old, target.name, owner=source)
            self._catalog.invalidate(old)
            log.info("module renamed", old=str(old), new=str(target))
            return
        await self._store.delete_module(old, owner=source)
        self._catalog.invalidate(old)
        log.info("module deleted: its project is gone or moved", module=str(old))

    # -- tags --------------------------------------------------------------------------------

    async def ingest_tag(self, payload: dict[str, Any]) -> None:
        project_id, tag = int(payload["project_id"]), str(payload["tag"])
        project = await self._project_or_none(project_id)
        if project is None:
            log.info("project is gone; tag not ingested", project=project_id, tag=tag)
            return
        if self._naming.module_for(project.namespace_path, project.path) is None:
            if self._monorepos.takes_tag(project, tag):
                commit_sha = payload.get("commit_sha") or await self._commit_of(project, tag)
                await self._monorepos.ingest_tag(project, tag, commit_sha)
            return
        releases = self._releases(project, tag)
        if not releases:
            return
        source = Owner.gitlab(project_id)
        for release in releases:  # before anything is fetched: another source's module fails the job
            module = await self._store.get_module(release.address)
            if module is not None:
                provenance.check(release.address, module.owner, source, "add versions to", source_url=module.source_url)
        commit_sha = payload.get("commit_sha") or await self._commit_of(project, tag)
        todo = [release for release in releases if await self._wanted(project, release, commit_sha)]
        if not todo:
            return
        with tempfile.TemporaryDirectory(prefix="gitlab-", dir=self._spool_dir) as tmp:
            raw = Path(tmp) / "gitlab.tar.gz"
            with raw.open("wb") as out:
                await self._client.download_archive(project_id, commit_sha, out, self._limits.max_archive_bytes)
            for number, release in enumerate(todo):
                archive = await self._module_archive(raw, release, Path(tmp) / f"module-{number}.tar.gz")
                # the module is recorded only once its archive is in hand: a failed fetch leaves nothing
                await self._store.ensure_module(release.address, owner=source, source_url=project.web_url)
                outcome = await self._ingestor.publish(
                    release.address,
                    tag,
                    archive,
                    owner=source,
                    source=project.web_url,
                    commit_sha=commit_sha,
                    origin="gitlab",
                    reinstate=True,
                )
                log.info("tag ingested", module=str(release.address), version=release.version, tag=tag, status=outcome.status)

    async def _wanted(self, project: Project, release: TagRelease, commit_sha: str) -> bool:
        """Whether the release still needs ingesting; a tag moved to another commit is refused
        (versions are immutable)."""
        existing = await self._store.get_version(release.address, release.version)
        if existing is not None and existing.commit_sha and existing.commit_sha != commit_sha:
            raise Conflict(
                f"tag {release.tag} of {project.path_with_namespace} now points at {commit_sha}, but "
                f"{release.address} {release.version} was released from {existing.commit_sha}; "
                "versions are immutable, so it was not changed"
            )
        return existing is None or existing.revoked_at is not None

    async def _module_archive(self, raw: Path, release: TagRelease, clean: Path) -> Archive:
        """The module archive of ``release``: GitLab's archive without its top-level
        ``PROJECT-REF-SHA/`` directory (and re-rooted at ``release.subdirectory``), within the
        archive limits."""
        sha256, size = await asyncio.to_thread(_strip, raw, clean, release.subdirectory, self._limits)
        return Archive(path=clean, sha256=sha256, size=size)

    async def _commit_of(self, project: Project, tag: str) -> str:
        tags, _ = await self._client.tags(project.id, limit=self._settings.max_tags)
        for candidate in tags:
            if candidate.name == tag:
                return candidate.commit_sha
        raise GitLabError(f"tag {tag} not found in {project.path_with_namespace}", status_code=404)

    # -- polling -----------------------------------------------------------------------------

    async def poll(self, payload: dict[str, Any]) -> None:
        """List every watched group's projects (at most ``max_projects`` in all) and queue a
        sync of each module project, and of each module whose project was not listed."""
        budget = self._settings.max_projects
        seen: dict[int, Project] = {}
        complete = True
        for watched in self._settings.groups:
            try:
                group = await self._client.group(watched.path)
            except GitLabError as exc:
                log.error("group not readable; its projects are left as they are", group=watched.path, error=str(exc))
                complete = False
                continue
            projects, truncated = await self._client.group_projects(
                group, include_subgroups=watched.include_subgroups, limit=max(budget, 1)
            )
            complete = complete and not truncated and budget > 0
            for project in projects[:budget]:
                seen.setdefault(project.id, project)
            budget = max(0, self._settings.max_projects - len(seen))
        owners = {int(record.owner.ref) for record in await self._owned_modules()}
        for project in seen.values():
            # a module project, a declared monorepo, or a project owning modules (a monorepo found
            # by its tags, or one renamed away from its module's name: the sync tells them apart)
            if (
                self._naming.module_for(project.namespace_path, project.path) is not None
                or self._monorepos.declared(project)
                or project.id in owners
            ):
                await self._enqueue(SYNC_PROJECT, {"project_id": project.id})
        if not complete:
            log.warning("the projects were not all listed; no module is removed by this poll")
            return
        for owner in sorted(owners - set(seen)):
            await self._enqueue(SYNC_PROJECT, {"project_id": owner})

    # -- helpers -----------------------------------------------------------------------------

    async def _queue_tag(self, project_id: int, tag: str, commit_sha: str) -> None:
        await self._enqueue(INGEST_TAG, {"project_id": project_id, "tag": tag, "commit_sha": commit_sha})

    async def _is_monorepo(self, project: Project) -> bool:
        """Whether the project releases several modules: declared in config, or (its path holding
        no module) owning modules that are not the module its path once named (a project renamed
        away from ``terraform-PROVIDER-NAME`` owns the module of its old path, which it leaves)."""
        if self._monorepos.declared(project):
            return True
        if self._naming.module_for(project.namespace_path, project.path) is not None:
            return False
        owned = [r for r in await self._owned_modules() if r.owner == Owner.gitlab(project.id)]
        return bool(owned) and not any(self._named_by_path(record) for record in owned)

    def _named_by_path(self, record: ModuleRecord) -> bool:
        """Whether the module is the one the path of its project's recorded URL names."""
        base = self._settings.url.rstrip("/") + "/"
        url = record.source_url or ""
        if not url.lower().startswith(base.lower()):
            return False
        namespace_path, _, path = url[len(base) :].strip("/").rpartition("/")
        return self._naming.module_for(namespace_path, path) == record.address

    def _releases(self, project: Project, tag: str) -> list[TagRelease]:
        return self._naming.releases_for_tag(project.namespace_path, project.path, tag)

    async def _project_or_none(self, project_id: int) -> Project | None:
        try:
            return await self._client.project(project_id)
        except GitLabError as exc:
            if exc.status_code == 404:
                return None
            raise

    async def _module_of(self, project_id: int, hint: ModuleAddress | None) -> ModuleRecord | None:
        """The module project ``project_id`` owns: at ``hint`` (where its project says it is)
        or anywhere in the namespaces of the watched groups."""
        source = Owner.gitlab(project_id)
        if hint is not None:
            record = await self._store.get_module(hint)
            if record is not None and record.owner == source:
                return record
        for record in await self._owned_modules():
            if record.owner == source:
                return record
        return None

    async def _owned_modules(self) -> list[ModuleRecord]:
        """The GitLab-owned modules in the namespaces of the watched groups (a group's namespace,
        and those its subgroups map to: the group's followed by ``-``)."""
        roots = {group.namespace.lower() for group in self._settings.groups}
        namespaces = {group.namespace for group in self._settings.groups}
        for summary in await self._store.latest_versions():
            namespace = summary.version.address.namespace
            if any(namespace.lower() == root or namespace.lower().startswith(root + "-") for root in roots):
                namespaces.add(namespace)
        found: dict[ModuleAddress, ModuleRecord] = {}
        for namespace in sorted(namespaces):
            for record in await self._store.list_modules(namespace):
                if record.owner.kind == "gitlab":
                    found.setdefault(record.address, record)
        return list(found.values())


def _strip(raw: Path, clean: Path, subdirectory: str, limits: ArchiveLimits) -> tuple[str, int]:
    with raw.open("rb") as src, clean.open("wb") as dst:
        if subdirectory:
            return extract_subtree(src, dst, subdirectory, limits)
        return strip_top_level_directory(src, dst, limits)


def gitlab_actor(payload: dict[str, Any]) -> Actor:
    """Who a GitLab job's changes are made for (``mirror.domain.audit``): the webhook delivery its
    payload names, else the GitLab actor it was queued with (a follow-up of a delivery), else
    GitLab acting through this job (polling)."""
    delivery = payload.get("delivery")
    if isinstance(delivery, str) and delivery:
        return Actor.gitlab(delivery=delivery)
    current = current_actor()
    return current if current.kind == "gitlab" else Actor.gitlab(job=current.job)


def as_gitlab(handler: Callable[[dict[str, Any]], Awaitable[None]]) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """``handler``, run as ``gitlab_actor`` of its payload."""

    @functools.wraps(handler)
    async def run(payload: dict[str, Any]) -> None:
        with acting_as(gitlab_actor(payload)):
            await handler(payload)

    return run
