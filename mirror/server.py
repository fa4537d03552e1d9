"""Running the server: logging, TLS, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import gc

import structlog
from aiohttp import web

from mirror.app import create_app, ssl_context
from mirror.config import Config
from mirror.errors import MirrorError
from mirror.logs import configure_logging

log = structlog.get_logger("mirror.server")


async def _freeze_heap(_: web.Application) -> None:
    """Move everything alive after start-up (modules, clients, config) out of the collector's
    reach: full collections then scan only what requests allocate."""
    gc.freeze()


def serve(config: Config) -> None:
    sink, access_log = configure_logging(config.logging.level, config.logging.format)
    context = ssl_context(config)
    server = config.server
    app = create_app(config, access_log)
    if sink is not None:
        app.cleanup_ctx.insert(0, sink.periodic_drain)  # first in, last out: drains after everything

    async def announce(_: web.Application) -> None:
        scheme = "https" if context else "http"
        log.info(
            "serving",
            url=f"{scheme}://{server.host}:{server.port}",
            metadata=config.metadata.backend,
            blobs=config.blobs.backend,
            downloads=config.downloads.mode,
            anonymous_read=config.auth.anonymous_read,
        )

    app.on_startup.append(announce)
    app.on_startup.append(_freeze_heap)
    try:
        web.run_app(
            app,
            host=server.host,
            port=server.port,
            ssl_context=context,
            access_log=None,  # one structured line per request comes from our middleware
            print=None,
            shutdown_timeout=server.shutdown_timeout,
        )
    except OSError as exc:  # the listening socket: address in use, no permission
        raise MirrorError(f"cannot listen on {server.host}:{server.port}: {exc.strerror or exc}") from None
    log.info("stopped")
    if sink is not None:
        sink.drain()
