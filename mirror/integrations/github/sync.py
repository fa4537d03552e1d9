"""GitHub as the source of truth: the work behind webhook deliveries, run by the job queue.

A delivery becomes one ``github.delivery`` job; its handler dispatches through a gidgethub Router
and either changes the store directly (revoke, delete, rename) or queues follow-up jobs: one
``github.sync_repository`` per repository and one ``github.ingest_tag`` per tag, so a large
installation's backfill runs in parallel and each piece retries on its own. A release published
in a ``terraform-provider-TYPE`` repository queues one ``github.ingest_provider_release``
(``mirror.integrations.github.releases``).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from gidgethub import routing, sansio

from mirror.domain.addresses import valid_namespace
from mirror.formats.archive import ArchiveLimits, strip_top_level_directory
from mirror.domain import provenance
from mirror.domain.models import Installation, Job
from mirror.domain.provenance import NotOwner, Owner
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import BadRequest, Conflict
from mirror.integrations.github.api import GitHubClient, GitHubError, Repository
from mirror.integrations.github.monorepos import Monorepos
from mirror.integrations.github.naming import Naming, tag_from_ref, version_for_tag
from mirror.integrations.github.releases import INGEST_PROVIDER_RELEASE, as_github, provider_release_job
from mirror.services.catalog import ModuleCatalog
from mirror.services.ingest import Archive, Ingestor
from mirror.storage.protocols import BlobStore, MetadataStore

log = structlog.get_logger("mirror.github")

DELIVERY = "github.delivery"
SYNC_REPOSITORY = "github.sync_repository"
INGEST_TAG = "github.ingest_tag"
RECONCILE = "github.reconcile"

Enqueue = Callable[..., Awaitable[Job | None]]


class GitHubSync:
    def __init__(
        self,
        *,
        store: MetadataStore,
        blobs: BlobStore,
        ingestor: Ingestor,
        catalog: ModuleCatalog,
        client: GitHubClient,
        enqueue: Enqueue,
        naming: Naming,
        limits: ArchiveLimits,
        spool_dir: Path,
        delete_archives_on_uninstall: bool,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._ingestor = ingestor
        self._catalog = catalog
        self._client = client
        self._enqueue = enqueue
        self._naming = naming
        self._limits = limits
        self._spool_dir = spool_dir
        self._delete_archives = delete_archives_on_uninstall
        self._monorepos = Monorepos(
            store=store, ingestor=ingestor, client=client, naming=naming, limits=limits, spool_dir=spool_dir
        )
        self.router = self._router()

    def _watched(self, owner: str, name: str) -> bool:
        """A repository whose name holds a module, or one config declares a monorepo."""
        return self._naming.module_for(owner, name) is not None or self._monorepos.declared(owner, name)

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[None]]]:
        """Job kind -> handler, for the job queue."""
        return {
            DELIVERY: as_github(self.process_delivery),
            SYNC_REPOSITORY: as_github(self.sync_repository),
            INGEST_TAG: as_github(self.ingest_tag),
            RECONCILE: as_github(self.reconcile),
        }

    # -- deliveries --------------------------------------------------------------------------

    async def process_delivery(self, payload: dict[str, Any]) -> None:
        event = sansio.Event(payload["data"], event=payload["event"], delivery_id=payload["delivery_id"])
        await self.router.dispatch(event)

    def _router(self) -> routing.Router:
        router = routing.Router()
        router.add(self._installation_created, "installation", action="created")
        router.add(self._installation_deleted, "installation", action="deleted")
        router.add(self._repositories_added, "installation_repositories", action="added")
        router.add(self._repositories_removed, "installation_repositories", action="removed")
        router.add(self._repository_created, "repository", action="created")
        router.add(self._repository_created, "repository", action="transferred")
        router.add(self._repository_deleted, "repository", action="deleted")
        router.add(self._repository_renamed, "repository", action="renamed")
        router.add(self._tag_created, "create")
        router.add(self._tag_deleted, "delete")
        router.add(self._tag_pushed, "push")
        router.add(self._release_published, "release", action="published")
        return router

    async def _installation_created(self, event: sansio.Event) -> None:
        installation = event.data["installation"]
        account = installation["account"]["login"]
        namespace = self._naming.namespace_for(account)
        if type(installation["id"]) is not int or not valid_namespace(namespace):  # (a bool is an int too)
            raise BadRequest(  # permanent: the job fails at once, and nothing is recorded
                f"installation {installation['id']!r} of account {account!r}: "
                f"not a numeric id, or {namespace!r} is not a valid namespace"
            )
        await self._store.record_installation(Installation(installation["id"], account, namespace, now_rfc3339()))
        await self._backfill_installation(installation["id"])

    async def _backfill_installation(self, installation_id: int) -> None:
        for repository in await self._client.installation_repositories(installation_id):
            if self._watched(repository.owner, repository.name):
                await self._queue_sync(installation_id, repository.owner, repository.name)

    async def _installation_deleted(self, event: sansio.Event) -> None:
        orphans = await self._store.remove_installation(event.data["installation"]["id"])
        if self._delete_archives:
            for key in orphans:
                await self._blobs.delete(key)
        log.info("installation removed", installation=event.data["installation"]["id"], archives=len(orphans))

    async def _repositories_added(self, event: sansio.Event) -> None:
        installation = event.data["installation"]
        owner = installation["account"]["login"]
        for repository in event.data.get("repositories_added", []):
            if self._watched(owner, repository["name"]):
                await self._queue_sync(installation["id"], owner, repository["name"])

    async def _repositories_removed(self, event: sansio.Event) -> None:
        namespace = self._naming.namespace_for(event.data["installation"]["account"]["login"])
        for repository in event.data.get("repositories_removed", []):
            await self._delete_repository_module(repository["id"], namespace)

    async def _repository_created(self, event: sansio.Event) -> None:
        repository = event.data["repository"]
        owner, name = repository["owner"]["login"], repository["name"]
        if self._watched(owner, name):
            await self._queue_sync(_installation_id(event), owner, name)

    async def _repository_deleted(self, event: sansio.Event) -> None:
        repository = event.data["repository"]
        await self._delete_repository_module(repository["id"], self._naming.namespace_for(repository["owner"]["login"]))

    async def _repository_renamed(self, event: sansio.Event) -> None:
        repository = event.data["repository"]
        owner, new_name = repository["owner"]["login"], repository["name"]
        source = Owner.github(repository["id"])
        current = await self._store.module_by_repository(repository["id"])
        target = self._naming.module_for(owner, new_name)
        old_name = event.data.get("changes", {}).get("repository", {}).get("name", {}).get("from")
        if self._monorepos.declared(owner, new_name) or (old_name and self._monorepos.declared(owner, old_name)) or (
            current is not None and old_name and current.address != self._naming.module_for(owner, old_name)
        ):  # a monorepo's modules are named by its mapping, not by the repository's name
            log.info("monorepo renamed; its modules keep their names", repository=f"{owner}/{new_name}", old=old_name)
            await self._queue_sync(_installation_id(event), owner, new_name)
            return
        if current is not None and target is not None and current.address.provider == target.provider:
            taken = await self._store.get_module(target)
            if taken is not None and taken.owner != source:
                raise provenance.refusal(target, taken.owner, source, "rename", source_url=taken.source_url)
            await self._store.rename_module(current.address, target.name, owner=source)
            self._catalog.invalidate(current.address)
            log.info("module renamed", old=str(current.address), new=str(target))
            return
        if current is not None:  # no longer a module, or another provider: a different module now
            await self._delete_repository_module(repository["id"])
        if target is not None:
            await self._queue_sync(_installation_id(event), owner, new_name)

    async def _tag_created(self, event: sansio.Event) -> None:
        if event.data.get("ref_type") == "tag":
            await self._queue_tag_from_event(event, event.data["ref"], None)

    async def _tag_deleted(self, event: sansio.Event) -> None:
        if event.data.get("ref_type") == "tag":
            await self._revoke_tag(event.data["repository"], event.data["ref"], _installation_id(event))

    async def _tag_pushed(self, event: sansio.Event) -> None:
        tag = tag_from_ref(event.data.get("ref", ""))
        if tag is None:
            return
        if event.data.get("deleted"):
            await self._revoke_tag(event.data["repository"], tag, _installation_id(event))
        else:
            await self._queue_tag_from_event(event, tag, event.data.get("after"))

    async def _release_published(self, event: sansio.Event) -> None:
        """A release of a provider's repository is a provider version (``releases``); of a
        module's repository, its tag is ingested as for a tag push."""
        job = provider_release_job(self._naming, event.data, _installation_id(event))
        if job is not None:
            payload, dedupe_key = job
            await self._enqueue(INGEST_PROVIDER_RELEASE, payload, dedupe_key=dedupe_key)
            return
        await self._queue_tag_from_event(event, event.data["release"]["tag_name"], None)

    async def _queue_tag_from_event(self, event: sansio.Event, tag: str, commit_sha: str | None) -> None:
        repository = event.data["repository"]
        owner, name = repository["owner"]["login"], repository["name"]
        if self._naming.module_for(owner, name) is None:
            if self._monorepos.takes_tag(owner, name, tag):  # a monorepo's, or one to discover
                await self._enqueue(
                    INGEST_TAG,
                    {"installation_id": _installation_id(event), "owner": owner, "name": name, "tag": tag, "commit_sha": commit_sha},
                )
            return
        if version_for_tag(tag) is None:
            log.info("tag ignored: not a SemVer version", repository=f"{owner}/{name}", tag=tag)
            return
        await self._enqueue(
            INGEST_TAG,
            {"installation_id": _installation_id(event), "owner": owner, "name": name, "tag": tag, "commit_sha": commit_sha},
        )

    async def _revoke_tag(self, repository: dict[str, Any], tag: str, installation_id: int | None) -> None:
        """A deleted tag revokes its version in the module the repository owns, if the version was
        released from the repository. A module of the same name that another source owns is left
        alone, and the job fails naming its owner. In a monorepo, the repository is synced (which
        revokes the versions whose tag is gone)."""
        owner, name = repository["owner"]["login"], repository["name"]
        if self._naming.module_for(owner, name) is None:
            namespace = self._naming.namespace_for(owner)
            if self._monorepos.declared(owner, name) or await self._monorepos.owned_modules(namespace, repository["id"]):
                await self._queue_sync(installation_id, owner, name)
            return
        version = version_for_tag(tag)
        if version is None:
            return
        source = Owner.github(repository["id"])
        record = await self._store.module_by_repository(repository["id"])
        if record is None:
            address = self._naming.module_for(repository["owner"]["login"], repository["name"])
            other = await self._store.get_module(address) if address is not None else None
            if other is not None and await self._store.get_version(other.address, version) is not None:
                raise provenance.refusal(address, other.owner, source, "revoke versions of", source_url=other.source_url)
            return
        address = record.address
        existing = await self._store.get_version(address, version)
        if existing is None or existing.revoked_at is not None:
            return
        if not provenance.released_by(record.owner, existing.commit_sha, existing.source):
            raise NotOwner(
                f"{address} {version} was uploaded into the module, not released from its repository "
                f"(tag {tag}); a tag delete does not revoke it"
            )
        if await self._store.revoke_version(address, version, owner=source):
            self._catalog.invalidate(address)
            log.info("version revoked", module=str(address), version=version, tag=tag)

    async def _delete_repository_module(self, repository_id: int, namespace: str | None = None) -> None:
        """Delete the module the repository owns, and with ``namespace`` every module of it there (a
        monorepo's); a module of the same name that another source owns is not the repository's,
        and stays."""
        record = await self._store.module_by_repository(repository_id)
        records = [record] if record is not None else []
        if namespace is not None:
            records += [r for r in await self._monorepos.owned_modules(namespace, repository_id) if r.address not in {x.address for x in records}]
        for record in records:
            await self._store.delete_module(record.address, owner=Owner.github(repository_id))
            self._catalog.invalidate(record.address)
            log.info("module deleted", module=str(record.address))

    async def _queue_sync(self, installation_id: int | None, owner: str, name: str) -> None:
        await self._enqueue(SYNC_REPOSITORY, {"installation_id": installation_id, "owner": owner, "name": name})

    # -- repositories and tags ---------------------------------------------------------------

    async def sync_repository(self, payload: dict[str, Any]) -> None:
        """Bring one repository's module in line with GitHub: the module exists, every SemVer
        tag is a version (queued for ingest), and versions whose tag is gone are revoked."""
        installation_id, owner, name = payload["installation_id"], payload["owner"], payload["name"]
        try:
            repository = await self._client.repository(owner, name, installation_id)
        except GitHubError as exc:
            if exc.status_code == 404:
                log.info("repository is gone; nothing to sync", repository=f"{owner}/{name}")
                return
            raise
        address = self._naming.module_for(repository.owner, repository.name)
        if address is None:
            await self._sync_monorepo(repository, installation_id)
            return
        source = Owner.github(repository.id)
        await self._store.ensure_module(
            address, owner=source, source_url=repository.html_url, installation_id=installation_id
        )
        tags = {tag.name: tag.commit_sha for tag in await self._client.tags(owner, name, installation_id)}
        stored = {v.version: v for v in await self._store.all_versions(address)}
        wanted: dict[str, str] = {}
        for tag, sha in tags.items():
            version = version_for_tag(tag)
            if version is None:
                continue
            current = stored.get(version)
            wanted[version] = sha
            if current is None or current.revoked_at is not None or current.commit_sha != sha:
                await self._enqueue(
                    INGEST_TAG,
                    {"installation_id": installation_id, "owner": owner, "name": name, "tag": tag, "commit_sha": sha},
                )
        for version, record in stored.items():
            # versions released from a commit are the repository's; uploads allowed by an admin
            # (no commit) are the uploader's, and stay
            if record.revoked_at is None and record.commit_sha and version not in wanted:
                if await self._store.revoke_version(address, version, owner=source):
                    log.info("version revoked: its tag is gone", module=str(address), version=version)
        self._catalog.invalidate(address)

    async def _sync_monorepo(self, repository: Repository, installation_id: int | None) -> None:
        namespace = self._naming.namespace_for(repository.owner)
        owned = await self._monorepos.owned_modules(namespace, repository.id)
        if not (owned or self._monorepos.declared(repository.owner, repository.name)):
            return
        tags = {tag.name: tag.commit_sha for tag in await self._client.tags(repository.owner, repository.name, installation_id)}
        await self._monorepos.sync(repository, tags, installation_id, lambda payload: self._enqueue(INGEST_TAG, payload))
        for record in owned:
            self._catalog.invalidate(record.address)

    async def ingest_tag(self, payload: dict[str, Any]) -> None:
        installation_id, owner, name, tag = payload["installation_id"], payload["owner"], payload["name"], payload["tag"]
        repository = await self._client.repository(owner, name, installation_id)
        address = self._naming.module_for(repository.owner, repository.name)
        if address is None:
            if self._monorepos.takes_tag(repository.owner, repository.name, tag):
                commit_sha = payload.get("commit_sha") or await self._commit_of(owner, name, tag, installation_id)
                await self._monorepos.ingest_tag(repository, tag, commit_sha, installation_id)
            return
        version = version_for_tag(tag)
        if version is None:
            return
        source = Owner.github(repository.id)
        module = await self._store.get_module(address)
        if module is not None:  # before anything is fetched: another source's module fails the job
            provenance.check(address, module.owner, source, "add versions to", source_url=module.source_url)
        commit_sha = payload.get("commit_sha") or await self._commit_of(owner, name, tag, installation_id)
        existing = await self._store.get_version(address, version)
        if existing is not None and existing.commit_sha and existing.commit_sha != commit_sha:
            log.warning(
                "tag moved; the released version keeps its commit",
                module=str(address), version=version, tag=tag, released=existing.commit_sha, now=commit_sha,
            )
            raise Conflict(
                f"tag {tag} of {owner}/{name} now points at {commit_sha}, but {address} {version} was released "
                f"from {existing.commit_sha}; versions are immutable, so it was not changed"
            )
        if existing is not None and existing.revoked_at is None:
            return  # already released from this commit
        with tempfile.TemporaryDirectory(prefix="github-", dir=self._spool_dir) as tmp:
            archive = await self._fetch(repository, tag, installation_id, Path(tmp))
            # the module is recorded only once its archive is in hand: a failed fetch leaves nothing
            await self._store.ensure_module(
                address, owner=source, source_url=repository.html_url, installation_id=installation_id
            )
            outcome = await self._ingestor.publish(
                address,
                tag,
                archive,
                owner=source,
                source=repository.html_url,
                commit_sha=commit_sha,
                origin="github",
                reinstate=True,
            )
        log.info("tag ingested", module=str(address), version=version, tag=tag, status=outcome.status)

    async def _commit_of(self, owner: str, name: str, tag: str, installation_id: int | None) -> str:
        for candidate in await self._client.tags(owner, name, installation_id):
            if candidate.name == tag:
                return candidate.commit_sha
        raise GitHubError(f"tag {tag} not found in {owner}/{name}", status_code=404)

    async def _fetch(self, repository: Repository, tag: str, installation_id: int | None, workdir: Path) -> Archive:
        """Stream the tag's tarball to disk, then re-root it without GitHub's top directory."""
        raw, clean = workdir / "github.tar.gz", workdir / "module.tar.gz"
        with raw.open("wb") as out:
            await self._client.download_tarball(
                repository.owner, repository.name, tag, installation_id, out, self._limits.max_archive_bytes
            )
        sha256, size = await asyncio.to_thread(_strip, raw, clean, self._limits)
        return Archive(path=clean, sha256=sha256, size=size)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, payload: dict[str, Any]) -> None:
        """Catch up on lost deliveries and bulk tag pushes (GitHub sends no events for those):
        every installation's matching repositories are synced, and modules whose repository is
        gone are removed."""
        namespace = payload.get("namespace")
        for installation in await self._store.list_installations():
            if namespace and installation.namespace.lower() != namespace.lower():
                continue
            repositories = await self._client.installation_repositories(installation.id)
            present = {r.id for r in repositories}
            owners: set[int | None] = set()
            gone: set[int] = set()
            for record in await self._store.list_modules(installation.namespace):
                brought = record.owner.kind == "github" and record.installation_id == installation.id
                owners.add(record.repository_id if record.owner.kind == "github" else None)
                if brought and record.repository_id not in present:
                    gone.add(record.owner.repository_id)
            for repository_id in gone:
                await self._delete_repository_module(repository_id, installation.namespace)
            for repository in repositories:
                if self._watched(repository.owner, repository.name) or repository.id in owners:
                    await self._queue_sync(installation.id, repository.owner, repository.name)


def _installation_id(event: sansio.Event) -> int | None:
    installation = event.data.get("installation")
    return installation.get("id") if isinstance(installation, dict) else None


def _strip(raw: Path, clean: Path, limits: ArchiveLimits) -> tuple[str, int]:
    with raw.open("rb") as src, clean.open("wb") as dst:
        return strip_top_level_directory(src, dst, limits)

