"""structlog, configured once at start: JSON off a terminal, console lines on one.

Request ids (and later delivery ids) are bound through contextvars, so every line logged while
handling a request carries its id.

JSON lines go through a ``LogSink`` that collects them in memory and writes them in batches (every
``flush_interval`` seconds, or once 64 KiB have gathered, and at shutdown), the way nginx's
buffered access log does: a busy server then pays no system call per request. A crash can lose
at most the last ``flush_interval`` of lines. Console output (a person at a terminal) is unbuffered.

No line carries a credential or a traceback's local variables (a handler's locals hold the
request's headers and tokens):

- exceptions are rendered without locals: as JSON (``ExceptionDictTransformer(show_locals=False)``)
  and on the console as the standard library prints them (never rich's, which shows locals);
- ``CredentialRedactor`` replaces the value of every key that names a credential
  (``authorization``, ``cookie``, ``token``, ``secret``, ``password``, ``signature``, the
  signature headers, and any ``*_token``, ``*_secret``, ``*_password``, ``*_signature``), at the
  top of an event and one mapping down (a dict of headers);
- ``scrub_rendered`` masks, in the rendered line, credentials wherever they appear in text (an
  exception's message, an event's text): ``Bearer``/``Basic`` values, ``mirror_token=`` cookies,
  this registry's tokens (``mirror_`` and 43 characters) and GitHub's (``ghs_``, ``ghp_``...);
- the standard library's loggers (aiohttp's, asyncio's) go through the same chain; the HTTP
  parser's refusals (whose message quotes the refused header line) are logged as their status
  and the first words of their reason only.

The per-request line (``JsonAccessLog``) skips the processors: its fields are fixed and hold no
credential (the path without its query, the status, the time, the client's address).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError

from mirror.http.access_log import REQUEST_ID, AccessLog, structlog_access_log




def add_request_id(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current request's id (one ContextVar read; no context copy)."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


#: keys whose values are credentials, compared lowercased with ``-`` read as ``_``
CREDENTIAL_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "token",
        "secret",
        "password",
        "passwd",
        "signature",
        "x_hub_signature",
        "x_hub_signature_256",
        "x_mirror_signature",
        "private_key",
        "api_key",
        "client_secret",
    }
)
CREDENTIAL_SUFFIXES = ("_token", "_secret", "_password", "_signature", "_private_key")
REDACTED = "[redacted]"


def is_credential_key(key: str) -> bool:
    """Does ``key`` name a credential?"""
    normal = key.lower().replace("-", "_")
    return normal in CREDENTIAL_KEYS or normal.endswith(CREDENTIAL_SUFFIXES)


class CredentialRedactor:
    """structlog processor: credential-named keys get ``[redacted]``, at the top of the event and
    one dict down. What each key is gets remembered (event keys are the code's own few; the
    memory is dropped if it ever passes ``max_keys``), so a line costs a dict lookup per key."""

    def __init__(self, max_keys: int = 4096) -> None:
        self._known: dict[str, bool] = {}
        self._max_keys = max_keys

    def _is_credential(self, key: Any) -> bool:
        known = self._known.get(key)
        if known is None:
            known = type(key) is str and is_credential_key(key)
            if len(self._known) >= self._max_keys:
                self._known.clear()
            self._known[key] = known
        return known

    def __call__(self, _: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        known, learn = self._known.get, self._is_credential
        for key, value in event_dict.items():
            hit = known(key)
            if hit is None:
                hit = learn(key)
            if hit:
                if value is not None:
                    event_dict[key] = REDACTED
            elif type(value) is dict and any(learn(k) for k in value):
                event_dict[key] = {k: REDACTED if learn(k) else v for k, v in value.items()}
        return event_dict


#: credentials as they appear in text: an Authorization value (its scheme kept), a mirror_token
#: cookie (its name too: secret scanners look for ``mirror_``), one of our tokens (``mirror_``
#: and 43 URL-safe characters) or a GitHub token. A value runs to a space, quote, comma or
#: semicolon, and takes a backslash with the character after it (a JSON or repr escape), so a
#: masked JSON line stays valid JSON. No word boundary is asked for on the left: on the console
#: a colour code ending in ``m`` may come right before.
_VALUE = r"""(?:[^\s"',;\\]|\\.)+"""
_CREDENTIAL_TEXT = (
    rf"(?P<scheme>(?:[Bb]earer|BEARER)\s+){_VALUE}"
    r"|(?P<basic>(?:Basic|BASIC)\s+)[A-Za-z0-9+/]{8,}=*(?![A-Za-z0-9+/=])"
    rf"|(?i:mirror_token=){_VALUE}"
    r"|mirror_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"
    r"|(?:gh[opsur]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"
)
_CREDENTIAL_TEXT_STR = re.compile(_CREDENTIAL_TEXT)
_CREDENTIAL_TEXT_BYTES = re.compile(_CREDENTIAL_TEXT.encode())


def _mask_str(match: re.Match[str]) -> str:
    return (match["scheme"] or match["basic"] or "") + REDACTED


def _mask_bytes(match: re.Match[bytes]) -> bytes:
    return (match["scheme"] or match["basic"] or b"") + REDACTED.encode()


#: what a line holding one of those contains, lowercased: searched for first, because the full
#: pattern costs tens of microseconds on a line without a match, and this a few hundred nanoseconds
_CREDENTIAL_HINT = r"b(?:earer|asic)|mirror_|g(?:h[opsur]_|ithub_pat_)"
_CREDENTIAL_HINT_STR = re.compile(_CREDENTIAL_HINT)
_CREDENTIAL_HINT_BYTES = re.compile(_CREDENTIAL_HINT.encode())


def scrub_rendered(_: Any, __: str, line: Any) -> Any:
    """structlog processor, after the renderer: credentials in the rendered line's text masked."""
    if isinstance(line, bytes):
        if _CREDENTIAL_HINT_BYTES.search(line.lower()) is not None:
            return _CREDENTIAL_TEXT_BYTES.sub(_mask_bytes, line)
    elif isinstance(line, str):
        if _CREDENTIAL_HINT_STR.search(line.lower()) is not None:
            return _CREDENTIAL_TEXT_STR.sub(_mask_str, line)
    return line


def json_dumps(obj: Any, **kwargs: Any) -> bytes:
    """orjson, and the standard library's ``json`` (ASCII, anything unknown as its repr) for what
    orjson refuses, such as text holding bytes that were not UTF-8 (lone surrogates)."""
    try:
        return orjson.dumps(obj, **kwargs)
    except TypeError:
        return json.dumps(obj, ensure_ascii=True, default=repr).encode()


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


def exception_renderer(console: bool) -> Any:
    """How a logged exception is rendered: its frames without their local variables. On the
    console as the standard library prints it: rich's pretty tracebacks wrap long lines and
    colour inside them, which would hide a credential in an exception's message from
    ``scrub_rendered``."""
    if console:
        return structlog.dev.plain_traceback
    return structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))


def processors(console: bool) -> list[Any]:
    """The processor chain every structlog line goes through (the request line excepted)."""
    chain: list[Any] = [
        add_request_id,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        CredentialRedactor(),
    ]
    if console:
        chain.append(structlog.dev.ConsoleRenderer(exception_formatter=exception_renderer(True)))
    else:
        chain += [exception_renderer(False), structlog.processors.JSONRenderer(serializer=json_dumps)]
    chain.append(scrub_rendered)
    return chain


def _parser_reason(message: str) -> str:
    """The fixed words of an HTTP parser's refusal, without the part quoting the request."""
    first = message.strip().split("\n", 1)[0]
    return re.split(r"[:'\"]", first, maxsplit=1)[0].strip() or "malformed request"


class StdlibBridge(logging.Handler):
    """Sends the standard library's log records (aiohttp's, asyncio's) through structlog's chain,
    so they too are JSON lines, without locals, with credentials masked. aiohttp's HTTP parser
    refusals (logged with a message that quotes the refused line, headers included) become one
    warning with their status and reason."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = structlog.get_logger(record.name)
            exc_info = record.exc_info
            error = exc_info[1] if exc_info else None
            if isinstance(error, HttpProcessingError):
                logger.warning(
                    "request refused by the HTTP parser",
                    logger=record.name,
                    status=error.code,
                    reason=_parser_reason(error.message),
                )
                return
            logger.log(record.levelno, record.getMessage(), logger=record.name, exc_info=exc_info or None)
        except Exception:  # noqa: BLE001 - logging must never raise into the code that logs
            # not handleError: it prints the record's message and arguments, and a traceback
            pass


def _bridge_stdlib_logging(level: str) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StdlibBridge)]:
        root.removeHandler(handler)
    root.addHandler(StdlibBridge())
    root.setLevel(logging.getLevelName(level.upper()))


def configure_logging(level: str = "info", fmt: str = "auto") -> tuple[LogSink | None, AccessLog | None]:
    """Configure structlog for the process (and route the standard library's loggers into it).
    Returns the sink to drain when output is buffered, and the request-line writer (None when
    the level hides request lines)."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    show_requests = logging.getLevelName(level.upper()) <= logging.INFO
    wrapper = structlog.make_filtering_bound_logger(logging.getLevelName(level.upper()))
    _bridge_stdlib_logging(level)
    if use_console:
        structlog.configure(
            processors=processors(console=True),
            wrapper_class=wrapper,
            logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=True,
        )
        return None, (structlog_access_log if show_requests else None)
    sink = LogSink(sys.stderr.fileno())
    structlog.configure(
        processors=processors(console=False),
        wrapper_class=wrapper,
        logger_factory=structlog.BytesLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )
    return sink, (JsonAccessLog(sink) if show_requests else None)
