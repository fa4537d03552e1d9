"""Polling GitHub: the registry finds installations, repositories and tags itself.

One pass (a ``github.poll`` job in ``poll`` and ``both`` modes, queued every ``poll_interval``;
the ``github.reconcile`` job, every ``reconcile_interval`` and from ``mirror github reconcile``,
in every mode) walks:

- the installations: with an App in ``poll``/``both`` mode, those ``GET /app/installations``
  lists (an installation new to the registry, or gone from GitHub, is handled as the
  ``installation`` created / deleted delivery would be); else those recorded in the store (the
  webhook mode's reconcile); with a plain token, the configured ``accounts``;
- each one's repositories: a module whose repository left the list is removed, and one whose
  repository was renamed follows it, as the ``repository`` deleted / renamed deliveries do;
- each matching repository's tags: a list that changed queues one ``github.sync_repository``,
  which ingests new tags and revokes versions whose tag is gone. A full reconcile queues it for
  every repository.

The work itself is done by the existing job kinds (``github.delivery`` with the delivery GitHub
would have sent, ``github.sync_repository``, ``github.ingest_tag``), so each piece retries on its
own and nothing of ingestion is repeated here. Lists are conditional requests
(``mirror.integrations.github.listings``): an unchanged account costs only 304s, which GitHub does
not count against the rate limit. A rate-limited answer pauses polling until GitHub's reset,
logged once; the pass ends without failing its job.

Several replicas: the jobs are queued with one dedupe key per interval slot, so one replica's
worker runs each pass (as the reconcile always has); within a process, passes do not overlap.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import structlog

from mirror.domain.models import ModuleRecord
from mirror.integrations.github.api import RateLimited, Repository
from mirror.integrations.github.listings import GitHubListings, Listing, ListingCache
from mirror.integrations.github.naming import Naming
from mirror.integrations.github.releases import as_github
from mirror.integrations.github.sync import DELIVERY, RECONCILE, SYNC_REPOSITORY, Enqueue
from mirror.storage.protocols import MetadataStore

log = structlog.get_logger("mirror.github")

POLL = "github.poll"


class GitHubPoller:
    def __init__(
        self,
        *,
        store: MetadataStore,
        listings: GitHubListings,
        naming: Naming,
        enqueue: Enqueue,
        app: bool,
        discover: bool,
        accounts: Iterable[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``app``: installations (else the ``accounts``, with a plain token); ``discover``: find
        the App's installations through the API (poll modes) rather than in the store."""
        self._store = store
        self._listings = listings
        self._naming = naming
        self._enqueue = enqueue
        self._app = app
        self._discover = discover
        self._accounts = tuple(accounts)
        self._clock = clock
        self._cache = ListingCache()
        self._running = asyncio.Lock()
        #: epoch until which polling waits for GitHub's rate limit to reset (0: not paused)
        self.paused_until = 0.0

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[None]]]:
        """Job kind -> handler: ``github.poll``, and ``github.reconcile`` (the same pass, whole)."""
        return {POLL: as_github(self.poll), RECONCILE: as_github(self.reconcile)}

    async def poll(self, payload: dict[str, Any]) -> None:
        """A pass that syncs only repositories whose tags changed since the last one."""
        await self.run(full=False, namespace=None)

    async def reconcile(self, payload: dict[str, Any]) -> None:
        """A pass that syncs every matching repository (of one namespace, if the payload names one)."""
        await self.run(full=True, namespace=payload.get("namespace"))

    async def run(self, *, full: bool, namespace: str | None) -> None:
        if self._clock() < self.paused_until:
            return  # logged when the pause began
        if self.paused_until:
            log.info("GitHub polling resumed after its rate limit reset")
            self.paused_until = 0.0
        if self._running.locked() and not full:
            return  # the previous pass is still running: this one would repeat it
        async with self._running:
            try:
                if self._app:
                    await self._installations(full, namespace)
                else:
                    await self._account_list(full, namespace)
            except RateLimited as exc:
                self._pause(exc)

    def _pause(self, exc: RateLimited) -> None:
        self.paused_until = max(self.paused_until, exc.resume_at, self._clock() + 1)
        until = datetime.fromtimestamp(self.paused_until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        log.warning("GitHub rate limit reached; polling paused until its reset", until=until, reason=str(exc))

    # -- installations and accounts ----------------------------------------------------------

    async def _installations(self, full: bool, namespace: str | None) -> None:
        stored = {i.id: i for i in await self._store.list_installations()}
        watched = [i for i in stored.values() if _wanted(i.namespace, namespace)]
        if self._discover:
            listing = await self._listings.app_installations(self._cache)
            listed = {i.id: i for i in listing.items if self._account_wanted(i.account)}
            listed = {i: inst for i, inst in listed.items() if _wanted(self._naming.namespace_for(inst.account), namespace)}
            for installation in listed.values():
                if installation.id not in stored:  # its backfill syncs every repository
                    data = {"installation": {"id": installation.id, "account": {"login": installation.account}}}
                    await self._deliver("installation", "created", data)
            gone = [i for i in watched if i.id not in listed and self._account_wanted(i.account)]
            for installation in gone:
                data = {"installation": {"id": installation.id, "account": {"login": installation.account}}}
                await self._deliver("installation", "deleted", data)
            watched = [i for i in watched if i.id in listed]
        for installation in watched:
            repositories = await self._listings.installation_repositories(installation.id, self._cache)

            def brought(record: ModuleRecord, installation_id: int = installation.id) -> bool:
                return record.owner.kind == "github" and record.installation_id == installation_id

            await self._repositories(installation.id, installation.namespace, repositories, full, brought)

    async def _account_list(self, full: bool, namespace: str | None) -> None:
        for account in self._accounts:
            account_namespace = self._naming.namespace_for(account)
            if not _wanted(account_namespace, namespace):
                continue
            repositories = await self._listings.account_repositories(account, self._cache)

            def brought(record: ModuleRecord, login: str = account.lower()) -> bool:
                return (
                    record.owner.kind == "github"
                    and record.installation_id is None
                    and _login_of(record.source_url) == login
                )

            await self._repositories(None, account_namespace, repositories, full, brought)

    def _account_wanted(self, login: str) -> bool:
        return not self._accounts or login.lower() in {a.lower() for a in self._accounts}

    # -- repositories and tags ---------------------------------------------------------------

    async def _repositories(
        self,
        installation_id: int | None,
        namespace: str,
        listing: Listing[Repository],
        full: bool,
        brought: Callable[[ModuleRecord], bool],
    ) -> None:
        """Removed and renamed repositories (when the list changed, or on a full pass), then the
        tags of each matching repository."""
        checked = listing.changed or full
        if checked:
            present = {repository.id for repository in listing.items}
            for record in await self._store.list_modules(namespace):
                if brought(record) and record.repository_id is not None and record.repository_id not in present:
                    data = {"repository": _removed_json(record)} | _installation(installation_id)
                    await self._deliver("repository", "deleted", data)
        for repository in listing.items:
            target = self._naming.module_for(repository.owner, repository.name)
            current = await self._store.module_by_repository(repository.id) if checked or target is None else None
            owned = current is not None and current.owner.kind == "github"
            # a monorepo (``mirror.integrations.github.monorepos``): declared in config, or owning
            # modules of its mapping under the name it had when they were released; its modules are
            # named by the mapping, so an address unlike the repository's name is no rename
            monorepo = target is None and (
                self._naming.monorepo_for(repository.owner, repository.name) is not None
                or (owned and not _renamed(current, repository))
            )
            if checked and owned and not monorepo and current.address != target:
                data = {"repository": _repository_json(repository)} | _installation(installation_id)
                old_name = _name_of(current.source_url)
                if old_name:
                    data["changes"] = {"repository": {"name": {"from": old_name}}}
                await self._deliver("repository", "renamed", data)  # follows it, or removes it
                continue
            if target is None and not monorepo:
                continue
            if not full:
                tags = await self._listings.tags(repository.owner, repository.name, installation_id, self._cache)
                if not tags.changed:
                    continue
            payload = {"installation_id": installation_id, "owner": repository.owner, "name": repository.name}
            await self._enqueue(SYNC_REPOSITORY, payload)

    async def _deliver(self, event: str, action: str, data: dict[str, Any]) -> None:
        """Queue the delivery GitHub would have sent, for the webhook handlers to act on."""
        log.info("GitHub change found by polling", github_event=event, action=action)
        payload = {"event": event, "delivery_id": f"poll:{uuid.uuid4()}", "data": {"action": action} | data}
        await self._enqueue(DELIVERY, payload)


def _wanted(namespace: str, only: str | None) -> bool:
    return only is None or namespace.lower() == only.lower()


def _installation(installation_id: int | None) -> dict[str, Any]:
    return {} if installation_id is None else {"installation": {"id": installation_id}}


def _repository_json(repository: Repository) -> dict[str, Any]:
    return {
        "id": repository.id,
        "name": repository.name,
        "full_name": repository.full_name,
        "owner": {"login": repository.owner},
        "html_url": repository.html_url,
    }


def _removed_json(record: ModuleRecord) -> dict[str, Any]:
    """A removed repository as a ``repository`` delivery shows it, from what the module recorded."""
    parts = [part for part in urlsplit(record.source_url or "").path.split("/") if part]
    owner, name = (parts + ["", ""])[:2]
    return {"id": record.repository_id, "name": name, "full_name": f"{owner}/{name}", "owner": {"login": owner}}


def _renamed(record: ModuleRecord | None, repository: Repository) -> bool:
    """Whether the repository's URL is no longer the one its module recorded (a rename or transfer)."""
    return record is not None and bool(record.source_url) and record.source_url.rstrip("/").lower() != repository.html_url.rstrip("/").lower()


def _name_of(source_url: str | None) -> str | None:
    """The repository name of a repository's web URL (``https://HOST/LOGIN/REPO``)."""
    parts = [part for part in urlsplit(source_url or "").path.split("/") if part]
    return parts[1] if len(parts) >= 2 else None


def _login_of(source_url: str | None) -> str | None:
    """The account login of a repository's web URL (``https://HOST/LOGIN/REPO``), lowercased."""
    if not source_url:
        return None
    parts = [part for part in urlsplit(source_url).path.split("/") if part]
    return parts[0].lower() if len(parts) >= 2 else None
