"""A module's record and an admin's policy for it: its owner source and upload allowance."""

from __future__ import annotations

from aiohttp import web

from mirror.domain.errors import NotFound
from mirror.http.keys import CATALOG, STORE
from mirror.http.common import authorize, module_address
from mirror.http.models.base import read_json_object, validate
from mirror.http.models.publish import MAX_POLICY_BODY, ModulePolicy


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
    policy = validate(ModulePolicy, await read_json_object(request, MAX_POLICY_BODY))
    record = await request.app[STORE].set_module_policy(address, owner=policy.owner, allow_uploads=policy.allow_uploads)
    if record is None:
        raise NotFound(f"module {address} not found")
    request.app[CATALOG].invalidate(address)
    return web.json_response({"module": record.to_json()})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/modules/{namespace}/{name}/{provider}", get_module),
        web.patch("/api/v1/modules/{namespace}/{name}/{provider}", set_module_policy),
    ]
