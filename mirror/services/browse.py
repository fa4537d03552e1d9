"""What the browse API and the web UI both show of modules, below the HTTP layer: download
counts kept in memory until they are flushed, and who owns a module's source.

Downloads are counted in memory by ``DownloadCounter`` (the ``/download`` hot path is one dict
increment) and flushed to the store every ``FLUSH_SECONDS`` and at shutdown, in one write per
flush. Lists add the counts not flushed yet, so a client sees its own downloads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import MirrorError
from mirror.domain.urls import http_url
from mirror.storage.protocols import ModuleBrowser

log = structlog.get_logger("mirror.browse")

FLUSH_SECONDS = 5.0

_Key = tuple[str, str, str]  # namespace and name lowercased (they match case-insensitively), provider


def _module_key(address: ModuleAddress) -> _Key:
    return (address.namespace.lower(), address.name.lower(), address.provider)


class DownloadCounter:
    """Answered downloads per module version, kept in memory until the next flush."""

    def __init__(self, store: ModuleBrowser, *, interval: float = FLUSH_SECONDS) -> None:
        self._store = store
        self._interval = interval
        self._pending: dict[tuple[_Key, str], int] = {}
        self._inflight: dict[tuple[_Key, str], int] = {}  # being written by a flush

    def hit(self, address: ModuleAddress, version: str) -> None:
        key = (_module_key(address), version)
        self._pending[key] = self._pending.get(key, 0) + 1

    def unflushed(self, address: ModuleAddress) -> int:
        """Downloads of the module's versions not in the store yet (the pending dicts are small:
        they hold only what arrived since the last flush)."""
        wanted = _module_key(address)
        return sum(n for batch in (self._pending, self._inflight) for (key, _), n in batch.items() if key == wanted)

    def unflushed_versions(self, address: ModuleAddress) -> dict[str, int]:
        """``unflushed`` per version."""
        wanted = _module_key(address)
        found: dict[str, int] = {}
        for batch in (self._pending, self._inflight):
            for (key, version), n in batch.items():
                if key == wanted:
                    found[version] = found.get(version, 0) + n
        return found

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        self._inflight = batch
        try:
            await self._store.add_downloads({(ModuleAddress(*key), version): n for (key, version), n in batch.items()})
        except BaseException:
            for key, n in batch.items():  # keep them for the next flush
                self._pending[key] = self._pending.get(key, 0) + n
            raise
        finally:
            self._inflight = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except MirrorError as exc:
                log.warning("download counts: flush failed, will retry", error=str(exc))


@contextlib.asynccontextmanager
async def counting_downloads(store: ModuleBrowser) -> AsyncIterator[DownloadCounter]:
    """A counter that flushes periodically while the block runs, and once more at its end."""
    counter = DownloadCounter(store)
    task = asyncio.create_task(counter.run())
    try:
        yield counter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await counter.flush()
        except MirrorError as exc:
            log.warning("download counts: last flush failed, counts lost", error=str(exc))


def source_of(version_source: str | None, source_url: str | None) -> str:
    """The repository URL: the version's source when it is one, else the module's, else ""."""
    if version_source and version_source.startswith(("https://", "http://")):
        return version_source
    return source_url or ""


def owner_of(namespace: str, source_url: str) -> str:
    """Who owns the module: the account of its repository (``https://host/OWNER/REPO``) when
    known, else its namespace (the team that publishes into it)."""
    parts = http_url(source_url)
    owner = parts.path.strip("/").split("/")[0] if parts is not None else ""
    return owner or namespace


def is_verified(verified_namespaces: list[str] | tuple[str, ...], namespace: str) -> bool:
    """Namespaces listed in ``[browse] verified_namespaces`` (matched in any case) are verified."""
    return namespace.lower() in {n.lower() for n in verified_namespaces}
