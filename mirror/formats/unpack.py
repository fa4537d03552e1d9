"""Downloaded archives into module archives: safe unpacking and deterministic re-packing.

Synchronous and streaming, like ``mirror.formats.archive``: callers run these in a worker thread.
Unpacking refuses what ``check_archive`` refuses (absolute or ``..`` paths, links leaving the
tree, devices), within the same ``[limits]``, before a byte lands outside the work directory, and
reads member headers with the same ``StrictTarInfo``, so that extended headers Terraform's reader
would read otherwise are refused here too. What it unpacks is packed again with canonical headers
(modes 0644 / 0755: no setuid, setgid or sticky bits).
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

from mirror.formats.archive import ArchiveLimits, HashingWriter, StrictTarInfo, pack_directory
from mirror.domain.errors import InvalidArchive, PayloadTooLarge, StorageUnavailable

_CHUNK = 64 * 1024
#: failures of the disk rather than of the archive
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES})


def unpack(path: Path, kind: str, dest: Path, limits: ArchiveLimits) -> None:
    """Unpack the archive at ``path`` (a go-getter archive type) into the empty directory ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        _unzip(path, dest, limits)
    else:
        _untar(path, dest, limits)


def module_root(tree: Path, subdir: str) -> Path:
    """The directory ``subdir`` names inside ``tree`` (``tree`` itself for ""), which must exist."""
    if not subdir:
        return tree
    root = tree.joinpath(*subdir.split("/"))
    if not root.is_dir() or not root.resolve().is_relative_to(tree.resolve()):
        raise InvalidArchive(f"subdirectory {subdir!r} is not a directory of the downloaded package")
    return root


def pack(root: Path, out_path: Path) -> tuple[str, int]:
    """``pack_directory(root)`` into ``out_path``; its sha256 hex digest and size."""
    with out_path.open("wb") as raw:
        sink = HashingWriter(raw)
        pack_directory(root, sink)  # type: ignore[arg-type]
    return sink.sha256.hexdigest(), sink.size


class _Budget:
    """Members and unpacked bytes so far, against ``[limits]``."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self.files = 0
        self.bytes = 0

    def member(self, name: str) -> None:
        self.files += 1
        if self.files > self._limits.max_files:
            raise InvalidArchive(f"archive has more than {self._limits.max_files} members (refused at {name!r})")

    def add(self, size: int, name: str) -> None:
        self.bytes += size
        if self.bytes > self._limits.max_unpacked_bytes:
            raise PayloadTooLarge(
                f"archive member {name!r}: takes the unpacked size over the limit of {self._limits.max_unpacked_bytes} bytes"
            )


def _untar(path: Path, dest: Path, limits: ArchiveLimits) -> None:
    budget = _Budget(limits)

    def admit(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
        budget.member(member.name)
        if member.isreg():
            budget.add(member.size, member.name)
        # the stdlib's "data" filter: no absolute or escaping paths, no links out of ``dest``,
        # no devices or FIFOs, no setuid bits
        return tarfile.data_filter(member, dest_path)

    try:
        # StrictTarInfo: check_archive's member headers (damaged headers are errors, and pax or
        # GNU long-name headers, which tarfile reads into memory whole, are capped)
        with path.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|*", tarinfo=StrictTarInfo) as tar:
            tar.extractall(dest, filter=admit)
    except tarfile.FilterError as exc:
        raise InvalidArchive(f"archive member {exc.tarinfo.name!r}: {_filter_reason(exc)}") from None
    except OSError as exc:
        if exc.errno in _DISK_ERRNOS:
            raise StorageUnavailable(f"cannot unpack into the spool directory: {exc.strerror or exc}") from None
        raise InvalidArchive(f"archive cannot be unpacked: {exc.strerror or exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, ValueError) as exc:
        raise InvalidArchive(f"archive is not a valid tar archive: {str(exc) or type(exc).__name__}") from None


def _filter_reason(exc: tarfile.FilterError) -> str:
    text = str(exc)
    name = exc.tarinfo.name
    return text.replace(repr(name), "").strip() or type(exc).__name__


def _unzip(path: Path, dest: Path, limits: ArchiveLimits) -> None:
    budget = _Budget(limits)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                budget.member(info.filename)
                _unzip_member(archive, info, dest, budget)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError) as exc:
        raise InvalidArchive(f"archive is not a valid zip archive: {str(exc) or type(exc).__name__}") from None


def _unzip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: _Budget) -> None:
    name = info.filename
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise InvalidArchive(f"archive member {name!r}: path is absolute or has a backslash")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArchive(f"archive member {name!r}: path contains a '..' component")
    if not parts:
        return
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InvalidArchive(f"archive member {name!r}: symlinks in zip archives are not supported")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: a zip made without Unix modes
        raise InvalidArchive(f"archive member {name!r}: only files and directories are allowed")
    target = dest.joinpath(*parts)
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return
        budget.add(info.file_size, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, target.open("xb") as out:
            written = 0
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size:  # zipfile checks sizes at the end; never write past the budget
                    raise InvalidArchive(f"archive member {name!r}: holds more than its declared size")
                out.write(chunk)
        if mode & 0o111:
            os.chmod(target, 0o755)
    except FileExistsError:
        raise InvalidArchive(f"archive member {name!r}: appears more than once") from None
    except (NotADirectoryError, IsADirectoryError):
        raise InvalidArchive(f"archive member {name!r}: a file and a directory share its path") from None
    except OSError as exc:
        if exc.errno in _DISK_ERRNOS:
            raise StorageUnavailable(f"cannot unpack into the spool directory: {exc.strerror or exc}") from None
        raise InvalidArchive(f"archive member {name!r}: cannot be unpacked: {exc.strerror or exc}") from None

