"""Cleanup contexts that run services for the HTTP layer (``app.cleanup_ctx``, after the
storage context, so they stop before the store closes; cleanup runs in reverse order).

``downloads_context`` keeps download counts in memory and flushes them periodically and at
shutdown. (The outbound webhooks' dispatcher runs as an event sink: ``mirror.app.sinks``.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from mirror.http.keys import DOWNLOADS, STORE
from mirror.services.browse import counting_downloads


async def downloads_context(app: web.Application) -> AsyncIterator[None]:
    async with counting_downloads(app[STORE]) as counter:
        app[DOWNLOADS] = counter
        yield
