"""What the MetadataStore contract's tests share: the database under test, stores on it, records to write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from mirror.config import Config, load_config
from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import ModuleVersion, NewVersion
from mirror.storage.factory import make_metadata_store, metadata_backends
from mirror.storage.protocols import MetadataStore
from mirror.testing.collect import write_config


NOW = "2026-11-24T20:27:51Z"


@dataclass
class Backend:
    """One database (a SQLite file, a DynamoDB table, ...) and the stores opened on it."""

    name: str
    config: Config
    opened: list[MetadataStore]

    async def replica(self) -> MetadataStore:
        """Another store on the same database, as another process would open it."""
        store = make_metadata_store(self.config)
        await store.open()
        self.opened.append(store)
        return store


@pytest_asyncio.fixture
async def backend(
    metadata_backend_name: str, metadata_store_config: dict[str, dict[str, Any]], tmp_path: Path
) -> AsyncIterator[Backend]:
    """The database ``metadata_store_config`` describes, closing every store opened on it."""
    config = load_config(
        write_config(tmp_path / "mirror-contract.toml", metadata_store_config),
        environ={},
        metadata_backends=frozenset(metadata_backends()),
    )
    backend = Backend(metadata_backend_name, config, [])
    yield backend
    for store in backend.opened:
        await store.close()


@pytest_asyncio.fixture
async def store(backend: Backend) -> MetadataStore:
    return await backend.replica()


def addr(text: str = "acme/network/aws") -> ModuleAddress:
    return ModuleAddress.parse(text)


def mv(
    address: str = "acme/network/aws",
    version: str = "1.0.0",
    *,
    sha: str = "a",
    raw: str | None = None,
    readme: str | None = None,
    blob: str | None = None,
    published_at: str = NOW,
    commit: str | None = None,
) -> ModuleVersion:
    sha256 = (sha * 64)[:64]
    return ModuleVersion(
        address=addr(address),
        version=version,
        raw_version=raw or version,
        sha256=sha256,
        size=123,
        blob_key=blob or f"modules/{sha256[:2]}/{sha256}.tar.gz",
        published_at=published_at,
        readme=readme if readme is not None else f"# {address}\n\nRelease {version} of {address}.\n\nMore.",
        source="upload",
        commit_sha=commit,
    )


def released(version: ModuleVersion, analysis: dict[str, Any] | None = None) -> NewVersion:
    data = {
        "namespace": version.address.namespace,
        "name": version.address.name,
        "provider": version.address.provider,
        "version": version.version,
        "url": f"file:///{version.blob_key}",
    }
    return NewVersion(version, [("module.version_released", data)], analysis=analysis)


async def publish(store: MetadataStore, *args: Any, **kwargs: Any) -> str:
    return (await store.publish_version(released(mv(*args, **kwargs)))).status


async def events(store: MetadataStore, after: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
    return [(e.serial, e.type, e.data) for e in await store.events_after(after, 100_000)]


def ids(summaries: list[Any]) -> list[str]:
    return [f"{s.version.address}/{s.version.version}" for s in summaries]



async def together(count: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    return await asyncio.gather(*(make(n) for n in range(count)))
