"""The job queue against a real SQLite store, its HTTP API on the real app, and the CLI."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mirror.domain.models import Job
from mirror.domain.errors import BadRequest, NotFound, StorageUnavailable
from mirror.http.keys import JOBS, STORE
from mirror.services.jobs import JobQueue, retry_delay
from mirror.storage.protocols import JobStore
from mirror.storage.sqlite import SqliteMetadataStore
from tests.live import ManualClock, eventually, run_cli, write_config


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    opened = SqliteMetadataStore(tmp_path / "jobs.db")
    await opened.open()
    yield opened
    await opened.close()


def make_queue(store: JobStore, **overrides: Any) -> JobQueue:
    options: dict[str, Any] = {
        "workers": 2,
        "lease_seconds": 5.0,
        "max_attempts": 5,
        "backoff_base": 0.01,
        "backoff_max": 1.0,
        "permanent": (BadRequest,),
        "poll_interval": 0.02,
        "random": lambda: 1.0,
    }
    options.update(overrides)
    return JobQueue(store, **options)


@asynccontextmanager
async def running(queue: JobQueue) -> AsyncIterator[JobQueue]:
    await queue.start()
    try:
        yield queue
    finally:
        await queue.stop(timeout=2)


async def wait_for_state(store: JobStore, job_id: int, state: str, timeout: float = 5) -> Job:
    async def reached() -> Job | None:
        job = await store.get_job(job_id)
        return job if job is not None and job.state == state else None

    return await eventually(reached, f"job {job_id} to be {state}", timeout=timeout)


def recorder(calls: list[dict[str, Any]], fail: Callable[[int], BaseException | None] = lambda n: None):
    """A handler that records its payloads and raises ``fail(call_number)`` when that is not None."""

    async def handle(payload: dict[str, Any]) -> None:
        calls.append(payload)
        error = fail(len(calls))
        if error is not None:
            raise error

    return handle


# -- the queue ---------------------------------------------------------------------------------


async def test_a_job_runs_and_is_done_with_a_handler_registered_after_start(store: SqliteMetadataStore):
    calls: list[dict[str, Any]] = []
    async with running(make_queue(store, poll_interval=5)) as queue:
        queue.register("greet", recorder(calls))
        job = await queue.enqueue("greet", {"name": "world"})
        assert job is not None and job.state == "queued"
        await queue.drain(timeout=1)  # enqueue wakes an idle worker: no waiting for the poll
    assert calls == [{"name": "world"}]
    done = await store.get_job(job.id)
    assert done is not None and done.state == "done" and done.attempts == 1


def test_retry_delay_is_exponential_with_equal_jitter():
    assert retry_delay(1, base=2, maximum=600, jitter=0.0) == 1.0
    assert retry_delay(1, base=2, maximum=600, jitter=1.0) == 2.0
    assert retry_delay(3, base=2, maximum=600, jitter=0.5) == 6.0
    assert retry_delay(30, base=2, maximum=600, jitter=0.0) == 300.0


async def test_transient_errors_are_retried_with_growing_delays(store: SqliteMetadataStore):
    moments: list[float] = []

    async def flaky(payload: dict[str, Any]) -> None:
        moments.append(time.monotonic())
        if len(moments) < 3:
            raise StorageUnavailable(f"bucket unreachable (attempt {len(moments)})")

    queue = make_queue(store, backoff_base=0.1, poll_interval=0.01)
    queue.register("ingest", flaky)
    async with running(queue):
        job = await queue.enqueue("ingest", {})
        assert job is not None
        done = await wait_for_state(store, job.id, "done")
    assert done.attempts == 3
    first_gap, second_gap = moments[1] - moments[0], moments[2] - moments[1]
    assert 0.1 <= first_gap < second_gap and second_gap >= 0.2, (first_gap, second_gap)


async def test_a_permanent_error_fails_at_once_and_is_listed(store: SqliteMetadataStore):
    calls: list[dict[str, Any]] = []
    queue = make_queue(store)
    queue.register("ingest", recorder(calls, lambda n: BadRequest("archive has no\n.tf files")))
    async with running(queue):
        job = await queue.enqueue("ingest", {"tag": "v1"})
        await queue.drain(timeout=5)
    assert len(calls) == 1
    [failed] = await store.list_jobs(state="failed")
    assert failed.id == job.id and failed.attempts == 1
    assert failed.last_error == "BadRequest: archive has no .tf files"


async def test_a_job_without_a_handler_fails(store: SqliteMetadataStore):
    async with running(make_queue(store)) as queue:
        job = await queue.enqueue("nobody-handles-this", {})
        await queue.drain(timeout=5)
    failed = await store.get_job(job.id)
    assert failed.state == "failed" and "nobody-handles-this" in failed.last_error


async def test_a_job_fails_once_max_attempts_are_used(store: SqliteMetadataStore):
    calls: list[dict[str, Any]] = []
    queue = make_queue(store, max_attempts=3)
    queue.register("ingest", recorder(calls, lambda n: RuntimeError(f"boom {n}")))
    async with running(queue):
        job = await queue.enqueue("ingest", {})
        failed = await wait_for_state(store, job.id, "failed")
    assert len(calls) == 3 and failed.attempts == 3
    assert "gave up after 3 attempts" in failed.last_error and "RuntimeError: boom 3" in failed.last_error


async def test_a_dedupe_key_queues_the_job_once(store: SqliteMetadataStore):
    calls: list[dict[str, Any]] = []
    queue = make_queue(store)
    queue.register("delivery", recorder(calls))
    async with running(queue):
        first = await queue.enqueue("delivery", {"n": 1}, dedupe_key="delivery-42")
        second = await queue.enqueue("delivery", {"n": 2}, dedupe_key="delivery-42")
        await queue.drain(timeout=5)
    assert first is not None and second is None
    assert calls == [{"n": 1}]


async def test_the_job_of_a_dead_worker_is_taken_over_after_its_lease(store: SqliteMetadataStore):
    clock = ManualClock(time.time())
    job = await store.enqueue_job("ingest", {"tag": "v2"}, run_after=clock())
    dead_claim = await store.claim_job(clock(), 0.3)  # a worker that dies right after claiming
    assert dead_claim is not None and dead_claim.id == job.id
    claimed_at = clock()
    moments: dict[str, float] = {}

    async def handle(payload: dict[str, Any]) -> None:
        moments[payload["tag"]] = clock()

    queue = make_queue(store, clock=clock)
    queue.register("ingest", handle)
    async with running(queue):
        # a job queued after it runs (the workers claim), and the leased one is left alone
        later = await store.enqueue_job("ingest", {"tag": "later"}, run_after=clock())
        queue.wake()
        await wait_for_state(store, later.id, "done")
        held = await store.get_job(job.id)
        assert (held.state, held.attempts, held.lease_owner) == ("running", 1, dead_claim.lease_owner)
        clock.advance(0.31)  # the dead worker's lease lapses
        done = await wait_for_state(store, job.id, "done")
    assert done.attempts == 2
    assert moments["v2"] - claimed_at >= 0.25  # not before the lease lapsed


async def test_a_job_whose_last_attempt_died_is_not_run_again(store: SqliteMetadataStore):
    clock = ManualClock(time.time())
    job = await store.enqueue_job("ingest", {}, run_after=clock())
    await store.claim_job(clock(), 0.1)  # the one allowed attempt, whose worker dies
    clock.advance(0.2)  # and its lease lapses
    calls: list[dict[str, Any]] = []
    queue = make_queue(store, max_attempts=1, clock=clock)
    queue.register("ingest", recorder(calls))
    async with running(queue):
        failed = await wait_for_state(store, job.id, "failed")
    assert calls == [] and "gave up after 1 attempts" in failed.last_error


async def renewed_to(store: JobStore, job_id: int, until: float) -> Job:
    """The job once its worker has renewed its lease to ``until`` or later (the queue's clock
    reading now, plus the lease)."""

    async def renewed() -> Job | None:
        job = await store.get_job(job_id)
        return job if job is not None and job.lease_until is not None and job.lease_until >= until else None

    return await eventually(renewed, f"job {job_id}'s lease to be renewed", timeout=5)


async def test_a_long_job_keeps_its_lease(store: SqliteMetadataStore):
    clock = ManualClock(time.time())
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(payload: dict[str, Any]) -> None:
        started.set()
        await release.wait()

    queue = make_queue(store, lease_seconds=0.3, clock=clock)
    queue.register("slow", slow)
    async with running(queue):
        job = await store.enqueue_job("slow", {}, run_after=clock())
        queue.wake()
        async with asyncio.timeout(5):
            await started.wait()
        for _ in range(4):  # 0.5 s in all, longer than the lease: only renewals keep it
            clock.advance(0.125)
            await renewed_to(store, job.id, clock() + 0.3)
        assert await store.claim_job(clock(), 5) is None
        release.set()
        done = await wait_for_state(store, job.id, "done")
    assert done.attempts == 1


async def test_stop_waits_for_a_handler_that_finishes_in_time(store: SqliteMetadataStore):
    started = asyncio.Event()

    async def quick(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(0.1)

    queue = make_queue(store)
    queue.register("quick", quick)
    await queue.start()
    job = await queue.enqueue("quick", {})
    await started.wait()
    await queue.stop(timeout=5)
    assert (await store.get_job(job.id)).state == "done"


async def test_stop_puts_an_interrupted_job_back_and_the_next_queue_runs_it(store: SqliteMetadataStore):
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(payload: dict[str, Any]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    first = make_queue(store)
    first.register("ingest", stuck)
    await first.start()
    job = await first.enqueue("ingest", {"tag": "v3"})
    await started.wait()
    await first.stop(timeout=0.1)
    assert cancelled.is_set()
    interrupted = await store.get_job(job.id)
    assert interrupted.state == "queued" and interrupted.last_error == "interrupted by shutdown"
    assert interrupted.run_after <= time.time()

    calls: list[dict[str, Any]] = []
    second = make_queue(store, poll_interval=5)  # must not need a poll: due at once
    second.register("ingest", recorder(calls))
    async with running(second):
        await wait_for_state(store, job.id, "done", timeout=2)
    assert calls == [{"tag": "v3"}]


# -- the HTTP API ------------------------------------------------------------------------------


async def test_jobs_api_requires_an_admin_token(registry):
    client = registry.client
    assert (await client.get("/api/v1/jobs")).status == 401
    assert (await client.post("/api/v1/jobs/1/retry")).status == 401
    publisher = await registry.auth("*", "publish")
    assert (await client.get("/api/v1/jobs", headers=publisher)).status == 403
    assert (await client.post("/api/v1/jobs/1/retry", headers=publisher)).status == 403


async def test_jobs_api_validates_its_query(registry):
    admin = await registry.auth()
    for query in ("state=broken", "limit=0", "limit=1001", "limit=ten"):
        response = await registry.client.get(f"/api/v1/jobs?{query}", headers=admin)
        assert response.status == 400, query
        assert (await response.json())["errors"]


async def test_jobs_api_lists_failed_jobs_and_retries_them(registry):
    client, app, admin = registry.client, registry.app, await registry.auth()
    calls: list[dict[str, Any]] = []
    app[JOBS].register("ingest", recorder(calls, lambda n: NotFound("tag v9 is gone") if n == 1 else None))
    job = await app[JOBS].enqueue("ingest", {"tag": "v9"})
    await wait_for_state(app[STORE], job.id, "failed")

    listed = await (await client.get("/api/v1/jobs?state=failed&limit=10", headers=admin)).json()
    rows = [(j["id"], j["state"], j["last_error"]) for j in listed["jobs"]]
    assert rows == [(job.id, "failed", "NotFound: tag v9 is gone")]

    retried = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=admin)
    assert retried.status == 200
    assert (await retried.json())["job"]["id"] == job.id
    done = await wait_for_state(app[STORE], job.id, "done", timeout=0.5)  # woken: the poll is every second
    assert done.attempts == 1 and len(calls) == 2

    conflict = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=admin)
    assert conflict.status == 409 and "done" in (await conflict.json())["errors"][0]
    assert (await client.post("/api/v1/jobs/987654/retry", headers=admin)).status == 404
    assert (await client.post("/api/v1/jobs/abc/retry", headers=admin)).status == 404


async def test_jobs_api_names_the_replica_running_a_job(registry):
    client, app, admin = registry.client, registry.app, await registry.auth()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(payload: dict[str, Any]) -> None:
        started.set()
        await release.wait()

    app[JOBS].register("slow", slow)
    job = await app[JOBS].enqueue("slow", {})
    await asyncio.wait_for(started.wait(), 5)
    (running,) = (await (await client.get("/api/v1/jobs?state=running", headers=admin)).json())["jobs"]
    assert running["id"] == job.id
    assert running["claimed_by"] == f"{socket.gethostname()}:{os.getpid()}"  # HOST:PID, whatever the store
    release.set()
    done = await wait_for_state(app[STORE], job.id, "done")
    assert done.to_json()["claimed_by"] is None


# -- the CLI -----------------------------------------------------------------------------------


async def test_cli_lists_and_retries_failed_jobs(tmp_path: Path):
    db = tmp_path / "data" / "mirror.db"
    sections = {"metadata": {"path": str(db)}, "blobs": {"path": str(tmp_path / "blobs")}}
    config = write_config(tmp_path / "mirror.toml", sections)
    store = SqliteMetadataStore(db)
    await store.open()
    try:
        failed = await store.enqueue_job("ingest", {"tag": "v4"})
        await store.claim_job(time.time(), 60)
        await store.fail_job(failed.id, "InvalidArchive: " + "x" * 200)
        done = await store.enqueue_job("ingest", {"tag": "v5"})
        await store.claim_job(time.time(), 60)
        await store.finish_job(done.id)
    finally:
        await store.close()

    def jobs_cli(*args: str):  # the store is closed meanwhile, so blocking the loop is harmless
        return run_cli("jobs", *args, "--config", str(config), cwd=tmp_path)

    listing = jobs_cli("list", "--state", "failed")
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split()[:4] == ["ID", "KIND", "STATE", "ATTEMPTS"]
    assert row.split()[:4] == [str(failed.id), "ingest", "failed", "1"]
    assert "InvalidArchive: xxx" in row and row.endswith("...") and len(row.split("  ")[-1]) <= 80

    retried = jobs_cli("retry", str(failed.id))
    assert retried.returncode == 0, retried.stderr
    for job_id, fragment in ((done.id, "only failed jobs"), (424242, "no job with id 424242")):
        refused = jobs_cli("retry", str(job_id))
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()] and fragment in refused.stderr

    store = SqliteMetadataStore(db)
    await store.open()
    try:
        requeued = await store.get_job(failed.id)
        assert requeued.state == "queued" and requeued.attempts == 0
        calls: list[dict[str, Any]] = []
        queue = make_queue(store)
        queue.register("ingest", recorder(calls))
        async with running(queue):
            await queue.drain(timeout=5)
        assert calls == [{"tag": "v4"}]
    finally:
        await store.close()


class Watched:
    """The real store, recording what a queue asks of it: its claims and its lease renewals
    (with their outcome)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.claims = 0
        self.renewals: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def claim_job(self, now: float, lease_seconds: float) -> Job | None:
        self.claims += 1
        return await self.store.claim_job(now, lease_seconds)

    async def renew_job_lease(self, job_id: int, until: float, *, owner: str | None = None) -> bool:
        renewed = await self.store.renew_job_lease(job_id, until, owner=owner)
        self.renewals.append(renewed)
        return renewed


@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
async def test_a_worker_that_lost_its_lease_drops_its_outcome(store: SqliteMetadataStore, outcome: str):
    outcomes: list[tuple[str, str]] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(payload: dict[str, Any]) -> None:
        started.set()
        await release.wait()
        if outcome == "fails":
            raise RuntimeError("too late")

    clock, watched = ManualClock(time.time()), Watched(store)
    queue = make_queue(
        watched, workers=1, lease_seconds=0.3, on_outcome=lambda kind, result: outcomes.append((kind, result)), clock=clock
    )
    queue.register("slow", slow)
    async with running(queue):
        job = await store.enqueue_job("slow", {}, run_after=clock())
        queue.wake()
        async with asyncio.timeout(5):
            await started.wait()
        clock.advance(0.25)
        await renewed_to(store, job.id, clock() + 0.3)  # the worker renews its lease meanwhile
        assert await store.claim_job(clock(), 60) is None
        # another replica, whose clock is a second ahead, takes the job over
        taken = await store.claim_job(clock() + 1, 60)
        assert taken.id == job.id and taken.attempts == 2
        clock.advance(0.25)
        await eventually(lambda: False in watched.renewals, "a renewal to be refused", timeout=5)
        assert (await store.get_job(job.id)).lease_owner == taken.lease_owner  # the first worker's renewals no longer apply
        claims = watched.claims
        release.set()
        # the worker claims again only once it is done with the job's outcome
        await eventually(lambda: watched.claims > claims, "the worker to look for its next job", timeout=5)
        held = await store.get_job(job.id)
        assert (held.state, held.attempts, held.last_error, held.lease_owner) == ("running", 2, None, taken.lease_owner)
        assert outcomes == []  # neither "succeeded" nor "retried": the outcome was dropped
        assert await store.claim_job(time.time() + 30, 60) is None  # the new holder's lease stands
        assert await store.finish_job(job.id, owner=taken.lease_owner) is True
        assert (await store.get_job(job.id)).state == "done"
