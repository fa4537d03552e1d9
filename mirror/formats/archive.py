"""Module archives: safety checks, deterministic packing, and re-rooting GitHub tag tarballs.

Everything here is synchronous and streams: an archive is read (and written) in one pass with
flat memory, whatever its size, so callers run these functions in a worker thread.

Every archive read here goes through the same checks, whose refusals name the offending member:
gzip and tar well-formedness, byte limits on both the compressed and the decompressed stream (so
a gzip bomb is refused after inflating at most ``max_unpacked_bytes``), a member count limit, safe
relative paths, links that stay inside the module, no device or other special files, and at least
one configuration file at the root: ``.tf`` or ``.tf.json``, or OpenTofu's ``.tofu`` or ``.tofu.json``.

Every archive is also read the way Terraform's reader (Go's ``archive/tar``) reads it: headers that
Python's ``tarfile`` and Go would read differently -- pax keys that rename a member or change its
layout (``GNU.sparse.*``), pax records Go would parse otherwise, stacked or mixed extended headers,
a global header carrying a name or size, a name prefix outside a POSIX ustar header -- are refused,
so the file list checked here is the one Terraform installs. Names are also compared as
case-insensitive file systems (macOS, Windows) see them.

This module holds the public API and the stream plumbing; the parts live beside it:
``archive_limits`` (limits and refusals), ``tar_headers`` (strict, Go-compatible header reading),
``archive_names`` (paths, case folding, symlink resolution) and ``archive_members`` (the
per-member checks).
"""

from __future__ import annotations

import codecs
import fnmatch
import gzip
import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mirror.domain.errors import InvalidArchive, PayloadTooLarge
from mirror.formats.archive_limits import ArchiveLimits, CappedReader, describe_size, not_a_tar_gz, refuse
from mirror.formats.archive_members import MemberChecker
from mirror.formats.archive_names import SymlinkResolver, hardlink_path, member_path, symlink_problem
from mirror.formats.tar_headers import StrictTarInfo

__all__ = [
    "GZIP_LEVEL",
    "ArchiveInfo",
    "ArchiveLimits",
    "HashingWriter",
    "StrictTarInfo",
    "check_archive",
    "open_tar_stream",
    "pack_directory",
    "strip_top_level_directory",
]

_CHUNK = 64 * 1024
_README_MAX_BYTES = 512 * 1024
_README_NAMES = ("readme.md", "readme")  # lower-cased, best first
_SKIPPED_NAMES = frozenset({".git", ".terraform", ".terraform.lock.hcl", ".DS_Store"})
_SKIPPED_PATTERNS = ("*.tfstate", "*.tfstate.*")

GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    files: int  # number of members
    unpacked_bytes: int  # sum of the regular files' sizes
    root_tf_files: tuple[str, ...]  # sorted names of the configuration files at the archive root
    readme: str | None  # the root README (README.md preferred), at most 512 KiB of it


def check_archive(path: Path, limits: ArchiveLimits) -> ArchiveInfo:
    """Check the .tar.gz at ``path`` in one streaming pass and describe it.

    Raises ``PayloadTooLarge`` when a byte limit is exceeded and ``InvalidArchive`` for every other
    refusal.
    """
    size = path.stat().st_size
    if size > limits.max_archive_bytes:
        raise PayloadTooLarge(
            f"archive is {describe_size(size)}; the limit is {describe_size(limits.max_archive_bytes)}"
        )
    checker = MemberChecker(limits, stored_as_read=True)
    best_readme: tuple[tuple[int, str], str] | None = None  # (rank, text)
    with path.open("rb") as raw, open_tar_stream(raw, limits) as tar:
        for member in tar:
            inner = member_path(member)
            checker.admit(member, inner)
            if member.islnk():
                checker.admit_hardlink_target(member, hardlink_path(member))
            rank = _readme_rank(inner) if member.isreg() else None
            if rank is not None and (best_readme is None or rank < best_readme[0]):
                best_readme = (rank, _read_readme(tar, member))
    checker.finish()
    return ArchiveInfo(
        files=checker.files,
        unpacked_bytes=checker.unpacked_bytes,
        root_tf_files=tuple(sorted(checker.root_tf_files)),
        readme=best_readme[1] if best_readme else None,
    )


def pack_directory(src: Path, out: BinaryIO) -> None:
    """Write the contents of ``src`` to ``out`` as a deterministic tar.gz, streaming.

    Paths are relative to ``src`` (no top-level directory) and sorted; ownership, mtimes and the
    gzip header are zeroed and modes normalized, so packing the same tree twice gives the same
    bytes (with the same zlib). ``.git``, ``.terraform``, lock and state files are skipped.
    Symlinks are kept if they stay inside ``src``; anything else that is not a regular file or a
    directory raises ``InvalidArchive``.
    """
    root = src.resolve()
    with _deterministic_tar_writer(out) as tar:
        for rel in _publishable_paths(root):
            _pack_entry(tar, root, rel)


def strip_top_level_directory(src: BinaryIO, dst: BinaryIO, limits: ArchiveLimits) -> tuple[str, int]:
    """Re-root a GitHub tag tarball (one ``<owner>-<repo>-<sha>/`` directory) into a module archive.

    Streams the gzip tar from ``src`` (which need not be seekable) to a new tar.gz on ``dst``, with
    every member moved up out of the single top-level directory and that directory's own entry
    dropped; pax global headers are skipped, and, as in ``pack_directory``, mtimes and ownership
    are zeroed and modes normalized. The checks and limits of ``check_archive`` apply to the
    re-rooted members, and ``max_archive_bytes`` to the bytes read from ``src``. Returns the
    sha256 hex digest and size of what was written. On error, ``dst`` holds a partial archive the
    caller must discard.
    """
    sink = HashingWriter(dst)
    checker = MemberChecker(limits, stored_as_read=False)  # modes are rewritten below
    top = _TopLevelDirectory()
    with open_tar_stream(src, limits) as tar, _deterministic_tar_writer(sink) as out:
        for member in tar:
            inner = top.reroot(member)
            checker.admit(member, inner)
            hardlink_target = None
            if member.islnk():
                hardlink_target = top.reroot_hardlink_target(member)
                checker.admit_hardlink_target(member, hardlink_target)
            if inner:
                _copy_member(tar, member, out, inner, hardlink_target)
    checker.finish()
    return sink.sha256.hexdigest(), sink.size


# Reading ---------------------------------------------------------------------------------------


@contextmanager
def open_tar_stream(raw: BinaryIO, limits: ArchiveLimits) -> Iterator[tarfile.TarFile]:
    """Yield a streaming ("r|") TarFile over the gzip stream ``raw``, with both byte limits enforced
    and gzip/tar format errors (also those raised in the ``with`` body) turned into InvalidArchive.

    On a clean exit, reads what follows the end-of-archive block, which must be zero padding;
    reading to the end also makes gzip verify its CRC and length trailer.
    """
    compressed = CappedReader(
        raw, limits.max_archive_bytes, f"archive is larger than {describe_size(limits.max_archive_bytes)}"
    )
    try:
        with gzip.GzipFile(fileobj=compressed, mode="rb") as gz:
            unpacked = CappedReader(
                gz,
                limits.max_unpacked_bytes,
                f"archive decompresses to more than {describe_size(limits.max_unpacked_bytes)}, "
                "the limit for unpacked content",
            )
            with tarfile.open(fileobj=unpacked, mode="r|", tarinfo=StrictTarInfo) as tar:
                yield tar
                _read_trailer(tar)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise not_a_tar_gz(exc) from None


def _read_trailer(tar: tarfile.TarFile) -> None:
    stream = tar.fileobj
    assert stream is not None
    while chunk := stream.read(_CHUNK):
        if chunk.strip(b"\0"):
            raise InvalidArchive("archive has data after its end-of-archive marker")


def _read_readme(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    """The member's first 512 KiB decoded as UTF-8 (invalid bytes replaced; a character cut in two
    by the truncation dropped)."""
    reader = tar.extractfile(member)
    assert reader is not None  # regular files always have a reader
    data = reader.read(_README_MAX_BYTES + 1)
    truncated = len(data) > _README_MAX_BYTES
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data[:_README_MAX_BYTES], final=not truncated)


def _readme_rank(path: str) -> tuple[int, str] | None:
    """Sort key among root README candidates (lowest wins), or None if ``path`` is not one."""
    if "/" in path or path.lower() not in _README_NAMES:
        return None
    return _README_NAMES.index(path.lower()), path


# Writing ---------------------------------------------------------------------------------------


@contextmanager
def _deterministic_tar_writer(out: BinaryIO | HashingWriter) -> Iterator[tarfile.TarFile]:
    """A streaming pax tar.gz writer whose gzip header has mtime 0 and no file name."""
    with (
        # Level 6 (zlib's default) packs text nearly as small as 9 at a fraction of its CPU.
        # Never change it: re-packing an unchanged tree must keep giving the same bytes.
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=GZIP_LEVEL) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        yield tar


def _normalized_mode(mode: int, is_dir: bool) -> int:
    return 0o755 if is_dir or mode & 0o111 else 0o644


def _publishable_paths(root: Path) -> list[str]:
    """The relative paths under ``root``, sorted, without skipped names (nor what is under them)."""
    found: list[str] = []
    pending = [""]
    while pending:
        directory = pending.pop()
        with os.scandir(root / directory) as entries:
            for entry in entries:
                if _is_skipped(entry.name):
                    continue
                rel = f"{directory}/{entry.name}" if directory else entry.name
                found.append(rel)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(rel)
    return sorted(found)


def _is_skipped(name: str) -> bool:
    return name in _SKIPPED_NAMES or any(fnmatch.fnmatchcase(name, pattern) for pattern in _SKIPPED_PATTERNS)


def _pack_entry(tar: tarfile.TarFile, root: Path, rel: str) -> None:
    path = root / rel
    mode = path.lstat().st_mode
    info = tarfile.TarInfo(rel)  # uid/gid 0, uname/gname "", mtime 0
    info.mode = _normalized_mode(mode, stat.S_ISDIR(mode))
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = _packable_symlink_target(root, rel)
        tar.addfile(info)
    elif stat.S_ISREG(mode):
        with path.open("rb") as data:
            info.size = os.fstat(data.fileno()).st_size
            tar.addfile(info, data)
    else:
        raise InvalidArchive(f"cannot pack {rel!r}: only regular files, directories and symlinks can be packed")


def _packable_symlink_target(root: Path, rel: str) -> str:
    """The symlink's target, if it is relative and resolves (on disk, and as written) inside ``root``."""
    target = os.readlink(root / rel)
    problem = symlink_problem(rel, target, SymlinkResolver())
    if problem is None and not Path(os.path.realpath(root / rel)).is_relative_to(root):
        problem = "points outside the module"
    if problem:
        raise InvalidArchive(f"cannot pack symlink {rel!r}: target {target!r} {problem}")
    return target


class HashingWriter:
    """Passes writes through to ``out`` while hashing and counting them."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


class _TopLevelDirectory:
    """The single top-level directory of a GitHub tarball, learnt from its first member."""

    def __init__(self) -> None:
        self._name: str | None = None

    def reroot(self, member: tarfile.TarInfo) -> str:
        """The member's path below the top-level directory ('' for that directory itself)."""
        path = member_path(member)
        if not path:
            return ""
        top, _, rest = path.partition("/")
        if self._name is None:
            self._name = top
        elif top != self._name:
            raise InvalidArchive(
                f"archive has more than one top-level entry ({self._name!r} and {top!r}); "
                "expected exactly one top-level directory"
            )
        if not rest and not member.isdir():
            raise InvalidArchive(f"archive member {member.name!r}: expected a single top-level directory, not a file")
        return rest

    def reroot_hardlink_target(self, member: tarfile.TarInfo) -> str:
        top, _, rest = hardlink_path(member).partition("/")
        if top != self._name or not rest:
            raise refuse(member, f"hardlink target {member.linkname!r} is outside the top-level directory")
        return rest


def _copy_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, out: tarfile.TarFile, path: str, hardlink_target: str | None
) -> None:
    """Write ``member`` to ``out`` at ``path``, with normalized mode and zeroed mtime/ownership."""
    info = tarfile.TarInfo(path)
    info.mode = _normalized_mode(member.mode, member.isdir())
    if member.isreg():
        info.size = member.size
        out.addfile(info, tar.extractfile(member))
        return
    info.type = member.type
    if member.issym():
        info.linkname = member.linkname
    elif hardlink_target is not None:
        info.linkname = hardlink_target
    out.addfile(info)
