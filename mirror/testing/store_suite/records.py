"""The contract: tokens, events and their consumers, webhooks, settings."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from mirror.domain.audit import Actor, acting_as
from mirror.domain.models import TokenRecord, WebhookSubscription
from mirror.domain.errors import MirrorError
from mirror.storage.protocols import MetadataStore
from mirror.testing.store_suite.support import NOW, Backend, addr, mv, publish
from mirror.testing.store_suite.support import backend, store  # noqa: F401  (the fixtures, registered here)


pytestmark = pytest.mark.asyncio


# -- tokens ----------------------------------------------------------------------------------------


def token(token_id: str, token_hash: str, created_at: str = NOW, **kwargs: Any) -> TokenRecord:
    return TokenRecord(
        token_id, token_hash, kwargs.pop("namespace", "acme"), kwargs.pop("scope", "read"), created_at, **kwargs
    )


async def test_tokens(store: MetadataStore):
    late = token("tok_b", "h" * 64, "2026-11-25T00:00:00Z", namespace="*", scope="admin", description="ci")
    early = token("tok_z", "g" * 64, "2026-11-24T00:00:00Z", scope="publish")
    same_time = token("tok_a", "f" * 64, "2026-11-25T00:00:00Z")
    for record in (late, early, same_time):
        await store.create_token(record)
    assert await store.find_token("h" * 64) == late
    assert await store.find_token("x" * 64) is None
    assert await store.list_tokens() == [early, same_time, late]  # by creation time, then id
    assert await store.revoke_token("tok_b") is True
    assert await store.revoke_token("tok_b") is False
    assert await store.revoke_token("tok_nope") is False
    revoked = await store.find_token("h" * 64)
    assert revoked.revoked_at is not None and replace(revoked, revoked_at=None) == late
    assert [t.revoked_at is None for t in await store.list_tokens()] == [True, True, False]
    with pytest.raises(MirrorError):
        await store.create_token(token("tok_b", "k" * 64))  # the id is taken
    with pytest.raises(MirrorError):
        await store.create_token(token("tok_c", "g" * 64))  # the hash is taken
    assert len(await store.list_tokens()) == 3 and await store.find_token("k" * 64) is None


# -- events, listeners, consumers --------------------------------------------------------------


async def test_events_after_pages_and_filters(store: MetadataStore):
    for number in range(12):
        await publish(store, f"acme/m{number}/aws", "1.0.0", sha="abcdefghijkl"[number])
    await store.revoke_version(addr("acme/m3/aws"), "1.0.0")
    assert await store.latest_serial() == 25
    everything = await store.events_after(0, 1000)
    assert [e.serial for e in everything] == list(range(1, 26))
    assert [e.serial for e in await store.events_after(5, 3)] == [6, 7, 8]
    assert await store.events_after(25, 10) == [] and await store.events_after(99, 10) == []
    released = await store.events_after(4, 3, ["module.version_released"])
    assert [(e.serial, e.type) for e in released] == [
        (6, "module.version_released"),
        (8, "module.version_released"),
        (10, "module.version_released"),
    ]
    both = await store.events_after(20, 100, ("module.created", "module.version_revoked"))
    assert [(e.serial, e.type) for e in both] == [
        (21, "module.created"),
        (23, "module.created"),
        (25, "module.version_revoked"),
    ]
    assert await store.events_after(0, 10, ["app.installed"]) == []
    assert everything[3].to_json() == {
        "serial": 4,
        "type": "module.version_released",
        "occurred_at": NOW,
        "actor": {"kind": "system"},
        "data": {
            "namespace": "acme",
            "name": "m1",
            "provider": "aws",
            "version": "1.0.0",
            "url": f"file:///{mv(sha='b').blob_key}",
        },
    }


async def test_listeners_hear_of_commits_with_events(store: MetadataStore):
    calls: list[int] = []
    store.add_event_listener(lambda: calls.append(1))
    await publish(store)
    assert len(calls) == 1
    await publish(store)  # unchanged: nothing appended
    await store.create_token(token("tok_a", "a" * 64))
    await store.enqueue_job("ingest", {})
    await store.get_or_create_setting("k", "v")
    assert len(calls) == 1
    await store.revoke_version(addr(), "1.0.0")
    await store.ensure_module(addr("acme/other/aws"))
    assert len(calls) == 3


async def test_consumers(store: MetadataStore):
    for number in range(3):
        await publish(store, f"acme/m{number}/aws", "1.0.0")
    fresh = await store.consumer("webhook:a", start_serial=4)
    assert (fresh.name, fresh.serial, fresh.attempts, fresh.next_attempt_at, fresh.last_error) == (
        "webhook:a",
        4,
        0,
        0,
        None,
    )
    assert (await store.consumer("webhook:a", start_serial=0)).serial == 4  # created once
    assert (await store.consumer("eventlog")).serial == 0
    await store.record_consumer_failure("webhook:a", 2, 1234.5, "HTTP 500")
    failing = await store.consumer("webhook:a")
    assert (failing.serial, failing.attempts, failing.next_attempt_at, failing.last_error) == (4, 2, 1234.5, "HTTP 500")
    await store.advance_consumer("webhook:a", 6)
    moved = await store.consumer("webhook:a")
    assert (moved.serial, moved.attempts, moved.next_attempt_at, moved.last_error) == (6, 0, 0, None)
    await store.record_consumer_failure("webhook:a", 1, 99.0, "timeout")
    await store.advance_consumer("webhook:a", 5)  # never backwards, but the retry state is reset
    moved = await store.consumer("webhook:a")
    assert (moved.serial, moved.attempts, moved.next_attempt_at, moved.last_error) == (6, 0, 0, None)
    await store.advance_consumer("nobody", 3)  # unknown consumers are not created
    await store.record_consumer_failure("nobody", 1, 1.0, "x")
    assert [c.name for c in await store.list_consumers()] == ["eventlog", "webhook:a"]
    await store.delete_consumer("eventlog")
    await store.delete_consumer("eventlog")
    assert [c.name for c in await store.list_consumers()] == ["webhook:a"]
    assert (await store.consumer("eventlog", start_serial=2)).serial == 2  # starts afresh


# -- webhooks --------------------------------------------------------------------------------------


def subscription(sub_id: str, created_at: str = NOW, **kwargs: Any) -> WebhookSubscription:
    return WebhookSubscription(
        sub_id,
        kwargs.get("url", f"https://hooks.example/{sub_id}"),
        kwargs.get("secret", "s" * 20),
        kwargs.get("events", ()),
        kwargs.get("namespaces", ()),
        kwargs.get("source", "api"),
        created_at,
    )


async def test_subscriptions(store: MetadataStore):
    b = subscription("b", "2026-01-02T00:00:00Z", events=("module.version_released",), namespaces=("acme", "beta"))
    a = subscription("a", "2026-01-02T00:00:00Z", source="config")
    c = subscription("c", "2026-01-01T00:00:00Z")
    for sub in (b, a, c):
        await store.put_subscription(sub)
    assert await store.list_subscriptions() == [c, a, b]
    assert await store.get_subscription("b") == b and await store.get_subscription("zz") is None
    changed = replace(
        b, url="https://other.example/", secret="t" * 20, events=(), namespaces=("x",), source="config", created_at=NOW
    )
    await store.put_subscription(changed)  # url, secret, events and namespaces change; the rest stays
    assert await store.get_subscription("b") == replace(changed, source="api", created_at=b.created_at)
    await store.consumer("webhook:b", start_serial=0)
    await store.consumer("webhook:c", start_serial=0)
    assert await store.delete_subscription("b") is True
    assert await store.delete_subscription("b") is False
    assert [s.id for s in await store.list_subscriptions()] == ["c", "a"]
    assert [c.name for c in await store.list_consumers()] == ["webhook:c"]  # its cursor went with it


async def test_delivery_failures(store: MetadataStore):
    await store.put_subscription(subscription("a"))
    await store.consumer("webhook:a", start_serial=3)
    await store.record_consumer_failure("webhook:a", 9, 555.0, "HTTP 502")
    await store.add_delivery_failure("a", 4, 10, "HTTP 502")
    cursor = await store.consumer("webhook:a")
    assert (cursor.serial, cursor.attempts, cursor.next_attempt_at, cursor.last_error) == (4, 0, 0, "HTTP 502")
    await store.add_delivery_failure("a", 2, 10, "timeout")  # an older serial: the cursor stays
    assert (await store.consumer("webhook:a")).serial == 4
    await store.add_delivery_failure("other", 7, 1, "refused")  # no consumer: parked all the same
    first, second = await store.list_delivery_failures("a")
    assert (first.subscription_id, first.serial, first.attempts, first.last_error, first.redelivered_at) == (
        "a",
        4,
        10,
        "HTTP 502",
        None,
    )
    assert (second.serial, second.last_error) == (2, "timeout") and first.id < second.id
    assert first.failed_at.endswith("Z")
    [other] = await store.list_delivery_failures("other")
    assert other.serial == 7 and other.id not in (first.id, second.id)
    assert await store.mark_redelivered(first.id) is True
    assert await store.mark_redelivered(first.id) is False
    assert await store.mark_redelivered(987654) is False
    assert [f.id for f in await store.list_delivery_failures("a")] == [second.id]
    everything = await store.list_delivery_failures("a", pending_only=False)
    assert [f.id for f in everything] == [first.id, second.id] and everything[0].redelivered_at is not None
    assert await store.list_delivery_failures("nobody") == []


# -- settings --------------------------------------------------------------------------------------


async def test_settings_are_created_once(backend: Backend):
    first, second = await backend.replica(), await backend.replica()
    values = await asyncio.gather(
        *(s.get_or_create_setting("signing_key", f"key-{i}") for i, s in enumerate([first, second] * 5))
    )
    assert len(set(values)) == 1
    assert await first.get_or_create_setting("signing_key", "other") == values[0]
    assert await second.get_or_create_setting("another", "x") == "x"


# -- tokens: expiry, who made them, last use -------------------------------------------------------


async def test_token_expiry_creator_and_last_use_are_kept(store: MetadataStore):
    made = token(
        "tok_e", "e" * 64, namespace="acme", scope="publish", description="deploys",
        expires_at="2027-02-22T20:27:51Z", created_by="tok_admin",
    )  # fmt: skip
    plain = token("tok_p", "p" * 64)  # made on the server: no expiry, no creator
    for record in (made, plain):
        await store.create_token(record)
    assert await store.find_token("e" * 64) == made
    found = await store.find_token("p" * 64)
    assert (found.expires_at, found.created_by, found.last_used_at) == (None, "", None)
    assert await store.list_tokens() == [made, plain]


async def test_touch_token_records_the_last_use_and_never_moves_it_back(backend: Backend):
    store = await backend.replica()
    await store.create_token(token("tok_t", "t" * 64, description="ci"))
    assert await store.touch_token("tok_t", "2026-11-25T10:00:00Z") is True
    assert (await store.find_token("t" * 64)).last_used_at == "2026-11-25T10:00:00Z"
    assert [t.last_used_at for t in await store.list_tokens()] == ["2026-11-25T10:00:00Z"]
    assert await store.touch_token("tok_t", "2026-11-25T09:00:00Z") is False  # an older use: kept as is
    assert await store.touch_token("tok_t", "2026-11-25T10:00:00Z") is False
    other = await backend.replica()  # another replica's later use wins, wherever it is read
    assert await other.touch_token("tok_t", "2026-11-25T11:30:00Z") is True
    assert (await store.find_token("t" * 64)).last_used_at == "2026-11-25T11:30:00Z"
    assert (await store.list_tokens())[0].last_used_at == "2026-11-25T11:30:00Z"
    assert await store.touch_token("tok_nope", "2026-11-25T12:00:00Z") is False
    assert await store.revoke_token("tok_t") is True  # revoking keeps the record of its use
    revoked = await store.find_token("t" * 64)
    assert revoked.revoked_at is not None and revoked.last_used_at == "2026-11-25T11:30:00Z"


# -- actors (mirror.domain.audit) ------------------------------------------------------------------


async def test_events_record_their_actor(store: MetadataStore):
    await publish(store, "acme/plain/aws", "1.0.0", sha="a")  # nobody said: the system's
    with acting_as(Actor.token("tok_ci", "the CI pipeline")):
        await publish(store, "acme/net/aws", "1.0.0", sha="b")
    with acting_as(Actor.github(delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")):
        await store.revoke_version(addr("acme/net/aws"), "1.0.0")
    with acting_as(Actor.upstream("registry.terraform.io")):
        await publish(store, "acme/up/aws", "1.0.0", sha="c")
    with acting_as(Actor.bundle("release-2026-11.tar")):
        await publish(store, "acme/bun/aws", "1.0.0", sha="d")
    events = await store.events_after(0, 100)
    actors = [(e.type, e.data["name"], e.actor) for e in events]
    assert actors == [
        ("module.created", "plain", {"kind": "system"}),
        ("module.version_released", "plain", {"kind": "system"}),
        ("module.created", "net", {"kind": "token", "id": "tok_ci", "description": "the CI pipeline"}),
        ("module.version_released", "net", {"kind": "token", "id": "tok_ci", "description": "the CI pipeline"}),
        ("module.version_revoked", "net", {"kind": "github", "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}),
        ("module.created", "up", {"kind": "upstream", "host": "registry.terraform.io"}),
        ("module.version_released", "up", {"kind": "upstream", "host": "registry.terraform.io"}),
        ("module.created", "bun", {"kind": "bundle", "file": "release-2026-11.tar"}),
        ("module.version_released", "bun", {"kind": "bundle", "file": "release-2026-11.tar"}),
    ]
    assert events[2].to_json()["actor"] == {"kind": "token", "id": "tok_ci", "description": "the CI pipeline"}
    # read again through the type filter, and one event at a time: the actor comes with the event
    revoked = await store.events_after(0, 10, ["module.version_revoked"])
    assert [e.actor for e in revoked] == [{"kind": "github", "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}]
    assert (await store.events_after(events[-1].serial - 1, 1))[0].actor == {"kind": "bundle", "file": "release-2026-11.tar"}


async def test_concurrent_writes_keep_their_own_actors(store: MetadataStore):
    async def as_token(number: int) -> None:
        with acting_as(Actor.token(f"tok_{number}", f"writer {number}")):
            await asyncio.sleep(0)
            await publish(store, f"acme/m{number}/aws", "1.0.0", sha="abcdefgh"[number])

    await asyncio.gather(*(as_token(number) for number in range(8)))
    for event in await store.events_after(0, 100):
        number = event.data["name"][1:]
        assert event.actor == {"kind": "token", "id": f"tok_{number}", "description": f"writer {number}"}
