"""Credentials in requests and logs.

A live ``mirror serve`` gets hostile credentials as raw bytes over a socket (bytes that are not
UTF-8, latin-1, controls, over-long tokens, ``Bearer`` alone, several ``Authorization`` headers,
basic auth, and the same in the ``mirror_token`` cookie): the API answers 401 in the error shape
with ``WWW-Authenticate: Bearer``, the UI goes to the login form and drops the cookie, nothing
answers 500, and the server's log (JSON lines) holds no traceback locals and none of the bytes
presented. The log processors are also run directly on an exception whose frame holds a secret.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage
from multidict import CIMultiDict, CIMultiDictProxy

from mirror.domain.errors import Unauthorized
from mirror.app.logs import CredentialRedactor, StdlibBridge, processors, scrub_rendered
from mirror.services.auth import MAX_AUTHORIZATION_CHARS, MAX_TOKEN_CHARS, Authenticator, authorization_header
from mirror.services.tokens import create_token
from mirror.storage.sqlite import SqliteMetadataStore
from tests.live import MirrorServer, create_database, eventually, free_port, run_cli, write_config

#: in every hostile credential, so the log can be searched for it
MARK = b"s3cr3tMARK"
API_PATH = b"/v1/modules/acme/network/aws/versions"
PAGE_PATH = b"/modules/acme/network/aws"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MirrorServer, str]]:
    """A running registry and an admin token of it."""
    tmp = tmp_path_factory.mktemp("credentials")
    port = free_port()
    config_file = write_config(
        tmp / "mirror.toml",
        {
            "server": {"port": port},
            "metadata": {"path": str(tmp / "data" / "mirror.db")},
            "blobs": {"path": str(tmp / "data" / "blobs")},
            "events": {"log_path": str(tmp / "data" / "events.jsonl")},
        },
    )
    create_database(tmp / "data" / "mirror.db")  # as the server's first start would
    created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config_file), cwd=tmp)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    server = MirrorServer(config_file, port, tmp).start()
    try:
        yield server, token
    finally:
        assert server.stop() == 0


async def send(server: MirrorServer, path: bytes, header_lines: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """One GET with these header lines written as they are; the status, headers and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        lines = [b"GET " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *header_lines]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_block = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in header_block:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(status_line.split(" ")[1]), headers, body


def bearer(token: bytes) -> bytes:
    return b"Authorization: Bearer " + token


#: Authorization headers, as raw lines; each must be a 401 in the error shape
HOSTILE_AUTHORIZATION: dict[str, list[bytes]] = {
    "not-utf8": [bearer(b"mirror_" + MARK + b"\xff\xfe\xfd")],
    "latin1": [bearer(b"mirror_" + MARK + b"\xe9t\xe9")],
    "utf8-non-ascii": [bearer("mirror_s3cr3tMARKtökén".encode())],
    "lone-surrogate-bytes": [bearer(b"mirror_" + MARK + b"\xed\xb2\x80")],
    "tab-inside": [bearer(b"mirror_" + MARK + b"\tx")],
    "quoted": [bearer(b'"mirror_' + MARK + b'"')],
    "token-then-junk": [bearer(b"mirror_" + MARK + b" more")],
    "comma-list": [bearer(b"mirror_" + MARK + b", Bearer other")],
    "over-long-header": [bearer(b"mirror_" + MARK + b"A" * 7000)],
    "token-over-max": [bearer(b"mirror_" + MARK + b"A" * MAX_TOKEN_CHARS)],
    "bearer-alone": [b"Authorization: Bearer"],
    "bearer-spaces": [b"Authorization: Bearer    "],
    "bearer-tab-separated": [b"Authorization: Bearer\tmirror_" + MARK],
    "basic": [b"Authorization: Basic czNjcjN0TUFSSzpwYXNzd29yZA=="],  # s3cr3tMARK:password
    "other-scheme": [b"Authorization: Token mirror_" + MARK],
    "two-headers": [bearer(b"mirror_" + MARK + b"one"), bearer(b"mirror_" + MARK + b"two")],
}


@pytest.mark.parametrize("label", list(HOSTILE_AUTHORIZATION))
async def test_hostile_authorization_is_a_401_in_the_error_shape(live: tuple[MirrorServer, str], label: str) -> None:
    server, _ = live
    status, headers, body = await send(server, API_PATH, HOSTILE_AUTHORIZATION[label])
    assert status == 401, body[:300]
    assert headers["content-type"].startswith("application/json")
    assert headers["www-authenticate"].startswith("Bearer")
    assert headers.get("x-request-id")
    errors = json.loads(body)["errors"]
    assert errors and all(isinstance(e, str) and e for e in errors)
    assert MARK not in body  # the answer does not repeat the credential


async def test_a_valid_token_beside_another_authorization_header_is_refused(live: tuple[MirrorServer, str]) -> None:
    """Several Authorization headers are refused even when one holds a valid token: something
    in front of the registry may have judged the request by the other one."""
    server, token = live
    good = bearer(token.encode())
    status, _, body = await send(server, API_PATH, [good])
    assert status == 404, body[:300]  # the token works: the module does not exist
    for lines in ([good, good], [good, bearer(b"junk")], [bearer(b"junk"), good], [good, b"Authorization: Basic eDp5"]):
        status, headers, body = await send(server, API_PATH, lines)
        assert status == 401, (lines, body[:300])
        assert headers["www-authenticate"].startswith("Bearer")
    status, _, body = await send(server, API_PATH, [good, b"Authorization: "])
    assert status == 401, body[:300]


#: mirror_token cookies, as raw lines; each is a cookie that does not work
HOSTILE_COOKIES: dict[str, bytes] = {
    "not-utf8": b"Cookie: mirror_token=mirror_" + MARK + b"\xff\xfe",
    "latin1": b"Cookie: mirror_token=mirror_" + MARK + b"\xe9",
    "utf8-non-ascii": "Cookie: mirror_token=mirror_s3cr3tMARKé".encode(),
    "over-long": b"Cookie: mirror_token=mirror_" + MARK + b"A" * 6000,
    "unbalanced-quote": b'Cookie: mirror_token="mirror_' + MARK,
    "tab-inside": b"Cookie: mirror_token=mirror_" + MARK + b"\tx",
    "junk-name-first": b"Cookie: \xff\xfe=1; mirror_token=mirror_" + MARK + b"\xff",
}


@pytest.mark.parametrize("label", list(HOSTILE_COOKIES))
async def test_hostile_cookie_goes_to_login_and_is_dropped(live: tuple[MirrorServer, str], label: str) -> None:
    """The UI answers a cookie that does not work as it answers a revoked one: to the login
    form, which comes back to the page, with the cookie cleared."""
    server, _ = live
    for path in (b"/", PAGE_PATH):
        status, headers, body = await send(server, path, [HOSTILE_COOKIES[label]])
        assert status == 303, body[:300]
        assert headers["location"].startswith("/login?next=")
        assert headers["set-cookie"].startswith('mirror_token=""')
    status, headers, body = await send(server, API_PATH, [HOSTILE_COOKIES[label]])
    assert status == 401, body[:300]  # the API reads no cookie
    assert headers["www-authenticate"].startswith("Bearer")


async def test_a_valid_cookie_still_works(live: tuple[MirrorServer, str]) -> None:
    server, token = live
    status, _, body = await send(server, b"/", [b"Cookie: mirror_token=" + token.encode()])
    assert status == 200, body[:300]
    assert b"<html" in body


#: lines aiohttp's HTTP parser refuses before any handler runs (a 400 of its own)
REFUSED_BY_THE_PARSER: dict[str, list[bytes]] = {
    "nul-in-token": [bearer(b"mirror_" + MARK + b"\x00x")],
    "control-in-token": [bearer(b"mirror_" + MARK + b"\x01x")],
    "nul-in-cookie": [b"Cookie: mirror_token=mirror_" + MARK + b"\x00"],
}


@pytest.mark.parametrize("label", list(REFUSED_BY_THE_PARSER))
async def test_controls_are_refused_before_routing(live: tuple[MirrorServer, str], label: str) -> None:
    server, _ = live
    for path in (API_PATH, b"/"):
        status, _, body = await send(server, path, REFUSED_BY_THE_PARSER[label])
        assert status == 400, body[:300]


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


async def test_the_log_holds_no_credential_and_no_locals(live: tuple[MirrorServer, str]) -> None:
    """After every hostile request above (and again here, so this test stands alone): every log
    line is JSON, none is a 500 or carries a traceback or its locals, and neither the marker of
    the hostile credentials nor the valid token appears, in any encoding."""
    server, token = live
    for lines in HOSTILE_AUTHORIZATION.values():
        await send(server, API_PATH, lines)
        await send(server, PAGE_PATH, lines)
    for line in HOSTILE_COOKIES.values():
        await send(server, b"/", [line])
    for lines in REFUSED_BY_THE_PARSER.values():
        await send(server, API_PATH, lines)
    await send(server, API_PATH, [bearer(token.encode()), bearer(token.encode())])
    # the sink writes in order, every 0.2 s: once this last request's line is there, all are
    await send(server, b"/v1/modules/acme/the-last-request/aws/versions", [])

    async def logged_to_the_end() -> bytes:
        raw = server.log_file.read_bytes() if server.log_file else b""
        return raw if b"the-last-request" in raw else b""

    raw = await eventually(logged_to_the_end, "the last request's log line", timeout=10)
    assert raw.count(b"\n") > 20, raw[:2000]
    for needle in (MARK, MARK.decode().lower().encode(), b"czNjcjN0TUFSSzpwYXNzd29yZA", token.encode()):
        assert needle not in raw, needle
    refused = 0
    for line in raw.splitlines():
        entry = json.loads(line)  # every line is JSON, the standard library's loggers included
        assert entry.get("status") != 500, entry
        assert entry.get("level") not in ("error", "critical"), entry
        assert "exception" not in entry and "Traceback" not in line.decode(), entry
        assert not any(key == "locals" for key, _ in _walk(entry)), entry
        if entry["event"] == "request refused by the HTTP parser":
            refused += 1
            assert entry["reason"] == "Invalid header value char", entry
    assert refused >= len(REFUSED_BY_THE_PARSER)


# -- the log processors, on an exception whose frame holds a secret ---------------------------------

SECRET_TOKEN = "mirror_" + "S" * 43


def _fail_holding(token: str) -> None:
    authorization = f"Bearer {token}"  # a local that must not reach the log
    raise ValueError(f"could not use {authorization!r}")


def _log_failure(console: bool) -> str:
    out: Any = io.StringIO() if console else io.BytesIO()
    logger = structlog.wrap_logger(
        structlog.WriteLogger(out) if console else structlog.BytesLogger(out),
        processors=processors(console=console),
        wrapper_class=structlog.make_filtering_bound_logger(0),
    )
    try:
        _fail_holding(SECRET_TOKEN)
    except ValueError:
        logger.exception(
            "unhandled error",
            headers={
                "Authorization": f"Bearer {SECRET_TOKEN}",
                "Cookie": f"mirror_token={SECRET_TOKEN}",
                "Accept": "*/*",
            },
            x_hub_signature_256="sha256=" + "ab" * 32,
            token_id="abc123",
        )
    value = out.getvalue()
    return value if isinstance(value, str) else value.decode()


def test_json_lines_render_exceptions_without_locals_or_credentials() -> None:
    text = _log_failure(console=False)
    entry = json.loads(text)
    frames = entry["exception"][0]["frames"]
    assert [frame["name"] for frame in frames][-1] == "_fail_holding"  # the traceback is there
    assert not any(key == "locals" for key, _ in _walk(entry)), text
    assert "SSSS" not in text, text
    assert entry["headers"] == {"Authorization": "[redacted]", "Cookie": "[redacted]", "Accept": "*/*"}
    assert entry["x_hub_signature_256"] == "[redacted]"
    assert entry["token_id"] == "abc123"  # ids are not credentials
    assert "Bearer [redacted]" in entry["exception"][0]["exc_value"]


def test_console_lines_render_exceptions_without_locals_or_credentials() -> None:
    text = _log_failure(console=True)
    assert "_fail_holding" in text and "ValueError" in text  # the traceback is there
    assert "SSSS" not in text, text
    assert "Locals" not in text and "authorization =" not in text, text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"error":"sent Bearer abc.def"}', '{"error":"sent Bearer [redacted]"}'),
        ('{"error":"Authorization: bearer a\\\\b\\"c d"}', '{"error":"Authorization: bearer [redacted] d"}'),
        ('{"e":"Basic dXNlcjpwYXNz"}', '{"e":"Basic [redacted]"}'),
        ('{"e":"Cookie: mirror_token=abc; x=1"}', '{"e":"Cookie: [redacted]; x=1"}'),
        (f'{{"e":"{SECRET_TOKEN}."}}', '{"e":"[redacted]."}'),
        ('{"e":"ghs_' + "a" * 36 + '"}', '{"e":"[redacted]"}'),
        ('{"path":"/v1/modules/acme/network/aws/versions","mirror_token_cookie":"name only"}', None),
        ('{"e":"Basic checks passed"}', None),
    ],
)
def test_credentials_in_rendered_text_are_masked(line: str, expected: str | None) -> None:
    for rendered, want in ((line, expected or line), (line.encode(), (expected or line).encode())):
        masked = scrub_rendered(None, "info", rendered)
        assert masked == want
        if isinstance(masked, str):
            json.loads(masked)  # still JSON


def test_credential_keys_are_redacted() -> None:
    event = CredentialRedactor()(
        None,
        "info",
        {
            "event": "x",
            "Authorization": "Bearer a",
            "x-hub-signature-256": "sha256=00",
            "github_token": "ghs_x",
            "webhook_secret": "s",
            "password": "p",
            "token": None,
            "token_id": "public",
            "key": "blobs/abc.tar.gz",
            "headers": {"cookie": "mirror_token=a", "User-Agent": "terraform"},
        },
    )
    assert event == {
        "event": "x",
        "Authorization": "[redacted]",
        "x-hub-signature-256": "[redacted]",
        "github_token": "[redacted]",
        "webhook_secret": "[redacted]",
        "password": "[redacted]",
        "token": None,
        "token_id": "public",
        "key": "blobs/abc.tar.gz",
        "headers": {"cookie": "[redacted]", "User-Agent": "terraform"},
    }


def test_text_that_is_not_utf8_is_still_logged() -> None:
    """orjson refuses lone surrogates (how bytes that were not UTF-8 arrive); the line is still
    written, escaped, instead of the logging call raising."""
    out = io.BytesIO()
    logger = structlog.wrap_logger(structlog.BytesLogger(out), processors=processors(console=False))
    logger.info("odd header", value="ab\udcffcd")
    assert json.loads(out.getvalue())["value"] == "ab\udcffcd"


def test_the_stdlib_bridge_keeps_the_parser_s_quote_of_the_request_out() -> None:
    """aiohttp logs a refused request with its parser's message, which quotes the header line."""
    out = io.BytesIO()
    structlog.configure(processors=processors(console=False), logger_factory=structlog.BytesLoggerFactory(file=out))
    try:
        record = logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s", ("127.0.0.1",), None
        )
        try:
            raise BadHttpMessage("Invalid header value char:\n\n  b'Authorization: Bearer s3cr3tMARK\\x00'\n   ^")
        except BadHttpMessage as exc:
            record.exc_info = (type(exc), exc, exc.__traceback__)
        StdlibBridge().emit(record)
        ordinary = logging.LogRecord(
            "asyncio", logging.ERROR, __file__, 1, "Task failed: %s", ("Bearer s3cr3tMARK",), None
        )
        StdlibBridge().emit(ordinary)
    finally:
        structlog.reset_defaults()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "request refused by the HTTP parser"
    assert (first["status"], first["reason"], first["logger"]) == (400, "Invalid header value char", "aiohttp.server")
    assert second["event"] == "Task failed: Bearer [redacted]"
    assert b"s3cr3tMARK" not in out.getvalue()


# -- the Authenticator: shapes refused before anything is hashed or looked up ------------------------


class CountedTokens:
    """The real store's token lookups, counted."""

    def __init__(self, store: SqliteMetadataStore) -> None:
        self.store = store
        self.lookups = 0

    async def find_token(self, token_hash: str) -> Any:
        self.lookups += 1
        return await self.store.find_token(token_hash)


async def test_malformed_credentials_never_reach_the_store(tmp_path: Path) -> None:
    store = SqliteMetadataStore(tmp_path / "mirror.db")
    await store.open()
    try:
        _, secret = await create_token(store, "*", "read")
        counted = CountedTokens(store)
        auth = Authenticator(counted, anonymous_read=True)  # type: ignore[arg-type]
        malformed = [
            "Bearer",
            "Bearer  ",
            "Basic eDp5",
            f"Bearer {secret}\udcff",
            f"Bearer {secret}é",
            f"Bearer {secret} {secret}",
            f"Bearer {secret}, Bearer {secret}",
            f'Bearer "{secret}"',
            "Bearer " + "a" * (MAX_TOKEN_CHARS + 1),
            "Bearer " + "a" * MAX_AUTHORIZATION_CHARS,
            "Bearer a=b",
        ]
        for header in malformed:
            with pytest.raises(Unauthorized) as raised:
                await auth.authorize(header, "acme", "read")
            assert secret not in raised.value.message and "\udcff" not in raised.value.message
        assert counted.lookups == 0
        assert (await auth.authorize(f"Bearer {secret}", "acme", "read")) is not None
        assert (await auth.authorize(f"bearer   {secret}  ", "acme", "read")) is not None  # scheme in any case, spaces
        with pytest.raises(Unauthorized, match="not valid"):  # the longest shape allowed is looked up
            await auth.authorize("Bearer " + "a" * MAX_TOKEN_CHARS, None, "read")
        assert counted.lookups == 2
    finally:
        await store.close()


def test_several_authorization_headers_are_joined() -> None:
    one = CIMultiDictProxy(CIMultiDict([("Authorization", "Bearer a")]))
    two = CIMultiDictProxy(CIMultiDict([("Authorization", "Bearer a"), ("authorization", "Bearer b")]))
    assert authorization_header(CIMultiDictProxy(CIMultiDict())) is None
    assert authorization_header(one) == "Bearer a"
    assert authorization_header(two) == "Bearer a, Bearer b"
