"""Outbound webhooks against the real app, a real SQLite store and real aiohttp receivers that
verify every signature with gidgethub."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from gidgethub.sansio import validate_event

from mirror.app.build import create_app
from mirror.domain.errors import BadRequest
from mirror.http.keys import STORE
from mirror.storage.sqlite import SqliteMetadataStore
from mirror.http.keys import WEBHOOKS
from mirror.domain.timeutil import now_rfc3339
from mirror.integrations.webhook_transport import HttpWebhookTransport, WebhookDestinations, check_destination, delivery_id
from mirror.services.webhooks import WebhookDispatcher, consumer_name, create_subscription, new_subscription
from tests.conftest import Registry
from tests.live import eventually, write_config

SECRET = "s3cret-s3cret-s3cret"
FAST = {"allow_private": True, "backoff_base": 0.02, "backoff_max": 0.1, "max_attempts": 3, "timeout_seconds": 0.5}


@dataclass
class Delivery:
    serial: int
    type: str
    delivery_id: str
    headers: dict[str, str]
    at: float = field(default_factory=time.time)  # when the attempt arrived (unix time)


@dataclass
class Receiver:
    """A subscriber: ``behaviour(call_number, envelope)`` returns a status or a number of seconds to hang."""

    behaviour: Callable[[int, dict[str, Any]], int | float] = lambda call, envelope: 200
    calls: list[Delivery] = field(default_factory=list)  # every attempt
    received: list[Delivery] = field(default_factory=list)  # accepted ones
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        validate_event(body, signature=request.headers["X-Mirror-Signature-256"], secret=SECRET)
        envelope = json.loads(body)
        assert set(envelope) == {"serial", "type", "occurred_at", "actor", "data"}
        assert isinstance(envelope["actor"], dict) and envelope["actor"]["kind"]
        delivery = Delivery(envelope["serial"], envelope["type"], request.headers["X-Mirror-Delivery"], dict(request.headers))
        self.calls.append(delivery)
        outcome = self.behaviour(len(self.calls), envelope)
        if isinstance(outcome, float):
            await asyncio.sleep(outcome)
            outcome = 200
        if 200 <= outcome < 300:
            self.received.append(delivery)
        return web.Response(status=outcome)

    @property
    def serials(self) -> list[int]:
        return [d.serial for d in self.received]


@pytest.fixture
def receiver(aiohttp_server) -> Callable[..., Any]:
    async def start(behaviour=None, port: int | None = None) -> Receiver:
        hook = Receiver(behaviour) if behaviour else Receiver()
        app = web.Application()
        app.router.add_post("/hook", hook.handle)
        server = await aiohttp_server(app, port=port) if port else await aiohttp_server(app)
        hook.url = str(server.make_url("/hook"))
        return hook

    return start


def webhook_app(config) -> web.Application:
    return create_app(config)


@pytest.fixture
def start(aiohttp_client, make_config) -> Callable[..., Any]:
    async def build(**webhooks: Any) -> Registry:
        return Registry(await aiohttp_client(webhook_app(make_config(webhooks={**FAST, **webhooks}))))

    return build


async def subscribe(registry: Registry, url: str, **extra: Any) -> str:
    response = await registry.client.post(
        "/api/v1/webhooks", json={"url": url, "secret": SECRET, **extra}, headers=await registry.auth()
    )
    assert response.status == 201, await response.text()
    created = (await response.json())["webhook"]
    assert "secret" not in created and created["source"] == "api"
    return created["id"]


async def publish(registry: Registry, module_archive, address: str, *versions: str) -> None:
    admin = await registry.auth()
    for version in versions:
        response = await registry.publish(address, version, module_archive(version), admin)
        assert response.status == 201, await response.text()


async def serials_after(registry: Registry, serial: int, **filters: Any) -> list[int]:
    return [event.serial for event in await registry.app[STORE].events_after(serial, 1000, **filters)]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    await eventually(predicate, "the receivers to get their deliveries", timeout=timeout)


async def status(registry: Registry, subscription_id: str) -> dict[str, Any]:
    response = await registry.client.get(f"/api/v1/webhooks/{subscription_id}", headers=await registry.auth())
    assert response.status == 200
    return (await response.json())["webhook"]


async def test_every_event_arrives_in_order_signed_with_stable_ids(start, receiver, module_archive):
    registry = await start()
    hook = await receiver()
    await publish(registry, module_archive, "acme/net/aws", "1.0.0")  # before the subscription: not sent
    start_serial = await registry.app[STORE].latest_serial()
    sub = await subscribe(registry, hook.url)
    await publish(registry, module_archive, "acme/net/aws", "1.1.0", "1.2.0")
    await publish(registry, module_archive, "acme/dns/aws", "0.1.0")
    expected = await serials_after(registry, start_serial)
    assert len(expected) == 4
    await until(lambda: len(hook.received) == len(expected))
    assert hook.serials == expected
    for delivery in hook.received:
        assert delivery.delivery_id == delivery_id(sub, delivery.serial)
        assert delivery.headers["X-Mirror-Event"] == delivery.type
        assert delivery.headers["User-Agent"] == "mirror-webhooks"
        assert delivery.headers["Content-Type"] == "application/json"
        assert abs(int(delivery.headers["X-Mirror-Timestamp"]) - time.time()) < 60
    assert len({d.delivery_id for d in hook.received}) == len(expected)
    row = await status(registry, sub)
    assert row["serial"] == expected[-1] and row["lag"] == 0 and row["delivered"] == 4 and row["pending_failures"] == 0


async def test_flaky_receiver_gets_everything_in_order(start, receiver, module_archive):
    registry = await start()
    hook = await receiver(lambda call, envelope: 500 if call in (1, 2, 4) else 200)
    start_serial = await registry.app[STORE].latest_serial()
    sub = await subscribe(registry, hook.url)
    await publish(registry, module_archive, "acme/net/aws", "1.0.0", "1.1.0")
    expected = await serials_after(registry, start_serial)
    await until(lambda: len(hook.received) == len(expected))
    assert hook.serials == expected
    # every attempt at one event carries the same delivery id
    assert [c.serial for c in hook.calls[:3]] == [expected[0]] * 3
    assert len({c.delivery_id for c in hook.calls[:3]}) == 1
    row = await status(registry, sub)
    assert row["failed_attempts"] == 3 and row["delivered"] == len(expected) and row["parked"] == 0


async def test_hanging_receiver_is_retried_and_does_not_delay_others(start, receiver, module_archive):
    registry = await start()
    hanging = await receiver(lambda call, envelope: 1.0 if call == 1 else 200)  # past the 0.5 s timeout
    healthy = await receiver()
    start_serial = await registry.app[STORE].latest_serial()
    await subscribe(registry, hanging.url)
    await subscribe(registry, healthy.url)
    began = time.monotonic()
    await publish(registry, module_archive, "acme/net/aws", "1.0.0", "1.1.0")
    expected = await serials_after(registry, start_serial)
    await until(lambda: len(healthy.received) == len(expected))
    assert time.monotonic() - began < 0.5 + 0.4  # not held back by the hanging subscriber's timeout
    assert hanging.received == []
    await until(lambda: len(hanging.received) == len(expected))
    assert hanging.serials == expected and healthy.serials == expected
    assert hanging.calls[0].serial == hanging.calls[1].serial == expected[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_receiver_down_then_back_gets_the_backlog(start, receiver, module_archive):
    registry = await start(max_attempts=100)
    port = free_port()
    start_serial = await registry.app[STORE].latest_serial()
    sub = await subscribe(registry, f"http://127.0.0.1:{port}/hook")
    await publish(registry, module_archive, "acme/net/aws", "1.0.0", "1.1.0", "1.2.0")
    expected = await serials_after(registry, start_serial)

    async def retried() -> dict[str, Any] | None:
        row = await status(registry, sub)
        return row if row["attempts"] >= 2 else None

    row = await eventually(retried, "two failed attempts", timeout=5)
    assert row["lag"] == len(expected) and row["attempts"] >= 2 and "127.0.0.1" in row["last_error"]
    hook = await receiver(port=port)
    await until(lambda: len(hook.received) == len(expected))
    assert hook.serials == expected
    row = await status(registry, sub)
    assert row["lag"] == 0 and row["attempts"] == 0 and row["last_error"] is None


async def test_exhausted_event_is_parked_then_redelivered(start, receiver, module_archive):
    registry = await start()
    poison: dict[str, int | None] = {"serial": None}
    hook = await receiver(lambda call, envelope: 500 if envelope["serial"] == poison["serial"] else 200)
    start_serial = await registry.app[STORE].latest_serial()
    poison["serial"] = start_serial + 1  # module.created of the first publish
    sub = await subscribe(registry, hook.url)
    admin = await registry.auth()
    await publish(registry, module_archive, "acme/net/aws", "1.0.0", "1.1.0")
    expected = await serials_after(registry, start_serial)
    await until(lambda: hook.serials == expected[1:])  # the subscriber moved on
    assert [c.serial for c in hook.calls[:3]] == [expected[0]] * 3

    response = await registry.client.get(f"/api/v1/webhooks/{sub}/failures", headers=admin)
    failures = (await response.json())["failures"]
    assert [(f["serial"], f["attempts"]) for f in failures] == [(expected[0], 3)]
    assert "HTTP 500" in failures[0]["last_error"]
    row = await status(registry, sub)
    assert row["parked"] == 1 and row["pending_failures"] == 1 and row["lag"] == 0

    url = f"/api/v1/webhooks/{sub}/failures/{failures[0]['id']}/redeliver"
    response = await registry.client.post(url, headers=admin)
    assert response.status == 502
    assert "HTTP 500" in (await response.json())["errors"][0]

    poison["serial"] = None
    response = await registry.client.post(url, headers=admin)
    assert response.status == 200, await response.text()
    assert hook.serials[-1] == expected[0]
    assert (await (await registry.client.get(f"/api/v1/webhooks/{sub}/failures", headers=admin)).json())["failures"] == []
    everything = await (await registry.client.get(f"/api/v1/webhooks/{sub}/failures?all=true", headers=admin)).json()
    assert everything["failures"][0]["redelivered_at"]
    assert (await registry.client.post(url, headers=admin)).status == 404
    assert (await registry.client.post("/api/v1/webhooks/nope/failures/1/redeliver", headers=admin)).status == 404


async def test_event_and_namespace_filters(start, receiver, module_archive):
    registry = await start()
    releases, acme = await receiver(), await receiver()
    start_serial = await registry.app[STORE].latest_serial()
    sub_releases = await subscribe(registry, releases.url, events=["module.version_released"])
    sub_acme = await subscribe(registry, acme.url, namespaces=["ACME"])
    await publish(registry, module_archive, "other/net/aws", "1.0.0")
    await publish(registry, module_archive, "acme/net/aws", "1.0.0")
    await publish(registry, module_archive, "other/net/aws", "1.1.0")
    events = await registry.app[STORE].events_after(start_serial, 100)
    want_releases = [e.serial for e in events if e.type == "module.version_released"]
    want_acme = [e.serial for e in events if e.data.get("namespace") == "acme"]
    assert len(want_releases) == 3 and len(want_acme) == 2
    await until(lambda: len(releases.received) == 3 and len(acme.received) == 2)
    assert releases.serials == want_releases and acme.serials == want_acme
    # events a subscriber does not want still move its cursor
    for sub in (sub_releases, sub_acme):
        await eventually(lambda: _caught_up(registry, sub), f"{sub} to catch up", timeout=5)
    # and are never sent: a later event both want arrives right after the ones they wanted
    marker = await registry.app[STORE].latest_serial()
    await publish(registry, module_archive, "acme/net/aws", "1.1.0")
    wanted_by_both = [e.serial for e in await registry.app[STORE].events_after(marker, 100, ["module.version_released"])]
    assert len(wanted_by_both) == 1
    await until(lambda: releases.serials[-1:] == wanted_by_both and acme.serials[-1:] == wanted_by_both)
    assert releases.serials == want_releases + wanted_by_both and acme.serials == want_acme + wanted_by_both


async def _caught_up(registry: Registry, subscription_id: str) -> bool:
    return (await status(registry, subscription_id))["lag"] == 0


async def test_private_destinations_are_refused(start, receiver, module_archive):
    registry = await start(allow_private=False)
    admin = await registry.auth()
    for url in (
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://example.com/hook",
        "http://[93.184.216.34/hook",  # urlsplit raises on it: still a 400
        "https://\U0004fd60\\©[x",
        "http://93.184.216.34:99999/hook",  # no such port
        "https://\u0089\u008c/hook",  # a host name IDNA cannot encode
    ):
        response = await registry.client.post("/api/v1/webhooks", json={"url": url, "secret": SECRET}, headers=admin)
        assert response.status == 400, url
    for body in ({"url": "http://93.184.216.34/hook", "secret": "short"}, {"url": "x"}, [1], {"url": "http://93.184.216.34/", "secret": SECRET, "events": "all"}):
        response = await registry.client.post("/api/v1/webhooks", json=body, headers=admin)
        assert response.status == 400, body
    for address in ("224.0.0.1", "0.0.0.0", "192.168.1.1", "100.64.0.1", "[fe80::1]"):
        with pytest.raises(BadRequest):
            await check_destination(f"https://{address}/", allow_private=False)
    await check_destination("https://93.184.216.34/", allow_private=False)  # public literal: no DNS needed
    await check_destination("http://127.0.0.1/", allow_private=True)

    # checked again before each delivery: a subscription that slipped into the store is never called
    hook = await receiver()
    store = registry.app[STORE]
    sub = new_subscription(hook.url, SECRET, [], [], now_rfc3339())
    await create_subscription(store, sub, WebhookDestinations(allow_private=True))
    await publish(registry, module_archive, "acme/net/aws", "1.0.0")
    async def parked() -> bool:
        return len(await store.list_delivery_failures(sub.id)) >= 2

    await eventually(parked, "both events to be parked", timeout=5)
    assert hook.calls == []
    assert "non-public" in (await store.list_delivery_failures(sub.id))[0].last_error


async def test_restart_mid_backlog_resumes_without_loss(aiohttp_client, make_config, receiver, module_archive):
    config = make_config(webhooks=FAST)
    hook = await receiver(lambda call, envelope: 0.1)  # slow: a backlog builds up
    first = Registry(await aiohttp_client(webhook_app(config)))
    start_serial = await first.app[STORE].latest_serial()
    sub = await subscribe(first, hook.url)
    await publish(first, module_archive, "acme/net/aws", "1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0")
    expected = await serials_after(first, start_serial)
    await until(lambda: len(hook.calls) >= 2)
    await first.client.close()  # stops the dispatcher (a delivery in flight may be cut short)
    seen = len(hook.received)
    assert seen < len(expected)

    second = Registry(await aiohttp_client(webhook_app(config)))
    await until(lambda: set(hook.serials) == set(expected))
    assert sorted(set(hook.serials)) == expected
    duplicates = len(hook.serials) - len(set(hook.serials))
    assert duplicates <= 1  # only the delivery that was in flight
    deduped = list(dict.fromkeys(hook.serials))
    assert deduped == expected
    row = await status(second, sub)
    assert row["lag"] == 0


async def test_config_subscriptions_are_synced_and_cannot_be_deleted_by_api(start, receiver):
    registry = await start()
    hook = await receiver()
    dispatcher, admin = registry.app[WEBHOOKS], await registry.auth()
    await dispatcher.sync_config([{"url": hook.url, "secret": SECRET, "events": ["module.created"]}])
    rows = (await (await registry.client.get("/api/v1/webhooks", headers=admin)).json())["webhooks"]
    assert [(r["source"], r["events"]) for r in rows] == [("config", ["module.created"])]
    config_id = rows[0]["id"]
    assert config_id.startswith("cfg-")
    assert (await registry.client.delete(f"/api/v1/webhooks/{config_id}", headers=admin)).status == 409
    await dispatcher.sync_config([])
    assert (await registry.client.get(f"/api/v1/webhooks/{config_id}", headers=admin)).status == 404

    sub = await subscribe(registry, hook.url)
    assert (await registry.client.delete(f"/api/v1/webhooks/{sub}", headers=admin)).status == 204
    assert (await registry.client.get(f"/api/v1/webhooks/{sub}", headers=admin)).status == 404
    assert (await registry.client.delete(f"/api/v1/webhooks/{sub}", headers=admin)).status == 404
    assert (await registry.client.get(f"/api/v1/webhooks/{sub}/failures", headers=admin)).status == 404


async def test_api_needs_a_registry_wide_admin(start):
    registry = await start()
    calls = [
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/wh-1"),
        ("DELETE", "/api/v1/webhooks/wh-1"),
        ("GET", "/api/v1/webhooks/wh-1/failures"),
        ("POST", "/api/v1/webhooks/wh-1/failures/1/redeliver"),
    ]
    namespace_admin, reader = await registry.auth("acme", "admin"), await registry.auth("*", "read")
    for method, path in calls:
        assert (await registry.client.request(method, path)).status == 401, path
        assert (await registry.client.request(method, path, headers={"Authorization": "Bearer nope"})).status == 401
        assert (await registry.client.request(method, path, headers=namespace_admin)).status == 403, path
        assert (await registry.client.request(method, path, headers=reader)).status == 403, path


async def test_a_stored_backoff_is_waited_out_after_a_restart(start, receiver, module_archive):
    registry = await start()
    await registry.app[WEBHOOKS].stop()  # this test runs its own dispatcher on the same store
    store, hook = registry.app[STORE], await receiver()
    sub = new_subscription(hook.url, SECRET, [], [], now_rfc3339())
    await create_subscription(store, sub, WebhookDestinations(allow_private=True))
    await publish(registry, module_archive, "acme/net/aws", "1.0.0")
    retry_at = time.time() + 0.6
    await store.record_consumer_failure(consumer_name(sub.id), 1, retry_at, "HTTP 500 before the restart")
    async with aiohttp.ClientSession() as session:
        dispatcher = WebhookDispatcher(
            store, HttpWebhookTransport(session, allow_private=True), timeout=0.5, max_attempts=3, backoff_base=0.02,
            backoff_max=0.1, poll_interval=0.05,
        )
        await dispatcher.start()
        try:
            await until(lambda: len(hook.received) == 2)
            assert hook.calls[0].at >= retry_at  # nothing was sent before the stored backoff ended
            assert (await store.consumer(consumer_name(sub.id))).attempts == 0
        finally:
            await dispatcher.stop()


CLI_DRIVER = """
import argparse, sys
from pathlib import Path
from mirror.cli.webhooks import add_commands
from mirror.domain.errors import MirrorError
parser = argparse.ArgumentParser(prog="mirror")
common = argparse.ArgumentParser(add_help=False)
common.add_argument("--config", type=Path, default=None)
add_commands(parser.add_subparsers(dest="command", required=True), common)
args = parser.parse_args()
try:
    sys.exit(args.handler(args))
except MirrorError as exc:
    print(f"mirror: error: {exc}", file=sys.stderr)
    sys.exit(1)
"""


async def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI_DRIVER, "webhooks", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.mark.slow
async def test_cli_add_list_failures_redeliver_remove(tmp_path, receiver, module_archive, start):
    registry = await start(max_attempts=1)
    reject = {"on": True}
    hook = await receiver(lambda call, envelope: 503 if reject["on"] else 200)
    data = tmp_path / "data"
    config_file = write_config(
        tmp_path / "cli.toml",
        {"metadata": {"path": str(data / "mirror.db")}, "blobs": {"path": str(data / "blobs")}, "webhooks": {"allow_private": True}},
    )
    root = str(Path(__file__).resolve().parents[1])
    code, out, err = await cli("add", hook.url, "--secret", SECRET, "--event", "module.version_released", "--config", str(config_file), cwd=root)
    assert code == 0, err
    sub = out.strip().splitlines()[-1]
    code, _, err = await cli("add", hook.url, "--secret", "short", "--config", str(config_file), cwd=root)
    assert code == 1 and "16" in err

    await publish(registry, module_archive, "acme/net/aws", "1.0.0")
    store = registry.app[STORE]
    await eventually(lambda: store.list_delivery_failures(sub), "a parked delivery", timeout=5)
    code, out, err = await cli("list", "--config", str(config_file), cwd=root)
    assert code == 0 and sub in out and hook.url in out
    code, out, err = await cli("failures", sub, "--config", str(config_file), cwd=root)
    assert code == 0 and "503" in out, err
    failure_id = (await store.list_delivery_failures(sub))[0].id
    reject["on"] = False
    code, out, err = await cli("redeliver", sub, str(failure_id), "--config", str(config_file), cwd=root)
    assert code == 0, err
    assert [d.type for d in hook.received] == ["module.version_released"]
    code, _, err = await cli("redeliver", sub, str(failure_id), "--config", str(config_file), cwd=root)
    assert code == 1 and "no pending failure" in err
    code, out, err = await cli("remove", sub, "--config", str(config_file), cwd=root)
    assert code == 0, err
    assert await store.get_subscription(sub) is None


async def _lease_held(dispatcher: WebhookDispatcher, subscription_id: str) -> bool:
    return (await dispatcher.status(subscription_id))[0]["lease_held"]


async def test_two_dispatchers_deliver_each_event_once_and_take_over(start, receiver, module_archive):
    """Two replicas' dispatchers on one SQLite file: one subscriber's lease, one delivery per event."""
    registry = await start()
    await registry.app[WEBHOOKS].stop()  # this test runs two dispatchers of its own, as two replicas
    store = registry.app[STORE]
    replica = SqliteMetadataStore(store.path)  # another process's store on the same file
    await replica.open()
    hook = await receiver(lambda call, envelope: 0.03)  # a slow subscriber: a backlog builds up
    sub = new_subscription(hook.url, SECRET, [], [], now_rfc3339())
    await create_subscription(store, sub, WebhookDestinations(allow_private=True))
    name = consumer_name(sub.id)
    # a replica that died holding the lease: nobody delivers until it lapses
    dead_until = time.time() + 0.8
    assert await store.acquire_consumer_lease(name, "dead-replica", dead_until, time.time())
    async with aiohttp.ClientSession() as session:

        def dispatcher(on: Any) -> WebhookDispatcher:
            return WebhookDispatcher(
                on, HttpWebhookTransport(session, allow_private=True), timeout=0.5, max_attempts=3, backoff_base=0.02,
                backoff_max=0.1, poll_interval=0.02, lease_seconds=1.0,
            )

        first, second = dispatcher(store), dispatcher(replica)
        assert first.owner != second.owner
        try:
            await first.start()
            await publish(registry, module_archive, "acme/net/aws", "1.0.0", "1.0.1")
            await eventually(lambda: _lease_held(first, sub.id), "the first dispatcher to take the lease", timeout=5)
            await until(lambda: len(hook.calls) >= 1)
            assert hook.calls[0].at >= dead_until  # nothing was sent while the dead replica's lease ran
            await second.start()
            await publish(registry, module_archive, "acme/net/aws", *(f"1.1.{n}" for n in range(12)))
            expected = await serials_after(registry, 0)
            await until(lambda: len(hook.received) >= 4)
            assert not await _lease_held(second, sub.id)
            await first.stop()  # the holder stops mid-backlog and releases the lease
            await until(lambda: hook.serials[-1:] == expected[-1:], timeout=10)
            assert await _lease_held(second, sub.id)
            assert hook.serials == expected  # every event once, in order, across both dispatchers
            assert [d.serial for d in hook.calls] == expected  # never delivered twice
            (by_first,), (by_second,) = await first.status(sub.id), await second.status(sub.id)
            assert by_first["delivered"] >= 4 and by_second["delivered"] >= 1
            assert by_first["delivered"] + by_second["delivered"] == len(expected)
            assert (await store.consumer(name)).serial == expected[-1]
        finally:
            await first.stop()
            await second.stop()
            await replica.close()
