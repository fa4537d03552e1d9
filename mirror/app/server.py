"""Running the server: logging, TLS, the data-directory lock, graceful shutdown on SIGTERM/SIGINT.

The order is: take the locks on the local data (a second ``mirror serve`` on the same database
or spool stops here, at once), start the application (stores, event log, workers), bind the
listening socket, and only then log ``serving``. Whatever fails on the way, everything started
before it is stopped again, so the process exits instead of waiting on an open store.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import ssl

import structlog
from aiohttp import web

from mirror.app.build import create_app
from mirror.app.locks import lock_local_data, ssl_context
from mirror.config import Config
from mirror.domain.errors import MirrorError
from mirror.app.logs import configure_logging

log = structlog.get_logger("mirror.server")


def serve(config: Config) -> None:
    sink, access_log = configure_logging(config.logging.level, config.logging.format)
    context = ssl_context(config)
    try:
        with lock_local_data(config):
            app = create_app(config, access_log)
            if sink is not None:
                app.cleanup_ctx.insert(0, sink.periodic_drain)  # first in, last out: drains after everything
            asyncio.run(_run(app, config, context))
        log.info("stopped")
    finally:
        if sink is not None:
            sink.drain()


async def _run(app: web.Application, config: Config, context: ssl.SSLContext | None) -> None:
    server = config.server
    # access_log=None: one structured line per request comes from our middleware
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=server.shutdown_timeout)
    try:
        await runner.setup()  # on_startup and every cleanup_ctx: stores, event log, workers
        site = web.TCPSite(runner, server.host, server.port, ssl_context=context)
        try:
            await site.start()
        except OSError as exc:  # the listening socket: address in use, no permission
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise MirrorError(f"cannot listen on {server.host}:{server.port}: {reason}") from None
        stop = _stop_on_signals()
        # Move everything alive after start-up (modules, clients, config) out of the collector's
        # reach: full collections then scan only what requests allocate.
        gc.freeze()
        log.info(
            "serving",
            url=f"{'https' if context else 'http'}://{server.host}:{_bound_port(runner, server.port)}",
            metadata=config.metadata.backend,
            blobs=config.blobs.backend,
            downloads=config.downloads.mode,
            anonymous_read=config.auth.anonymous_read,
        )
        await stop.wait()
    finally:
        await runner.cleanup()  # also after a failed start: closes what had been opened


def _stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (a graceful stop from then on)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    return stop


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    """The port the socket is bound to (``port = 0`` picks a free one)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured
