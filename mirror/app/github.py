"""Wiring of the GitHub integration: only when ``[github]`` is configured."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from mirror.app.github_check import CheckLine, check_github, read_secret
from mirror.config import Config, GitHubConfig
from mirror.integrations.github.api import AppCredentials, GitHubClient, GitHubCredentials, TokenCredentials
from mirror.integrations.github.deliveries import DeliveryReader
from mirror.integrations.github.listings import GitHubListings
from mirror.domain.monorepo import parse_monorepos
from mirror.integrations.github.naming import Naming
from mirror.integrations.github.poll import POLL, GitHubPoller
from mirror.integrations.github.releases import ProviderReleaseIngest, ReleaseLimits
from mirror.integrations.github.sync import RECONCILE, GitHubSync
from mirror.http import github_webhook
from mirror.http.keys import (
    BLOBS,
    CATALOG,
    CONFIG,
    DELIVERY_READER,
    INGESTOR,
    JOB_HANDLERS,
    JOBS,
    PROVIDERS,
    RECONCILER,
    STORE,
)

log = structlog.get_logger("mirror.github")


def setup_github(app: web.Application) -> None:
    """Add the integration's cleanup context, which must come before the job queue's: its
    handlers are registered before workers start, and its HTTP session closes only after the
    queue has stopped. (``create_app`` registers the webhook route, ``webhook.routes()``.)"""
    app.cleanup_ctx.append(_github)
    app.on_startup.append(_start_reconciler)  # runs once every cleanup context has started
    app.on_shutdown.append(_stop_reconciler)  # before the stores close


async def _github(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    github = config.github
    if github.mode != "poll":  # poll mode serves no webhook
        app[DELIVERY_READER] = DeliveryReader(
            read_secret(github.webhook_secret, github.webhook_secret_file, "webhook_secret"),
            timeout=github.webhook_body_seconds,
            large_body=github.webhook_large_body_bytes,
            large_bodies=github.webhook_large_bodies,
            spool_dir=config.server.spool_dir,
        )
    async with aiohttp.ClientSession() as session:
        client = GitHubClient(
            session=session, api_url=github.api_url, credentials=_credentials(github, session), timeout=github.timeout
        )
        naming = Naming(github.module_prefix, tuple(github.namespaces.items()), parse_monorepos(github.monorepos))
        sync = GitHubSync(
            store=app[STORE],
            blobs=app[BLOBS],
            ingestor=app[INGESTOR],
            catalog=app[CATALOG],
            client=client,
            enqueue=lambda *args, **kwargs: app[JOBS].enqueue(*args, **kwargs),  # the queue starts later
            naming=naming,
            limits=config.limits.archive_limits(),
            spool_dir=config.server.spool_dir,
            delete_archives_on_uninstall=github.on_uninstall == "delete",
        )
        limits = config.limits
        releases = ProviderReleaseIngest(
            store=app[STORE],
            providers=app[PROVIDERS],
            client=client,
            naming=naming,
            limits=ReleaseLimits(limits.max_provider_files, limits.max_provider_zip_bytes, limits.max_provider_release_bytes),
            spool_dir=config.server.spool_dir,
        )
        poller = GitHubPoller(
            store=app[STORE],
            listings=GitHubListings(client),
            naming=naming,
            enqueue=lambda *args, **kwargs: app[JOBS].enqueue(*args, **kwargs),
            app=client.is_app,
            discover=github.mode != "webhook",
            accounts=github.accounts,
        )
        app[JOB_HANDLERS].update(sync.handlers())
        app[JOB_HANDLERS].update(releases.handlers())
        app[JOB_HANDLERS].update(poller.handlers())  # github.poll, and github.reconcile as the same pass
        yield


async def _start_reconciler(app: web.Application) -> None:
    github = app[CONFIG].github
    timers = [_queue_periodically(app, RECONCILE, "github-reconcile", github.reconcile_interval)]
    if github.mode != "webhook":
        timers.append(_queue_periodically(app, POLL, "github-poll", github.poll_interval))
    app[RECONCILER] = asyncio.create_task(_gather(timers))


async def _gather(timers: list[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*timers)


async def _stop_reconciler(app: web.Application) -> None:
    task = app[RECONCILER]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _queue_periodically(app: web.Application, kind: str, name: str, interval: int) -> None:
    """Queue a ``kind`` job every ``interval`` seconds (the first at once); the dedupe key makes
    it one per interval across every process sharing the store."""
    if interval <= 0:
        return
    while True:
        slot = int(time.time() // interval)
        await app[JOBS].enqueue(kind, {}, dedupe_key=f"{name}:{interval}:{slot}")
        await asyncio.sleep((slot + 1) * interval - time.time())


def _credentials(github: GitHubConfig, session: aiohttp.ClientSession) -> GitHubCredentials:
    if github.app_id:
        private_key = read_secret(github.private_key, github.private_key_file, "private_key")
        return AppCredentials(
            session=session, api_url=github.api_url, app_id=github.app_id, private_key=private_key, timeout=github.timeout
        )
    assert github.token, "validated: an App or a token is configured"
    return TokenCredentials(github.token)


class GitHubSource:
    """The built-in source ``github`` (``mirror.app.sources``): set up when ``[github]`` is
    configured; it serves the webhook route ``/github/webhook`` unless ``mode = "poll"``.
    ``check`` is ``mirror sources check`` (``mirror.app.github_check``)."""

    def setup(self, app: web.Application) -> list[web.RouteDef]:
        setup_github(app)
        return [] if app[CONFIG].github.mode == "poll" else github_webhook.routes()

    async def check(self, config: Config) -> list[CheckLine]:
        """``mirror sources check`` for GitHub (``mirror.app.github_check``)."""
        return await check_github(config)
