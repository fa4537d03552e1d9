"""The read side of Terraform's protocol, with a per-process cache.

``terraform init`` asks for ``versions`` and ``download`` of every module on every run, so these
two answers are served from memory: one entry per module holds its live versions and the
``versions`` body already encoded. An entry lives ``ttl_seconds``; a write made through this
process (publish, revoke) drops it at once, so what this process writes it reads back at once.
Another process's writes show within ``ttl_seconds``, except a newly published version, which a
``download`` finds at once (a miss falls through to the store). Concurrent misses of one module
make one store request (``SingleFlight``), and entries hold no README: the protocol never needs
one. With ``ttl_seconds = 0`` nothing is kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import ModuleVersion
from mirror.domain.publishing import latest_live
from mirror.domain.versions import Version
from mirror.services.singleflight import SingleFlight
from mirror.storage.protocols import ModuleIndex


@dataclass(frozen=True, slots=True)
class ModuleEntry:
    """A module's live versions, newest first, and the encoded ``versions`` answer."""

    versions: dict[str, ModuleVersion]
    newest_first: tuple[str, ...]
    versions_body: bytes | None  # None: no live versions (the module is unknown to Terraform)
    expires: float

    @property
    def latest(self) -> str | None:
        """The version the module shows (``mirror.domain.publishing.latest_live``); None when
        nothing is live."""
        return latest_live(self.newest_first)


def _key(address: ModuleAddress) -> tuple[str, str, str]:
    # namespace and name match case-insensitively, as in the store
    return (address.namespace.lower(), address.name.lower(), address.provider)


class ModuleCatalog:
    def __init__(
        self,
        index: ModuleIndex,
        *,
        ttl_seconds: float = 2.0,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._index = index
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str, str], ModuleEntry] = {}
        self._loads: SingleFlight[tuple[str, str, str], ModuleEntry] = SingleFlight()
        #: counts this process's writes: a load that saw one start meanwhile is not kept
        self._writes = 0

    async def module(self, address: ModuleAddress) -> ModuleEntry:
        key = _key(address)
        entry = self._entries.get(key)
        if entry is not None and entry.expires > self._clock():
            return entry
        return await self._loads.do(key, lambda: self._load(key, address))

    async def _load(self, key: tuple[str, str, str], address: ModuleAddress) -> ModuleEntry:
        writes = self._writes
        entry = self._build(address, await self._index.list_versions(address, readme=False))
        if self._ttl > 0 and writes == self._writes:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = entry
        return entry

    async def version(self, address: ModuleAddress, version: str) -> ModuleVersion | None:
        """A live version, or None (unknown or revoked)."""
        found = (await self.module(address)).versions.get(version)
        if found is not None:
            return found
        found = await self._index.get_version(address, version)  # published elsewhere since
        return found if found is not None and found.revoked_at is None else None

    def invalidate(self, address: ModuleAddress) -> None:
        """After a write through this process: the next answer comes from the store."""
        self._writes += 1
        key = _key(address)
        self._entries.pop(key, None)
        self._loads.forget(key)

    def _build(self, address: ModuleAddress, live: list[ModuleVersion]) -> ModuleEntry:
        by_version = {v.version: v for v in live}
        newest_first = tuple(str(v) for v in sorted((Version.parse(v) for v in by_version), reverse=True))
        body = None
        if newest_first:
            answer = {"modules": [{"source": str(address), "versions": [{"version": v} for v in newest_first]}]}
            body = json.dumps(answer, separators=(",", ":")).encode()
        return ModuleEntry(by_version, newest_first, body, self._clock() + self._ttl)
