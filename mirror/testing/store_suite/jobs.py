"""The contract: the job queue, and several stores on one database at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from mirror.domain.provenance import Owner
from mirror.services.jobs import JobQueue
from mirror.storage.protocols import MetadataStore
from mirror.testing.store_suite.support import Backend, addr, events, mv, publish, released, together
from mirror.testing.store_suite.support import backend, store  # noqa: F401  (the fixtures, registered here)


pytestmark = pytest.mark.asyncio


# -- jobs ------------------------------------------------------------------------------------------


async def test_enqueue_and_dedupe(store: MetadataStore):
    before = time.time()
    job = await store.enqueue_job("ingest", {"tag": "v1", "n": 1.5, "nested": {"a": [1, None]}}, dedupe_key="d-1")
    assert job is not None and job.state == "queued" and job.attempts == 0 and job.kind == "ingest"
    assert job.dedupe_key == "d-1" and before <= job.run_after <= time.time() and job.last_error is None
    assert await store.get_job(job.id) == job
    assert await store.enqueue_job("ingest", {"tag": "other"}, dedupe_key="d-1") is None
    later = await store.enqueue_job("ingest", {}, run_after=time.time() + 3600)
    assert later.id != job.id and later.run_after > time.time() + 3000
    assert await store.get_job(987654) is None
    assert [j.id for j in await store.list_jobs()] == sorted([job.id, later.id], reverse=True)


async def test_claims_take_due_jobs_oldest_first(store: MetadataStore):
    now = time.time()
    late = await store.enqueue_job("b", {}, run_after=now - 10)
    early = await store.enqueue_job("a", {}, run_after=now - 20)
    await store.enqueue_job("future", {}, run_after=now + 3600)
    claimed = await store.claim_job(now, 30)
    assert claimed.id == early.id and claimed.state == "running" and claimed.attempts == 1
    assert (await store.claim_job(now, 30)).id == late.id
    assert await store.claim_job(now, 30) is None  # the third is not due
    assert [j.kind for j in await store.list_jobs("running")] == ["a", "b"]  # newest first
    assert [j.kind for j in await store.list_jobs("queued")] == ["future"]


async def test_an_expired_lease_is_taken_over(store: MetadataStore):
    job = await store.enqueue_job("ingest", {"tag": "v2"})
    now = time.time()
    assert (await store.claim_job(now, 10)).attempts == 1
    assert await store.claim_job(now + 5, 10) is None  # the lease holds
    await store.renew_job_lease(job.id, now + 30)
    assert await store.claim_job(now + 20, 10) is None  # renewed
    taken = await store.claim_job(now + 31, 10)
    assert taken.id == job.id and taken.attempts == 2 and taken.state == "running"
    await store.finish_job(job.id)
    await store.renew_job_lease(job.id, now + 100)  # only running jobs are renewed
    assert await store.claim_job(now + 1000, 10) is None
    assert (await store.get_job(job.id)).state == "done"


async def test_retry_fail_requeue(store: MetadataStore):
    job = await store.enqueue_job("ingest", {})
    now = time.time()
    await store.claim_job(now, 10)
    await store.retry_job(job.id, "boom 1", now + 60)
    retried = await store.get_job(job.id)
    assert (retried.state, retried.attempts, retried.last_error, retried.run_after) == ("queued", 1, "boom 1", now + 60)
    assert await store.claim_job(now, 10) is None and (await store.claim_job(now + 61, 10)).attempts == 2
    assert await store.requeue_job(job.id) is False  # only failed jobs
    await store.fail_job(job.id, "gave up")
    failed = await store.get_job(job.id)
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 2, "gave up")
    assert await store.claim_job(now + 1000, 10) is None
    assert await store.requeue_job(job.id) is True
    assert await store.requeue_job(job.id) is False
    requeued = await store.get_job(job.id)
    assert (requeued.state, requeued.attempts, requeued.last_error) == ("queued", 0, "gave up")
    assert requeued.run_after <= time.time()
    await store.finish_job(job.id)
    done = await store.get_job(job.id)
    assert done.state == "done" and done.last_error == "gave up"
    assert await store.requeue_job(987654) is False
    await store.finish_job(987654)  # unknown jobs are left alone
    await store.fail_job(987654, "x")
    assert await store.get_job(987654) is None


async def test_a_lapsed_holder_cannot_clobber_the_new_one(backend: Backend, store: MetadataStore):
    other = await backend.replica()
    job = await store.enqueue_job("ingest", {"tag": "v3"})
    now = time.time()
    first = await store.claim_job(now, 10)
    assert first.id == job.id and first.lease_owner
    assert await store.renew_job_lease(job.id, now + 15, owner=first.lease_owner) is True
    assert await other.claim_job(now + 12, 10) is None  # renewed by its holder
    second = await other.claim_job(now + 16, 10)  # the first holder was too slow: taken over
    assert second.id == job.id and second.attempts == 2 and second.lease_owner not in (None, first.lease_owner)
    assert await store.renew_job_lease(job.id, now + 100, owner=first.lease_owner) is False
    assert await store.finish_job(job.id, owner=first.lease_owner) is False
    assert await store.retry_job(job.id, "late", now + 60, owner=first.lease_owner) is False
    assert await store.fail_job(job.id, "late", owner=first.lease_owner) is False
    held = await other.get_job(job.id)
    assert (held.state, held.attempts, held.last_error, held.lease_owner) == ("running", 2, None, second.lease_owner)
    assert await store.claim_job(now + 20, 10) is None  # the stale renewal did not touch the lease
    assert await other.renew_job_lease(job.id, now + 40, owner=second.lease_owner) is True
    assert await other.finish_job(job.id, owner=second.lease_owner) is True
    done = await store.get_job(job.id)
    assert (done.state, done.last_error, done.lease_owner) == ("done", None, None)
    assert await other.finish_job(job.id, owner=second.lease_owner) is False  # its claim is over
    assert await other.renew_job_lease(job.id, now + 50, owner=second.lease_owner) is False

    # retry and fail of the current holder apply; a former holder's do not
    job = await store.enqueue_job("ingest", {"tag": "v4"})
    now = time.time()
    claim = await store.claim_job(now, 10)
    assert await store.retry_job(job.id, "boom", now, owner=claim.lease_owner) is True
    assert await store.retry_job(job.id, "boom again", now, owner=claim.lease_owner) is False
    again = await other.claim_job(now + 1, 10)
    assert again.id == job.id and again.lease_owner != claim.lease_owner
    assert await store.fail_job(job.id, "stale", owner=claim.lease_owner) is False
    assert await other.fail_job(job.id, "bad archive", owner=again.lease_owner) is True
    failed = await store.get_job(job.id)
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 2, "bad archive")
    assert await store.finish_job(987654, owner="nobody") is False


async def test_consumer_leases(backend: Backend, store: MetadataStore):
    other = await backend.replica()
    await store.consumer("webhook:a", start_serial=3)
    now = time.time()
    assert await store.acquire_consumer_lease("nobody", "A", now + 10, now) is False  # unknown consumer
    assert [c.name for c in await store.list_consumers()] == ["webhook:a"]
    assert await store.acquire_consumer_lease("webhook:a", "A", now + 10, now) is True  # free
    assert await other.acquire_consumer_lease("webhook:a", "B", now + 15, now + 5) is False  # A's runs
    assert await store.acquire_consumer_lease("webhook:a", "A", now + 20, now + 5) is True  # renewed
    assert await other.acquire_consumer_lease("webhook:a", "B", now + 25, now + 15) is False  # renewal holds
    assert await store.advance_consumer("webhook:a", 5, owner="A") is True
    assert await other.advance_consumer("webhook:a", 9, owner="B") is False
    assert await other.record_consumer_failure("webhook:a", 1, 9.0, "x", owner="B") is False
    assert await other.add_delivery_failure("a", 6, 3, "x", owner="B") is False
    cursor = await other.consumer("webhook:a")
    assert (cursor.serial, cursor.attempts, cursor.last_error) == (5, 0, None)
    assert await other.list_delivery_failures("a") == []

    # A's lease lapses: B takes over, and A's writes no longer apply
    assert await other.acquire_consumer_lease("webhook:a", "B", now + 31, now + 21) is True
    assert await store.advance_consumer("webhook:a", 7, owner="A") is False
    assert await store.record_consumer_failure("webhook:a", 2, 1.0, "late", owner="A") is False
    assert await store.add_delivery_failure("a", 6, 3, "late", owner="A") is False
    assert await store.acquire_consumer_lease("webhook:a", "A", now + 40, now + 22) is False
    assert await other.record_consumer_failure("webhook:a", 1, 50.0, "HTTP 500", owner="B") is True
    failing = await store.consumer("webhook:a")
    assert (failing.serial, failing.attempts, failing.next_attempt_at, failing.last_error) == (5, 1, 50.0, "HTTP 500")
    assert await other.add_delivery_failure("a", 6, 3, "HTTP 500", owner="B") is True
    assert (await store.consumer("webhook:a")).serial == 6
    assert [(f.serial, f.last_error) for f in await store.list_delivery_failures("a")] == [(6, "HTTP 500")]

    # released: free at once for another owner, and no longer B's
    assert await store.release_consumer_lease("webhook:a", "A") is False  # not A's to release
    assert await other.release_consumer_lease("webhook:a", "B") is True
    assert await other.advance_consumer("webhook:a", 8, owner="B") is False
    assert await store.acquire_consumer_lease("webhook:a", "A", now + 50, now + 23) is True
    assert await store.advance_consumer("webhook:a", 8, owner="A") is True
    assert await other.advance_consumer("webhook:a", 9) is True  # without an owner: unconditional
    assert (await store.consumer("webhook:a")).serial == 9
    assert await store.release_consumer_lease("nobody", "A") is False


async def test_list_jobs(store: MetadataStore):
    now = time.time()
    jobs = [await store.enqueue_job(f"k{n}", {"n": n}, run_after=now - 100 + n) for n in range(6)]
    for _ in range(4):
        await store.claim_job(now, 60)
    await store.finish_job(jobs[0].id)
    await store.fail_job(jobs[1].id, "bad")
    await store.finish_job(jobs[2].id)
    by_state = {
        state: [j.id for j in await store.list_jobs(state)] for state in ("queued", "running", "done", "failed")
    }
    assert by_state == {
        "queued": [jobs[5].id, jobs[4].id],
        "running": [jobs[3].id],
        "done": [jobs[2].id, jobs[0].id],
        "failed": [jobs[1].id],
    }
    assert [j.id for j in await store.list_jobs()] == [j.id for j in reversed(jobs)]
    assert [j.id for j in await store.list_jobs(limit=2)] == [jobs[5].id, jobs[4].id]
    assert [j.id for j in await store.list_jobs("done", limit=1)] == [jobs[2].id]
    assert (await store.list_jobs("failed"))[0].payload == {"n": 1}


async def test_a_queue_takes_over_the_job_of_a_dead_replica(backend: Backend):
    dead, alive = await backend.replica(), await backend.replica()
    job = await dead.enqueue_job("ingest", {"tag": "v2"})
    assert (await dead.claim_job(time.time(), 0.3)).id == job.id  # then its process dies
    calls: list[dict[str, Any]] = []

    async def handle(payload: dict[str, Any]) -> None:
        calls.append(payload)

    queue = JobQueue(
        alive, workers=2, lease_seconds=5, max_attempts=3, backoff_base=0.01, backoff_max=1, poll_interval=0.05
    )
    queue.register("ingest", handle)
    await queue.start()
    try:
        async with asyncio.timeout(10):
            while (await alive.get_job(job.id)).state != "done":
                await asyncio.sleep(0.05)
    finally:
        await queue.stop(timeout=2)
    assert calls == [{"tag": "v2"}] and (await alive.get_job(job.id)).attempts == 2


# -- replicas: several stores on one database at once ---------------------------------------------


async def test_replicas_ingesting_the_same_tag_make_one_version(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    outcomes = await together(9, lambda n: replicas[n % 3].publish_version(released(mv())))
    assert sorted(o.status for o in outcomes) == ["created"] + ["unchanged"] * 8
    assert [e[1] for e in await events(replicas[0])] == ["module.created", "module.version_released"]
    assert await replicas[1].latest_serial() == 2


async def test_replicas_publishing_at_once_leave_no_gap_in_serials(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    outcomes = await together(
        12,
        lambda n: replicas[n % 3].publish_version(
            released(mv(f"acme/m{n % 4}/aws", f"1.{n}.0", sha="abcdefghijkl"[n]))
        ),
    )
    assert [o.status for o in outcomes] == ["created"] * 12
    listed = await replicas[2].events_after(0, 1000)
    assert [e.serial for e in listed] == list(range(1, 17))
    assert sorted(e.data["version"] for e in listed if e.type == "module.version_released") == sorted(
        f"1.{n}.0" for n in range(12)
    )
    assert sorted(e.data["name"] for e in listed if e.type == "module.created") == ["m0", "m1", "m2", "m3"]
    for e in listed:  # every module's creation comes before its versions
        if e.type == "module.version_released":
            created = next(c for c in listed if c.type == "module.created" and c.data["name"] == e.data["name"])
            assert created.serial < e.serial
    latest = {s.version.address.name: s.version.version for s in await replicas[0].latest_versions()}
    assert latest == {f"m{m}": f"1.{max(n for n in range(12) if n % 4 == m)}.0" for m in range(4)}


async def test_readers_never_see_a_gap_while_replicas_write(backend: Backend):
    writers = [await backend.replica() for _ in range(2)]
    reader = await backend.replica()
    seen: list[list[int]] = []
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            serials = [e.serial for e in await reader.events_after(0, 1000)]
            seen.append(serials)
            await asyncio.sleep(0)

    async def write(n: int) -> None:
        await writers[n % 2].publish_version(released(mv(f"acme/r{n % 3}/aws", f"2.{n}.0", sha="abcdefghij"[n])))

    task = asyncio.create_task(read())
    await together(10, write)
    stop.set()
    await task
    for serials in seen:
        assert serials == list(range(1, len(serials) + 1))
    assert await reader.latest_serial() == 13


async def test_replicas_claim_each_job_once(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    for n in range(4):
        await replicas[0].enqueue_job("ingest", {"n": n})
    now = time.time()
    claims = await together(9, lambda n: replicas[n % 3].claim_job(now, 60))
    won = [c.id for c in claims if c is not None]
    assert len(won) == 4 and len(set(won)) == 4
    assert await replicas[1].list_jobs("queued") == []


async def test_replicas_enqueue_a_dedupe_key_once(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    queued = await together(6, lambda n: replicas[n % 3].enqueue_job("delivery", {"n": n}, dedupe_key="delivery-1"))
    assert len([j for j in queued if j is not None]) == 1
    assert len(await replicas[0].list_jobs()) == 1


async def test_replicas_ensure_a_module_once(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    created = await together(6, lambda n: replicas[n % 3].ensure_module(addr(), owner=Owner.github(1)))
    assert sorted(created) == [False] * 5 + [True]
    assert [e[1] for e in await events(replicas[0])] == ["module.created"]


async def test_replicas_revoking_and_deleting_at_once(backend: Backend):
    replicas = [await backend.replica() for _ in range(2)]
    for n in range(3):
        await publish(replicas[0], version=f"1.{n}.0", sha="abc"[n])
    revoked = await together(4, lambda n: replicas[n % 2].revoke_version(addr(), "1.2.0"))
    assert sorted(revoked) == [False, False, False, True]
    orphans = await together(4, lambda n: replicas[n % 2].delete_module(addr()))
    assert sorted(key for keys in orphans for key in keys) == sorted(mv(sha=s).blob_key for s in "abc")
    assert [e[1] for e in await events(replicas[1], 4)] == ["module.version_revoked", "module.deleted"]
