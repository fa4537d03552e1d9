"""``mirror publish``: pack a directory (or take a .tar.gz), upload it with a progress bar."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from tqdm import tqdm

from mirror.domain.addresses import ModuleAddress
from mirror.domain.archive import pack_directory
from mirror.errors import MirrorError

CHUNK = 256 * 1024


async def publish(registry: str, token: str, address: ModuleAddress, version: str, source: Path) -> dict[str, Any]:
    """Upload and return the registry's JSON answer; raise MirrorError with its message on failure."""
    if source.is_dir():
        with tempfile.TemporaryDirectory(prefix="mirror-publish-") as tmp:
            archive = Path(tmp) / "module.tar.gz"
            with archive.open("wb") as out:
                await asyncio.to_thread(pack_directory, source, out)
            return await _upload(registry, token, address, version, archive)
    if source.is_file():
        return await _upload(registry, token, address, version, source)
    raise MirrorError(f"{source} is neither a directory nor a file")


async def _upload(registry: str, token: str, address: ModuleAddress, version: str, archive: Path) -> dict[str, Any]:
    parts = (address.namespace, address.name, address.provider, version)
    url = registry.rstrip("/") + "/api/v1/modules/" + "/".join(quote(p, safe="") for p in parts)
    size = archive.stat().st_size
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/gzip",
        "Content-Length": str(size),
    }
    with tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        desc=f"{address} {version}",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
    ) as bar:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.put(url, data=_read(archive, bar), headers=headers) as response:
                    body = await _json(response)
        except aiohttp.ClientError as exc:
            raise MirrorError(f"cannot reach the registry at {registry}: {exc}") from None
    if response.status >= 400:
        errors = body.get("errors") if isinstance(body, dict) else None
        message = "; ".join(str(e) for e in errors) if errors else response.reason
        raise MirrorError(f"the registry refused the upload ({response.status}): {message}")
    return body


async def _read(path: Path, bar: tqdm) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            bar.update(len(chunk))
            yield chunk


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return {}
