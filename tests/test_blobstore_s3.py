"""S3BlobStore against a real moto server over HTTP (no mocks)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mirror.domain.blobs import archive_key, provider_archive_key
from mirror.domain.errors import NotFound, StorageUnavailable
from mirror.storage.s3 import CHUNK, MIN_PART_SIZE, S3BlobStore, normalize_prefix
from tests.moto_server import MotoServer

MiB = 1024 * 1024

StoreFactory = Callable[..., Awaitable[S3BlobStore]]


@pytest.fixture
async def make_store(moto: MotoServer, bucket: str) -> AsyncIterator[StoreFactory]:
    """Opened stores on the test's bucket; keyword arguments override the constructor's."""
    opened: list[S3BlobStore] = []

    async def make(**overrides: Any) -> S3BlobStore:
        options: dict[str, Any] = {
            "bucket": bucket,
            "region": moto.region,
            "endpoint_url": moto.endpoint_url,
            "access_key_id": moto.access_key_id,
            "secret_access_key": moto.secret_access_key,
        }
        store = S3BlobStore(**(options | overrides))
        await store.open_client()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> S3BlobStore:
    return await make_store()


def write_archive(directory: Path, size: int) -> tuple[Path, str, bytes]:
    """A file of ``size`` random bytes, its content key and its bytes."""
    data = os.urandom(size)
    path = directory / "archive.tar.gz"
    path.write_bytes(data)
    return path, archive_key(hashlib.sha256(data).hexdigest()), data


async def put(store: S3BlobStore, directory: Path, size: int) -> tuple[str, bytes]:
    path, key, data = write_archive(directory, size)
    await store.put_file(key, path, sha256=hashlib.sha256(data).hexdigest(), size=size)
    return key, data


async def read_all(store: S3BlobStore, key: str) -> list[bytes]:
    return [chunk async for chunk in store.open(key)]


async def head(moto: MotoServer, bucket: str, object_key: str) -> dict[str, Any]:
    async with moto.client("s3") as s3:
        response: dict[str, Any] = await s3.head_object(Bucket=bucket, Key=object_key)
    return response


async def test_small_file_round_trips(store: S3BlobStore, moto: MotoServer, bucket: str, tmp_path: Path) -> None:
    key, data = await put(store, tmp_path, 200 * 1024)

    chunks = await read_all(store, key)

    assert b"".join(chunks) == data
    assert max(map(len, chunks)) <= CHUNK
    assert await store.exists(key)
    stored = await head(moto, bucket, key)
    assert stored["ContentType"] == "application/gzip"
    assert stored["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert "-" not in stored["ETag"], "a single PutObject, not a multipart upload"


async def test_large_file_goes_up_in_parts(make_store: StoreFactory, moto: MotoServer, bucket: str, tmp_path: Path) -> None:
    store = await make_store(part_size=MIN_PART_SIZE)

    key, data = await put(store, tmp_path, 11 * MiB)

    assert b"".join(await read_all(store, key)) == data
    stored = await head(moto, bucket, key)
    assert stored["ETag"].strip('"').endswith("-3"), "5 + 5 + 1 MiB parts"
    assert stored["ContentType"] == "application/gzip"


async def test_failed_multipart_upload_is_aborted(make_store: StoreFactory, moto: MotoServer, bucket: str, tmp_path: Path) -> None:
    store = await make_store(part_size=MIN_PART_SIZE)
    key = archive_key("0" * 64)

    with pytest.raises(StorageUnavailable):
        await store.put_file(key, tmp_path / "vanished.tar.gz", sha256="0" * 64, size=11 * MiB)

    async with moto.client("s3") as s3:
        uploads = await s3.list_multipart_uploads(Bucket=bucket)
    assert uploads.get("Uploads", []) == []
    assert not await store.exists(key)


async def test_writing_an_existing_key_again_keeps_the_content(store: S3BlobStore, tmp_path: Path) -> None:
    path, key, data = write_archive(tmp_path, 1024)

    for _ in range(2):
        await store.put_file(key, path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    assert b"".join(await read_all(store, key)) == data


async def test_credentials_default_to_the_aws_chain(make_store: StoreFactory, tmp_path: Path) -> None:
    """isolate_aws_environment put the dummy keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""
    store = await make_store(access_key_id=None, secret_access_key=None)

    key, data = await put(store, tmp_path, 1024)

    assert b"".join(await read_all(store, key)) == data


async def test_exists_and_delete(store: S3BlobStore, tmp_path: Path) -> None:
    key, _ = await put(store, tmp_path, 1024)

    await store.delete(key)

    assert not await store.exists(key)
    await store.delete(key)  # deleting a missing object is not an error


async def test_open_missing_key_raises_not_found(store: S3BlobStore) -> None:
    with pytest.raises(NotFound):
        await read_all(store, archive_key("f" * 64))


async def test_prefix_is_applied(make_store: StoreFactory, moto: MotoServer, bucket: str, tmp_path: Path) -> None:
    store = await make_store(prefix="team/a")

    key, data = await put(store, tmp_path, 1024)

    assert store.url(key) == f"s3://{bucket}/team/a/{key}"
    assert (await head(moto, bucket, f"team/a/{key}"))["ContentLength"] == len(data)
    assert b"".join(await read_all(store, key)) == data
    assert store.getter_source(key) == f"s3::{moto.endpoint_url}/{bucket}/team/a/{key}?region={moto.region}"


@pytest.mark.parametrize(("prefix", "expected"), [("", ""), ("a", "a/"), ("a/", "a/"), ("/a/b/", "a/b/"), ("a//b", "a/b/")])
def test_normalize_prefix(prefix: str, expected: str) -> None:
    assert normalize_prefix(prefix) == expected


async def test_presigned_url_serves_the_bytes(store: S3BlobStore, tmp_path: Path) -> None:
    key, data = await put(store, tmp_path, 4096)

    url = await store.presigned_url(key, ttl_seconds=60)

    assert "X-Amz-Signature=" in url
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert await response.read() == data


@pytest.mark.parametrize("ttl_seconds", [0, 7 * 24 * 3600 + 1])
async def test_presigned_url_ttl_is_bounded(store: S3BlobStore, ttl_seconds: int) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        await store.presigned_url(archive_key("a" * 64), ttl_seconds)


async def test_unreachable_endpoint_is_storage_unavailable(aws_env: None, tmp_path: Path) -> None:
    store = S3BlobStore(
        bucket="nowhere",
        endpoint_url="http://127.0.0.1:1",
        access_key_id="x",
        secret_access_key="y",
        connect_timeout=1,
        max_attempts=1,
    )
    await store.open_client()
    path, key, data = write_archive(tmp_path, 10)
    started = time.monotonic()
    try:
        with pytest.raises(StorageUnavailable):
            await store.exists(key)
        with pytest.raises(StorageUnavailable):
            await store.put_file(key, path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        with pytest.raises(StorageUnavailable):
            await read_all(store, key)
        with pytest.raises(StorageUnavailable):
            await store.delete(key)
    finally:
        await store.close()
    assert time.monotonic() - started < 5


def test_rejects_a_part_size_below_the_s3_minimum() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3BlobStore(bucket="b", part_size=MIN_PART_SIZE - 1)


async def test_use_before_open_client_is_an_error() -> None:
    store = S3BlobStore(bucket="b")

    with pytest.raises(RuntimeError, match="open_client"):
        await store.exists(archive_key("a" * 64))


async def test_a_provider_zip_is_stored_as_a_zip(store: S3BlobStore, moto: MotoServer, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(4096)
    sha256 = hashlib.sha256(data).hexdigest()
    path = tmp_path / "provider.zip"
    path.write_bytes(data)
    key = provider_archive_key(sha256)
    await store.put_file(key, path, sha256=sha256, size=len(data))
    assert b"".join(await read_all(store, key)) == data
    assert (await head(moto, bucket, key))["ContentType"] == "application/zip"
