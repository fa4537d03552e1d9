"""The services on top of the stores, for the server (``services_context``) and for the commands
that write modules without one (``offline_registry``: ``import``, ``sync``, bundles).

Both build the Ingestor the same way (``ingestor_for``), so a module written offline passes the
same archive checks and analysis, keeps the same immutability and records the same events as a
publish over HTTP.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mirror.domain.audit import CLI, actor_is_set, set_actor
from mirror.app.stores import open_stores
from mirror.config import Config
from mirror.http.keys import ANALYZER, AUTH, BLOBS, CATALOG, CONFIG, INGESTOR, LOCATOR, METRICS, PROVIDERS, STORE
from mirror.services.analysis import Analyzer, analyzer_for
from mirror.services.auth import Authenticator
from mirror.services.catalog import ModuleCatalog
from mirror.services.downloads import DownloadLocator
from mirror.services.ingest import IngestOutcomeCounter, Ingestor
from mirror.services.providers import ProviderRegistry
from mirror.storage.protocols import BlobStore, MetadataStore

SIGNING_KEY_SETTING = "downloads.signing_key"


def ingestor_for(
    config: Config,
    store: MetadataStore,
    blobs: BlobStore,
    catalog: ModuleCatalog,
    analyzer: Analyzer,
    *,
    on_outcome: IngestOutcomeCounter | None = None,
) -> Ingestor:
    """The Ingestor on the config's limits; ``on_outcome`` counts each outcome (the metrics)."""
    counted: dict[str, Any] = {} if on_outcome is None else {"on_outcome": on_outcome}
    return Ingestor(store, store, blobs, catalog, config.limits.archive_limits(), analyzer=analyzer, **counted)


async def services_context(app: web.Application) -> AsyncIterator[None]:
    """The server's services: download links, authentication, the catalog cache, the analyzer
    and the Ingestor (a cleanup context after the stores')."""
    config, store, blobs = app[CONFIG], app[STORE], app[BLOBS]
    signing_key = config.downloads.signing_key or await store.get_or_create_setting(
        SIGNING_KEY_SETTING, secrets.token_hex(32)
    )
    app[LOCATOR] = DownloadLocator(
        mode=config.downloads.mode,
        blobs=blobs,
        signing_key=signing_key.encode(),
        ttl_seconds=config.downloads.ttl_seconds,
        public_url=config.server.public_url,
    )
    app[AUTH] = Authenticator(store, sessions=store, anonymous_read=config.auth.anonymous_read)
    app[CATALOG] = catalog = ModuleCatalog(store, ttl_seconds=config.metadata.cache_seconds)
    app[ANALYZER] = analyzer = analyzer_for(config)
    app[INGESTOR] = ingestor_for(config, store, blobs, catalog, analyzer, on_outcome=app[METRICS].ingest.count)
    app[PROVIDERS] = ProviderRegistry(store, blobs, config.limits.provider_zip_limits())
    yield
    await app[AUTH].drain()  # a last-use write still running finishes before the store closes
    await analyzer.close()


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
    new registry); otherwise it is an error, as for every admin command.

    A running server sees what was written here like another replica's writes: new versions at
    once, its caches within ``[metadata] cache_seconds``, the events through its event log."""
    if not actor_is_set():  # a command run on the server: its changes are the CLI's (mirror.domain.audit)
        set_actor(CLI)
    async with open_stores(config, create=create) as stores:
        analyzer = analyzer_for(config)
        try:
            catalog = ModuleCatalog(stores.metadata, ttl_seconds=0)
            ingestor = ingestor_for(config, stores.metadata, stores.blobs, catalog, analyzer)
            yield OfflineRegistry(config, stores.metadata, stores.blobs, ingestor)
        finally:
            await analyzer.close()
