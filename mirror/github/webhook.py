"""``POST /github/webhook``: verify, parse, enqueue, answer. No work happens in the request.

- missing or bad ``X-Hub-Signature-256``: 401 (verified by gidgethub with the secret, never without)
- malformed body or headers: 400; a body that is not JSON: 415; over 25 MB: 413
- ``ping``: 200; events mirror does not act on: 204
- anything else: one durable job, then 202; a delivery id seen before: 200, not queued again
"""

from __future__ import annotations

import gidgethub
from aiohttp import web
from gidgethub import sansio

from mirror.errors import BadRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from mirror.github.sync import DELIVERY
from mirror.keys import GITHUB_WEBHOOK_SECRET, JOBS

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
HANDLED_EVENTS = frozenset(
    {"installation", "installation_repositories", "repository", "create", "delete", "push", "release"}
)


async def webhook(request: web.Request) -> web.Response:
    body = await _read_body(request)
    headers = request.headers
    if "X-Hub-Signature-256" not in headers:
        raise Unauthorized("X-Hub-Signature-256 is missing: deliveries must be signed with the webhook secret")
    delivery_id = headers.get("X-GitHub-Delivery", "")
    if not headers.get("X-GitHub-Event") or not 0 < len(delivery_id) <= 100:
        raise BadRequest("X-GitHub-Event and X-GitHub-Delivery headers are required")
    try:
        event = sansio.Event.from_http(headers, body, secret=request.app[GITHUB_WEBHOOK_SECRET])
    except gidgethub.ValidationFailure as exc:
        raise Unauthorized(f"signature check failed: {exc}") from None
    except gidgethub.BadRequest:
        if headers.get("Content-Type", "").startswith("application/json"):
            raise BadRequest("the body is not valid JSON") from None
        raise UnsupportedMediaType("deliveries must be sent with content type application/json") from None
    except RecursionError:  # nested deeper than the JSON decoder goes
        raise BadRequest("the body is not valid JSON: it is nested too deeply") from None
    if not isinstance(event.data, dict):
        raise BadRequest("the body must be a JSON object")

    if event.event == "ping":
        return web.json_response({"status": "pong", "delivery": delivery_id})
    if event.event not in HANDLED_EVENTS:
        return web.Response(status=204)
    job = await request.app[JOBS].enqueue(
        DELIVERY,
        {"event": event.event, "delivery_id": delivery_id, "data": event.data},
        dedupe_key=f"github-delivery:{delivery_id}",
    )
    if job is None:
        return web.json_response({"status": "duplicate", "delivery": delivery_id})
    return web.json_response({"status": "queued", "delivery": delivery_id, "job": job.id}, status=202)


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"deliveries are at most {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge(f"deliveries are at most {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/github/webhook", webhook),
    ]
