"""Cleanup contexts that run services for the HTTP layer (``app.cleanup_ctx``, after the
storage context, so they stop before the store closes; cleanup runs in reverse order).

``downloads_context`` keeps download counts in memory and flushes them periodically and at
shutdown. ``webhooks_context`` creates the one outbound ``aiohttp.ClientSession`` of the webhooks
(guarded: it connects to public addresses only, unless ``[webhooks] allow_private``), the
dispatcher, makes the config's subscriptions current and starts delivering; on shutdown it stops
the dispatcher, then closes the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from mirror.http.keys import CONFIG, DOWNLOADS, METRICS, STORE, WEBHOOKS
from mirror.integrations.netguard import outbound_session
from mirror.integrations.webhook_transport import HttpWebhookTransport
from mirror.services.browse import counting_downloads
from mirror.services.webhooks import WebhookDispatcher


async def downloads_context(app: web.Application) -> AsyncIterator[None]:
    async with counting_downloads(app[STORE]) as counter:
        app[DOWNLOADS] = counter
        yield


async def webhooks_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG].webhooks
    async with outbound_session(allow_private=config.allow_private) as session:
        dispatcher = WebhookDispatcher(
            app[STORE],
            HttpWebhookTransport(session, allow_private=config.allow_private),
            timeout=config.timeout_seconds,
            max_attempts=config.max_attempts,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            lease_seconds=config.lease_seconds,
            on_delivery=app[METRICS].webhooks.count,
        )
        app[WEBHOOKS] = dispatcher
        app[STORE].add_event_listener(dispatcher.wake)  # deliver as soon as an event is committed
        await dispatcher.sync_config(config.subscriptions)
        await dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.stop()
