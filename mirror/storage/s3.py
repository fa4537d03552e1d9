"""Blobs in an S3 bucket (AWS or an S3-compatible store), through one aiobotocore client.

Objects live at ``<prefix><key>``. Uploads up to ``part_size`` are one ``PutObject``; larger
files go up as a multipart upload read one part at a time, so memory stays bounded by a part.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from mirror.domain.s3urls import s3_getter_source
from mirror.domain.errors import NotFound, StorageUnavailable

log = structlog.get_logger("mirror.storage.s3")

CHUNK = 64 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
CONTENT_TYPE = "application/gzip"


def content_type(key: str) -> str:
    """What an object is served as: provider zips as zip, module archives as gzip."""
    return "application/zip" if key.endswith(".zip") else CONTENT_TYPE
#: what S3 says for a missing object: "NoSuchKey" with a body, the bare status code on HEAD
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})


class S3BlobStore:
    kind = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = 8 * 1024 * 1024,
        connect_timeout: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (the S3 minimum), not {part_size}")
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.region = region
        self.endpoint_url = endpoint_url
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._part_size = part_size
        self._connect_timeout = connect_timeout
        self._max_attempts = max_attempts
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def open_client(self) -> None:
        """Create the one client this store uses; credentials not given come from the AWS chain."""
        if self._client is not None:
            return
        stack = AsyncExitStack()
        with _storage_errors(f"s3://{self.bucket}"):
            self._client = await stack.enter_async_context(
                get_session().create_client(
                    "s3",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    aws_access_key_id=self._access_key_id,
                    aws_secret_access_key=self._secret_access_key,
                    config=self._client_config(),
                )
            )
        self._stack = stack

    async def check(self) -> None:
        """Fail fast at start-up when the bucket is missing or out of reach."""
        try:
            with _storage_errors(f"s3://{self.bucket}"):
                await self._s3.head_bucket(Bucket=self.bucket)
        except NotFound:
            raise StorageUnavailable(f"S3 bucket {self.bucket!r} does not exist") from None

    def _client_config(self) -> AioConfig:
        options: dict[str, Any] = {
            # botocore would presign us-east-1 URLs with legacy SigV2 otherwise
            "signature_version": "s3v4",
            "connect_timeout": self._connect_timeout,
            # botocore's "max_attempts" counts retries only; "total_max_attempts" includes the first try
            "retries": {"mode": "standard", "total_max_attempts": self._max_attempts},
        }
        if self.endpoint_url is not None:
            # S3-compatible stores: no bucket DNS names, and no checksums many of them reject
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        return AioConfig(**options)

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    @property
    def _s3(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3BlobStore.open_client() must be awaited before use")
        return self._client

    def object_key(self, key: str) -> str:
        """The key in the bucket: the normalized prefix, then the blob key."""
        return self.prefix + key

    async def exists(self, key: str) -> bool:
        try:
            with _storage_errors(self.url(key)):
                await self._s3.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except NotFound:
            return False
        return True

    async def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> None:
        object_key = self.object_key(key)
        with _storage_errors(self.url(key)):
            if size <= self._part_size:
                await self._put_object(object_key, Path(path), sha256)
            else:
                await self._put_multipart(object_key, Path(path), sha256)

    async def _put_object(self, object_key: str, path: Path, sha256: str) -> None:
        body = await asyncio.to_thread(path.read_bytes)
        await self._s3.put_object(
            Bucket=self.bucket, Key=object_key, Body=body, ContentType=content_type(object_key), Metadata={"sha256": sha256}
        )

    async def _put_multipart(self, object_key: str, path: Path, sha256: str) -> None:
        created = await self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=object_key, ContentType=content_type(object_key), Metadata={"sha256": sha256}
        )
        upload_id = created["UploadId"]
        try:
            parts = await self._upload_parts(object_key, upload_id, path)
            await self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=object_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            await self._abort_multipart(object_key, upload_id)
            raise

    async def _upload_parts(self, object_key: str, upload_id: str, path: Path) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, self._part_size):
                number = len(parts) + 1
                uploaded = await self._s3.upload_part(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"PartNumber": number, "ETag": uploaded["ETag"]})
        finally:
            handle.close()
        return parts

    async def _abort_multipart(self, object_key: str, upload_id: str) -> None:
        """Best effort: the original failure matters more; a bucket lifecycle rule can sweep leftovers."""
        try:
            await self._s3.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
        except (BotoCoreError, ClientError, aiohttp.ClientError, OSError) as exc:
            log.warning("s3.abort_multipart_failed", bucket=self.bucket, key=object_key, error=str(exc))

    async def open(self, key: str) -> AsyncIterator[bytes]:
        with _storage_errors(self.url(key)):
            response = await self._s3.get_object(Bucket=self.bucket, Key=self.object_key(key))
            async with response["Body"] as body:
                async for chunk in body.iter_chunks(CHUNK):
                    yield chunk

    async def delete(self, key: str) -> None:
        with _storage_errors(self.url(key)):
            await self._s3.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def local_path(self, key: str) -> Path | None:
        return None  # objects live in the bucket: read them through ``open``

    async def presigned_url(self, key: str, ttl_seconds: int) -> str:
        """A GET URL for the object, valid for ``ttl_seconds`` (SigV4 allows up to 7 days)."""
        if not 0 < ttl_seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"ttl_seconds must be between 1 and {MAX_PRESIGN_SECONDS}, not {ttl_seconds}")
        with _storage_errors(self.url(key)):
            url: str = await self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.object_key(key)}, ExpiresIn=ttl_seconds
            )
        return url

    def getter_source(self, key: str) -> str:
        """The go-getter ``s3::`` source Terraform downloads this object with."""
        return s3_getter_source(self.bucket, self.object_key(key), self.region, self.endpoint_url)


def normalize_prefix(prefix: str) -> str:
    """``"a"``, ``"a/"`` and ``"/a/"`` all give ``"a/"``; an empty prefix stays empty."""
    segments = [segment for segment in prefix.split("/") if segment]
    return "".join(f"{segment}/" for segment in segments)


@contextmanager
def _storage_errors(where: str) -> Iterator[None]:
    """Translate client errors: a missing object becomes NotFound, anything else StorageUnavailable."""
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND_CODES:
            raise NotFound(f"no blob at {where}") from exc
        raise StorageUnavailable(f"S3 request for {where} failed: {exc}") from exc
    except (BotoCoreError, aiohttp.ClientError, OSError) as exc:
        raise StorageUnavailable(f"S3 request for {where} failed: {exc}") from exc
