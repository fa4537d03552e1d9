"""The contract: what every BlobStore does (``mirror.storage.protocols.BlobStore``).

Keys come from ``archive_key``; a store writes a file under a key (streaming), tells whether a key
exists, streams an object back in chunks, deletes (a missing key too), names where an object
lives, and may give its local file (``local_path``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mirror.config import load_config
from mirror.domain.blobs import archive_key
from mirror.domain.errors import NotFound
from mirror.storage.factory import blob_backends, make_blob_store
from mirror.storage.protocols import BlobStore
from mirror.testing.collect import write_config

pytestmark = pytest.mark.asyncio

MiB = 1024 * 1024


@pytest_asyncio.fixture
async def blob_store(blob_store_config: dict[str, dict[str, Any]], tmp_path: Path) -> AsyncIterator[BlobStore]:
    """The store ``blob_store_config`` describes, opened; closed after the test."""
    config = load_config(
        write_config(tmp_path / "mirror-blob-contract.toml", blob_store_config),
        environ={},
        blob_backends=frozenset(blob_backends()),
    )
    store = make_blob_store(config)
    await store.open_client()
    try:
        yield store
    finally:
        await store.close()


def archive(directory: Path, size: int, name: str = "archive.tar.gz") -> tuple[Path, str, bytes]:
    """A file of ``size`` random bytes, its content key and its bytes."""
    data = os.urandom(size)
    path = directory / name
    path.write_bytes(data)
    return path, archive_key(hashlib.sha256(data).hexdigest()), data


async def put(store: BlobStore, directory: Path, size: int) -> tuple[str, bytes]:
    path, key, data = archive(directory, size)
    await store.put_file(key, path, sha256=hashlib.sha256(data).hexdigest(), size=size)
    return key, data


async def read(store: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.open(key)])


async def test_a_new_store_passes_its_check_and_names_its_kind(blob_store: BlobStore):
    await blob_store.check()
    assert isinstance(blob_store.kind, str) and blob_store.kind
    assert not await blob_store.exists(archive_key("0" * 64))


async def test_a_file_round_trips(blob_store: BlobStore, tmp_path: Path):
    key, data = await put(blob_store, tmp_path, 200 * 1024)
    assert await blob_store.exists(key)
    assert await read(blob_store, key) == data


async def test_a_large_file_streams_in_chunks(blob_store: BlobStore, tmp_path: Path):
    key, data = await put(blob_store, tmp_path, 3 * MiB)
    chunks = [chunk async for chunk in blob_store.open(key)]
    assert len(chunks) > 1, "streamed, not read whole"
    assert b"".join(chunks) == data


async def test_an_empty_file_round_trips(blob_store: BlobStore, tmp_path: Path):
    key, data = await put(blob_store, tmp_path, 0)
    assert await blob_store.exists(key)
    assert await read(blob_store, key) == b""


async def test_writing_an_existing_key_again_keeps_the_content(blob_store: BlobStore, tmp_path: Path):
    path, key, data = archive(tmp_path, 1024)
    for _ in range(2):
        await blob_store.put_file(key, path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    assert await read(blob_store, key) == data


async def test_concurrent_writes_of_one_key_leave_the_content(blob_store: BlobStore, tmp_path: Path):
    path, key, data = archive(tmp_path, 256 * 1024)
    sha256 = hashlib.sha256(data).hexdigest()
    await asyncio.gather(*(blob_store.put_file(key, path, sha256=sha256, size=len(data)) for _ in range(4)))
    assert await read(blob_store, key) == data


async def test_the_source_file_is_left_in_place(blob_store: BlobStore, tmp_path: Path):
    path, key, data = archive(tmp_path, 1024)
    await blob_store.put_file(key, path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    assert path.read_bytes() == data


async def test_keys_are_kept_apart(blob_store: BlobStore, tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = await put(blob_store, tmp_path / "a", 1000), await put(blob_store, tmp_path / "b", 2000)
    assert await read(blob_store, first[0]) == first[1]
    assert await read(blob_store, second[0]) == second[1]
    await blob_store.delete(first[0])
    assert not await blob_store.exists(first[0])
    assert await read(blob_store, second[0]) == second[1]


async def test_delete_removes_and_a_missing_key_is_no_error(blob_store: BlobStore, tmp_path: Path):
    key, _ = await put(blob_store, tmp_path, 1024)
    await blob_store.delete(key)
    assert not await blob_store.exists(key)
    await blob_store.delete(key)


async def test_opening_a_missing_key_raises_not_found(blob_store: BlobStore):
    with pytest.raises(NotFound):
        await read(blob_store, archive_key("f" * 64))


async def test_url_names_where_the_object_lives(blob_store: BlobStore, tmp_path: Path):
    key, _ = await put(blob_store, tmp_path, 10)
    url = blob_store.url(key)
    assert isinstance(url, str) and "://" in url


async def test_a_local_path_when_given_holds_the_bytes(blob_store: BlobStore, tmp_path: Path):
    key, data = await put(blob_store, tmp_path, 4096)
    path = blob_store.local_path(key)
    assert path is None or Path(path).read_bytes() == data
