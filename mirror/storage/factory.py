"""Pick storage backends by name from config.

Built-in backends live in the dicts below; other packages add theirs through the entry-point
groups ``mirror.metadata_stores`` and ``mirror.blob_stores``: an entry point names a callable that
takes the ``Config`` and returns an unopened store (its settings are its own ``[plugins.NAME]``
table, ``config.plugins[NAME]``, checked by the plug-in's ``validate``: see
``mirror.app.plugins``, which also covers the other plug-in kinds). So a new backend is a
plug-in, not a fork. A built-in name wins over an entry point of the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from mirror.storage.protocols import BlobStore, MetadataStore

if TYPE_CHECKING:  # the config models load with the config, not with `mirror --help`
    from mirror.config import Config

METADATA_GROUP = "mirror.metadata_stores"
BLOB_GROUP = "mirror.blob_stores"


def _sqlite(config: Config, *, create: bool = True) -> MetadataStore:
    from mirror.storage.sqlite import SqliteMetadataStore

    return SqliteMetadataStore(config.metadata.path, create=create)


def _dynamodb(config: Config) -> MetadataStore:
    from mirror.storage.dynamodb import DynamoMetadataStore

    return DynamoMetadataStore.from_config(config)


def _local(config: Config) -> BlobStore:
    from mirror.storage.local import LocalBlobStore

    return LocalBlobStore(config.blobs.path)


def _s3(config: Config) -> BlobStore:
    from mirror.storage.s3 import S3BlobStore

    s3 = config.s3
    return S3BlobStore(
        bucket=s3.bucket,
        prefix=s3.prefix,
        region=s3.region,
        endpoint_url=s3.endpoint_url,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
    )


METADATA_BACKENDS: dict[str, Callable[[Config], MetadataStore]] = {"sqlite": _sqlite, "dynamodb": _dynamodb}
BLOB_BACKENDS: dict[str, Callable[[Config], BlobStore]] = {"local": _local, "s3": _s3}


def _with_plugins(builtin: dict[str, Callable[[Config], Any]], group: str) -> dict[str, Callable[[Config], Any]]:
    found = dict(builtin)
    for ep in entry_points(group=group):
        found.setdefault(ep.name, _lazy(ep))
    return found


def _lazy(ep: Any) -> Callable[[Config], Any]:
    def factory(config: Config) -> Any:
        return ep.load()(config)

    return factory


def metadata_backends() -> dict[str, Callable[[Config], MetadataStore]]:
    return _with_plugins(METADATA_BACKENDS, METADATA_GROUP)


def blob_backends() -> dict[str, Callable[[Config], BlobStore]]:
    return _with_plugins(BLOB_BACKENDS, BLOB_GROUP)


def make_metadata_store(config: Config, *, create: bool = True) -> MetadataStore:
    """The configured metadata store, unopened. ``create=False``: a SQLite store refuses to create
    a database that does not exist (other backends create nothing on open)."""
    if config.metadata.backend == "sqlite":
        return _sqlite(config, create=create)
    return metadata_backends()[config.metadata.backend](config)


def make_blob_store(config: Config) -> BlobStore:
    return blob_backends()[config.blobs.backend](config)
