"""structlog, configured once at start: JSON off a terminal, console lines on one.

Request ids (and later delivery ids) are bound through contextvars, so every line logged while
handling a request carries its id.

JSON lines go through a ``LogSink`` that collects them in memory and writes them in batches (every
``flush_interval`` seconds, or once 64 KiB have gathered, and at shutdown), the way nginx's
buffered access log does: a busy server then pays no system call per request. A crash can lose
at most the last ``flush_interval`` of lines. Console output (a person at a terminal) is unbuffered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog


class LogSink:
    """A file-like target for structlog's BytesLogger that writes in batches."""

    def __init__(self, fd: int, *, max_buffer: int = 64 * 1024, flush_interval: float = 0.2) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._max_buffer = max_buffer
        self.flush_interval = flush_interval

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self._max_buffer:
            self.drain()

    def flush(self) -> None:
        """Called by structlog after every line: deliberately nothing (see ``drain``)."""

    def drain(self) -> None:
        view = memoryview(self._buffer)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            pass  # nowhere left to log to; never fail a request over it
        finally:
            view.release()
            self._buffer.clear()

    async def periodic_drain(self, _: Any = None) -> AsyncIterator[None]:
        """A cleanup context: drain every ``flush_interval`` while the app runs, and at the end."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.flush_interval)
                self.drain()

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            self.drain()


def configure_logging(level: str = "info", fmt: str = "auto") -> LogSink | None:
    """Configure structlog for the process; returns the sink to drain when output is buffered."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    wrapper = structlog.make_filtering_bound_logger(logging.getLevelName(level.upper()))
    if use_console:
        structlog.configure(
            processors=[*shared, structlog.dev.ConsoleRenderer()],
            wrapper_class=wrapper,
            logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=True,
        )
        return None
    sink = LogSink(sys.stderr.fileno())
    structlog.configure(
        processors=[*shared, structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer(serializer=orjson.dumps)],
        wrapper_class=wrapper,
        logger_factory=structlog.BytesLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )
    return sink
