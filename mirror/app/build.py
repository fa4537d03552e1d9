"""The one composition root: ``create_app(config)`` builds the Application.

Clients (metadata store, blob store) are created once in a ``cleanup_ctx`` and closed after
``yield``; services are built on top of them and shared through typed AppKeys.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import shutil
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from mirror.http import contexts, metrics
from mirror.config import Config
from mirror.domain.errors import BadRequest, Conflict, InvalidArchive, MirrorError, NotFound, PayloadTooLarge, StorageUnavailable
from mirror.integrations.github.api import GitHubError
from mirror.http import github_webhook
from mirror.app.github import setup_github
from mirror.http.keys import (
    ANALYZER,
    AUTH,
    BLOBS,
    CATALOG,
    CONFIG,
    INGESTOR,
    JOB_HANDLERS,
    JOBS,
    LOCATOR,
    METRICS,
    PULLTHROUGH,
    READINESS,
    STORE,
)
from mirror.http import api, browse_api, events_api, jobs_api, modules_api, modules_v1, openapi, webhooks_api
from mirror.http.access_log import AccessLog, structlog_access_log
from mirror.http.telemetry import Metrics
from mirror.http.middleware import RequestWrapper
from mirror.services.analysis import analyzer_for
from mirror.services.auth import Authenticator
from mirror.services.catalog import ModuleCatalog
from mirror.services.downloads import DownloadLocator
from mirror.services.eventlog import EventLogWriter
from mirror.services.ingest import Ingestor
from mirror.services.jobs import JobQueue
from mirror.services.pullthrough import ProxiedUpstream, PullThrough
from mirror.services.singleflight import SingleFlight
from mirror.storage.factory import make_blob_store, make_metadata_store
from mirror.http.ui import pages

SIGNING_KEY_SETTING = "downloads.signing_key"
MAX_REQUEST_LINE = 32 * 1024
#: seconds an upstream registry has to answer a pull-through look-up (Terraform waits 10 s for us)
PULLTHROUGH_TIMEOUT = 8.0
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
    # A request line as long as the documented query parameters allow (20 event types of 100
    # characters, percent-encoded UTF-8) must reach a handler: aiohttp's parser answers a longer
    # one itself, in plain text, with its default of 8190 bytes.
    app = web.Application(handler_args={"max_line_size": MAX_REQUEST_LINE})
    app[CONFIG] = config
    app[JOB_HANDLERS] = {}
    app[METRICS] = Metrics(config.downloads.mode)
    app[READINESS] = SingleFlight()
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_event_log)
    app.cleanup_ctx.append(_services)
    proxied = proxied_namespaces(config)
    if proxied:
        app.cleanup_ctx.append(_pull_through)
    app.cleanup_ctx.append(contexts.downloads_context)  # flushes download counts before the store closes
    if config.github.enabled:
        setup_github(app)  # registers its job handlers; closes after the queue has stopped
    app.cleanup_ctx.append(_jobs)
    app.cleanup_ctx.append(contexts.webhooks_context)
    wrapper = RequestWrapper(access_log, app[METRICS].http if config.metrics.enabled else None)
    # Terraform's hot routes first; browse patterns never overlap them
    wrapper.register(app.router, modules_v1.routes(proxied))
    for routes in (
        browse_api.routes(),
        api.routes(),
        modules_api.routes(),
        jobs_api.routes(),
        webhooks_api.routes(),
        events_api.routes(),
    ):
        wrapper.register(app.router, routes)
    if config.github.enabled:
        wrapper.register(app.router, github_webhook.routes())
    if config.metrics.enabled:
        wrapper.register(app.router, metrics.routes())
    wrapper.register(app.router, pages.routes())  # the web UI: HTML pages and their static files
    wrapper.register(app.router, openapi.routes())
    wrapper.register_fallback(app.router)  # last: 404 and 405 in the error shape
    return app


async def _storage(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    await asyncio.to_thread(prepare_spool, config.server.spool_dir)
    store = make_metadata_store(config)
    await store.open()
    blobs = make_blob_store(config)
    try:
        await blobs.open_client()
        await blobs.check()
    except BaseException:
        await blobs.close()
        await store.close()
        raise
    app[STORE] = store
    app[BLOBS] = blobs
    yield
    await blobs.close()
    await store.close()


async def _event_log(app: web.Application) -> AsyncIterator[None]:
    """The local JSONL log: a consumer of the events table, woken at each commit with events."""
    events = app[CONFIG].events
    if not events.log_path:
        yield
        return
    writer = EventLogWriter(app[STORE], Path(events.log_path), max_bytes=events.log_max_bytes)
    await writer.start()
    app[STORE].add_event_listener(writer.wake)
    yield
    await writer.stop()


async def _services(app: web.Application) -> AsyncIterator[None]:
    config, store, blobs = app[CONFIG], app[STORE], app[BLOBS]
    signing_key = config.downloads.signing_key or await store.get_or_create_setting(
        SIGNING_KEY_SETTING, secrets.token_hex(32)
    )
    app[LOCATOR] = DownloadLocator(
        mode=config.downloads.mode,
        blobs=blobs,
        signing_key=signing_key.encode(),
        ttl_seconds=config.downloads.ttl_seconds,
        public_url=config.server.public_url,
    )
    app[AUTH] = Authenticator(store, anonymous_read=config.auth.anonymous_read)
    app[CATALOG] = catalog = ModuleCatalog(store, ttl_seconds=config.metadata.cache_seconds)
    app[ANALYZER] = analyzer = analyzer_for(config)
    app[INGESTOR] = Ingestor(
        store,
        store,
        blobs,
        catalog,
        config.limits.archive_limits(),
        on_outcome=app[METRICS].ingest.count,
        analyzer=analyzer,
    )
    yield
    await analyzer.close()


def proxied_namespaces(config: Config) -> frozenset[str]:
    """The namespaces (lowercase) that some ``[[upstreams]]`` proxies."""
    return frozenset(namespace.lower() for upstream in config.upstreams for namespace in upstream.proxy_namespaces)


async def _pull_through(app: web.Application) -> AsyncIterator[None]:
    """The pull-through cache: one HTTP session (no cookie jar; no proxy settings or .netrc from
    the environment), a registry client per proxied upstream, and a fetcher on the spool directory."""
    from mirror.integrations.upstream.client import RegistryClient
    from mirror.integrations.upstream.fetch import Fetcher, source_policies

    config = app[CONFIG]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        fetcher = Fetcher(
            session,
            spool_dir=config.server.spool_dir,
            limits=config.limits.archive_limits(),
            policies=source_policies(config.upstreams),
        )
        upstreams = [
            ProxiedUpstream(
                RegistryClient(session, upstream.host, token=upstream.token, timeout=PULLTHROUGH_TIMEOUT),
                frozenset(namespace.lower() for namespace in upstream.proxy_namespaces),
                float(upstream.proxy_ttl_seconds),
            )
            for upstream in config.upstreams
            if upstream.proxy_namespaces
        ]
        pull_through = PullThrough(
            upstreams, store=app[STORE], catalog=app[CATALOG], ingestor=app[INGESTOR], fetcher=fetcher
        )
        app[PULLTHROUGH] = pull_through
        try:
            yield
        finally:
            await pull_through.close()
            await fetcher.close()


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


@contextmanager
def lock_local_data(config: Config) -> Iterator[None]:
    """Hold, while a server runs, an exclusive ``flock`` on the local data that one server at a
    time may use: the SQLite database (through ``<database>.lock``, holding the owner's pid) and
    the spool directory. Replicas on DynamoDB and S3 each have their own spool, so they run side
    by side. Another holder is a MirrorError at once (the lock is never waited for)."""
    held: list[int] = []
    try:
        if config.metadata.backend == "sqlite":
            database = config.metadata.path
            held.append(_lock(database.with_name(database.name + ".lock"), f"the database {database}", directory=False))
        spool = config.server.spool_dir
        held.append(_lock(spool, f"the spool directory {spool}", directory=True))
        yield
    finally:
        for fd in held:
            os.close(fd)  # releases the flock


def _lock(path: Path, what: str, *, directory: bool) -> int:
    """An open descriptor of ``path`` (a directory, or a lock file made 0600) under ``flock``."""
    try:
        if directory:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        else:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise MirrorError(f"cannot lock {what}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise MirrorError(
            f"another mirror serve is using {what}" + (f" (pid {holder})" if holder else "")
        ) from None
    except OSError as exc:  # a file system without flock
        os.close(fd)
        raise MirrorError(f"cannot lock {what}: {exc.strerror or exc}") from None
    if not directory:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _lock_holder(fd: int) -> int | None:
    """The pid holding a ``flock`` on ``fd``'s file: from /proc/locks (Linux), else the pid the
    holder wrote into its lock file; None when neither tells."""
    info = os.fstat(fd)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
                    return int(fields[4])
    except OSError:
        pass
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def ssl_context(config: Config) -> ssl.SSLContext | None:
    server = config.server
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.tls_cert, server.tls_key)
    return context
