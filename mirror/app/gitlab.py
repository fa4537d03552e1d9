"""The GitLab source, a plug-in of the ``mirror.sources`` group named ``gitlab`` (shipped with
mirror): on when the config has a ``[plugins.gitlab]`` table (``mirror.integrations.gitlab.settings``
lists its keys).

It serves ``POST /gitlab/webhook`` for group webhooks (unless ``mode = "poll"``): the
``X-Gitlab-Token`` header is compared in constant time with ``webhook_token`` (missing: 401; wrong:
403), ``X-Gitlab-Event`` is required (400), the body must be JSON (415) of at most
``MAX_BODY`` bytes (413) arriving within ``BODY_SECONDS`` (408). Tag pushes and project events
become one durable ``gitlab.delivery`` job each (202), known by GitLab's ``X-Gitlab-Event-UUID``
(else the body's SHA-256), so a redelivery is a 200 ``duplicate``; other events are 204. Every
``poll_interval`` seconds a ``gitlab.poll`` job lists the groups: all the work in poll mode, the
reconcile in webhook mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from email.message import Message
from typing import Any

import aiohttp
from aiohttp import web

from mirror.app.checks import CheckLine
from mirror.app.stores import metadata_store
from mirror.config import Config
from mirror.domain.errors import BadRequest, ConfigError, Forbidden, MirrorError, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from mirror.http.keys import CATALOG, CONFIG, INGESTOR, JOB_HANDLERS, JOBS, STORE
from mirror.integrations.gitlab.api import GitLabClient
from mirror.integrations.gitlab.check import check_gitlab
from mirror.integrations.gitlab.settings import GitLabSettings, parse_settings
from mirror.integrations.gitlab.sync import DELIVERY, POLL, PROJECT_EVENTS, GitLabSync

NAME = "gitlab"
MAX_BODY = 5 * 1024 * 1024
BODY_SECONDS = 30.0
_CHUNK = 64 * 1024

SETTINGS = web.AppKey("gitlab_settings", GitLabSettings)
POLLER = web.AppKey("gitlab_poller", asyncio.Task)


class BodyTimeout(MirrorError):
    status = 408


def settings_of(config: Config, environ: Mapping[str, str] | None = None) -> GitLabSettings:
    """The validated ``[plugins.gitlab]`` settings; ConfigError with every problem."""
    settings, problems = parse_settings(config.plugins.get(NAME, {}), os.environ if environ is None else environ)
    if settings is None:
        raise ConfigError([f"[plugins.{NAME}] {problem}" for problem in problems])
    return settings


class GitLabSource:
    """The entry point's object: ``validate`` checks the table, ``setup`` wires the source into
    the server, ``check`` is its part of ``mirror sources check``."""

    def validate(self, table: dict[str, Any]) -> list[str]:
        return parse_settings(table, os.environ)[1]

    def setup(self, app: web.Application) -> list[web.RouteDef]:
        app[SETTINGS] = settings = settings_of(app[CONFIG])
        app.cleanup_ctx.append(_gitlab)
        app.on_startup.append(_start_poller)  # once every cleanup context has started
        app.on_shutdown.append(_stop_poller)
        return [web.post("/gitlab/webhook", webhook)] if settings.webhooks else []

    async def check(self, config: Config) -> list[CheckLine]:
        try:
            settings = settings_of(config)
        except ConfigError as exc:
            return [CheckLine("fail", problem) for problem in exc.problems]
        async with contextlib.AsyncExitStack() as stack:
            try:
                store = await stack.enter_async_context(metadata_store(config, create=False))
            except MirrorError as exc:
                store = None
                first = [CheckLine("warn", f"the metadata store cannot be read ({exc}): every version is listed as new")]
            else:
                first = []
            session = await stack.enter_async_context(aiohttp.ClientSession())
            client = GitLabClient(session=session, api_url=settings.api_url, token=settings.token, timeout=settings.timeout)
            lines = await check_gitlab(settings, client, store, config.server.public_url)
        return first + [CheckLine(status, text) for status, text in lines]


plugin = GitLabSource()


async def _gitlab(app: web.Application) -> AsyncIterator[None]:
    config, settings = app[CONFIG], app[SETTINGS]
    async with aiohttp.ClientSession() as session:
        sync = GitLabSync(
            store=app[STORE],
            ingestor=app[INGESTOR],
            catalog=app[CATALOG],
            client=GitLabClient(session=session, api_url=settings.api_url, token=settings.token, timeout=settings.timeout),
            enqueue=lambda *args, **kwargs: app[JOBS].enqueue(*args, **kwargs),  # the queue starts later
            settings=settings,
            limits=config.limits.archive_limits(),
            spool_dir=config.server.spool_dir,
        )
        app[JOB_HANDLERS].update(sync.handlers())
        yield


async def _start_poller(app: web.Application) -> None:
    app[POLLER] = asyncio.create_task(_poll_periodically(app, app[SETTINGS].poll_interval))


async def _stop_poller(app: web.Application) -> None:
    task = app[POLLER]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _poll_periodically(app: web.Application, interval: int) -> None:
    """Queue a poll every ``interval`` seconds, the first at once; the dedupe key makes it one
    per interval across every process sharing the store."""
    if interval <= 0:
        return
    while True:
        slot = int(time.time() // interval)
        await app[JOBS].enqueue(POLL, {}, dedupe_key=f"gitlab-poll:{interval}:{slot}")
        await asyncio.sleep((slot + 1) * interval - time.time())


# -- POST /gitlab/webhook ------------------------------------------------------------------------


async def webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    given = request.headers.get("X-Gitlab-Token")
    if given is None:
        raise Unauthorized("X-Gitlab-Token is missing: set the group webhook's secret token to [plugins.gitlab] webhook_token")
    assert settings.webhook_token is not None, "validated: webhook modes have a webhook_token"
    # digests of both sides: equal lengths, so the comparison takes the same time whatever is sent
    if not hmac.compare_digest(_digest(given.encode("utf-8", "surrogateescape")), _digest(settings.webhook_token.encode())):
        raise Forbidden("X-Gitlab-Token does not match [plugins.gitlab] webhook_token")
    event = request.headers.get("X-Gitlab-Event", "")
    if not 0 < len(event) <= 100:
        raise BadRequest("the X-Gitlab-Event header is required")
    _check_content_type(request.headers.get("Content-Type", ""))
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"deliveries are at most {MAX_BODY} bytes")
    body = await _read_body(request)
    data = _decode(body)
    if not _acted_on(event, data):
        return web.Response(status=204)
    if event == "System Hook" and data.get("object_kind") == "tag_push":
        event = "Tag Push Hook"  # a system hook's tag push has the same payload
    uuid = request.headers.get("X-Gitlab-Event-UUID", "")
    key = f"gitlab-event:{uuid}" if 0 < len(uuid) <= 100 else f"gitlab-delivery-sha256:{hashlib.sha256(body).hexdigest()}"
    job = await request.app[JOBS].enqueue(DELIVERY, {"event": event, "delivery": uuid or None, "data": data}, dedupe_key=key)
    if job is None:
        return web.json_response({"status": "duplicate", "delivery": uuid or None})
    return web.json_response({"status": "queued", "delivery": uuid or None, "job": job.id}, status=202)


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _acted_on(event: str, data: dict[str, Any]) -> bool:
    if event == "Tag Push Hook" or (event == "System Hook" and data.get("object_kind") == "tag_push"):
        return True
    return event in ("Project Hook", "System Hook") and data.get("event_name") in PROJECT_EVENTS


def _check_content_type(header: str) -> None:
    message = Message()
    message["content-type"] = header or "text/plain"
    if message.get_content_type() != "application/json":
        raise UnsupportedMediaType("deliveries must be sent with content type application/json")


async def _read_body(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while chunk := await request.content.read(_CHUNK):
                size += len(chunk)
                if size > MAX_BODY:
                    raise PayloadTooLarge(f"deliveries are at most {MAX_BODY} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {BODY_SECONDS:g} seconds") from None
    return b"".join(chunks)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except RecursionError:
        raise BadRequest("the body is not valid JSON: it is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data
