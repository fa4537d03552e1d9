"""A durable, generic job queue: N workers drain a ``JobStore`` (bandersnatch style).

A job has a kind; whoever composes the application registers which handler runs each kind, so this
module never knows about GitHub or the registry. Jobs are claimed with a lease that is renewed while
the handler runs: a job whose worker died runs again once its lease lapses. A claim counts as an
attempt. Failures are retried with exponential backoff and jitter until ``max_attempts``; errors
listed as ``permanent`` (a bad archive, a conflict) fail at once. Failed jobs stay visible and can be
queued again (``requeue_failed_job``).

Each claim carries an owner token (``Job.lease_owner``) and every later write for the job (renew,
finish, retry, fail) is conditional on it: a worker whose lease lapsed while it was slow, and whose
job another worker or replica has claimed since, cannot clobber the new holder. Its outcome is
logged and dropped, and it stops renewing.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from mirror.domain.audit import Actor, acting_as, actor_is_set, current_actor
from mirror.domain.models import Job
from mirror.domain.errors import Conflict, MirrorError, NotFound
from mirror.storage.protocols import JobStore

JobHandler = Callable[[dict[str, Any]], Awaitable[None]]
#: told each run's kind and outcome: "succeeded", "retried" or "failed" (for ``/metrics``)
JobOutcomeCounter = Callable[[str, str], None]

log = structlog.get_logger("mirror.jobs")

#: how often ``drain`` looks at the store
DRAIN_POLL_SECONDS = 0.02
#: the longest error text stored with a job
MAX_ERROR_CHARS = 500


def retry_delay(attempts: int, *, base: float, maximum: float, jitter: float) -> float:
    """Seconds to wait after failed attempt number ``attempts`` (1-based).

    Exponential (``base * 2**(attempts-1)``, at most ``maximum``) with "equal jitter": half of the
    delay is fixed, the other half scaled by ``jitter`` in [0, 1).
    """
    delay = min(maximum, base * 2 ** (attempts - 1))
    return delay / 2 + delay / 2 * jitter


def describe_error(exc: BaseException) -> str:
    """One line naming the exception's type and message."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


async def requeue_failed_job(store: JobStore, job_id: int) -> Job:
    """Queue a failed job again with fresh attempts; NotFound or Conflict (not failed) otherwise."""
    job = await store.get_job(job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    if not await store.requeue_job(job_id):
        raise Conflict(f"job {job_id} is {job.state}; only failed jobs can be retried")
    return await store.get_job(job_id) or job


class JobQueue:
    """Workers that claim jobs from ``store`` and run the registered handler of each job's kind.

    Handlers may be registered before or after ``start``; they are looked up when a job runs.
    ``clock`` (unix time) dates claims, lease renewals and retries.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        workers: int,
        lease_seconds: float,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        permanent: tuple[type[BaseException], ...] = (),
        poll_interval: float = 1.0,
        random: Callable[[], float] = _random.random,
        on_outcome: JobOutcomeCounter = lambda kind, outcome: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._workers = workers
        self._lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._permanent = permanent
        self._poll_interval = poll_interval
        self._random = random
        self._on_outcome = on_outcome
        self._clock = clock
        self._handlers: dict[str, JobHandler] = {}
        self._wake_event = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def register(self, kind: str, handler: JobHandler) -> None:
        self._handlers[kind] = handler

    def wake(self) -> None:
        """Let idle workers look for work now (a job was queued or requeued)."""
        self._wake_event.set()

    async def enqueue(self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None) -> Job | None:
        """Queue a job; None when ``dedupe_key`` was queued before (the job is not queued again).

        Work queued on someone's behalf (``mirror.domain.audit``: a request's token, a job's own
        actor) carries that actor in its payload's ``actor``, and its run acts as it."""
        if actor_is_set() and "actor" not in payload:
            payload = {**payload, "actor": current_actor().to_json()}
        job = await self._store.enqueue_job(kind, payload, dedupe_key=dedupe_key)
        if job is None:
            log.info("job already queued", kind=kind, dedupe_key=dedupe_key)
            return None
        log.info("job queued", job_id=job.id, kind=kind)
        self.wake()
        return job

    async def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._work(), name=f"mirror-job-worker-{number}") for number in range(self._workers)
        ]

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; give running handlers ``timeout`` seconds, then cancel them and put
        their jobs back so that the next start runs them at once."""
        self._stopping = True
        self.wake()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, busy = await asyncio.wait(tasks, timeout=timeout)
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)

    async def drain(self, timeout: float) -> None:
        """Wait until no job is queued (due or backing off) or running; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while await self._has_work():
                await asyncio.sleep(DRAIN_POLL_SECONDS)

    async def _has_work(self) -> bool:
        # Queued, running, then queued again: follow-up jobs are queued while their parent still
        # runs (the first two reads see one of them), and a failed attempt goes back from running
        # to queued with a backoff (the last read sees a job that left "running" between the reads).
        store = self._store
        return bool(
            await store.list_jobs("queued", limit=1)
            or await store.list_jobs("running", limit=1)
            or await store.list_jobs("queued", limit=1)
        )

    # -- workers -----------------------------------------------------------------------------

    async def _work(self) -> None:
        """One worker: claim, run, record; never dies of a store failure."""
        while not self._stopping:
            try:
                job = await self._store.claim_job(self._clock(), self._lease_seconds)
            except MirrorError as exc:
                log.warning("cannot claim a job", error=str(exc))
                job = None
            if job is None:
                await self._idle()
                continue
            with structlog.contextvars.bound_contextvars(job_id=job.id, kind=job.kind):
                await self._process(job)

    async def _idle(self) -> None:
        """Wait for a wake-up or ``poll_interval`` (jobs from other processes, elapsed backoffs)."""
        try:
            await asyncio.wait_for(self._wake_event.wait(), self._poll_interval)
        except TimeoutError:
            return
        if not self._stopping:  # while stopping, leave it set so every worker sees it
            self._wake_event.clear()

    async def _process(self, job: Job) -> None:
        handler = self._handlers.get(job.kind)
        if handler is None:
            await self._fail(job, f"no handler is registered for job kind {job.kind!r}")
            return
        if job.attempts > self._max_attempts:  # the last attempt's worker died or was interrupted
            await self._fail(job, f"gave up after {job.attempts - 1} attempts; {job.last_error or 'no error recorded'}")
            return
        started = time.monotonic()
        try:
            await self._run(job, handler)
        except asyncio.CancelledError as exc:
            if _being_cancelled():  # stop() ran out of time: the job goes back to the queue
                await self._put_back(job)
                raise
            await self._on_error(job, exc)  # the handler's own cancellation is just an error
        except Exception as exc:  # a handler may raise anything; the worker must survive it
            await self._on_error(job, exc)
        else:
            if await self._record(self._store.finish_job(job.id, owner=job.lease_owner)):
                self._on_outcome(job.kind, "succeeded")
                log.info("job done", attempts=job.attempts, ms=round((time.monotonic() - started) * 1000, 2))

    async def _run(self, job: Job, handler: JobHandler) -> None:
        """Run the handler while renewing the job's lease every third of it."""
        renewer = asyncio.create_task(self._keep_lease(job))
        try:
            with acting_as(job_actor(job)):
                await handler(job.payload)
        finally:
            renewer.cancel()

    async def _keep_lease(self, job: Job) -> None:
        """Renew every third of the lease; stop once the lease is lost (another claim took the job)."""
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                renewed = await self._store.renew_job_lease(
                    job.id, self._clock() + self._lease_seconds, owner=job.lease_owner
                )
            except MirrorError as exc:
                log.warning("cannot renew the job's lease", error=str(exc))
                continue
            if not renewed:
                log.warning("job's lease lost to another worker; no longer renewing")
                return

    async def _on_error(self, job: Job, exc: BaseException) -> None:
        error = describe_error(exc)
        if isinstance(exc, self._permanent):
            await self._fail(job, error)
        elif job.attempts >= self._max_attempts:
            await self._fail(job, f"gave up after {job.attempts} attempts; {error}")
        else:
            delay = retry_delay(job.attempts, base=self._backoff_base, maximum=self._backoff_max, jitter=self._random())
            retried = self._store.retry_job(job.id, error, self._clock() + delay, owner=job.lease_owner)
            if await self._record(retried):
                self._on_outcome(job.kind, "retried")
                log.warning("job will be retried", attempts=job.attempts, error=error, delay=round(delay, 3))

    async def _fail(self, job: Job, error: str) -> None:
        if await self._record(self._store.fail_job(job.id, error, owner=job.lease_owner)):
            self._on_outcome(job.kind, "failed")
            log.error("job failed", attempts=job.attempts, error=error)

    async def _put_back(self, job: Job) -> None:
        put_back = self._store.retry_job(job.id, "interrupted by shutdown", self._clock(), owner=job.lease_owner)
        if await self._record(put_back):
            log.warning("job interrupted by shutdown; queued again", attempts=job.attempts)

    @staticmethod
    async def _record(outcome: Awaitable[bool]) -> bool:
        """Store a job's outcome; True when it was recorded. If the store fails, the lease lapses
        and the job runs again; if the lease was lost (another claim holds the job), the outcome
        is dropped: the new holder's run decides."""
        try:
            applied = await outcome
        except MirrorError as exc:
            log.error("cannot record the job's outcome", error=str(exc))
            return False
        if not applied:
            log.warning("job's lease was lost to another worker; its outcome here is dropped")
        return applied


def job_actor(job: Job) -> Actor:
    """Who a job's changes are made for: the actor it was queued with, else the system acting
    for the job (``Actor("system", job=ID)``; a handler may say more, as GitHub's do)."""
    return Actor.from_json(job.payload.get("actor")) or Actor("system", job=str(job.id))


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
