"""Opening the configured stores: the one way the server and the command line do it.

``open_stores(config, create=...)`` opens the metadata store and the blob store (checking that
the blob store answers) and closes both at the end; ``metadata_store`` opens the metadata store
alone, for commands that only read or change records. The backends come from
``mirror.storage.factory`` by name, entry-point plug-ins included (see ``mirror.app.plugins``).

``create`` says whether a metadata store that is not there may be made: ``mirror serve`` and the
commands that fill a new registry (``import``, ``sync``) create it; every other command never
makes a new, empty registry: a SQLite database that is missing is one line saying where it was
looked for and how to point the command elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from mirror.config import Config
from mirror.domain.errors import MirrorError
from mirror.storage.factory import make_blob_store, make_metadata_store
from mirror.storage.protocols import BlobStore, MetadataStore


@dataclass(frozen=True)
class Stores:
    metadata: MetadataStore
    blobs: BlobStore


async def open_metadata_store(config: Config, *, create: bool) -> MetadataStore:
    """The config's metadata store, opened (the caller closes it)."""
    from mirror.storage.sqlite import DatabaseMissing

    store = make_metadata_store(config, create=create)
    try:
        await store.open()
    except DatabaseMissing as exc:
        raise MirrorError(missing_database(config, exc.path)) from None
    return store


@asynccontextmanager
async def metadata_store(config: Config, *, create: bool) -> AsyncIterator[MetadataStore]:
    """The config's metadata store, open for the block."""
    store = await open_metadata_store(config, create=create)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def open_stores(config: Config, *, create: bool) -> AsyncIterator[Stores]:
    """Both stores, open for the block: the metadata store first, then the blob store's client,
    checked once (a bucket that cannot be reached stops here); closed in reverse order."""
    async with metadata_store(config, create=create) as store:
        blobs = make_blob_store(config)
        try:
            await blobs.open_client()
            await blobs.check()
            yield Stores(store, blobs)
        finally:
            await blobs.close()


def missing_database(config: Config, path: Path) -> str:
    """Where the database was looked for, from which setting, and how to point elsewhere."""
    data_dir = config.server.data_dir
    if path == data_dir / "mirror.db":
        origin = f"[server] data_dir = {data_dir}"
        hint = "set MIRROR_SERVER_DATA_DIR"
    else:
        origin = f"[metadata] path = {path}"
        hint = "set MIRROR_METADATA_PATH"
    return (
        f"no registry database at {path} (from {origin}); run the command where the server's files are, "
        f"or pass --config FILE / {hint}"
    )
