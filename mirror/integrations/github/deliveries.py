"""Reading a webhook delivery's body against its signature, within bounds of size, time and memory.

The handler checks the ``X-Hub-Signature-256`` header's presence and shape before a byte of the
body is read. ``DeliveryReader.read`` then streams the body in chunks into the HMAC and into a
SHA-256 of the content (the key a delivery is known by, so a replay under a new delivery id is a
duplicate), and answers only once the HMAC matches:

- the whole body, waiting for a slot included, must arrive within ``timeout`` seconds of the
  request's start (408 after that);
- a body larger than ``large_body`` bytes needs one of ``large_bodies`` slots for as long as it
  is read, parsed and queued; one that cannot get a slot within half of ``timeout`` is answered
  503 with ``Retry-After``. Its bytes beyond the first ``large_body`` go to an unnamed file in the spool
  directory, not to memory, until the signature is known to be good;
- at most ``MAX_BODY`` bytes (GitHub's own cap) are read (413 past that).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aiohttp import StreamReader

from mirror.domain.errors import ConfigError, MirrorError, PayloadTooLarge, StorageUnavailable, Unauthorized

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")
CHUNK = 64 * 1024
#: bytes gathered in memory between two writes to a spooled body
SPOOL_WRITE = 256 * 1024


class BodyTimeout(MirrorError):
    status = 408


class DeliveriesBusy(MirrorError):
    """Every slot for large bodies stayed taken; ``retry_after`` seconds is a fair wait."""

    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class VerifiedBody:
    """A body whose HMAC matched its signature."""

    data: bytes
    #: SHA-256 (hex) of the body
    digest: str
    #: whether it was larger than ``large_body`` (so parsing it belongs off the event loop)
    large: bool


class DeliveryReader:
    """One per application: the webhook secret, the bounds, and the slots for large bodies."""

    def __init__(self, secret: str, *, timeout: float, large_body: int, large_bodies: int, spool_dir: Path) -> None:
        problems = []
        if not 0 < timeout <= 600:
            problems.append("[github] webhook_body_seconds must be more than 0 and at most 600")
        if not 64 * 1024 <= large_body <= MAX_BODY:
            problems.append(f"[github] webhook_large_body_bytes must be between 65536 and {MAX_BODY}")
        if not 1 <= large_bodies <= 64:
            problems.append("[github] webhook_large_bodies must be between 1 and 64")
        if problems:
            raise ConfigError(problems)
        self._secret = secret.encode()
        self._timeout = timeout
        self._large = large_body
        self._slots = asyncio.Semaphore(large_bodies)
        self._spool_dir = spool_dir

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self._timeout))

    @contextlib.asynccontextmanager
    async def read(self, content: StreamReader, length: int | None, signature: str) -> AsyncIterator[VerifiedBody]:
        """The body of ``content`` once its HMAC matches ``signature`` (already of the right
        shape); a large body keeps its slot until the block ends."""
        if length is not None and length > MAX_BODY:
            raise PayloadTooLarge(f"deliveries are at most {MAX_BODY} bytes")
        deadline = asyncio.get_running_loop().time() + self._timeout
        async with contextlib.AsyncExitStack() as held:
            body = await self._receive(content, length, signature, deadline, held)
            yield body

    async def _receive(
        self, content: StreamReader, length: int | None, signature: str, deadline: float, held: contextlib.AsyncExitStack
    ) -> VerifiedBody:
        mac = hmac.new(self._secret, digestmod=hashlib.sha256)
        digest = hashlib.sha256()
        pending = bytearray()
        spool: IO[bytes] | None = None
        size, slot, waiting = 0, False, False
        try:
            async with asyncio.timeout_at(deadline):
                if length is not None and length > self._large:
                    waiting = True
                    slot = await self._take_slot(held)
                    waiting = False
                while chunk := await content.read(CHUNK):
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise PayloadTooLarge(f"deliveries are at most {MAX_BODY} bytes")
                    mac.update(chunk)
                    digest.update(chunk)
                    pending += chunk
                    if spool is None and size > self._large:
                        if not slot:
                            waiting = True
                            slot = await self._take_slot(held)
                            waiting = False
                        spool = await self._open_spool(held)
                    if spool is not None and len(pending) >= SPOOL_WRITE:
                        await _write(spool, pending)
                        pending.clear()
        except TimeoutError:
            if waiting:
                raise DeliveriesBusy(
                    "too many large deliveries are being received; retry later", self.retry_after
                ) from None
            raise BodyTimeout(f"the body did not arrive within {self._timeout:g} seconds") from None
        # compare_digest over the whole header: its shape was checked, so only a match passes
        if not hmac.compare_digest("sha256=" + mac.hexdigest(), signature):
            raise Unauthorized("signature check failed: X-Hub-Signature-256 is not the HMAC of this body")
        if spool is None:
            return VerifiedBody(bytes(pending), digest.hexdigest(), large=False)
        await _write(spool, pending)
        try:
            data = await asyncio.to_thread(_read_back, spool)
        except OSError as exc:
            raise StorageUnavailable(f"cannot read a spooled delivery back: {exc.strerror or exc}") from None
        return VerifiedBody(data, digest.hexdigest(), large=True)

    async def _take_slot(self, held: contextlib.AsyncExitStack) -> bool:
        # at most half the deadline, so that a body that gets a slot has the other half to arrive
        async with asyncio.timeout(self._timeout / 2):
            await self._slots.acquire()
        held.callback(self._slots.release)
        return True

    async def _open_spool(self, held: contextlib.AsyncExitStack) -> IO[bytes]:
        try:
            spool = await asyncio.to_thread(tempfile.TemporaryFile, dir=self._spool_dir)
        except OSError as exc:
            raise StorageUnavailable(f"cannot spool a delivery: {exc.strerror or exc}") from None
        held.callback(spool.close)
        return spool


async def _write(spool: IO[bytes], data: bytearray) -> None:
    try:
        await asyncio.to_thread(spool.write, bytes(data))
    except OSError as exc:
        raise StorageUnavailable(f"cannot spool a delivery: {exc.strerror or exc}") from None


def _read_back(spool: IO[bytes]) -> bytes:
    spool.seek(0)
    return spool.read()
