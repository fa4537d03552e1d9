"""Where Terraform should fetch an archive from, per ``[downloads] mode``.

Terraform never sends its bearer token to a download location, so each mode's location
authenticates itself: ``s3`` leaves it to the client's own AWS credentials, ``presigned`` is a
presigned S3 GET, ``proxy`` is a registry URL with its own expiring HMAC signature.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlencode

from mirror.domain import signatures
from mirror.domain.models import ModuleVersion
from mirror.domain.provider_records import ProviderPlatformFile
from mirror.domain.errors import ConfigError
from mirror.storage.protocols import BlobStore

ARCHIVE_ROUTE_PREFIX = "/v1/archives/"
#: how long one computed location is reused; every location handed out is good for ``ttl`` more
REUSE_SECONDS = 60


@runtime_checkable
class PresigningBlobStore(Protocol):
    async def presigned_url(self, key: str, ttl_seconds: int) -> str: ...

    def getter_source(self, key: str) -> str: ...


@dataclass(frozen=True, slots=True)
class DownloadAnswer:
    location: str
    body: bytes  # {"location": ...}, encoded


def archive_path(sha256: str) -> str:
    return f"{ARCHIVE_ROUTE_PREFIX}{sha256}.tar.gz"


def provider_archive_path(sha256: str) -> str:
    """Where ``proxy`` mode serves a provider zip (Terraform takes the archive type from the
    download answer, not the name; the suffix is for people and proxies)."""
    return f"{ARCHIVE_ROUTE_PREFIX}{sha256}.zip"


class DownloadLocator:
    def __init__(
        self,
        *,
        mode: str,
        blobs: BlobStore,
        signing_key: bytes,
        ttl_seconds: int,
        public_url: str | None,
    ) -> None:
        if mode in ("s3", "presigned") and not isinstance(blobs, PresigningBlobStore):
            raise ConfigError([f"[downloads] mode = {mode!r} needs a blob store that can presign (s3)"])
        self.mode = mode
        self._blobs = blobs
        self._key = signing_key
        self._ttl = ttl_seconds
        self._base = (public_url or "").rstrip("/")
        # sha256 -> (valid_until, answer); bounded by the number of archives served in a minute
        self._cache: dict[str, tuple[float, DownloadAnswer]] = {}

    async def location(self, version: ModuleVersion) -> str:
        return (await self.answer(version)).location

    async def answer(self, version: ModuleVersion) -> DownloadAnswer:
        """The location and the encoded ``/download`` body, computed once a minute per archive."""
        now = time.time()
        cached = self._cache.get(version.sha256)
        if cached is not None and cached[0] > now:
            return cached[1]
        if self.mode == "s3":  # a fixed source; cached only to skip re-encoding it
            assert isinstance(self._blobs, PresigningBlobStore)
            location = self._blobs.getter_source(version.blob_key)
        elif self.mode == "presigned":
            assert isinstance(self._blobs, PresigningBlobStore)
            location = await self._blobs.presigned_url(version.blob_key, self._ttl + REUSE_SECONDS)
        else:
            location = self._signed_proxy_url(version.sha256, now)
        answer = DownloadAnswer(location, json.dumps({"location": location}).encode())
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[version.sha256] = (now + REUSE_SECONDS, answer)
        return answer

    async def provider_archive_url(self, file: ProviderPlatformFile) -> str:
        """Where Terraform fetches a provider zip. Terraform's provider installer does a plain
        HTTP GET (it cannot follow go-getter's ``s3::`` sources), so ``s3`` mode hands out a
        presigned URL as ``presigned`` does; a zip not fetched from its upstream yet is always
        served by the registry (which fetches it on that first request)."""
        now = time.time()
        cache_key = "zip:" + file.sha256
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > now:
            return cached[1].location
        if self.mode in ("s3", "presigned") and file.complete:
            assert isinstance(self._blobs, PresigningBlobStore)
            location = await self._blobs.presigned_url(file.blob_key, self._ttl + REUSE_SECONDS)
        else:
            location = self.signed_url(provider_archive_path(file.sha256), now)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[cache_key] = (now + REUSE_SECONDS, DownloadAnswer(location, b""))
        return location

    def signed_url(self, path: str, now: float | None = None) -> str:
        """``path`` (absolute, as served by this registry) with an expiring signature, for
        locations Terraform fetches without its token (archives, SHA256SUMS and its signature)."""
        now = time.time() if now is None else now
        expires = signatures.expiry(now, self._ttl + REUSE_SECONDS, granularity=REUSE_SECONDS)
        query = urlencode({"expires": expires, "signature": signatures.sign(self._key, path, expires)})
        return f"{self._base}{path}?{query}"

    def _signed_proxy_url(self, sha256: str, now: float) -> str:
        path = archive_path(sha256)
        expires = signatures.expiry(now, self._ttl + REUSE_SECONDS, granularity=REUSE_SECONDS)
        query = urlencode({"expires": expires, "signature": signatures.sign(self._key, path, expires)})
        # Relative when no public_url is set: Terraform resolves it against the /download URL.
        return f"{self._base}{path}?{query}"

    def verify(self, path: str, expires: str | None, signature: str | None) -> bool:
        if not expires or not signature or not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            return False
        return signatures.verify(self._key, path, int(expires), signature, time.time())
