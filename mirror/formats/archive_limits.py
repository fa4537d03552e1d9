"""The limits every module archive is read under, and the refusals the archive readers share.

``ArchiveLimits`` caps the compressed bytes, the decompressed bytes and the member count;
``CappedReader`` enforces a byte cap on a stream. ``refuse`` and ``not_a_tar_gz`` word the
``InvalidArchive`` refusals so that each names the offending member or says what is wrong.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from mirror.domain.errors import InvalidArchive, PayloadTooLarge

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_archive_bytes: int = 100 * MiB  # compressed size
    max_unpacked_bytes: int = 500 * MiB  # sum of member sizes, and total decompressed stream bytes
    max_files: int = 10_000  # members of any kind


class CappedReader:
    """A read-only stream that raises ``PayloadTooLarge(message)`` once more than ``limit`` bytes
    have been read through it."""

    def __init__(self, raw: BinaryIO, limit: int, message: str) -> None:
        self._raw = raw
        self._limit = limit
        self._message = message
        self._count = 0

    def read(self, size: int) -> bytes:
        data = self._raw.read(size)
        self._count += len(data)
        if self._count > self._limit:
            raise PayloadTooLarge(self._message)
        return data


def refuse(member: tarfile.TarInfo, problem: str) -> InvalidArchive:
    return InvalidArchive(f"archive member {member.name!r}: {problem}")


def not_a_tar_gz(exc: BaseException) -> InvalidArchive:
    return InvalidArchive(f"archive is not a valid .tar.gz: {str(exc) or type(exc).__name__}")


def describe_size(size: int) -> str:
    return f"{size / MiB:.4g} MiB" if size >= MiB else f"{size} bytes"
