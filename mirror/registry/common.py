"""Small helpers shared by the registry's handlers."""

from __future__ import annotations

import functools

from aiohttp import web

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import Scope, TokenRecord
from mirror.keys import AUTH


def module_address(request: web.Request) -> ModuleAddress:
    info = request.match_info
    return _parse_address(info["namespace"], info["name"], info["provider"])


#: remembered per name triple (invalid ones raise, and are not remembered)
_parse_address = functools.lru_cache(maxsize=4096)(ModuleAddress.parse_parts)


async def authorize(request: web.Request, namespace: str | None, scope: Scope) -> TokenRecord | None:
    return await request.app[AUTH].authorize(request.headers.get("Authorization"), namespace, scope)
