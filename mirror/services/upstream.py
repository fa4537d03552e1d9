"""What the sync and pull-through services need from another registry, as small Protocols.

The services own these ports; ``mirror.integrations.upstream`` implements them (``RegistryClient``
speaks the module registry protocol, ``Fetcher`` follows download locations) and the composition
root (``mirror.app``, and the CLI through it) wires the implementations in. The data types the
ports exchange live here too, so a service never imports an integration.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from mirror.domain.addresses import ModuleAddress
from mirror.domain.sources import Source, SourcePolicy, parse_source
from mirror.services.ingest import Archive


@dataclass(frozen=True, slots=True)
class DownloadLocation:
    """A ``/download`` answer: the location as sent, and the URL it is relative to."""

    location: str
    download_url: str

    def source(self) -> Source:
        return parse_source(self.location, self.download_url)


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of a mirror's event feed."""

    events: list[dict[str, Any]]
    next_after: int
    latest: int


@dataclass(frozen=True, slots=True)
class FetchedModule:
    archive: Archive
    source: Source  # after any X-Terraform-Get hops
    commit_sha: str | None = None  # git sources: the commit checked out


class UpstreamRegistry(Protocol):
    """Another registry, spoken to through the module registry protocol (and mirror's feed)."""

    base_url: str

    @property
    def host(self) -> str: ...

    async def modules_url(self) -> str: ...

    async def versions(self, address: ModuleAddress) -> list[str]: ...

    async def download(self, address: ModuleAddress, version: str) -> DownloadLocation: ...

    async def events(self, after: int, *, types: Sequence[str] = (), limit: int = 100) -> EventPage: ...


class ModuleFetcher(Protocol):
    """Follows a download location into a module archive in a work directory that is removed
    when the context ends."""

    def fetch(
        self, location: str, *, base_url: str | None = None, policy: SourcePolicy | None = None
    ) -> AbstractAsyncContextManager[FetchedModule]: ...
