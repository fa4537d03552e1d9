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
import contextvars
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
import structlog


_access = structlog.get_logger("mirror.http")

#: the id of the request being handled, added to every line logged while handling it
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("mirror_request_id", default=None)


def add_request_id(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current request's id (one ContextVar read; no context copy)."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


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


class AccessLog(Protocol):
    def __call__(self, *, method: str, path: str, status: int, ms: float, remote: str | None, request_id: str) -> None: ...


def structlog_access_log(*, method: str, path: str, status: int, ms: float, remote: str | None, request_id: str) -> None:
    """The request line through structlog's processors (console output, tests)."""
    _access.info("request", method=method, path=path, status=status, ms=ms, remote=remote, request_id=request_id)


class JsonAccessLog:
    """The request line rendered straight into the sink, in the shape structlog's JSON lines have.

    It is the one line every request pays for, so it skips the processor chain; other log lines
    keep going through structlog.
    """

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink
        self._second = -1
        self._prefix = ""

    def __call__(self, *, method: str, path: str, status: int, ms: float, remote: str | None, request_id: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # formatting the date once a second
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        line = {
            "method": method,
            "path": path,
            "status": status,
            "ms": ms,
            "remote": remote,
            "event": "request",
            "request_id": request_id,
            "level": "info",
            "timestamp": f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z",
        }
        self._sink.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


def configure_logging(level: str = "info", fmt: str = "auto") -> tuple[LogSink | None, AccessLog | None]:
    """Configure structlog for the process. Returns the sink to drain when output is buffered,
    and the request-line writer (None when the level hides request lines)."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    show_requests = logging.getLevelName(level.upper()) <= logging.INFO
    shared: list[Any] = [
        add_request_id,
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
        return None, (structlog_access_log if show_requests else None)
    sink = LogSink(sys.stderr.fileno())
    structlog.configure(
        processors=[*shared, structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer(serializer=orjson.dumps)],
        wrapper_class=wrapper,
        logger_factory=structlog.BytesLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )
    return sink, (JsonAccessLog(sink) if show_requests else None)
