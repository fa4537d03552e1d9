"""A download on its way to the spool directory: size-capped, hashed, verified when finished."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO, Self

from mirror.domain.errors import PayloadTooLarge, StorageUnavailable, UpstreamError

#: bytes read from an upstream per chunk
CHUNK = 256 * 1024


def too_large(what: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"{what}: the archive is larger than the limit of {limit} bytes")


class DownloadSpool:
    """A download on its way to disk: size-capped, hashed (sha256 and any ``?checksum=`` type),
    verified when finished. Write errors are the spool directory's, not the upstream's."""

    def __init__(self, path: Path, limit: int, checksum: tuple[str, str] | None, what: str) -> None:
        self._path = path
        self._limit = limit
        self._checksum = checksum
        self._what = what
        self._sha256 = hashlib.sha256()
        self._extra = hashlib.new(checksum[0]) if checksum and checksum[0] != "sha256" else None
        self._size = 0
        self._file: BinaryIO | None = None

    def __enter__(self) -> Self:
        try:
            self._file = self._path.open("wb")
        except OSError as exc:
            raise StorageUnavailable(f"{self._what}: cannot write to the spool directory: {exc}") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._file is not None
        self._file.close()

    def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise PayloadTooLarge(f"{self._what}: the archive is larger than the limit of {self._limit} bytes")
        self._sha256.update(chunk)
        if self._extra is not None:
            self._extra.update(chunk)
        try:
            assert self._file is not None
            self._file.write(chunk)
        except OSError as exc:
            raise StorageUnavailable(f"{self._what}: cannot write to the spool directory: {exc}") from None

    def finish(self) -> tuple[str, int]:
        """(sha256, size) of the complete download, its ``?checksum=`` verified."""
        sha256 = self._sha256.hexdigest()
        if self._checksum is not None:
            kind, expected = self._checksum
            actual = self._extra.hexdigest() if self._extra is not None else sha256
            if actual != expected:
                raise UpstreamError(f"{self._what}: {kind} checksum mismatch (expected {expected}, got {actual})")
        if self._size == 0:
            raise UpstreamError(f"{self._what}: the download is empty")
        return sha256, self._size
