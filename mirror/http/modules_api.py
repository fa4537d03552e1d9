"""A module's record and an admin's policy for it: its owner source and upload allowance."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mirror.domain.provenance import Owner
from mirror.domain.errors import BadRequest, NotFound, PayloadTooLarge
from mirror.http.keys import CATALOG, STORE
from mirror.http.common import authorize, module_address

MAX_POLICY_BODY = 16 * 1024
_POLICY_KEYS = frozenset({"allow_uploads", "owner_source"})


async def get_module(request: web.Request) -> web.Response:
    """``GET /api/v1/modules/:ns/:name/:provider``: the module's record, its owner source included."""
    address = module_address(request)
    await authorize(request, address.namespace, "read")
    record = await request.app[STORE].get_module(address)
    if record is None:
        raise NotFound(f"module {address} not found")
    return web.json_response({"module": record.to_json()})


async def set_module_policy(request: web.Request) -> web.Response:
    """``PATCH /api/v1/modules/:ns/:name/:provider`` (admin): ``{"allow_uploads": bool}`` lets
    uploads add versions to a module another source owns; ``{"owner_source": "..."}`` hands the
    module to another source (``upload``, ``bundle``, ``github:ID``, ``upstream:HOST``)."""
    address = module_address(request)
    await authorize(request, address.namespace, "admin")
    body = await _small_json_object(request, MAX_POLICY_BODY)
    unknown = sorted(set(body) - _POLICY_KEYS)
    if unknown or not body:
        named = ", ".join(repr(key[:40]) for key in unknown[:5]) or "nothing"
        raise BadRequest(f"the body takes allow_uploads (true or false) and owner_source, not {named}")
    allow = body.get("allow_uploads")
    if "allow_uploads" in body and not isinstance(allow, bool):
        raise BadRequest("allow_uploads must be true or false")
    owner_text = body.get("owner_source")
    if "owner_source" in body and not isinstance(owner_text, str):
        raise BadRequest("owner_source must be a string: upload, bundle, github:REPOSITORY_ID or upstream:HOST")
    owner = Owner.parse(owner_text) if owner_text is not None else None
    record = await request.app[STORE].set_module_policy(address, owner=owner, allow_uploads=allow)
    if record is None:
        raise NotFound(f"module {address} not found")
    request.app[CATALOG].invalidate(address)
    return web.json_response({"module": record.to_json()})


async def _small_json_object(request: web.Request, limit: int) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is at most {limit} bytes")
    data = bytearray()
    async for chunk in request.content.iter_chunked(limit):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"the body is at most {limit} bytes")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/modules/{namespace}/{name}/{provider}", get_module),
        web.patch("/api/v1/modules/{namespace}/{name}/{provider}", set_module_policy),
    ]
