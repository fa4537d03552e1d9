"""``POST /github/webhook``: verify, parse, enqueue, answer. No work happens in the request.

Everything that can be refused from the headers is refused before a byte of the body is read:

- missing ``X-Hub-Signature-256``, or one that is not ``sha256=`` and 64 lowercase hex digits: 401
- missing ``X-GitHub-Event`` or ``X-GitHub-Delivery``: 400
- a content type other than JSON or GitHub's form encoding (or an unknown charset): 415
- a ``Content-Length`` over 25 MB: 413

Then ``DeliveryReader`` streams the body through the HMAC within a deadline (408 past it; 503
with ``Retry-After`` when every slot for large bodies stays taken; 413 past 25 MB), and a body
whose HMAC does not match is 401. Only a verified body is parsed: not JSON, 400 (415 for a form
without a JSON ``payload``). ``ping``: 200; events mirror does not act on: 204 (so is a
``release`` whose action is not ``published``: edits, drafts, deletions). Anything else:
one durable job, then 202. A delivery is known by its content (a SHA-256 of the signed body):
the same body seen before, under any delivery id, is 200 ``duplicate`` and not queued again.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from email.message import Message
from typing import Any

from aiohttp import web

from mirror.domain.errors import BadRequest, Unauthorized, UnsupportedMediaType
from mirror.integrations.github.deliveries import SIGNATURE, DeliveriesBusy, VerifiedBody
from mirror.integrations.github.sync import DELIVERY
from mirror.http.keys import DELIVERY_READER, JOBS

HANDLED_EVENTS = frozenset(
    {"installation", "installation_repositories", "repository", "create", "delete", "push", "release"}
)
#: the actions acted on, for events of which mirror acts on some actions only
HANDLED_ACTIONS = {"release": frozenset({"published"})}
JSON, FORM = "application/json", "application/x-www-form-urlencoded"
#: GitHub's form encoding has one field, ``payload``
MAX_FORM_FIELDS = 16


async def webhook(request: web.Request) -> web.Response:
    headers = request.headers
    signature = headers.get("X-Hub-Signature-256")
    if signature is None:
        raise Unauthorized("X-Hub-Signature-256 is missing: deliveries must be signed with the webhook secret")
    if not SIGNATURE.fullmatch(signature):
        raise Unauthorized("X-Hub-Signature-256 must be sha256= followed by 64 lowercase hex digits")
    event = headers.get("X-GitHub-Event", "")
    delivery_id = headers.get("X-GitHub-Delivery", "")
    if not event or not 0 < len(delivery_id) <= 100:
        raise BadRequest("X-GitHub-Event and X-GitHub-Delivery headers are required")
    content_type, charset = _content_type(headers.get("Content-Type", ""))

    try:
        async with request.app[DELIVERY_READER].read(request.content, request.content_length, signature) as body:
            if body.large:  # a few MB of JSON: parsed off the event loop
                data = await asyncio.to_thread(_decode, content_type, charset, body.data)
            else:
                data = _decode(content_type, charset, body.data)
            if event == "ping":
                return web.json_response({"status": "pong", "delivery": delivery_id})
            if not _acted_on(event, data):
                return web.Response(status=204)
            return await _enqueue(request, event, delivery_id, data, body)
    except DeliveriesBusy as exc:
        response = web.json_response({"errors": [exc.message]}, status=exc.status)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response


def _acted_on(event: str, data: dict[str, Any]) -> bool:
    if event not in HANDLED_EVENTS:
        return False
    actions = HANDLED_ACTIONS.get(event)
    return actions is None or data.get("action") in actions


async def _enqueue(request: web.Request, event: str, delivery_id: str, data: Any, body: VerifiedBody) -> web.Response:
    # The signed content, not the delivery id, names the job: the id is not signed, so a captured
    # delivery replayed under a new id is the same job; GitHub's redelivery (same id, same body) too.
    job = await request.app[JOBS].enqueue(
        DELIVERY,
        {"event": event, "delivery_id": delivery_id, "data": data},
        dedupe_key=f"github-delivery-sha256:{body.digest}",
    )
    if job is None:
        return web.json_response({"status": "duplicate", "delivery": delivery_id})
    return web.json_response({"status": "queued", "delivery": delivery_id, "job": job.id}, status=202)


def _content_type(header: str) -> tuple[str, str]:
    """The media type and charset of a delivery, refused (415) before the body is read unless
    they are JSON or GitHub's form encoding, in a charset Python decodes."""
    if not header:
        raise UnsupportedMediaType(f"deliveries must be sent with content type {JSON}")
    message = Message()
    message["content-type"] = header
    media_type = message.get_content_type()
    charset = str(message.get_param("charset") or "utf-8")
    if media_type not in (JSON, FORM):
        raise UnsupportedMediaType(f"deliveries must be sent with content type {JSON}")
    try:
        b"{}".decode(charset)  # LookupError for unknown names and for codecs that are not text encodings
    except ValueError:
        pass  # a text encoding, whatever it makes of these two bytes
    except LookupError:
        raise UnsupportedMediaType(f"the charset of the delivery is not one mirror decodes: {charset[:40]!r}") from None
    return media_type, charset


def _decode(content_type: str, charset: str, body: bytes) -> dict[str, Any]:
    """The JSON object of a verified body (the ``payload`` field of a form-encoded one)."""
    if not body:
        raise BadRequest("the body must be a JSON object")
    try:
        text = body.decode(charset)
        if content_type == FORM:
            try:
                text = urllib.parse.parse_qs(text, max_num_fields=MAX_FORM_FIELDS)["payload"][0]
            except (KeyError, ValueError):
                raise UnsupportedMediaType("a form-encoded delivery must carry its JSON in a payload field") from None
        data = json.loads(text)
    except RecursionError:  # nested deeper than the JSON decoder goes
        raise BadRequest("the body is not valid JSON: it is nested too deeply") from None
    except (ValueError, LookupError):  # undecodable bytes or not JSON
        if content_type == JSON:
            raise BadRequest("the body is not valid JSON") from None
        raise UnsupportedMediaType(f"deliveries must be sent with content type {JSON}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def routes() -> list[web.RouteDef]:
    return [
        web.post("/github/webhook", webhook),
    ]
