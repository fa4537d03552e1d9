"""The durable job queue (claims with leases and owner tokens)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from mirror.domain.models import Job
from mirror.domain.timeutil import now_rfc3339
from mirror.storage.protocols import new_lease_owner
from mirror.storage.sqlite.rows import _dumps, _one
from mirror.storage.sqlite.connection import SqliteConnection


class Jobs(SqliteConnection):
    """The durable job queue (claims with leases and owner tokens)."""

    async def enqueue_job(
        self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None, run_after: float | None = None
    ) -> Job | None:
        """Queue a job; None when ``dedupe_key`` was seen before (the job is not queued again)."""
        now, stamp = time.time(), now_rfc3339()
        async with self._writing() as conn:
            cursor = await conn.execute(
                "INSERT INTO jobs (kind, payload, dedupe_key, state, run_after, created_at, updated_at) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
                (kind, _dumps(payload), dedupe_key, run_after or now, stamp, stamp),
            )
            if cursor.rowcount == 0:
                return None
            return Job(cursor.lastrowid, kind, payload, "queued", 0, run_after or now, stamp, stamp, None, dedupe_key)

    async def claim_job(self, now: float, lease_seconds: float) -> Job | None:
        """Take the oldest runnable job: queued and due, or running with an expired lease (its
        worker died). The claim counts as an attempt."""
        async with self._writing() as conn:
            row = await _one(
                conn,
                "SELECT id FROM jobs WHERE (state = 'queued' AND run_after <= ?) "
                "OR (state = 'running' AND lease_until < ?) ORDER BY run_after, id LIMIT 1",
                (now, now),
            )
            if row is None:
                return None
            await conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, lease_owner = ?, "
                "updated_at = ? WHERE id = ?",
                (now + lease_seconds, new_lease_owner(), now_rfc3339(), row[0]),
            )
            return _job_from_row(await _one(conn, _JOB_SELECT + " WHERE id = ?", (row[0],)))

    async def renew_job_lease(self, job_id: int, until: float, *, owner: str | None = None) -> bool:
        where, params = _job_owned(job_id, owner)
        async with self._writing() as conn:
            cursor = await conn.execute(
                f"UPDATE jobs SET lease_until = ? WHERE {where} AND state = 'running'", (until, *params)
            )
            return cursor.rowcount > 0

    async def finish_job(self, job_id: int, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "done", None, None, owner)

    async def retry_job(self, job_id: int, error: str, run_after: float, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "queued", error, run_after, owner)

    async def fail_job(self, job_id: int, error: str, *, owner: str | None = None) -> bool:
        return await self._set_job(job_id, "failed", error, None, owner)

    async def requeue_job(self, job_id: int) -> bool:
        """Put a failed job back in the queue with fresh attempts; False unless it had failed."""
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_after = ?, lease_until = NULL, lease_owner = NULL, "
                "updated_at = ? WHERE id = ? AND state = 'failed'",
                (time.time(), now_rfc3339(), job_id),
            )
            return cursor.rowcount > 0

    async def get_job(self, job_id: int) -> Job | None:
        row = await self._fetchone(_JOB_SELECT + " WHERE id = ?", (job_id,))
        return None if row is None else _job_from_row(row)

    async def list_jobs(self, state: str | None = None, limit: int = 100) -> list[Job]:
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        rows = await self._fetchall(f"{_JOB_SELECT} {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_job_from_row(row) for row in rows]

    async def _set_job(
        self, job_id: int, state: str, error: str | None, run_after: float | None, owner: str | None
    ) -> bool:
        where, params = _job_owned(job_id, owner)
        async with self._writing() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET state = ?, last_error = COALESCE(?, last_error), run_after = COALESCE(?, run_after), "
                f"lease_until = NULL, lease_owner = NULL, updated_at = ? WHERE {where}",
                (state, error, run_after, now_rfc3339(), *params),
            )
            return cursor.rowcount > 0


_JOB_SELECT = (
    "SELECT id, kind, payload, state, attempts, run_after, created_at, updated_at, last_error, dedupe_key, "
    "lease_owner, lease_until FROM jobs"
)


def _job_from_row(row: Sequence[Any]) -> Job:
    job_id, kind, payload, state, attempts, run_after, created, updated, error, dedupe, owner, until = row
    return Job(
        job_id, kind, json.loads(payload), state, attempts, run_after, created, updated, error, dedupe, owner, until
    )


def _job_owned(job_id: int, owner: str | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE of a write to a job: by id, and by its lease's owner when one is given."""
    return ("id = ?", (job_id,)) if owner is None else ("id = ? AND lease_owner = ?", (job_id, owner))
