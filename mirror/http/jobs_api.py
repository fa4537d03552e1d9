"""The jobs API (admin scope): see failed background jobs and queue them again."""

from __future__ import annotations

from aiohttp import web

from mirror.http.keys import JOBS, STORE
from mirror.http.common import authorize
from mirror.http.models.base import parse_query
from mirror.http.models.jobs import JobsQuery
from mirror.services.jobs import requeue_failed_job


async def list_jobs(request: web.Request) -> web.Response:
    """``GET /api/v1/jobs?state=failed&limit=50``: newest first."""
    await authorize(request, "*", "admin")  # registry-wide admins only
    query = parse_query(JobsQuery, request)
    jobs = await request.app[STORE].list_jobs(query.state, query.limit)
    return web.json_response({"jobs": [job.to_json() for job in jobs]})


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
