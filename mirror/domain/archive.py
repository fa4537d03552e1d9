"""Module archives: safety checks, deterministic packing, and re-rooting GitHub tag tarballs.

Everything here is synchronous and streams: an archive is read (and written) in one pass with
flat memory, whatever its size, so callers run these functions in a worker thread.

Every archive read here goes through the same checks, whose refusals name the offending member:
gzip and tar well-formedness, byte limits on both the compressed and the decompressed stream (so
a gzip bomb is refused after inflating at most ``max_unpacked_bytes``), a member count limit, safe
relative paths, links that stay inside the module, no device or other special files, and at least
one ``.tf`` file at the root.
"""

from __future__ import annotations

import codecs
import fnmatch
import gzip
import hashlib
import os
import re
import stat
import tarfile
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mirror.errors import InvalidArchive, PayloadTooLarge

_MiB = 1024 * 1024
_CHUNK = 64 * 1024
_README_MAX_BYTES = 512 * 1024
#: pax and GNU long-name header bodies are read into memory whole, so they get their own cap
_MAX_EXTENDED_HEADER_BYTES = _MiB
#: path components that resolving all of an archive's symlinks may take (a loop never ends)
_MAX_RESOLVE_STEPS = 1_000_000

_REGULAR_TYPES = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE})
_EXTENDED_HEADER_TYPES = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
)
_SPECIAL_TYPE_NAMES = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}
_WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_README_NAMES = ("readme.md", "readme")  # lower-cased, best first
_SKIPPED_NAMES = frozenset({".git", ".terraform", ".terraform.lock.hcl", ".DS_Store"})
_SKIPPED_PATTERNS = ("*.tfstate", "*.tfstate.*")


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_archive_bytes: int = 100 * _MiB  # compressed size
    max_unpacked_bytes: int = 500 * _MiB  # sum of member sizes, and total decompressed stream bytes
    max_files: int = 10_000  # members of any kind


GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    files: int  # number of members
    unpacked_bytes: int  # sum of the regular files' sizes
    root_tf_files: tuple[str, ...]  # sorted names of the .tf / .tf.json files at the archive root
    readme: str | None  # the root README (README.md preferred), at most 512 KiB of it


def check_archive(path: Path, limits: ArchiveLimits) -> ArchiveInfo:
    """Check the .tar.gz at ``path`` in one streaming pass and describe it.

    Raises ``PayloadTooLarge`` when a byte limit is exceeded and ``InvalidArchive`` for every other
    refusal.
    """
    size = path.stat().st_size
    if size > limits.max_archive_bytes:
        raise PayloadTooLarge(
            f"archive is {_describe_size(size)}; the limit is {_describe_size(limits.max_archive_bytes)}"
        )
    checker = _MemberChecker(limits)
    best_readme: tuple[tuple[int, str], str] | None = None  # (rank, text)
    with path.open("rb") as raw, _open_tar_stream(raw, limits) as tar:
        for member in tar:
            member_path = _member_path(member)
            checker.admit(member, member_path)
            if member.islnk():
                checker.admit_hardlink_target(member, _hardlink_path(member))
            rank = _readme_rank(member_path) if member.isreg() else None
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
    checker = _MemberChecker(limits)
    top = _TopLevelDirectory()
    with _open_tar_stream(src, limits) as tar, _deterministic_tar_writer(sink) as out:
        for member in tar:
            member_path = top.reroot(member)
            checker.admit(member, member_path)
            hardlink_target = None
            if member.islnk():
                hardlink_target = top.reroot_hardlink_target(member)
                checker.admit_hardlink_target(member, hardlink_target)
            if member_path:
                _copy_member(tar, member, out, member_path, hardlink_target)
    checker.finish()
    return sink.sha256.hexdigest(), sink.size


# Reading ---------------------------------------------------------------------------------------


class _CappedReader:
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


class StrictTarInfo(tarfile.TarInfo):
    """A TarInfo that turns damaged headers into errors and caps extended headers.

    After the first member, tarfile silently ends the member list at a truncated or corrupt header,
    and it reads a pax / GNU long-name header body into memory whole.
    """

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(archive)
        except (tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as exc:
            raise _not_a_tar_gz(exc) from None

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _EXTENDED_HEADER_TYPES and info.size > _MAX_EXTENDED_HEADER_BYTES:
            raise InvalidArchive(
                f"archive has a {_describe_size(info.size)} extended header; "
                f"the limit is {_describe_size(_MAX_EXTENDED_HEADER_BYTES)}"
            )
        return info


@contextmanager
def _open_tar_stream(raw: BinaryIO, limits: ArchiveLimits) -> Iterator[tarfile.TarFile]:
    """Yield a streaming ("r|") TarFile over the gzip stream ``raw``, with both byte limits enforced
    and gzip/tar format errors (also those raised in the ``with`` body) turned into InvalidArchive.

    On a clean exit, reads what follows the end-of-archive block, which must be zero padding;
    reading to the end also makes gzip verify its CRC and length trailer.
    """
    compressed = _CappedReader(
        raw, limits.max_archive_bytes, f"archive is larger than {_describe_size(limits.max_archive_bytes)}"
    )
    try:
        with gzip.GzipFile(fileobj=compressed, mode="rb") as gz:
            unpacked = _CappedReader(
                gz,
                limits.max_unpacked_bytes,
                f"archive decompresses to more than {_describe_size(limits.max_unpacked_bytes)}, "
                "the limit for unpacked content",
            )
            with tarfile.open(fileobj=unpacked, mode="r|", tarinfo=StrictTarInfo) as tar:
                yield tar
                _read_trailer(tar)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _not_a_tar_gz(exc) from None


def _read_trailer(tar: tarfile.TarFile) -> None:
    stream = tar.fileobj
    assert stream is not None
    while chunk := stream.read(_CHUNK):
        if chunk.strip(b"\0"):
            raise InvalidArchive("archive has data after its end-of-archive marker")


def _not_a_tar_gz(exc: BaseException) -> InvalidArchive:
    return InvalidArchive(f"archive is not a valid .tar.gz: {str(exc) or type(exc).__name__}")


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


# Member checks ---------------------------------------------------------------------------------


class _MemberChecker:
    """The per-member checks of one streaming pass, and what they learn about the archive.

    Paths given to it are normalized and relative to the (re-rooted) archive root, '' being the
    root itself. Its state grows with the member count, which ``max_files`` bounds.
    """

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self._paths: set[str] = set()
        self._regular_files: set[str] = set()
        self._resolver = _SymlinkResolver()
        self.files = 0
        self.unpacked_bytes = 0
        self.root_tf_files: list[str] = []

    def admit(self, member: tarfile.TarInfo, path: str) -> None:
        """Refuse ``member``, found at ``path``, if it breaks a limit or a safety rule."""
        self.files += 1
        if self.files > self._limits.max_files:
            raise InvalidArchive(f"archive has more than {self._limits.max_files} members (refused at {member.name!r})")
        if not path:
            if not member.isdir():
                raise _refuse(member, "only a directory can stand for the archive root")
            return
        if path in self._paths:
            raise _refuse(member, "appears more than once")
        self._paths.add(path)
        if member.type in _REGULAR_TYPES:
            self._admit_regular_file(member, path)
        elif member.issym():
            self._admit_symlink(member, path)
        elif not (member.isdir() or member.islnk()):
            kind = _SPECIAL_TYPE_NAMES.get(member.type, f"of unsupported tar type {member.type!r}")
            raise _refuse(member, f"is {kind}; only regular files, directories and links are allowed")

    def admit_hardlink_target(self, member: tarfile.TarInfo, target: str) -> None:
        """Refuse a hardlink unless ``target`` (normalized, root-relative) is an earlier regular file."""
        if target not in self._regular_files:
            raise _refuse(member, f"hardlink target {member.linkname!r} is not an earlier regular file in the archive")

    def finish(self) -> None:
        """The checks that need the whole archive: symlink chains, and a .tf file at the root."""
        for path, target in self._resolver.links.items():
            if not self._resolver.stays_inside(path, target):
                raise InvalidArchive(
                    f"archive member {path!r}: symlink target {target!r} points outside the module "
                    "once the archive's other symlinks are followed"
                )
        if not self.root_tf_files:
            raise InvalidArchive(
                "archive has no .tf file at its root; put the module's configuration (e.g. main.tf) at the "
                "top of the archive, not inside a directory"
            )

    def _admit_regular_file(self, member: tarfile.TarInfo, path: str) -> None:
        self.unpacked_bytes += member.size
        if self.unpacked_bytes > self._limits.max_unpacked_bytes:
            raise PayloadTooLarge(
                f"archive member {member.name!r}: takes the archive's unpacked size over the "
                f"{_describe_size(self._limits.max_unpacked_bytes)} limit"
            )
        self._regular_files.add(path)
        if "/" not in path and _is_terraform_config(path):
            self.root_tf_files.append(path)

    def _admit_symlink(self, member: tarfile.TarInfo, path: str) -> None:
        problem = _symlink_problem(path, member.linkname, self._resolver)
        if problem:
            raise _refuse(member, f"symlink target {member.linkname!r} {problem}")
        self._resolver.links[path] = member.linkname


def _refuse(member: tarfile.TarInfo, problem: str) -> InvalidArchive:
    return InvalidArchive(f"archive member {member.name!r}: {problem}")


def _member_path(member: tarfile.TarInfo) -> str:
    problem = _path_problem(member.name)
    if problem:
        raise _refuse(member, f"path {problem}")
    return _normalized(member.name)


def _hardlink_path(member: tarfile.TarInfo) -> str:
    """A hardlink's target, which tar stores relative to the archive root."""
    problem = _path_problem(member.linkname)
    if problem:
        raise _refuse(member, f"hardlink target {member.linkname!r} {problem}")
    return _normalized(member.linkname)


def _normalized(raw: str) -> str:
    """``raw`` without empty and '.' segments: "./modules//a/" -> "modules/a", "./" -> ""."""
    return "/".join(part for part in raw.split("/") if part not in ("", "."))


def _path_problem(raw: str) -> str | None:
    return _absolute_path_problem(raw) or ("contains a '..' component" if ".." in raw.split("/") else None)


def _absolute_path_problem(raw: str) -> str | None:
    if raw.startswith("/") or _WINDOWS_DRIVE_RE.match(raw):
        return "is absolute"
    if "\\" in raw:
        return "contains a backslash (a Windows-style path)"
    return None


class _SymlinkResolver:
    """Resolves symlink targets component by component from the root, as the OS will after
    extraction, expanding the archive's symlinks met on the way: ``a -> b/..`` looks harmless, but
    not next to ``b -> .``.

    All resolutions share one budget of steps, so that loops and absurd chains cannot make checking
    an archive slow.
    """

    def __init__(self) -> None:
        self.links: dict[str, str] = {}  # path -> target
        self._steps_left = _MAX_RESOLVE_STEPS

    def stays_inside(self, link_path: str, target: str) -> bool:
        pending = deque([*link_path.split("/")[:-1], *target.split("/")])
        resolved: list[str] = []  # prefixes of the resolved path: "a", "a/b", "a/b/c"
        while pending:
            self._steps_left -= 1
            if self._steps_left < 0:
                raise InvalidArchive(
                    f"archive member {link_path!r}: symlink target {target!r} loops, or chains through "
                    "too many symlinks to be checked"
                )
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    return False
                resolved.pop()
                continue
            prefix = f"{resolved[-1]}/{part}" if resolved else part
            expansion = self.links.get(prefix)
            if expansion is None:
                resolved.append(prefix)
            else:
                pending.extendleft(reversed(expansion.split("/")))
        return True


def _symlink_problem(path: str, target: str, resolver: _SymlinkResolver) -> str | None:
    """Why the symlink at ``path`` may not point at ``target``, given the links ``resolver`` knows."""
    if not target:
        return "is empty"
    problem = _absolute_path_problem(target)
    if problem:
        return problem
    if not resolver.stays_inside(path, target):
        return "points outside the module"
    return None


def _is_terraform_config(name: str) -> bool:
    """A file Terraform loads: .tf / .tf.json, except the editor and hidden files it ignores."""
    ignored = name.startswith(".") or name.endswith("~") or (name.startswith("#") and name.endswith("#"))
    return name.endswith((".tf", ".tf.json")) and not ignored


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
    problem = _symlink_problem(rel, target, _SymlinkResolver())
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
        path = _member_path(member)
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
        top, _, rest = _hardlink_path(member).partition("/")
        if top != self._name or not rest:
            raise _refuse(member, f"hardlink target {member.linkname!r} is outside the top-level directory")
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


def _describe_size(size: int) -> str:
    return f"{size / _MiB:.4g} MiB" if size >= _MiB else f"{size} bytes"
