"""A module version's lifecycle over the API (``mirror.services.lifecycle``).

- ``POST /api/v1/modules/:ns/:name/:provider/:version/deprecate`` ``{"reason", "replacement"}``:
  200 with the version's deprecation; posting again replaces it.
- ``POST /api/v1/modules/:ns/:name/:provider/:version/revoke``: 204; gone from ``versions``.
- ``DELETE /api/v1/modules/:ns/:name/:provider`` (admin scope): 204; the module, its versions and
  the archives no other version uses are removed.

Deprecate and revoke take publish scope for modules published over the API (the token acts as
uploads) and admin scope for any owner source; another owner's module is a 409 naming it.
"""

from __future__ import annotations

from aiohttp import web

from mirror.domain.addresses import ModuleAddress
from mirror.domain.tokens import token_allows
from mirror.domain.errors import UnsupportedMediaType
from mirror.domain.provenance import Owner
from mirror.domain.versions import normalize
from mirror.http.common import authorize, module_address
from mirror.http.keys import BLOBS, CATALOG, STORE
from mirror.http.models.base import read_json_object, validate
from mirror.http.models.providers import DeprecationBody
from mirror.services.lifecycle import ModuleLifecycle

MAX_LIFECYCLE_BODY = 16 * 1024


def _lifecycle(request: web.Request) -> ModuleLifecycle:
    app = request.app
    return ModuleLifecycle(app[STORE], app[BLOBS], app[CATALOG])


async def _target(request: web.Request) -> tuple[ModuleAddress, str, Owner | None]:
    """The version a change is about, and the owner it is made as: publish scope acts as uploads
    (the owner of modules published over the API), admin scope for whatever owns the module."""
    address = module_address(request)
    token = await authorize(request, address.namespace, "publish")
    owner = None if token is not None and token_allows(token, address.namespace, "admin") else Owner.upload()
    return address, normalize(request.match_info["version"]), owner


async def deprecate(request: web.Request) -> web.Response:
    """``POST /api/v1/modules/:ns/:name/:provider/:version/deprecate``."""
    address, version, owner = await _target(request)
    if request.content_type != "application/json":
        raise UnsupportedMediaType('send {"reason": "...", "replacement": "2.0.0"} as application/json')
    body = validate(DeprecationBody, await read_json_object(request, MAX_LIFECYCLE_BODY))
    found = await _lifecycle(request).deprecate(address, version, body.reason, body.replacement, owner=owner)
    assert found.deprecation is not None
    return web.json_response({"id": f"{address}/{version}", "version": version, "deprecation": found.deprecation.to_json()})


async def revoke(request: web.Request) -> web.Response:
    """``POST /api/v1/modules/:ns/:name/:provider/:version/revoke``."""
    address, version, owner = await _target(request)
    await _lifecycle(request).revoke(address, version, owner=owner)
    return web.Response(status=204)


async def delete_module(request: web.Request) -> web.Response:
    """``DELETE /api/v1/modules/:ns/:name/:provider`` (admin scope, whatever owns the module)."""
    address = module_address(request)
    await authorize(request, address.namespace, "admin")
    await _lifecycle(request).delete(address)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/modules/{namespace}/{name}/{provider}/{version}/deprecate", deprecate),
        web.post("/api/v1/modules/{namespace}/{name}/{provider}/{version}/revoke", revoke),
        web.delete("/api/v1/modules/{namespace}/{name}/{provider}", delete_module),
    ]
