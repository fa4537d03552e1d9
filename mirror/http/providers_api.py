"""The provider API: namespaces' signing keys, and publishing a GoReleaser release.

- ``POST /api/v1/providers/:ns/keys`` (admin scope): one ASCII-armored public key, as the body
  (``text/plain``, ``application/pgp-keys``) or as ``{"ascii_armor": "..."}``; 201 when added,
  200 when the namespace had it; ``warnings`` (Ed25519) in the answer.
- ``GET /api/v1/providers/:ns/keys`` (read scope), ``DELETE /api/v1/providers/:ns/keys/:key_id``
  (admin scope).
- ``GET /api/v1/providers/:ns/:type/:version/release`` (read scope): a version whole, for
  another mirror following this one.
- ``DELETE /api/v1/providers/:ns/:type`` (admin scope): this registry's own provider and its versions.
- ``POST /api/v1/providers/:ns/:type/:version`` (publish scope): ``multipart/form-data``, one part
  per release file, named by the part's file name. The parts are spooled to disk under
  ``[limits]`` (file count, each zip's size, the whole upload's size), then the release is checked
  whole before anything is stored (``ProviderRegistry.publish``). 201 created, 200 when the
  version was there (unchanged, or new platforms added), 409 when it exists with another SHA256SUMS.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from mirror.domain.tokens import token_allows
from mirror.domain.errors import BadRequest, PayloadTooLarge, StorageUnavailable, UnsupportedMediaType
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import ProviderKey, ProviderPublishOutcome
from mirror.domain.addresses import valid_namespace
from mirror.domain.providers import MAX_MANIFEST_BYTES, MAX_SHASUMS_BYTES, ProviderAddress
from mirror.domain.versions import normalize
from mirror.domain.urls import valid_registry_host
from mirror.formats.bundle_providers import provider_entries
from mirror.formats.openpgp import MAX_PUBLIC_KEY_BYTES, MAX_SIGNATURE_BYTES
from mirror.http.common import authorize
from mirror.http.keys import CONFIG, LOCATOR, PROVIDERS

CHUNK = 256 * 1024
_KEY_TYPES = ("text/plain", "application/pgp-keys", "application/octet-stream", "application/json")


def _namespace(request: web.Request) -> str:
    namespace = request.match_info["namespace"]
    if not valid_namespace(namespace):
        raise BadRequest(f"invalid namespace {namespace[:100]!r}")
    return namespace


def _key_body(key: ProviderKey) -> dict:
    return {k: v for k, v in key.to_json().items() if k != "ascii_armor"} | {"ascii_armor": key.ascii_armor}


async def add_key(request: web.Request) -> web.Response:
    namespace = _namespace(request)
    await authorize(request, namespace, "admin")
    if request.content_type not in _KEY_TYPES:
        raise UnsupportedMediaType(
            "send the ASCII-armored public key as text/plain (or application/pgp-keys), "
            'or as JSON {"ascii_armor": "..."}'
        )
    body = await _read_limited(request, MAX_PUBLIC_KEY_BYTES + 4096, "the public key")
    armored: str | bytes = body
    if request.content_type == "application/json":
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BadRequest("the body is not valid JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("ascii_armor"), str):
            raise BadRequest('expected {"ascii_armor": "-----BEGIN PGP PUBLIC KEY BLOCK-----..."}')
        armored = doc["ascii_armor"]
    added = await request.app[PROVIDERS].add_key(namespace, armored)
    answer = _key_body(added.key) | {"warnings": list(added.warnings), "status": "created" if added.created else "exists"}
    return web.json_response(answer, status=201 if added.created else 200)


async def list_keys(request: web.Request) -> web.Response:
    namespace = _namespace(request)
    await authorize(request, namespace, "read")
    keys = await request.app[PROVIDERS].keys(namespace)
    return web.json_response({"keys": [_key_body(key) for key in keys]})


async def remove_key(request: web.Request) -> web.Response:
    namespace = _namespace(request)
    await authorize(request, namespace, "admin")
    await request.app[PROVIDERS].remove_key(namespace, request.match_info["key_id"])
    return web.Response(status=204)


async def _read_limited(request: web.Request, limit: int, what: str) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"{what} is {request.content_length} bytes; the limit is {limit}")
    data = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"{what} is larger than the limit of {limit} bytes")
    if not data:
        raise BadRequest(f"the request body is empty; send {what}")
    return bytes(data)


# Publishing ------------------------------------------------------------------------------------


async def publish(request: web.Request) -> web.Response:
    info = request.match_info
    address = ProviderAddress.parse_parts(info["namespace"], info["type"])
    await authorize(request, address.namespace, "publish")
    raw_version = info["version"]
    normalize(raw_version)  # a bad version is a 400 before the body is read
    limits = request.app[CONFIG].limits
    if request.content_length is not None and request.content_length > limits.max_provider_release_bytes:
        raise PayloadTooLarge(
            f"the upload is {request.content_length} bytes; the limit is {limits.max_provider_release_bytes}"
        )
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the release as multipart/form-data, one part per file (the zips, SHA256SUMS, "
            "SHA256SUMS.sig and the optional manifest.json), each with its file name"
        )
    async with _spooled_parts(request) as files:
        outcome = await request.app[PROVIDERS].publish(address, raw_version, files, source="upload")
    return web.json_response(outcome_body(outcome), status=201 if outcome.status == "created" else 200)


def outcome_body(outcome: ProviderPublishOutcome) -> dict:
    version = outcome.version
    return {
        "id": f"{version.address}/{version.version}",
        "namespace": version.address.namespace,
        "type": version.address.type,
        "version": version.version,
        "protocols": list(version.protocols),
        "platforms": version.platform_names,
        "added": [str(p) for p in outcome.added],
        "key_id": version.key_id,
        "published_at": version.published_at,
        "status": outcome.status,
    }


def _part_limit(name: str, zip_limit: int) -> int:
    if name.endswith(".zip"):
        return zip_limit
    if name.endswith("_SHA256SUMS.sig"):
        return MAX_SIGNATURE_BYTES
    if name.endswith("_SHA256SUMS"):
        return MAX_SHASUMS_BYTES
    return MAX_MANIFEST_BYTES


def _safe_name(part: BodyPartReader) -> str:
    name = part.filename or part.name or ""
    if not name or len(name) > 255 or "/" in name or "\\" in name or name in (".", "..") or not name.isprintable():
        raise BadRequest(
            f"each part must carry the release file's plain name (filename=\"terraform-provider-...\"), "
            f"not {name[:100]!r}"
        )
    return name


@asynccontextmanager
async def _spooled_parts(request: web.Request) -> AsyncIterator[dict[str, Path]]:
    """Each file part written to a private temporary directory, removed afterwards."""
    config = request.app[CONFIG]
    limits = config.limits
    directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="provider-", dir=config.server.spool_dir))
    try:
        files: dict[str, Path] = {}
        total = 0
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, HttpProcessingError) as exc:
            raise BadRequest(f"the body is not valid multipart/form-data: {_first_line(exc)}") from None
        while True:
            try:
                part = await reader.next()
            except (AssertionError, ValueError, HttpProcessingError) as exc:
                raise BadRequest(f"the body is not valid multipart/form-data: {_first_line(exc)}") from None
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise BadRequest("nested multipart bodies are not accepted; send one part per file")
            name = _safe_name(part)
            if name in files:
                raise BadRequest(f"the file {name!r} was sent twice")
            if len(files) >= limits.max_provider_files:
                raise PayloadTooLarge(f"a provider release upload holds at most {limits.max_provider_files} files")
            path = directory / f"part-{len(files)}"
            total += await _spool_part(part, name, path, _part_limit(name, limits.max_provider_zip_bytes),
                                       limits.max_provider_release_bytes - total)
            files[name] = path
        if not files:
            raise BadRequest("the upload holds no files")
        yield files
    finally:
        await asyncio.to_thread(shutil.rmtree, directory, True)


async def _chunk(part: BodyPartReader) -> bytes:
    try:
        return await part.read_chunk(CHUNK)
    except (AssertionError, ValueError, HttpProcessingError) as exc:
        raise BadRequest(f"the body is not valid multipart/form-data: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


async def _spool_part(part: BodyPartReader, name: str, path: Path, limit: int, room: int) -> int:
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := await _chunk(part):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"{name}: is larger than the limit of {limit} bytes")
                if size > room:
                    raise PayloadTooLarge("the upload is larger than [limits] max_provider_release_bytes")
                await asyncio.to_thread(out.write, chunk)
    except OSError as exc:
        raise StorageUnavailable(f"cannot spool the upload: {exc}") from exc
    return size


async def release(request: web.Request) -> web.Response:
    """``GET /api/v1/providers/:ns/:type/:version/release?hostname=``: a live version whole, as a
    bundle carries it (signed SHA256SUMS and signature, the key that verified them, each stored
    zip with its ``h1``) plus each zip's self-authenticating ``url``: what another mirror
    following this one's event feed copies (``mirror sync --from-mirror``)."""
    info = request.match_info
    address = ProviderAddress.parse_parts(info["namespace"], info["type"])
    await authorize(request, address.namespace, "read")
    hostname = request.query.get("hostname", "").lower()
    if hostname and not valid_registry_host(hostname):
        raise BadRequest(f"hostname {hostname[:100]!r} is not a registry hostname")
    version = await request.app[PROVIDERS].version(address, normalize(info["version"]), hostname)
    [entry] = provider_entries([version])
    locator = request.app[LOCATOR]
    for platform in entry["versions"][0]["platforms"]:
        file = next(f for f in version.platforms if f.filename == platform["filename"])
        platform["url"] = await locator.provider_archive_url(file)
    return web.json_response(entry)


MAX_LIFECYCLE_BODY = 16 * 1024


async def _lifecycle_target(request: web.Request) -> tuple[ProviderAddress, str, Owner | None]:
    """The version a lifecycle change is about, and the owner it is made as: publish scope acts as
    uploads (the owner of providers published over the API), admin scope for whatever owns it."""
    info = request.match_info
    address = ProviderAddress.parse_parts(info["namespace"], info["type"])
    token = await authorize(request, address.namespace, "publish")
    owner = None if token is not None and token_allows(token, address.namespace, "admin") else Owner.upload()
    return address, normalize(info["version"]), owner


async def deprecate(request: web.Request) -> web.Response:
    """``POST /api/v1/providers/:ns/:type/:version/deprecate`` ``{"reason", "replacement"}``."""
    address, version, owner = await _lifecycle_target(request)
    if request.content_type != "application/json":
        raise UnsupportedMediaType('send {"reason": "...", "replacement": "2.0.0"} as application/json')
    try:
        doc = json.loads(await _read_limited(request, MAX_LIFECYCLE_BODY, "the deprecation"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    reason, replacement = (doc.get("reason"), doc.get("replacement")) if isinstance(doc, dict) else (None, None)
    if not isinstance(reason, str) or not (replacement is None or isinstance(replacement, str)):
        raise BadRequest('expected {"reason": "...", "replacement": "2.0.0" or null}')
    found = await request.app[PROVIDERS].deprecate(address, version, reason, replacement, owner=owner)
    assert found.deprecation is not None
    return web.json_response({"id": f"{address}/{version}", "version": version, "deprecation": found.deprecation.to_json()})


async def revoke(request: web.Request) -> web.Response:
    """``POST /api/v1/providers/:ns/:type/:version/revoke``."""
    address, version, owner = await _lifecycle_target(request)
    await request.app[PROVIDERS].revoke(address, version, owner=owner)
    return web.Response(status=204)


async def delete_provider(request: web.Request) -> web.Response:
    """``DELETE /api/v1/providers/:ns/:type`` (admin scope): this registry's own provider, all
    its versions, and the zips no other provider version lists."""
    info = request.match_info
    address = ProviderAddress.parse_parts(info["namespace"], info["type"])
    await authorize(request, address.namespace, "admin")
    await request.app[PROVIDERS].delete(address)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.delete("/api/v1/providers/{namespace}/{type}", delete_provider),
        web.post("/api/v1/providers/{namespace}/{type}/{version}/deprecate", deprecate),
        web.post("/api/v1/providers/{namespace}/{type}/{version}/revoke", revoke),
        web.get("/api/v1/providers/{namespace}/{type}/{version}/release", release),
        web.post("/api/v1/providers/{namespace}/keys", add_key),
        web.get("/api/v1/providers/{namespace}/keys", list_keys),
        web.delete("/api/v1/providers/{namespace}/keys/{key_id}", remove_key),
        web.post("/api/v1/providers/{namespace}/{type}/{version}", publish),
    ]
