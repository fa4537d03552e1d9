"""The outbound webhooks API (registry-wide admin scope); the dispatcher runs as an event sink
(``mirror.app.sinks``)."""

from __future__ import annotations

from aiohttp import web

from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import NotFound
from mirror.http.keys import STORE, WEBHOOKS
from mirror.http.common import authorize
from mirror.http.models.base import parse_query, read_json_object, validate
from mirror.http.models.webhooks import FailuresQuery, NewWebhook
from mirror.services.webhooks import failure_to_json, new_subscription, subscription_to_json

_ID = r"{id:[A-Za-z0-9_-]{1,64}}"


async def create_webhook(request: web.Request) -> web.Response:
    """``POST /api/v1/webhooks`` {url, secret, events?, namespaces?}: 201 with the subscription."""
    await authorize(request, "*", "admin")  # registry-wide admins only
    body = validate(NewWebhook, await read_json_object(request))
    subscription = new_subscription(body.url, body.secret, body.events, body.namespaces, now_rfc3339())
    await request.app[WEBHOOKS].add(subscription)
    return web.json_response({"webhook": subscription_to_json(subscription)}, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    """``GET /api/v1/webhooks``: every subscription with its cursor, lag and counters."""
    await authorize(request, "*", "admin")
    return web.json_response({"webhooks": await request.app[WEBHOOKS].status()})


async def get_webhook(request: web.Request) -> web.Response:
    await authorize(request, "*", "admin")
    rows = await request.app[WEBHOOKS].status(request.match_info["id"])
    if not rows:
        raise NotFound(f"no webhook subscription with id {request.match_info['id']!r}")
    return web.json_response({"webhook": rows[0]})


async def delete_webhook(request: web.Request) -> web.Response:
    """204; 409 for a subscription from the config file (remove it there)."""
    await authorize(request, "*", "admin")
    await request.app[WEBHOOKS].remove(request.match_info["id"])
    return web.Response(status=204)


async def list_failures(request: web.Request) -> web.Response:
    """``GET /api/v1/webhooks/{id}/failures[?all=true]``: parked events (pending ones by default)."""
    await authorize(request, "*", "admin")
    subscription_id = request.match_info["id"]
    store = request.app[STORE]
    if await store.get_subscription(subscription_id) is None:
        raise NotFound(f"no webhook subscription with id {subscription_id!r}")
    query = parse_query(FailuresQuery, request)
    failures = await store.list_delivery_failures(subscription_id, pending_only=query.pending_only)
    return web.json_response({"failures": [failure_to_json(f) for f in failures]})


async def redeliver(request: web.Request) -> web.Response:
    """One immediate attempt at a parked event: 200, 404, or 502 with the delivery error."""
    await authorize(request, "*", "admin")
    subscription_id, failure_id = request.match_info["id"], int(request.match_info["failure_id"])
    await request.app[WEBHOOKS].redeliver(subscription_id, failure_id)
    return web.json_response({"redelivered": {"subscription_id": subscription_id, "failure_id": failure_id}})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/webhooks", create_webhook),
        web.get("/api/v1/webhooks", list_webhooks),
        web.get(f"/api/v1/webhooks/{_ID}", get_webhook),
        web.delete(f"/api/v1/webhooks/{_ID}", delete_webhook),
        web.get(f"/api/v1/webhooks/{_ID}/failures", list_failures),
        # [0-9]: \d also matches other scripts' digits ("١"), which int() accepts
        web.post(rf"/api/v1/webhooks/{_ID}/failures/{{failure_id:[0-9]{{1,18}}}}/redeliver", redeliver),
    ]
