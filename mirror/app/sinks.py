"""Starting the event sinks (``mirror.services.sinks``): the built-in JSONL log and outbound
webhooks, then every plug-in sink of the group ``mirror.event_sinks`` that has a
``[plugins.NAME]`` table, in name order.

``sinks_context`` is one cleanup context, right after the stores': each sink is started, then
woken by the store after every commit that appends events; at shutdown the sinks stop in reverse
order, after everything that writes events has stopped and before the stores close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

from aiohttp import web

from mirror.app import plugins
from mirror.config import Config, WebhooksConfig
from mirror.http.keys import CONFIG, METRICS, STORE, WEBHOOKS
from mirror.integrations.netguard import outbound_session
from mirror.integrations.webhook_transport import HttpWebhookTransport
from mirror.services.eventlog import EventLogWriter
from mirror.services.sinks import EventSink, SinkContext
from mirror.services.webhooks import WebhookDispatchStore, WebhookDispatcher


class WebhookSink:
    """The outbound webhooks as a sink: the one guarded HTTP session (public addresses only,
    unless ``[webhooks] allow_private``) and the dispatcher on it, the config's subscriptions
    made current before delivering starts. ``dispatcher`` serves the webhooks API."""

    def __init__(self, store: WebhookDispatchStore, config: WebhooksConfig, on_delivery: Callable[[str], None]) -> None:
        self._store = store
        self._config = config
        self._on_delivery = on_delivery
        self._exit = AsyncExitStack()
        self.dispatcher: WebhookDispatcher | None = None

    async def start(self) -> None:
        config = self._config
        session = await self._exit.enter_async_context(outbound_session(allow_private=config.allow_private))
        self.dispatcher = WebhookDispatcher(
            self._store,
            HttpWebhookTransport(session, allow_private=config.allow_private),
            timeout=config.timeout_seconds,
            max_attempts=config.max_attempts,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            lease_seconds=config.lease_seconds,
            on_delivery=self._on_delivery,
        )
        try:
            await self.dispatcher.sync_config(config.subscriptions)
            await self.dispatcher.start()
        except BaseException:
            await self._exit.aclose()
            raise

    def wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    async def stop(self) -> None:
        try:
            if self.dispatcher is not None:
                await self.dispatcher.stop()
        finally:
            await self._exit.aclose()  # the session, after the dispatcher


def configured_sinks(app: web.Application) -> list[tuple[str, EventSink]]:
    """The sinks the config asks for, built (not started): ``log`` when ``[events] log_path`` is
    set, ``webhooks`` always, then the plug-in sinks with a ``[plugins.NAME]`` table."""
    config: Config = app[CONFIG]
    store = app[STORE]
    sinks: list[tuple[str, EventSink]] = []
    events = config.events
    if events.log_path:
        sinks.append(("log", EventLogWriter(store, Path(events.log_path), max_bytes=events.log_max_bytes)))
    webhooks = WebhookSink(store, config.webhooks, app[METRICS].webhooks.count)
    sinks.append(("webhooks", webhooks))
    for name, plugin in plugins.enabled(plugins.SINK_GROUP, config).items():
        context = SinkContext(name=name, table=config.plugins[name], config=config, store=store)
        sinks.append((name, plugin.create(context)))
    return sinks


async def sinks_context(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    started: list[EventSink] = []
    try:
        for _name, sink in configured_sinks(app):
            await sink.start()
            started.append(sink)
            if isinstance(sink, WebhookSink):
                assert sink.dispatcher is not None
                app[WEBHOOKS] = sink.dispatcher
            store.add_event_listener(sink.wake)
        yield
    finally:
        failed: BaseException | None = None
        for sink in reversed(started):
            try:
                await sink.stop()
            except Exception as exc:  # the others still stop; the first failure is raised after
                failed = failed or exc
        if failed is not None:
            raise failed
