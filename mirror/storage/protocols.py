"""The small storage interfaces the rest of mirror is written against.

Each Protocol is a handful of methods, shaped by the code that calls it. Backends satisfy them
structurally (no inheritance); ``mirror.storage.factory`` picks a backend by name from config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from mirror.domain.models import (
    Event,
    ModuleAddress,
    ModuleVersion,
    NewVersion,
    PublishOutcome,
    TokenRecord,
)


class BlobStore(Protocol):
    """Immutable, content-addressed archives.

    Keys are produced by ``mirror.domain.blobs.archive_key`` and always end in ``.tar.gz``.
    """

    #: short name of the backend ("local", "s3"), used by the download modes
    kind: str

    async def open_client(self) -> None:
        """Create the backend's one client (called once at start-up)."""

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Verify once at start-up that the store is usable (bucket reachable, directory
        writable); raise StorageUnavailable with a message an operator can act on."""

    async def exists(self, key: str) -> bool: ...

    async def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> None:
        """Store the file at ``path`` under ``key``, streaming (never whole in memory).

        Writing a key that already exists is allowed and leaves the same content.
        """

    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream the object's bytes in chunks; raises NotFound if it is missing."""

    async def delete(self, key: str) -> None: ...

    def url(self, key: str) -> str:
        """Where the object lives, for events and operators (``s3://...``, ``file://...``)."""


class ModuleIndex(Protocol):
    """Read side of modules and versions: what Terraform's protocol needs."""

    async def list_versions(self, address: ModuleAddress) -> list[ModuleVersion]:
        """Live (not revoked) versions of a module, any order; [] when unknown."""

    async def get_version(self, address: ModuleAddress, version: str) -> ModuleVersion | None:
        """A version by its normalized string, revoked or not."""


class ModulePublisher(Protocol):
    """Write side: a version and its events go in one transaction."""

    async def publish_version(self, new: NewVersion) -> PublishOutcome: ...


class TokenStore(Protocol):
    async def create_token(self, record: TokenRecord) -> None: ...

    async def find_token(self, token_hash: str) -> TokenRecord | None: ...

    async def list_tokens(self) -> list[TokenRecord]: ...

    async def revoke_token(self, token_id: str) -> bool: ...


class EventReader(Protocol):
    async def events_after(self, serial: int, limit: int) -> list[Event]: ...


class SettingsStore(Protocol):
    async def get_or_create_setting(self, key: str, default: str) -> str:
        """Return the stored value, storing ``default`` first when there is none (atomically)."""


class MetadataStore(ModuleIndex, ModulePublisher, TokenStore, EventReader, SettingsStore, Protocol):
    """Everything a metadata backend (SQLite, DynamoDB) provides, opened and closed by the app."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...
