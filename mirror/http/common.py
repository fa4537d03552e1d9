"""Small helpers shared by the registry's handlers."""

from __future__ import annotations

import functools

from aiohttp import web

from mirror.domain.addresses import ModuleAddress
from mirror.domain.audit import Actor, set_actor
from mirror.domain.models import Scope, TokenRecord
from mirror.domain.errors import NotFound
from mirror.http.keys import AUTH, BLOBS


def module_address(request: web.Request) -> ModuleAddress:
    info = request.match_info
    return _parse_address(info["namespace"], info["name"], info["provider"])


#: remembered per name triple (invalid ones raise, and are not remembered)
_parse_address = functools.lru_cache(maxsize=4096)(ModuleAddress.parse_parts)


async def authorize(request: web.Request, namespace: str | None, scope: Scope) -> TokenRecord | None:
    # authorization_header(request.headers), inlined: this runs on every protocol request
    values = request.headers.getall("Authorization", None)
    header = None if values is None else values[0] if len(values) == 1 else ", ".join(values)
    record = await request.app[AUTH].authorize(header, namespace, scope)
    if record is not None:  # the changes this request makes are this token's (mirror.domain.audit)
        set_actor(actor_of(record))
    return record


def actor_of(record: TokenRecord) -> Actor:
    """Who a principal's changes are recorded as: the signed-in person, or the token."""
    if record.person:
        return _person_actor(record.person, record.description)
    return _token_actor(record.id, record.description)


#: one Actor per token or person, remembered: no allocation on the protocol's hot paths
_token_actor = functools.lru_cache(maxsize=4096)(Actor.token)
_person_actor = functools.lru_cache(maxsize=4096)(Actor.person)


async def serve_blob(request: web.Request, key: str, content_type: str, sha256: str) -> web.StreamResponse:
    """Stream the immutable blob ``key`` (its sha256 is the ETag): with sendfile from a store that
    keeps a file on this machine, else read through the store; 404 before any byte when missing."""
    blobs = request.app[BLOBS]
    headers = {
        "Content-Type": content_type,
        "ETag": f'"{sha256}"',
        "Cache-Control": "private, max-age=300, immutable",
    }
    file = blobs.local_path(key)
    if file is not None:
        if not file.is_file():
            raise NotFound("archive not found")
        return web.FileResponse(file, headers=headers)
    chunks = blobs.open(key)
    first = await anext(chunks, b"")  # raises NotFound before any byte is sent
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    if request.method != "HEAD":
        await response.write(first)
        async for chunk in chunks:
            await response.write(chunk)
    await response.write_eof()
    return response
