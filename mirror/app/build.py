"""The one composition root: ``create_app(config)`` builds the Application.

Clients (metadata store, blob store) are created once in a ``cleanup_ctx`` and closed after
``yield``; services are built on top of them and shared through typed AppKeys. Each feature has
its setup in its own module of ``mirror.app``: the stores (``stores``, shared with the command
line), the event sinks (``sinks``), the services (``services``), the sources (``sources``: GitHub
and plug-ins), the pull-through cache (``pullthrough``); plug-ins are found by ``plugins``.
Running the server (locks, TLS, signals) is ``mirror.app.server``.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from mirror.http import contexts, metrics
from mirror.config import Config
from mirror.domain.errors import BadRequest, Conflict, ConfigError, InvalidArchive, NotFound, PayloadTooLarge, StorageUnavailable
from mirror.app.oidc import oidc_context
from mirror.app.plugins import config_problems
from mirror.app.pullthrough import provider_mirror_context, provider_upstreams, proxied_namespaces, pull_through_context
from mirror.app.services import SIGNING_KEY_SETTING, services_context
from mirror.app.sinks import sinks_context
from mirror.app.sources import setup_sources
from mirror.app.stores import open_stores
from mirror.integrations.github.api import GitHubError
from mirror.http.keys import (
    BLOBS,
    CONFIG,
    JOB_HANDLERS,
    JOBS,
    METRICS,
    READINESS,
    STORE,
)
from mirror.http import (
    api,
    audit_api,
    browse_api,
    events_api,
    jobs_api,
    lifecycle_api,
    login,
    modules_api,
    modules_v1,
    network_mirror,
    openapi,
    provider_browse,
    providers_api,
    providers_v1,
    sessions_api,
    tokens_api,
    webhooks_api,
)
from mirror.http.access_log import AccessLog, structlog_access_log
from mirror.http.telemetry import Metrics
from mirror.http.middleware import RequestWrapper
from mirror.services.jobs import JobQueue
from mirror.services.singleflight import SingleFlight
from mirror.http.ui import pages

__all__ = ["SIGNING_KEY_SETTING", "create_app", "proxied_namespaces"]

MAX_REQUEST_LINE = 32 * 1024
#: errors that retrying cannot fix: such a job fails at once. KeyError, TypeError and ValueError
#: come from a payload of the wrong shape (a signed delivery that is not what GitHub sends), or
#: from a bug; neither goes away by running the same job again (``mirror jobs retry`` can).
PERMANENT_JOB_ERRORS = (
    BadRequest,
    InvalidArchive,
    PayloadTooLarge,
    Conflict,
    NotFound,
    GitHubError,
    KeyError,
    TypeError,
    ValueError,
)


def create_app(config: Config, access_log: AccessLog | None = structlog_access_log) -> web.Application:
    problems = config_problems(config)  # the plug-ins' tables (load_app_config has checked them with the rest)
    if problems:
        raise ConfigError(problems)
    # A request line as long as the documented query parameters allow (20 event types of 100
    # characters, percent-encoded UTF-8) must reach a handler: aiohttp's parser answers a longer
    # one itself, in plain text, with its default of 8190 bytes.
    app = web.Application(handler_args={"max_line_size": MAX_REQUEST_LINE})
    app[CONFIG] = config
    app[JOB_HANDLERS] = {}
    app[METRICS] = Metrics(config.downloads.mode)
    app[READINESS] = SingleFlight()
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(sinks_context)  # the event log, webhooks, plug-in sinks: they stop after every writer
    app.cleanup_ctx.append(services_context)
    app.cleanup_ctx.append(oidc_context)
    proxied = proxied_namespaces(config)
    if proxied:
        app.cleanup_ctx.append(pull_through_context)
    if provider_upstreams(config):
        app.cleanup_ctx.append(provider_mirror_context)
    app.cleanup_ctx.append(contexts.downloads_context)  # flushes download counts before the store closes
    source_routes = setup_sources(app)  # GitHub, plug-ins: job handlers registered, closing after the queue
    app.cleanup_ctx.append(_jobs)
    wrapper = RequestWrapper(access_log, app[METRICS].http if config.metrics.enabled else None)
    # Terraform's hot routes first; browse patterns never overlap them
    wrapper.register(app.router, modules_v1.routes(proxied))
    wrapper.register(app.router, providers_v1.routes())
    wrapper.register(app.router, network_mirror.routes())
    for routes in (
        browse_api.routes(),
        provider_browse.routes(),
        api.routes(),
        modules_api.routes(),
        lifecycle_api.routes(),
        providers_api.routes(),
        jobs_api.routes(),
        webhooks_api.routes(),
        events_api.routes(),
        audit_api.routes(),
        tokens_api.routes(),
        sessions_api.routes(),
        login.routes(),
    ):
        wrapper.register(app.router, routes)
    wrapper.register(app.router, source_routes)
    if config.metrics.enabled:
        wrapper.register(app.router, metrics.routes())
    wrapper.register(app.router, pages.routes())  # the web UI: HTML pages and their static files
    wrapper.register(app.router, openapi.routes())
    wrapper.register_fallback(app.router)  # last: 404 and 405 in the error shape
    return app


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """The stores, opened as the command line opens them (``mirror.app.stores``); a new
    registry's database is created."""
    config = app[CONFIG]
    await asyncio.to_thread(prepare_spool, config.server.spool_dir)
    async with open_stores(config, create=True) as stores:
        app[STORE] = stores.metadata
        app[BLOBS] = stores.blobs
        yield


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    """The job queue's workers run while the app does, with every handler registered first."""
    config = app[CONFIG]
    jobs = config.jobs
    queue = JobQueue(
        app[STORE],
        workers=config.github.workers,
        lease_seconds=jobs.lease_seconds,
        max_attempts=jobs.max_attempts,
        backoff_base=jobs.backoff_base,
        backoff_max=jobs.backoff_max,
        permanent=PERMANENT_JOB_ERRORS,
        on_outcome=app[METRICS].jobs.count,
    )
    app[JOBS] = queue
    for kind, handler in app[JOB_HANDLERS].items():
        queue.register(kind, handler)
    await queue.start()
    yield
    await queue.stop()


def prepare_spool(spool: Path, stale_after: float = 3600) -> None:
    """Create the spool directory (0700: only this user reads what is being checked) and remove
    what crashed processes left there (older than an hour, so another process's work in
    progress is left alone)."""
    try:
        spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        cutoff = time.time() - stale_after
        for entry in spool.iterdir():
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    except OSError as exc:
        raise StorageUnavailable(f"spool directory {spool} is not usable: {exc}") from exc
