"""The jobs API (admin scope): see failed background jobs and queue them again."""

from __future__ import annotations

from aiohttp import web

from mirror.domain.models import JOB_STATES
from mirror.domain.errors import BadRequest
from mirror.http.keys import JOBS, STORE
from mirror.http.common import authorize
from mirror.services.jobs import requeue_failed_job

MAX_LIMIT = 1000


async def list_jobs(request: web.Request) -> web.Response:
    """``GET /api/v1/jobs?state=failed&limit=50``: newest first."""
    await authorize(request, "*", "admin")  # registry-wide admins only
    state = request.query.get("state")
    if state is not None and state not in JOB_STATES:
        raise BadRequest(f"state must be one of {', '.join(JOB_STATES)}, not {state!r}")
    jobs = await request.app[STORE].list_jobs(state, _limit(request.query.get("limit", "50")))
    return web.json_response({"jobs": [job.to_json() for job in jobs]})


def _limit(raw: str) -> int:
    # ASCII digits only: int() also takes " 5 ", "1_0" and "١"
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number between 1 and {MAX_LIMIT}, not {raw!r}")
    return limit


async def retry_job(request: web.Request) -> web.Response:
    """``POST /api/v1/jobs/{id}/retry``: a failed job runs again with fresh attempts."""
    await authorize(request, "*", "admin")  # registry-wide admins only
    job = await requeue_failed_job(request.app[STORE], int(request.match_info["id"]))
    request.app[JOBS].wake()
    return web.json_response({"job": job.to_json()})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/jobs", list_jobs),
        web.post(r"/api/v1/jobs/{id:[0-9]{1,18}}/retry", retry_job),  # [0-9]: \d matches "١" too
    ]
