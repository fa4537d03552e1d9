"""What every CLI command shares: the config, the metadata store, the registry URL, tables.

It lives apart from ``mirror.cli.main`` so that command modules can import it: under
``python -m mirror`` that module is ``__main__``, and importing it again would make a second copy
(with a second ``UsageError`` class that ``main`` would not catch).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mirror.config import Config, load_config
from mirror.domain.errors import MirrorError

if TYPE_CHECKING:
    from mirror.services.ingest import Ingestor

CONFIG_ENV = "MIRROR_CONFIG"
T = TypeVar("T")


class UsageError(MirrorError):
    """Bad command-line input: one line on stderr and exit code 2."""

    status = 400


def cli_config(config_path: Path | None) -> Config:
    """The config named by ``--config``, else ``$MIRROR_CONFIG``, else the built-in defaults."""
    from mirror.storage.factory import blob_backends, metadata_backends

    path = config_path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    return load_config(
        path,
        metadata_backends=frozenset(metadata_backends()),
        blob_backends=frozenset(blob_backends()),
    )


def config_of(args: argparse.Namespace) -> Config:
    return cli_config(getattr(args, "config", None))


def default_registry(config: Config) -> str:
    """The registry URL from the config: ``[server] public_url``, else http(s)://HOST:PORT."""
    server = config.server
    if server.public_url:
        return server.public_url
    scheme = "https" if server.tls_cert else "http"
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    return f"{scheme}://{host}:{server.port}"


#: the ``--registry`` option's help, for every command that talks to a registry over HTTP
REGISTRY_HELP = "registry URL (default: $MIRROR_REGISTRY, else [server] public_url, else http://HOST:PORT from config)"


def remote(args: argparse.Namespace, needs: str) -> tuple[str, str]:
    """The registry URL and the token of a command that talks to a registry over HTTP: the token
    from ``$MIRROR_TOKEN`` (``needs`` says which scope, for the message when it is unset), the URL
    from ``--registry``, else ``$MIRROR_REGISTRY``, else the config's own address."""
    token = os.environ.get("MIRROR_TOKEN", "")
    if not token:
        raise UsageError(f"set MIRROR_TOKEN to a token with {needs}")
    return args.registry or os.environ.get("MIRROR_REGISTRY") or default_registry(config_of(args)), token


async def open_store(config: Config, *, create: bool = False) -> Any:
    """The config's metadata store, opened. An admin command never makes a new, empty registry:
    unless ``create`` (``serve``, and commands that fill a new registry: ``import``, ``sync``), a
    SQLite database that is not there is one line saying where it was looked for."""
    from mirror.storage.factory import make_metadata_store
    from mirror.storage.sqlite import DatabaseMissing

    store = make_metadata_store(config, create=create)
    try:
        await store.open()
    except DatabaseMissing as exc:
        raise MirrorError(_missing_database(config, exc.path)) from None
    return store


def _missing_database(config: Config, path: Path) -> str:
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


async def with_store(config: Config, action: Callable[..., Awaitable[T]], *extra: Any, create: bool = False) -> T:
    """Open the config's metadata store (never creating one unless ``create``), run
    ``action(store, *extra)``, close the store."""
    store = await open_store(config, create=create)
    try:
        return await action(store, *extra)
    finally:
        await store.close()


@dataclass(frozen=True)
class OfflineRegistry:
    """The stores and an Ingestor on them, for commands that write modules without a server
    (import, sync): the same archive checks, analysis, immutability and events as a publish."""

    config: Config
    store: Any  # the configured MetadataStore
    blobs: Any  # the configured BlobStore
    ingestor: Ingestor


@asynccontextmanager
async def offline_registry(config: Config, *, create: bool = False) -> AsyncIterator[OfflineRegistry]:
    """Open the config's stores (checking the blob store answers), yield them, close them.
    ``create``: a metadata store that is not there is made (``import`` and ``sync`` may start a
    new registry); otherwise it is an error, as for ``with_store``.

    A running server sees what was written here like another replica's writes: new versions at
    once, its caches within ``[metadata] cache_seconds``, the events through its event log."""
    from mirror.services.analysis import analyzer_for
    from mirror.services.catalog import ModuleCatalog
    from mirror.services.ingest import Ingestor
    from mirror.storage.factory import make_blob_store

    store = await open_store(config, create=create)
    blobs = make_blob_store(config)
    analyzer = analyzer_for(config)
    try:
        await blobs.open_client()
        await blobs.check()
        ingestor = Ingestor(
            store,
            store,
            blobs,
            ModuleCatalog(store, ttl_seconds=0),
            config.limits.archive_limits(),
            analyzer=analyzer,
        )
        yield OfflineRegistry(config, store, blobs, ingestor)
    finally:
        await analyzer.close()
        await blobs.close()
        await store.close()


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one, free text, is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
