"""``mirror publish``: pack a directory (or take a .tar.gz), check it, upload it with a progress bar.

The archive goes through the registry's own checks (``check_archive``) here first, with the
limits of the local config, so a bad archive is refused before any request is made; the
registry checks it again on upload, with its own limits, and stays the judge."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from tqdm import tqdm

from mirror.cli.common import REGISTRY_HELP, UsageError, config_of, remote
from mirror.domain.addresses import ModuleAddress
from mirror.formats.archive import ArchiveLimits, check_archive, pack_directory
from mirror.domain.errors import MirrorError

CHUNK = 256 * 1024


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``publish`` to the top-level subparsers ``sub``; ``common`` carries ``--config``."""
    publish = sub.add_parser(
        "publish",
        parents=[common],
        help="publish a module version from a directory or a .tar.gz",
        description="Publish a module version. The token comes from $MIRROR_TOKEN (publish scope).",
    )
    publish.add_argument("address", metavar="NS/NAME/PROVIDER")
    publish.add_argument("version", metavar="VERSION")
    publish.add_argument("path", metavar="PATH", type=Path, help="module directory or .tar.gz archive")
    publish.add_argument(
        "--registry",
        default=None,
        help=REGISTRY_HELP,
    )
    publish.set_defaults(handler=_cmd_publish)


def _cmd_publish(args: argparse.Namespace) -> int:
    from mirror.domain.addresses import ModuleAddress
    from mirror.domain.versions import normalize

    try:
        address = ModuleAddress.parse(args.address)
        normalize(args.version)
    except MirrorError as exc:
        raise UsageError(str(exc)) from None
    registry, token = remote(args, "the publish scope")
    limits = config_of(args).limits.archive_limits()  # the server may have others: it stays the judge
    result = asyncio.run(publish(registry, token, address, args.version, args.path, limits))
    print(
        f"{result['status']}: {result['id']} sha256={result['sha256']} size={result['size']}",
    )
    return 0


async def publish(
    registry: str, token: str, address: ModuleAddress, version: str, source: Path, limits: ArchiveLimits
) -> dict[str, Any]:
    """Check the archive against ``limits``, then upload it and return the registry's JSON answer;
    raise MirrorError with its message on failure (a refused archive before any request)."""
    if source.is_dir():
        with tempfile.TemporaryDirectory(prefix="mirror-publish-") as tmp:
            archive = Path(tmp) / "module.tar.gz"
            try:
                with archive.open("wb") as out:
                    await asyncio.to_thread(pack_directory, source, out)
            except MirrorError as exc:  # InvalidArchive: what cannot be published
                raise MirrorError(f"{source}: {exc} (checked locally; nothing was uploaded)") from None
            except OSError as exc:
                raise MirrorError(f"cannot pack {source}: {exc}") from None
            await _check(archive, source, limits)
            return await _upload(registry, token, address, version, archive)
    if source.is_file():
        await _check(source, source, limits)
        return await _upload(registry, token, address, version, source)
    raise MirrorError(f"{source} is neither a directory nor a file")


async def _check(archive: Path, source: Path, limits: ArchiveLimits) -> None:
    """Run the archive checks in a thread; a refusal names ``source`` and says nothing was sent."""
    try:
        await asyncio.to_thread(check_archive, archive, limits)
    except MirrorError as exc:  # InvalidArchive, PayloadTooLarge
        raise MirrorError(f"{source}: {exc} (checked locally; nothing was uploaded)") from None
    except OSError as exc:
        raise MirrorError(f"cannot read {source}: {exc.strerror or exc}") from None


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
