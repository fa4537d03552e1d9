"""Module archives: safety checks, deterministic packing, and re-rooting GitHub tag tarballs.

Everything here is synchronous and streams: an archive is read (and written) in one pass with
flat memory, whatever its size, so callers run these functions in a worker thread.

Every archive read here goes through the same checks, whose refusals name the offending member:
gzip and tar well-formedness, byte limits on both the compressed and the decompressed stream (so
a gzip bomb is refused after inflating at most ``max_unpacked_bytes``), a member count limit, safe
relative paths, links that stay inside the module, no device or other special files, and at least
one ``.tf`` file at the root.

Every archive is also read the way Terraform's reader (Go's ``archive/tar``) reads it: headers that
Python's ``tarfile`` and Go would read differently -- pax keys that rename a member or change its
layout (``GNU.sparse.*``), pax records Go would parse otherwise, stacked or mixed extended headers,
a global header carrying a name or size, a name prefix outside a POSIX ustar header -- are refused,
so the file list checked here is the one Terraform installs. Names are also compared as
case-insensitive file systems (macOS, Windows) see them.
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
import unicodedata
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mirror.domain.errors import InvalidArchive, PayloadTooLarge

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
#: pax keys that Go and tarfile both honour the same way: a member's name, link target and size
_PAX_LAYOUT_KEYS = frozenset({"path", "linkpath", "size"})
#: pax keys that only describe a member (ownership, times, comments, extended attributes)
_PAX_METADATA_KEYS = frozenset(
    {
        "mtime",
        "atime",
        "ctime",
        "uid",
        "gid",
        "uname",
        "gname",
        "comment",
        "charset",
        "hdrcharset",
        "SCHILY.fflags",
        "SCHILY.dev",
        "SCHILY.ino",
        "SCHILY.nlink",
        "LIBARCHIVE.creationtime",
    }
)
_PAX_METADATA_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.", "SCHILY.acl.")
_PAX_DIGITS_RE = re.compile(rb"[0-9]{1,19}")  # size, uid, gid: what both strconv.ParseInt and int() read alike
_PAX_TIME_RE = re.compile(rb"-?[0-9]{1,19}(\.[0-9]{1,30})?")
#: mode bits that say what a member is; allowed only when they agree with its tar type
_MODE_TYPE_BITS = {
    tarfile.REGTYPE: stat.S_IFREG,
    tarfile.AREGTYPE: stat.S_IFREG,
    tarfile.CONTTYPE: stat.S_IFREG,
    tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.SYMTYPE: stat.S_IFLNK,
    tarfile.LNKTYPE: stat.S_IFREG,
}
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
    checker = _MemberChecker(limits, stored_as_read=True)
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
    checker = _MemberChecker(limits, stored_as_read=False)  # modes are rewritten below
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
    """A TarInfo that turns damaged headers into errors, caps extended headers, and reads extended
    headers as Go's ``archive/tar`` (Terraform's reader) does, refusing those the two would read
    differently.

    After the first member, tarfile silently ends the member list at a truncated or corrupt header,
    and it reads a pax / GNU long-name header body into memory whole. Its pax parser also stops
    quietly at a record it cannot parse, honours ``GNU.sparse.name`` on any member, applies global
    headers to later members, and lets the first of stacked headers win; Go does none of these.
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
        if info.type not in tarfile.GNU_TYPES and buf[345] and not _go_reads_the_prefix(buf):
            raise _refuse(
                info,
                "its header has a name prefix outside a POSIX ustar header, which tar readers "
                "disagree on (Terraform's reader ignores it)",
            )
        return info

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        """tarfile's documented hook for member types: extended headers are read here, not by tarfile."""
        if self.type not in _EXTENDED_HEADER_TYPES:
            return super()._proc_member(archive)
        headers = _ExtendedHeaders()
        header: tarfile.TarInfo = self
        while header.type in _EXTENDED_HEADER_TYPES:
            headers.add(header, _read_extended_body(archive, header))
            header = _next_header(type(self), archive)
        headers.refuse_if_needed(header)
        member = header._proc_member(archive)
        headers.apply(member, archive)
        member.offset = self.offset
        return member


def _go_reads_the_prefix(buf: bytes) -> bool:
    """Whether Go joins the ustar prefix field (bytes 345-500) to the name as tarfile does: only in a
    POSIX ustar header, and, in a star header, only when the prefix fits star's shorter field."""
    if buf[257:263] != b"ustar\0":
        return False
    return buf[508:512] != b"tar\0" or 0 in buf[345:476]


def _read_extended_body(archive: tarfile.TarFile, header: tarfile.TarInfo) -> bytes:
    stream = archive.fileobj
    assert stream is not None
    padded = -(-header.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    body = stream.read(padded)
    if len(body) < padded:
        raise InvalidArchive("archive is not a valid .tar.gz: it ends inside an extended header")
    return body[: header.size]


def _next_header(cls: type[StrictTarInfo], archive: tarfile.TarFile) -> tarfile.TarInfo:
    """The header block after an extended header, without processing it."""
    stream = archive.fileobj
    assert stream is not None
    buf = stream.read(tarfile.BLOCKSIZE)
    try:
        info = cls.frombuf(buf, archive.encoding, archive.errors)
    except (tarfile.EOFHeaderError, tarfile.EmptyHeaderError):
        raise InvalidArchive("archive is not a valid .tar.gz: it ends after an extended header") from None
    except tarfile.HeaderError as exc:
        raise _not_a_tar_gz(exc) from None
    info.offset = stream.tell() - tarfile.BLOCKSIZE
    return info


class _ExtendedHeaders:
    """The pax and GNU headers before one member, read strictly, and applied as Go applies them.

    Go keeps only the last pax header of a run and lets a GNU long name override a pax ``path``;
    tarfile lets the first pax header win and the pax ``path`` override. Go returns a global header
    as an entry of its own and applies it to no member; tarfile applies it to every later member.
    So each member may have at most one pax header, one GNU long name and one long link, never a
    pax ``path`` beside a long name nor ``linkpath`` beside a long link, and a global header only
    first, without a name, link or size. Problems are kept until the member's own header is read,
    so the refusal can name it.
    """

    def __init__(self) -> None:
        self._kinds: set[bytes] = set()
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._problem: str | None = None

    def add(self, header: tarfile.TarInfo, body: bytes) -> None:
        if self._problem is None:
            self._problem = self._read(header.type, body)
        self._kinds.add(header.type)

    def refuse_if_needed(self, member: tarfile.TarInfo) -> None:
        if self._problem is not None:
            raise _refuse(member, self._problem)

    def _read(self, kind: bytes, body: bytes) -> str | None:
        if kind == tarfile.SOLARIS_XHDTYPE:
            return "has a Solaris extended header (type 'X'), which Terraform's reader takes for a file"
        if kind == tarfile.XGLTYPE:
            if self._kinds:
                return "has a pax global header after another extended header"
            records, problem = _parse_pax(body)
            if problem is None:
                problem = next(
                    (f"has a pax global header with key {k!r}" for k in records if k in _PAX_LAYOUT_KEYS), None
                )
            return problem
        if kind in self._kinds:
            return "has more than one " + ("pax extended header" if kind == tarfile.XHDTYPE else "GNU long-name header")
        if kind == tarfile.XHDTYPE:
            self._pax, problem = _parse_pax(body)
            return problem
        name = body.split(b"\0", 1)[0]
        text = _utf8(name)
        if not text:
            return "has an empty or non-UTF-8 GNU long-name header"
        if kind == tarfile.GNUTYPE_LONGNAME:
            self._long_name = text
        else:
            self._long_link = text
        return None

    def apply(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        pax = self._pax
        if "path" in pax and self._long_name is not None:
            raise _refuse(member, "has both a pax 'path' and a GNU long name, which tar readers order differently")
        if "linkpath" in pax and self._long_link is not None:
            raise _refuse(member, "has both a pax 'linkpath' and a GNU long link, which tar readers order differently")
        name = pax.get("path", self._long_name)
        if name is not None:
            member.name = name.rstrip("/") if member.isdir() else name
        link = pax.get("linkpath", self._long_link)
        if link is not None:
            member.linkname = link
        for key in ("uid", "gid"):
            if key in pax:
                setattr(member, key, int(pax[key]))
        if "mtime" in pax:
            member.mtime = float(pax["mtime"])
        for key in ("uname", "gname"):
            if key in pax:
                setattr(member, key, pax[key])
        member.pax_headers = dict(pax)
        if "size" in pax:
            member.size = int(pax["size"])
            if member.isreg() or member.type not in tarfile.SUPPORTED_TYPES:
                archive.offset = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _parse_pax(body: bytes) -> tuple[dict[str, str], str | None]:
    """The records of a pax header body, and the first problem with them.

    The grammar is ``"<length> <key>=<value>\\n"`` repeated to the end of the body, read as Go
    reads it (tarfile stops quietly at the first record it cannot parse, and Go does not). Only keys
    that both readers honour alike, or both ignore, are accepted; values are UTF-8 without NUL.
    """
    records: dict[str, str] = {}
    position = 0
    while position < len(body):
        malformed = f"has a malformed pax record at byte {position} of its pax header"
        space = body.find(b" ", position, position + 21)
        if space < 0 or not _PAX_DIGITS_RE.fullmatch(body, position, space):
            return records, malformed
        end = position + int(body[position:space])
        if end > len(body) or end <= space + 1 or body[end - 1] != 0x0A:
            return records, malformed
        raw_key, equals, raw_value = body[space + 1 : end - 1].partition(b"=")
        position = end
        key = _utf8(raw_key)
        if not equals or not key:
            return records, malformed
        problem = _pax_value_problem(key, raw_value)
        if problem:
            return records, problem
        records[key] = raw_value.decode("utf-8", "surrogateescape")
    return records, None


def _pax_value_problem(key: str, value: bytes) -> str | None:
    if key.startswith(_PAX_METADATA_PREFIXES):
        return None  # extended attributes: binary values, ignored by both readers
    if key not in _PAX_LAYOUT_KEYS and key not in _PAX_METADATA_KEYS:
        if key.startswith("GNU.sparse."):
            return f"has pax key {key!r}, which tar readers disagree on (it can rename a member or change its data)"
        return (
            f"has pax key {key!r}, which is not accepted (only path, linkpath, size, times, ownership, "
            "comments and extended attributes are)"
        )
    if key in ("size", "uid", "gid"):
        ok = _PAX_DIGITS_RE.fullmatch(value) is not None
    elif key in ("mtime", "atime", "ctime"):
        ok = _PAX_TIME_RE.fullmatch(value) is not None
    else:
        ok = bool(value) and _utf8(value) is not None
    return None if ok else f"has pax key {key!r} with a value tar readers would read differently"


def _utf8(raw: bytes) -> str | None:
    """``raw`` as UTF-8 text without NUL, or None."""
    if 0 in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


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

    def __init__(self, limits: ArchiveLimits, *, stored_as_read: bool) -> None:
        self._limits = limits
        #: the archive is kept byte for byte (an upload), not repacked with canonical modes
        self._stored_as_read = stored_as_read
        self._paths: set[str] = set()
        self._spellings = _Spellings()
        self._regular_files: set[str] = set()
        self._folded_regular_files: set[str] = set()
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
        else:
            self._admit_path(member, path)
        if self._stored_as_read:
            self._admit_mode(member)

    def _admit_path(self, member: tarfile.TarInfo, path: str) -> None:
        if path in self._paths:
            raise _refuse(member, "appears more than once")
        self._paths.add(path)
        clash = self._spellings.clash(path)
        if clash:
            raise _refuse(
                member,
                f"path differs only in letter case from {clash!r}, which case-insensitive file systems "
                "(macOS, Windows) take for the same file",
            )
        if member.type in _REGULAR_TYPES:
            self._admit_regular_file(member, path)
        elif member.issym():
            self._admit_symlink(member, path)
        elif not (member.isdir() or member.islnk()):
            kind = _SPECIAL_TYPE_NAMES.get(member.type, f"of unsupported tar type {member.type!r}")
            raise _refuse(member, f"is {kind}; only regular files, directories and links are allowed")

    def admit_hardlink_target(self, member: tarfile.TarInfo, target: str) -> None:
        """Refuse a hardlink unless ``target`` (normalized, root-relative) is an earlier regular file,
        spelled as that file is."""
        if target in self._regular_files:
            return
        if _folded(target) in self._folded_regular_files:
            raise _refuse(
                member,
                f"hardlink target {member.linkname!r} differs only in letter case from an earlier regular file",
            )
        raise _refuse(member, f"hardlink target {member.linkname!r} is not an earlier regular file in the archive")

    def _admit_mode(self, member: tarfile.TarInfo) -> None:
        """An archive stored as sent keeps its modes: refuse setuid, setgid and sticky bits, and file
        type bits that disagree with the tar type (Go reads a member's type from both)."""
        if member.mode & 0o7000:
            raise _refuse(member, f"mode {member.mode:o} has setuid, setgid or sticky bits")
        type_bits = stat.S_IFMT(member.mode)
        if type_bits and type_bits != _MODE_TYPE_BITS.get(member.type):
            raise _refuse(member, f"mode {member.mode:o} names another file type than the member's tar type")

    def finish(self) -> None:
        """The checks that need the whole archive: symlink chains, and a .tf file at the root."""
        for path, target in self._resolver.links.values():
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
        self._folded_regular_files.add(_folded(path))
        if "/" not in path and _is_terraform_config(path):
            self.root_tf_files.append(path)

    def _admit_symlink(self, member: tarfile.TarInfo, path: str) -> None:
        problem = _symlink_problem(path, member.linkname, self._resolver)
        if problem:
            raise _refuse(member, f"symlink target {member.linkname!r} {problem}")
        self._resolver.links[_folded(path)] = (path, member.linkname)


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


def _folded(path: str) -> str:
    """``path`` as case-insensitive file systems compare names (case and Unicode composition)."""
    return unicodedata.normalize("NFC", path).casefold()


class _Spellings:
    """The archive's paths as a tree of components folded by ``_folded``, each node keeping the
    first spelling met: ``Modules/a.tf`` after ``modules/b.tf`` is a clash on ``Modules``.

    Linear in the number of path components, however long the paths.
    """

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, str], tuple[int, str]] = {}  # (parent, folded part) -> (id, part)

    def clash(self, path: str) -> str | None:
        """The earlier spelling that ``path`` (or one of its directories) differs from only in case."""
        parent = 0
        spelled: list[str] = []
        for part in path.split("/"):
            key = (parent, _folded(part))
            node = self._nodes.get(key)
            if node is None:
                node = self._nodes[key] = (len(self._nodes) + 1, part)
            spelled.append(node[1])
            if node[1] != part:
                return "/".join(spelled)
            parent = node[0]
        return None


class _SymlinkResolver:
    """Resolves symlink targets component by component from the root, as the OS will after
    extraction, expanding the archive's symlinks met on the way: ``a -> b/..`` looks harmless, but
    not next to ``b -> .``. Links are looked up as case-insensitive file systems would find them,
    so that ``A/x`` reaches a link at ``a/X``.

    All resolutions share one budget of steps, so that loops and absurd chains cannot make checking
    an archive slow.
    """

    def __init__(self) -> None:
        self.links: dict[str, tuple[str, str]] = {}  # folded path -> (path, target)
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
            link = self.links.get(_folded(prefix))
            if link is None:
                resolved.append(prefix)
            else:
                pending.extendleft(reversed(link[1].split("/")))
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
