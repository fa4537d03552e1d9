"""What wraps every request: a request id, one log line per request, its count and duration for
``/metrics``, and ``{"errors": [...]}`` for every error (ours, aiohttp's own 404/405/413, and
anything unexpected, which is a 500 and logged with its traceback).

A browser asking for a path no route matches (its ``Accept`` prefers ``text/html``, and the path
is not one of the API's or Terraform's) gets the web UI's HTML error page instead, with the UI's
security headers; every other client keeps the JSON shape."""

from __future__ import annotations

import functools
import itertools
import secrets
import time
from collections.abc import Iterable
from http import HTTPStatus

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from mirror.domain.errors import MirrorError
from mirror.http.access_log import REQUEST_ID, AccessLog, structlog_access_log
from mirror.http.telemetry import UNMATCHED, HttpMetrics
from mirror.http.ui.pages import SECURITY_HEADERS, Templates

log = structlog.get_logger("mirror.http")

REQUEST_ID_HEADER = "X-Request-Id"
#: paths that only programs read: an unmatched one is answered in JSON whatever ``Accept`` says
API_PREFIXES = ("/v1/", "/api/", "/.well-known/", "/oauth/token")


class RequestIds:
    """Unique request ids without a syscall per request: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


def error_response(status: int, *messages: str) -> web.Response:
    response = web.json_response({"errors": list(messages)}, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="mirror"'
    return response


class RequestWrapper:
    """What every request goes through: a request id, the request line (when ``access_log`` is
    set), its count and duration (when ``metrics`` is set), and rendered errors.

    It wraps each route's handler when the route is registered rather than being an aiohttp
    middleware: an app with any middleware pays for a chain of them on every request (aiohttp
    adds one of its own), which measured about 6 us, a sixth of a bare handler's whole cost.
    Requests that match no route reach ``unmatched`` through a catch-all route registered last,
    so they get the same ids, request lines, counts and error shape.

    Counting is as cheap as the rest: each route's ``RouteStats`` is made here, once, and a
    request adds to it with a few plain increments (see ``mirror/metrics.py``).
    """

    def __init__(self, access_log: AccessLog | None = structlog_access_log, metrics: HttpMetrics | None = None) -> None:
        self._ids = RequestIds()
        self._access_log = access_log
        self._metrics = metrics

    def register(self, router: web.UrlDispatcher, routes: Iterable[web.RouteDef]) -> None:
        for route in routes:
            kwargs = dict(route.kwargs)
            methods = [route.method]
            if route.method == hdrs.METH_GET and kwargs.pop("allow_head", True):
                methods.insert(0, hdrs.METH_HEAD)  # as add_get does, but wrapped (and counted) apart
            for method in methods:
                router.add_route(method, route.path, self.wrap(route.handler, route.path, method), **kwargs)

    def register_fallback(self, router: web.UrlDispatcher) -> None:
        """The catch-all route: call after every other route has been registered."""
        router.add_route("*", r"/{path:[\s\S]*}", self.wrap(unmatched, UNMATCHED, "*"), name=FALLBACK_ROUTE)

    def wrap(self, handler: Handler, path: str, method: str) -> Handler:
        """``handler`` of the route ``method path``; ``path`` also names the route in the metrics
        (as its template: ``{id:[0-9]+}`` becomes ``{id}``; the catch-all is counted as ``unmatched``)."""
        ids, access_log = self._ids, self._access_log
        stats = self._metrics.route(path, method) if self._metrics is not None else None

        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            incoming = request.headers.get(REQUEST_ID_HEADER, "")
            request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ids.next()
            token = REQUEST_ID.set(request_id)
            started = time.perf_counter()
            try:
                try:
                    response = await handler(request)
                except MirrorError as exc:
                    response = _mirror_error(exc)
                except web.HTTPException as exc:
                    response = _http_error(exc)
                except (ConnectionResetError, TimeoutError) as exc:
                    log.info("client went away", error=str(exc))
                    raise
                except Exception:
                    log.exception("unhandled error")
                    response = error_response(
                        500, "internal error; the request id in X-Request-Id identifies it in the logs"
                    )
                response.headers[REQUEST_ID_HEADER] = request_id
                elapsed = time.perf_counter() - started
                if stats is not None:
                    stats.observe(request, response.status, elapsed)
                if access_log is not None:
                    # The path only: query strings may carry download signatures, headers carry tokens.
                    access_log(
                        method=request.method,
                        path=request.path,
                        status=response.status,
                        ms=round(elapsed * 1000, 2),
                        remote=request.remote,
                        request_id=request_id,
                    )
                return response
            finally:
                REQUEST_ID.reset(token)

        return wrapped


FALLBACK_ROUTE = UNMATCHED


async def unmatched(request: web.Request) -> web.StreamResponse:
    """No route took the request: 405 with ``Allow`` when its path exists under other methods,
    else 404 (what aiohttp itself would answer, in our error shape)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name != FALLBACK_ROUTE:
            allowed |= (await resource.resolve(request))[1]
    if wants_html(request):
        if allowed:
            response = _html_error(request, 405, f"This page does not take {request.method} requests.")
            response.headers["Allow"] = ",".join(sorted(allowed))
            return response
        return _html_error(request, 404, "There is no page at this address.")
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def wants_html(request: web.Request) -> bool:
    """A browser's request: ``Accept`` names ``text/html`` at least as high as JSON, for a path
    outside the API's and Terraform's."""
    if request.path.startswith(API_PREFIXES) or request.path in ("/v1", "/api"):
        return False
    html, json = 0.0, 0.0
    for part in request.headers.get(hdrs.ACCEPT, "").split(","):
        kind, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if kind.lower() == "text/html":
            html = max(html, quality)
        elif kind.lower() == "application/json":
            json = max(json, quality)
    return html > 0 and html >= json


@functools.cache
def _templates() -> Templates:
    return Templates()


def _html_error(request: web.Request, status: int, message: str) -> web.Response:
    """The UI's error page (``error.html``, no script of its own) with its security headers."""
    response = _templates().render(
        request, "error.html", status=status, status_code=status, reason=HTTPStatus(status).phrase, message=message
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _mirror_error(exc: MirrorError) -> web.Response:
    if exc.status >= 500:
        log.error("request failed", error=exc.message, status=exc.status)
    return error_response(exc.status, exc.message)


def _http_error(exc: web.HTTPException) -> web.StreamResponse:
    """aiohttp's own answers (unknown route, wrong method, body too large) in our error shape."""
    if exc.status < 400:  # redirects and the like are answers, not errors
        return exc
    text = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    response = error_response(exc.status, text or exc.reason)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response
