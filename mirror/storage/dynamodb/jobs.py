"""The durable job queue: GSI1 lists it by state, conditional updates claim and settle."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mirror.domain.models import JOB_STATES, Job
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import StorageUnavailable
from mirror.storage.protocols import new_lease_owner
from mirror.storage.dynamodb.keys import (
    COMMIT_ATTEMPTS,
    CLAIM_CANDIDATES,
    _lease_held,
    _job_pk,
    _time_key,
    _job_index,
)
from mirror.storage.dynamodb.items import _job_from_item, _backoff, _dumps
from mirror.storage.dynamodb.table import _Cancelled, _ConditionFailed, DynamoTable


class Jobs(DynamoTable):
    """The durable job queue: GSI1 lists it by state, conditional updates claim and settle."""

    async def enqueue_job(
        self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None, run_after: float | None = None
    ) -> Job | None:
        """Queue a job; None when ``dedupe_key`` was seen before (a conditional put of the key
        in the same transaction as the job)."""
        now, stamp = time.time(), now_rfc3339()
        due = run_after or now
        job_id = await self._next_id("JOBS")
        item = {
            "PK": _job_pk(job_id),
            "SK": "JOB",
            "id": job_id,
            "kind": kind,
            "payload": _dumps(payload),
            "dedupe_key": dedupe_key,
            "state": "queued",
            "attempts": 0,
            "run_after": due,
            "created_at": stamp,
            "updated_at": stamp,
            **_job_index("queued", job_id, due),
        }
        job = Job(job_id, kind, payload, "queued", 0, due, stamp, stamp, None, dedupe_key)
        if dedupe_key is None:
            await self._put(item)
            return job
        dedupe = {"PK": f"JOBDEDUPE#{dedupe_key}", "SK": "JOBDEDUPE", "job_id": job_id}
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                await self._transact([self._tx_put(item), self._tx_put(dedupe, "attribute_not_exists(#PK)")])
                return job
            except _Cancelled:
                if await self._get((dedupe["PK"], "JOBDEDUPE")) is not None:
                    return None
                await asyncio.sleep(_backoff(attempt))
        raise StorageUnavailable(f"DynamoDB table {self.table!r} is too busy to queue a job")

    async def claim_job(self, now: float, lease_seconds: float) -> Job | None:
        """Take a runnable job: queued and due, or running with an expired lease (its worker died).

        Candidates come from GSI1 (queued by due time, running by lease end); each claim is a
        conditional update on the job's state and lease, so exactly one replica wins it. The
        claim counts as an attempt."""
        until = now + lease_seconds
        for _ in range(5):
            queued, running = await asyncio.gather(
                self._query("JOBS#queued", index=True, upto=f"{_time_key(now)}#~", limit=CLAIM_CANDIDATES),
                self._query("JOBS#running", index=True, before=_time_key(now), limit=CLAIM_CANDIDATES),
            )
            candidates = sorted(queued + running, key=lambda item: (float(item["run_after"]), int(item["id"])))
            if not candidates:
                return None
            for candidate in candidates:
                job_id = int(candidate["id"])
                try:
                    item = await self._update(
                        (_job_pk(job_id), "JOB"),
                        set={
                            "state": "running",
                            "lease_until": until,
                            "lease_owner": new_lease_owner(),
                            "updated_at": now_rfc3339(),
                            **_job_index("running", job_id, until),
                        },
                        add={"attempts": 1},
                        condition="(#state = :queued AND #run_after <= :now) OR (#state = :running AND #lease_until < :now)",
                        values={":queued": "queued", ":running": "running", ":now": now},
                        return_new=True,
                    )
                except _ConditionFailed:  # another replica took it, or the index was behind
                    continue
                assert item is not None
                return _job_from_item(item)
        return None

    async def renew_job_lease(self, job_id: int, until: float, *, owner: str | None = None) -> bool:
        held, values = _lease_held(owner)
        try:
            await self._update(
                (_job_pk(job_id), "JOB"),
                set={"lease_until": until, **_job_index("running", job_id, until)},
                condition=f"#state = :running{held}",
                values={":running": "running", **values},
            )
        except _ConditionFailed:
            return False
        return True

    async def finish_job(self, job_id: int, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "done", None, None, owner)

    async def retry_job(self, job_id: int, error: str, run_after: float, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "queued", error, run_after, owner)

    async def fail_job(self, job_id: int, error: str, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "failed", error, None, owner)

    async def _set_job(
        self, job_id: int, state: str, error: str | None, run_after: float | None, owner: str | None
    ) -> bool:
        """A conditional update: the job exists (and, with ``owner``, still carries that claim)."""
        changes: dict[str, Any] = {"state": state, "updated_at": now_rfc3339(), **_job_index(state, job_id, run_after)}
        if error is not None:
            changes["last_error"] = error
        if run_after is not None:
            changes["run_after"] = run_after
        held, values = _lease_held(owner)
        try:
            await self._update(
                (_job_pk(job_id), "JOB"),
                set=changes,
                remove=["lease_until", "lease_owner"],
                condition=f"attribute_exists(#PK){held}",
                values=values or None,
            )
        except _ConditionFailed:
            return False
        return True

    async def requeue_job(self, job_id: int) -> bool:
        """Put a failed job back in the queue with fresh attempts; False unless it had failed."""
        now = time.time()
        try:
            await self._update(
                (_job_pk(job_id), "JOB"),
                set={
                    "state": "queued",
                    "attempts": 0,
                    "run_after": now,
                    "updated_at": now_rfc3339(),
                    **_job_index("queued", job_id, now),
                },
                remove=["lease_until", "lease_owner"],
                condition="#state = :failed",
                values={":failed": "failed"},
            )
        except _ConditionFailed:
            return False
        return True

    async def get_job(self, job_id: int) -> Job | None:
        item = await self._get((_job_pk(job_id), "JOB"))
        return _job_from_item(item) if item else None

    async def list_jobs(self, state: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs newest first: ids from GSI1 (done and failed in id order, the queue whole), then
        the jobs themselves read consistently."""
        states = [state] if state else list(JOB_STATES)

        async def ids_in(name: str) -> list[int]:
            if name in ("done", "failed"):
                items = await self._query(f"JOBS#{name}", index=True, forward=False, limit=limit, fields=("id",))
            else:
                items = await self._query(f"JOBS#{name}", index=True, fields=("id",))
            return [int(item["id"]) for item in items]

        found = sorted({i for ids in await asyncio.gather(*(ids_in(s) for s in states)) for i in ids}, reverse=True)
        items = await self._batch_get([(_job_pk(i), "JOB") for i in found[:limit]])
        jobs = [_job_from_item(item) for item in items if state is None or item["state"] == state]
        return sorted(jobs, key=lambda job: job.id, reverse=True)[:limit]
