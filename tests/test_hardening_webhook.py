"""Webhook delivery bodies: refused before they are read when the headers already say no, read
through the HMAC within a deadline, a few large ones at a time, and known by their content.

Against an in-process registry (aiohttp test server) with GitHub configured against a fake
GitHub; the requests that must stall or must not send their bodies go over raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mirror.app.build import create_app
from mirror.domain.errors import ConfigError
from mirror.http.keys import DELIVERY_READER, JOBS, STORE
from tests.fake_github import FakeGitHub, sign
from tests.live import eventually

SECRET = "hardening-webhook-secret"
DEADLINE = 1.5  # [github] webhook_body_seconds in these tests
LARGE = 64 * 1024  # [github] webhook_large_body_bytes
FAKE_SIGNATURE = "sha256=" + "ab" * 32  # the right shape, the wrong HMAC


@pytest.fixture
async def registry(aiohttp_server, make_config, tmp_path: Path) -> AsyncIterator[TestClient]:
    fake = FakeGitHub(plain_tokens=["ghp_hardening"])
    github = await aiohttp_server(fake.app)
    config = make_config(
        github={
            "token": "ghp_hardening",
            "webhook_secret": SECRET,
            "api_url": str(github.make_url("")).rstrip("/"),
            "reconcile_interval": 0,
            "webhook_body_seconds": DEADLINE,
            "webhook_large_body_bytes": LARGE,
            "webhook_large_bodies": 1,
        }
    )
    async with TestClient(TestServer(create_app(config, access_log=None))) as client:
        yield client


def headers_for(event: str, body: bytes, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
    } | extra


def padded(payload: dict[str, Any], size: int) -> bytes:
    """``payload`` as JSON of about ``size`` bytes."""
    return json.dumps(payload | {"padding": "x" * size}).encode()


class RawRequest:
    """A POST over a plain socket: headers now, the body when (and if) the test sends it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, client: TestClient, headers: dict[str, str]) -> RawRequest:
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        lines = ["POST /github/webhook HTTP/1.1", f"Host: {client.server.host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float) -> tuple[int, dict[str, str], dict[str, Any]]:
        async with asyncio.timeout(timeout):
            status_line = await self.reader.readline()
            headers = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1]), headers, json.loads(body)

    async def closed_by_server(self, timeout: float) -> bool:
        """Whether the server closes the connection within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()


def large_body_slots(client: TestClient) -> asyncio.Semaphore:
    """The registry's slots for large bodies (``[github] webhook_large_bodies``), to watch."""
    return client.server.app[DELIVERY_READER]._slots


async def slot_taken(client: TestClient) -> None:
    await eventually(lambda: large_body_slots(client).locked(), "a large body to take the slot", timeout=5)


async def waiting_for_the_slot(client: TestClient) -> None:
    await eventually(lambda: large_body_slots(client)._waiters, "a large body to wait for the slot", timeout=5)


async def trickle(request: RawRequest, total: int, every: float) -> None:
    """Send ``total`` bytes one at a time, ``every`` seconds apart, until the server hangs up."""
    try:
        for _ in range(total):
            await request.send(b" ")
            await asyncio.sleep(every)
    except ConnectionError:
        pass


async def test_refusals_from_the_headers_come_before_the_body(registry: TestClient):
    """A 24 MB delivery that is unsigned, has a malformed signature, no event header, a content
    type that is not JSON, or a length over 25 MB is answered while not one byte of its body
    has been sent: the server cannot have read it."""
    base = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}
    length = {"Content-Length": str(24 * 1024 * 1024)}
    cases = [
        (401, base | length),
        (401, base | length | {"X-Hub-Signature-256": "sha256=" + "0" * 63}),
        (401, base | length | {"X-Hub-Signature-256": "sha256=" + "G" * 64}),
        (401, base | length | {"X-Hub-Signature": "sha1=" + "0" * 40}),
        (400, base | length | {"X-Hub-Signature-256": FAKE_SIGNATURE, "X-GitHub-Event": ""}),
        (415, base | length | {"X-Hub-Signature-256": FAKE_SIGNATURE, "Content-Type": "text/plain"}),
        (415, base | length | {"X-Hub-Signature-256": FAKE_SIGNATURE, "Content-Type": "application/json; charset=nope"}),
        (413, base | {"X-Hub-Signature-256": FAKE_SIGNATURE, "Content-Length": str(26 * 1024 * 1024)}),
        (401, base | {"Content-Length": str(10**12)}),
    ]
    for status, headers in cases:
        request = await RawRequest.open(registry, headers)
        try:
            answer = await request.response(timeout=5)
        finally:
            request.close()
        assert answer[0] == status, (headers, answer)
        assert answer[2]["errors"] and all(isinstance(e, str) and e for e in answer[2]["errors"])
    assert await registry.server.app[STORE].list_jobs() == []


async def test_unsigned_upload_gets_its_answer_at_once(registry: TestClient):
    """Through an ordinary HTTP client, an unsigned 24 MB post is refused 401 (and the next
    signed delivery on the registry still works)."""
    response = await registry.post(
        "/github/webhook", data=b" " * (24 * 1024 * 1024), headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "d"}
    )
    assert response.status == 401
    assert "X-Hub-Signature-256" in (await response.json())["errors"][0]
    ping = b'{"zen": "hi"}'
    assert (await registry.post("/github/webhook", data=ping, headers=headers_for("ping", ping))).status == 200


@pytest.mark.slow
async def test_a_trickled_body_is_cut_off_at_the_deadline(registry: TestClient):
    """1 byte every 0.2 s of a 1,000-byte body: 408 once the deadline has passed, and the
    connection closes within aiohttp's 10 s of lingering instead of staying open for minutes."""
    request = await RawRequest.open(
        registry,
        {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "slow-1",
            "X-Hub-Signature-256": FAKE_SIGNATURE,
            "Content-Length": "1000",
        },
    )
    started = time.monotonic()
    sender = asyncio.create_task(trickle(request, 1000, 0.2))
    try:
        status, _, body = await request.response(timeout=DEADLINE + 5)
        elapsed = time.monotonic() - started
        assert status == 408 and "did not arrive within 1.5 seconds" in body["errors"][0]
        assert DEADLINE - 0.1 <= elapsed < DEADLINE + 3
        assert await request.closed_by_server(timeout=10 + 5)
    finally:
        sender.cancel()
        request.close()
    assert await registry.server.app[STORE].list_jobs() == []


async def test_large_bodies_are_read_one_at_a_time_here(registry: TestClient, tmp_path: Path):
    """With one slot: while a large body holds it, other large bodies (with a length or chunked)
    wait half the deadline and get 503 with Retry-After, a small delivery goes through at once,
    and a large one that waits while the slot frees up in time is served."""
    holder = await RawRequest.open(
        registry,
        {
            "Content-Type": "application/json",
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "holder",
            "X-Hub-Signature-256": FAKE_SIGNATURE,
            "Content-Length": str(4 * LARGE),
        },
    )
    try:
        await holder.send(b" " * LARGE)  # and then nothing: the slot stays taken
        await slot_taken(registry)
        big = padded({"zen": "big"}, 2 * LARGE)

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 16 * 1024):
                yield big[start : start + 16 * 1024]

        with_length = registry.post("/github/webhook", data=big, headers=headers_for("ping", big))
        without_length = registry.post("/github/webhook", data=chunked(), headers=headers_for("ping", big))
        waiting = asyncio.gather(with_length, without_length)
        small = b'{"zen": "small"}'
        started = time.monotonic()
        response = await registry.post("/github/webhook", data=small, headers=headers_for("ping", small))
        assert response.status == 200 and time.monotonic() - started < 1.0
        for response in await waiting:
            assert response.status == 503, await response.text()
            assert response.headers["Retry-After"] == "2"
            assert "retry later" in (await response.json())["errors"][0]
        assert (await holder.response(timeout=5))[0] == 408  # the holder's own deadline
    finally:
        holder.close()

    # the slot is free again; a large delivery waits for it while another finishes
    first = await RawRequest.open(registry, headers_for("ping", big) | {"Content-Length": str(len(big))})
    try:
        await first.send(big[:LARGE])
        await slot_taken(registry)
        second = asyncio.ensure_future(registry.post("/github/webhook", data=big, headers=headers_for("ping", big)))
        await waiting_for_the_slot(registry)
        assert not second.done()
        await first.send(big[LARGE:])
        assert (await first.response(timeout=5))[0] == 200
        response = await second
        assert response.status == 200 and (await response.json())["status"] == "pong"
    finally:
        first.close()
    assert list((tmp_path / "data" / "spool").iterdir()) == []  # spooled bodies leave no file


async def test_large_streamed_bodies_are_verified(registry: TestClient, tmp_path: Path):
    """A 3 MB body streamed in chunks (so spooled to disk): a wrong signature of the right shape
    is 401 and queues nothing; the right one is parsed from the spool and queued."""
    body = padded({"ref": "main", "ref_type": "branch", "repository": {"id": 1}}, 3 * 1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    forged = headers_for("create", body, **{"X-Hub-Signature-256": sign("another-secret", body)})
    response = await registry.post("/github/webhook", data=chunks(), headers=forged)
    assert response.status == 401
    assert "not the HMAC of this body" in (await response.json())["errors"][0]
    tampered = body[:-2] + b"y}"
    response = await registry.post("/github/webhook", data=tampered, headers=headers_for("create", body))
    assert response.status == 401
    assert await registry.server.app[STORE].list_jobs() == []

    response = await registry.post("/github/webhook", data=chunks(), headers=headers_for("create", body))
    assert response.status == 202, await response.text()
    jobs = await registry.server.app[STORE].list_jobs()
    assert len(jobs) == 1 and jobs[0].payload["data"]["padding"] == "x" * 3 * 1024 * 1024
    assert list((tmp_path / "data" / "spool").iterdir()) == []


async def test_a_replay_under_a_new_delivery_id_is_a_duplicate(registry: TestClient):
    """The delivery id is not signed: the same signed body under a new id, under the same id (a
    redelivery), or under another event name is 200 duplicate and no second job exists."""
    body = json.dumps({"ref": "main", "ref_type": "branch", "repository": {"id": 1}}).encode()
    original = headers_for("create", body)
    first = await registry.post("/github/webhook", data=body, headers=original)
    assert first.status == 202, await first.text()
    job_id = (await first.json())["job"]
    await registry.server.app[JOBS].drain(10)  # the job has run: a replay must not run it again

    for headers in (
        original | {"X-GitHub-Delivery": str(uuid.uuid4())},
        original,
        original | {"X-GitHub-Delivery": str(uuid.uuid4()), "X-GitHub-Event": "push"},
    ):
        replay = await registry.post("/github/webhook", data=body, headers=headers)
        assert replay.status == 200
        assert await replay.json() == {"status": "duplicate", "delivery": headers["X-GitHub-Delivery"]}
    jobs = await registry.server.app[STORE].list_jobs()
    assert [job.id for job in jobs] == [job_id]

    other = json.dumps({"ref": "dev", "ref_type": "branch", "repository": {"id": 1}}).encode()
    assert (await registry.post("/github/webhook", data=other, headers=headers_for("create", other))).status == 202


async def test_form_encoded_deliveries_are_still_accepted(registry: TestClient):
    form = b"payload=" + quote(json.dumps({"zen": "form"}), safe="").encode()
    headers = headers_for("ping", form, **{"Content-Type": "application/x-www-form-urlencoded"})
    response = await registry.post("/github/webhook", data=form, headers=headers)
    assert response.status == 200 and (await response.json())["status"] == "pong"
    flood = b"&".join([b"a=1"] * 100) + b"&payload=%7B%7D"
    headers = headers_for("ping", flood, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert (await registry.post("/github/webhook", data=flood, headers=headers)).status == 415


@pytest.mark.parametrize(
    "key, value",
    [("webhook_body_seconds", 0), ("webhook_large_body_bytes", 100), ("webhook_large_bodies", 0)],
)
async def test_bounds_out_of_range_stop_the_start(make_config, key: str, value: int):
    config = make_config(github={"token": "ghp_x", "webhook_secret": SECRET, "reconcile_interval": 0, key: value})
    with pytest.raises(ConfigError, match=f"\\[github\\] {key}"):
        async with TestClient(TestServer(create_app(config, access_log=None))):
            pass
