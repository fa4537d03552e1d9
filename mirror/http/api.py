"""The registry's own API: publishing over HTTP, and health."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import structlog
from aiohttp import web

from mirror.domain.models import PublishOutcome
from mirror.domain.provenance import Owner
from mirror.domain.versions import normalize
from mirror.domain.errors import BadRequest, MirrorError, PayloadTooLarge, StorageUnavailable
from mirror.http.keys import BLOBS, CONFIG, INGESTOR, READINESS, STORE
from mirror.http.common import authorize, module_address
from mirror.services.ingest import Archive

SPOOL_CHUNK = 256 * 1024

log = structlog.get_logger("mirror.registry")


async def publish(request: web.Request) -> web.Response:
    """``PUT /api/v1/modules/:ns/:name/:provider/:version`` with a ``.tar.gz`` body."""
    address = module_address(request)
    await authorize(request, address.namespace, "publish")
    raw_version = request.match_info["version"]
    normalize(raw_version)  # a bad version is a 400 before the body is read
    limit = request.app[CONFIG].limits.max_archive_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"archive is {request.content_length} bytes; the limit is {limit}")
    async with _spooled(request, limit) as archive:
        outcome = await request.app[INGESTOR].publish(
            address, raw_version, archive, owner=Owner.upload(), source="upload"
        )
    return web.json_response(_outcome_body(outcome), status=201 if outcome.status == "created" else 200)


@asynccontextmanager
async def _spooled(request: web.Request, limit: int) -> AsyncIterator[Archive]:
    """The request body as a temporary file, removed afterwards."""
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar.gz", dir=request.app[CONFIG].server.spool_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            sha256, size = await _spool(request, out, limit)
        yield Archive(path=path, sha256=sha256, size=size)
    finally:
        path.unlink(missing_ok=True)


async def _spool(request: web.Request, out: BinaryIO, limit: int) -> tuple[str, int]:
    """Stream the body into ``out`` while hashing it; never the whole body in memory."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(SPOOL_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"archive is larger than the limit of {limit} bytes")
        digest.update(chunk)
        try:
            await asyncio.to_thread(out.write, chunk)
        except OSError as exc:
            raise StorageUnavailable(f"cannot spool the upload: {exc}") from exc
    if size == 0:
        raise BadRequest("the request body is empty; send the module as a .tar.gz archive")
    return digest.hexdigest(), size


def _outcome_body(outcome: PublishOutcome) -> dict:
    v = outcome.version
    return {
        "id": f"{v.address}/{v.version}",
        "namespace": v.address.namespace,
        "name": v.address.name,
        "provider": v.address.provider,
        "version": v.version,
        "sha256": v.sha256,
        "size": v.size,
        "published_at": v.published_at,
        "status": outcome.status,
    }


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. It asks no store, so an outage never gets a healthy
    replica restarted; ``/readyz`` is the check that follows the stores."""
    return web.json_response({"status": "ok"})


#: seconds each store has to answer a readiness check
READY_TIMEOUT = 2.0


async def readyz(request: web.Request) -> web.Response:
    """Readiness, for load balancers: 200 while the metadata store and the blob store answer
    (each within ``READY_TIMEOUT``, checked side by side), else 503 naming what is unreachable.
    Concurrent checks share one round of store requests."""
    problems = await request.app[READINESS].do(None, lambda: _unready(request.app))
    if problems:
        raise StorageUnavailable("; ".join(problems))
    return web.json_response({"status": "ready"})


async def _unready(app: web.Application) -> list[str]:
    config = app[CONFIG]
    checks = (
        (f"the metadata store ({config.metadata.backend})", app[STORE].ping()),
        (f"the blob store ({config.blobs.backend})", app[BLOBS].check()),
    )
    results = await asyncio.gather(
        *(asyncio.wait_for(check, READY_TIMEOUT) for _, check in checks), return_exceptions=True
    )
    problems = []
    for (what, _), result in zip(checks, results):
        if isinstance(result, TimeoutError):
            problems.append(f"{what} did not answer within {READY_TIMEOUT:g} s")
        elif isinstance(result, (MirrorError, OSError)):
            log.warning("readiness check failed", store=what, error=str(result))
            problems.append(f"{what} is unreachable")
        elif isinstance(result, BaseException):
            raise result
    return problems


def routes() -> list[web.RouteDef]:
    return [
        web.put("/api/v1/modules/{namespace}/{name}/{provider}/{version}", publish),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
    ]
