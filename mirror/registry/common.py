"""Small helpers shared by the registry's handlers."""

from __future__ import annotations

from aiohttp import web

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import Scope, TokenRecord
from mirror.keys import AUTH


def module_address(request: web.Request) -> ModuleAddress:
    info = request.match_info
    return ModuleAddress.parse_parts(info["namespace"], info["name"], info["provider"])


async def authorize(request: web.Request, namespace: str | None, scope: Scope) -> TokenRecord | None:
    return await request.app[AUTH].authorize(request.headers.get("Authorization"), namespace, scope)
