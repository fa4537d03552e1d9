"""The request line: the id of the request being handled, and the shape of the access log that
the middleware calls once per request (``mirror.app.logs`` configures where it goes)."""

from __future__ import annotations

import contextvars
from typing import Protocol

import structlog

_access = structlog.get_logger("mirror.http")

#: the id of the request being handled, added to every line logged while handling it
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("mirror_request_id", default=None)


class AccessLog(Protocol):
    def __call__(self, *, method: str, path: str, status: int, ms: float, remote: str | None, request_id: str) -> None: ...


def structlog_access_log(*, method: str, path: str, status: int, ms: float, remote: str | None, request_id: str) -> None:
    """The request line through structlog's processors (console output, tests)."""
    _access.info("request", method=method, path=path, status=status, ms=ms, remote=remote, request_id=request_id)
