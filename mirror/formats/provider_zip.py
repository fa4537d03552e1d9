"""Provider zips: the checks a provider package passes before it is stored, and its two hashes.

A provider zip is what Terraform unpacks into ``.terraform/providers/HOST/NS/TYPE/VER/OS_ARCH/``.
``check_provider_zip`` reads one (blocking, from a path: run it in a worker thread) and refuses,
with a message naming the member, anything Terraform would unpack unsafely or differently on the
next download: directory entries, absolute paths, ``..``, backslashes, names that differ only in
letter case, symlinks and other special files, encrypted members or compression methods Go's
``archive/zip`` cannot read, more than ``max_files`` members or ``max_unpacked_bytes`` of content,
and a zip without the provider's executable (``terraform-provider-TYPE...``) at its root.

Directory entries are refused because of how Terraform's lock file works: the network mirror's
``h1:`` hash covers the zip's entries (a directory entry counts, as an empty file) while the lock
file records the unpacked files only, so such a zip installs once and then fails the lock check on
every re-download. GoReleaser's zips hold file entries only.

The hashes are those Terraform records in ``.terraform.lock.hcl``: ``h1:`` is golang.org/x/mod's
dirhash ``Hash1`` over the zip's entries, ``zh:`` the sha256 of the zip file itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
import stat
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mirror.domain.errors import InvalidArchive, PayloadTooLarge
from mirror.domain.providers import BINARY_PREFIX
from mirror.formats.archive_limits import MiB, describe_size
from mirror.formats.archive_names import Spellings

__all__ = [
    "ProviderZipInfo",
    "ProviderZipLimits",
    "check_provider_zip",
    "h1_hash",
    "zh_hash",
]

_CHUNK = 1024 * 1024
#: the compression methods Go's archive/zip reads without registering others
_GO_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:")
#: the end of central directory record (22 bytes, a comment of up to 64 KiB) and zip64's (76 bytes)
_END_SCAN_BYTES = 22 + 0xFFFF + 76
_UNIX_SYSTEMS = frozenset({3, 19})  # "create system" values whose external attributes hold a unix mode


@dataclass(frozen=True, slots=True)
class ProviderZipLimits:
    max_zip_bytes: int = 1024 * MiB  # the zip file itself
    max_unpacked_bytes: int = 2048 * MiB  # sum of the members' uncompressed sizes
    max_files: int = 1_000  # members (GoReleaser's zips hold the binary and a few text files)


@dataclass(frozen=True, slots=True)
class ProviderZipInfo:
    files: int  # number of members
    unpacked_bytes: int  # sum of the members' sizes
    size: int  # bytes of the zip file
    binary: str  # the provider executable's name, at the zip's root
    h1: str  # "h1:<base64>", dirhash Hash1 over the zip's entries
    zh: str  # "zh:<sha256 hex of the zip file>"

    @property
    def sha256(self) -> str:
        """The zip's sha256 hex, as SHA256SUMS lists it."""
        return self.zh.removeprefix("zh:")


def check_provider_zip(
    path: Path, provider_type: str, limits: ProviderZipLimits = ProviderZipLimits()
) -> ProviderZipInfo:
    """Check the provider zip at ``path`` (for provider type ``provider_type``) and describe it.

    Raises ``PayloadTooLarge`` when a byte limit is exceeded and ``InvalidArchive`` for every other
    refusal, each with one line naming the problem.
    """
    size = path.stat().st_size
    if size > limits.max_zip_bytes:
        raise PayloadTooLarge(
            f"provider zip is {describe_size(size)}; the limit is {describe_size(limits.max_zip_bytes)}"
        )
    zh = zh_hash(path)
    _check_declared_count(path, limits.max_files)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > limits.max_files:
                raise InvalidArchive(f"provider zip has {len(members)} members; the limit is {limits.max_files}")
            _check_names(members)
            declared = sum(member.file_size for member in members)
            if declared > limits.max_unpacked_bytes:
                raise PayloadTooLarge(
                    f"provider zip unpacks to {describe_size(declared)}; the limit is "
                    f"{describe_size(limits.max_unpacked_bytes)}"
                )
            binary = _find_binary(members, provider_type)
            digests = {member.filename: _content_sha256(archive, member, limits) for member in members}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise InvalidArchive(f"provider zip is not a valid zip file: {str(exc)[:200] or type(exc).__name__}") from None
    return ProviderZipInfo(
        files=len(members),
        unpacked_bytes=declared,
        size=size,
        binary=binary,
        h1=h1_hash(digests.items()),
        zh=zh,
    )


def h1_hash(digests: Iterable[tuple[str, str]]) -> str:
    """golang.org/x/mod dirhash ``Hash1`` from ``(name, sha256 hex of content)`` pairs: the base64
    sha256 of one ``"<hex>  <name>\\n"`` line per file, names sorted by their UTF-8 bytes."""
    ordered = sorted(digests, key=lambda pair: pair[0].encode("utf-8"))
    summary = hashlib.sha256()
    for name, hexdigest in ordered:
        if "\n" in name:
            raise InvalidArchive(f"provider zip member {name!r}: file names cannot contain a newline")
        summary.update(f"{hexdigest}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode("ascii")


def zh_hash(path: Path) -> str:
    """``zh:`` and the sha256 hex of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        while chunk := raw.read(_CHUNK):
            digest.update(chunk)
    return "zh:" + digest.hexdigest()


# Checks ------------------------------------------------------------------------------------------


def _check_declared_count(path: Path, max_files: int) -> None:
    """Refuse a zip whose end record declares more than ``max_files`` entries before zipfile reads
    the whole central directory into memory (millions of 46-byte entries fit a large upload). The
    end records are found where zipfile looks for them; a zip without one is left for zipfile to
    refuse."""
    with path.open("rb") as raw:
        raw.seek(max(0, path.stat().st_size - _END_SCAN_BYTES))
        tail = raw.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        return
    count = int.from_bytes(tail[end + 10 : end + 12], "little")
    locator = end - 20
    if count == 0xFFFF and locator >= 56 and tail[locator : locator + 4] == b"PK\x06\x07":
        record = locator - 56  # zipfile reads the zip64 end record right before its locator
        if tail[record : record + 4] == b"PK\x06\x06":
            count = int.from_bytes(tail[record + 32 : record + 40], "little")
    if count > max_files:
        raise InvalidArchive(f"provider zip has {count} members; the limit is {max_files}")


def _refuse(member: zipfile.ZipInfo, problem: str) -> InvalidArchive:
    return InvalidArchive(f"provider zip member {member.filename[:200]!r}: {problem}")


def _check_names(members: list[zipfile.ZipInfo]) -> None:
    seen: set[str] = set()
    spellings = Spellings()
    for member in members:
        name = member.filename
        problem = _encoding_problem(member) or _name_problem(name) or _type_problem(member)
        if problem:
            raise _refuse(member, problem)
        if name in seen:
            raise _refuse(member, "appears more than once")
        seen.add(name)
        clash = spellings.clash(name)
        if clash:
            raise _refuse(
                member,
                f"differs only in letter case from {clash!r}, which case-insensitive file systems "
                "(macOS, Windows) take for the same file",
            )
        if member.flag_bits & 0x1:
            raise _refuse(member, "is encrypted")
        if member.compress_type not in _GO_METHODS:
            raise _refuse(
                member,
                f"uses compression method {member.compress_type}; Terraform reads only stored and deflate members",
            )


def _encoding_problem(member: zipfile.ZipInfo) -> str | None:
    """Names that Python's zipfile and Go's archive/zip would read differently (so hash differently)."""
    if member.orig_filename != member.filename:
        return "name contains a NUL byte"
    if not member.filename.isascii() and not member.flag_bits & 0x800:
        return "name is not ASCII and not marked as UTF-8 (zip flag bit 11)"
    return None


def _name_problem(name: str) -> str | None:
    if name.endswith("/"):
        return (
            "is a directory entry; Terraform's lock check fails on every re-download of a zip with directory "
            "entries (the mirror's h1: hash counts them, the lock file does not), so pack files only "
            "(e.g. zip -D, or GoReleaser's default)"
        )
    if not name:
        return "has an empty name"
    if name.startswith("/") or _WINDOWS_DRIVE_RE.match(name):
        return "path is absolute"
    if "\\" in name:
        return "path contains a backslash (a Windows-style path)"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        return "path contains a control character"
    parts = name.split("/")
    if ".." in parts:
        return "path contains a '..' component"
    if "" in parts or "." in parts:
        return "path has an empty or '.' component; write it as a plain relative path"
    return None


def _type_problem(member: zipfile.ZipInfo) -> str | None:
    """What else than a regular file the member's unix mode says it is, if anything."""
    mode = member.external_attr >> 16
    if member.create_system not in _UNIX_SYSTEMS or not stat.S_IFMT(mode):
        return None  # no unix file type recorded: unpacked as a regular file
    if stat.S_ISREG(mode):
        return f"mode {mode & 0o7777:o} has setuid, setgid or sticky bits" if mode & 0o7000 else None
    if stat.S_ISLNK(mode):
        return "is a symlink; a provider zip holds regular files only"
    if stat.S_ISDIR(mode):
        return "is a directory entry; a provider zip holds regular files only"
    return f"has file type {stat.S_IFMT(mode):o} in its mode; a provider zip holds regular files only"


def _find_binary(members: list[zipfile.ZipInfo], provider_type: str) -> str:
    """The provider executable at the zip's root: ``terraform-provider-TYPE``, optionally followed
    by ``_vVERSION`` (GoReleaser's default), ``_x5`` or ``.exe``."""
    prefix = BINARY_PREFIX + provider_type
    for member in members:
        name = member.filename
        if "/" not in name and name.startswith(prefix) and (name == prefix or name[len(prefix)] in "_."):
            return name
    found = ", ".join(repr(m.filename[:80]) for m in members[:5]) + (", ..." if len(members) > 5 else "")
    raise InvalidArchive(
        f"provider zip has no {prefix} executable at its root (it holds {found or 'nothing'}); "
        "Terraform looks for the provider binary at the top of the zip"
    )


def _content_sha256(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: ProviderZipLimits) -> str:
    """The member's content sha256 hex, reading at most its declared size (which zipfile enforces,
    checking the CRC at the end) and never more than the limit."""
    digest = hashlib.sha256()
    read = 0
    with archive.open(member) as content:
        while chunk := content.read(_CHUNK):
            read += len(chunk)
            if read > limits.max_unpacked_bytes:
                raise PayloadTooLarge(
                    f"provider zip member {member.filename[:200]!r} decompresses to more than "
                    f"{describe_size(limits.max_unpacked_bytes)}"
                )
            digest.update(chunk)
    return digest.hexdigest()
