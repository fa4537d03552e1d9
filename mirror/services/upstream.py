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
from pathlib import Path
from typing import Any, Protocol

from mirror.domain.addresses import ModuleAddress
from mirror.domain.provider_records import ProviderVersion
from mirror.domain.providers import Platform, ProviderAddress
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


@dataclass(frozen=True, slots=True)
class UpstreamPackage:
    """A ``providers.v1`` download answer, its URLs made absolute."""

    protocols: tuple[str, ...]
    filename: str
    download_url: str
    shasums_url: str
    shasums_signature_url: str
    shasum: str
    signing_keys: tuple[str, ...]  # ASCII-armored public keys, in the order given


class ProviderUpstream(Protocol):
    """Another registry's ``providers.v1`` service, and the files its answers point to."""

    async def provider_versions(self, address: ProviderAddress) -> list[str]:
        """The versions the upstream lists (UpstreamError with status 404 for an unknown provider)."""

    async def provider_package(self, address: ProviderAddress, version: str, platform: Platform) -> UpstreamPackage | None:
        """The download answer of one platform; None when the upstream has no package for it."""

    async def read_file(self, url: str, limit: int, what: str) -> bytes:
        """A small file (SHA256SUMS, a signature) of at most ``limit`` bytes, without credentials."""

    async def download_file(self, url: str, destination: Path, limit: int, what: str) -> tuple[str, int]:
        """Stream a file of at most ``limit`` bytes to ``destination`` without credentials:
        (sha256 hex, size)."""


class MirrorProviders(Protocol):
    """Another mirror's records of its provider versions, and their zips."""

    async def provider_release(
        self, hostname: str, address: ProviderAddress, version: str
    ) -> tuple[ProviderVersion, dict[str, str]]:
        """The version as recorded there, and each zip's URL by file name."""

    async def download_file(self, url: str, destination: Path, limit: int, what: str) -> tuple[str, int]: ...
