"""Request middleware: a request id, one log line per request, and ``{"errors": [...]}`` for
every error (ours, aiohttp's own 404/405/413, and anything unexpected, which is a 500 and logged
with its traceback)."""

from __future__ import annotations

import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from mirror.errors import MirrorError, Unauthorized

log = structlog.get_logger("mirror.http")

REQUEST_ID_HEADER = "X-Request-Id"


def error_response(status: int, *messages: str) -> web.Response:
    response = web.json_response({"errors": list(messages)}, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="mirror"'
    return response


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    try:
        response = await _render_errors(request, handler)
        response.headers[REQUEST_ID_HEADER] = request_id
        # The path only: query strings may carry download signatures, and headers carry tokens.
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 2),
            remote=request.remote,
        )
        return response
    finally:
        structlog.contextvars.unbind_contextvars("request_id")


async def _render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MirrorError as exc:
        if exc.status >= 500:
            log.error("request failed", error=exc.message, status=exc.status)
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like pass through
            raise
        text = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        response = error_response(exc.status, text or exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (ConnectionResetError, TimeoutError) as exc:
        log.info("client went away", error=str(exc))
        raise
    except Exception:
        log.exception("unhandled error")
        return error_response(500, "internal error; the request id in X-Request-Id identifies it in the logs")


__all__ = ["REQUEST_ID_HEADER", "Unauthorized", "error_response", "request_middleware"]
