"""The ``s3::`` getter: a GetObject with aiobotocore into the spool directory.

Credentials come from the URL's ``aws_access_key_id`` / ``aws_access_key_secret`` when given, else
the standard AWS chain (environment, profile, role). One client per region, endpoint and
credentials is kept until ``close``.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mirror.domain.errors import UpstreamError, UpstreamUnavailable
from mirror.domain.sources import Source
from mirror.integrations.upstream.spool import CHUNK, DownloadSpool, too_large

_S3_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404", "NotFound"})
_S3_REFUSED = frozenset({"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"})


class S3Getter:
    """Downloads S3 objects, sharing clients between downloads."""

    def __init__(self, *, timeout: float) -> None:
        self._timeout = timeout
        self._aws: AioSession | None = None
        self._s3_clients: dict[tuple[Any, ...], Any] = {}
        self._s3_stack = AsyncExitStack()
        self._s3_lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the clients made along the way."""
        self._s3_clients.clear()
        await self._s3_stack.aclose()

    async def download(self, source: Source, dst: Path, max_bytes: int) -> tuple[str, int]:
        """The object of ``source`` into ``dst``, at most ``max_bytes``: its (sha256, size)."""
        obj = source.s3
        assert obj is not None
        what = f"downloading {source.describe()}"
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            params["VersionId"] = obj.version_id
        try:
            client = await self._s3_client(source)
            response = await client.get_object(**params)
            length = response.get("ContentLength")
            if isinstance(length, int) and length > max_bytes:
                raise too_large(what, max_bytes)
            async with response["Body"] as body:
                with DownloadSpool(dst, max_bytes, source.checksum, what) as spool:
                    async for chunk in body.iter_chunks(CHUNK):
                        spool.write(chunk)
                    return spool.finish()
        except NoCredentialsError:
            raise UpstreamError(
                f"{what}: no AWS credentials; set them in the environment (AWS_ACCESS_KEY_ID, ...), a profile or a role"
            ) from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = f"{what}: S3 answered {code or status}: {error.get('Message', '')}".rstrip(": ")
            if code in _S3_MISSING or code in _S3_REFUSED:
                raise UpstreamError(message, status_code=status) from None
            raise UpstreamUnavailable(message) from None
        except (BotoCoreError, aiohttp.ClientError) as exc:
            raise UpstreamUnavailable(f"{what}: {exc}") from None
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: no data for {self._timeout:g} s") from None

    async def _s3_client(self, source: Source) -> Any:
        obj = source.s3
        assert obj is not None
        key = (obj.region, obj.endpoint_url, obj.access_key_id, obj.secret_access_key, obj.session_token)
        async with self._s3_lock:
            client = self._s3_clients.get(key)
            if client is None:
                self._aws = self._aws or get_session()
                options: dict[str, Any] = {
                    "signature_version": "s3v4",
                    "connect_timeout": self._timeout,
                    "read_timeout": self._timeout,
                    "retries": {"mode": "standard", "total_max_attempts": 3},
                }
                if obj.endpoint_url is not None:  # S3-compatible stores: path style, no extra checksums
                    options["s3"] = {"addressing_style": "path"}
                    options["request_checksum_calculation"] = "when_required"
                    options["response_checksum_validation"] = "when_required"
                client = await self._s3_stack.enter_async_context(
                    self._aws.create_client(
                        "s3",
                        region_name=obj.region,
                        endpoint_url=obj.endpoint_url,
                        aws_access_key_id=obj.access_key_id,
                        aws_secret_access_key=obj.secret_access_key,
                        aws_session_token=obj.session_token,
                        config=AioConfig(**options),
                    )
                )
                self._s3_clients[key] = client
        return client
