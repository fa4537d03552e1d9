"""Small helpers shared by the registry's handlers."""

from __future__ import annotations

import functools

from aiohttp import web

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import Scope, TokenRecord
from mirror.http.keys import AUTH


def module_address(request: web.Request) -> ModuleAddress:
    info = request.match_info
    return _parse_address(info["namespace"], info["name"], info["provider"])


#: remembered per name triple (invalid ones raise, and are not remembered)
_parse_address = functools.lru_cache(maxsize=4096)(ModuleAddress.parse_parts)


async def authorize(request: web.Request, namespace: str | None, scope: Scope) -> TokenRecord | None:
    # authorization_header(request.headers), inlined: this runs on every protocol request
    values = request.headers.getall("Authorization", None)
    header = None if values is None else values[0] if len(values) == 1 else ", ".join(values)
    return await request.app[AUTH].authorize(header, namespace, scope)
