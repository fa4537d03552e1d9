"""One module of a monorepo: a source tarball re-rooted at the module's directory, and checked to be
self-contained.

A source's tag tarball (GitHub's, GitLab's: everything under one ``<repo>-<sha>/`` directory) holds
the whole repository. ``extract_subtree`` streams it once and writes a module archive of one
directory only, as ``strip_top_level_directory`` does for a whole repository: the same member
checks and limits (``max_archive_bytes`` on the bytes read, ``max_unpacked_bytes`` on the stream,
``max_files`` on the members kept), modes normalized, mtimes and ownership zeroed. On top of that,
every ``module`` call of every Terraform file kept (``.tf``, ``.tofu``, ``.tf.json``,
``.tofu.json``, at any depth, files reached through a symlink or hardlink checked where the link
is) must not reach above the directory: ``source = "../shared"`` in the module's root is refused,
naming the file and the source, since the registry would serve an archive whose call cannot be
installed. Sources that stay inside (``./modules/subnets``, ``../..`` from ``examples/basic``) and
non-local sources are fine.

``release_for_tag`` is the whole step a source runs for a monorepo's tag: which module the tag
releases (the mapping from config, else the ``.mirror.toml`` at the tree's root), then that
module's archive. Synchronous and streaming: callers run these in a worker thread.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mirror.domain import monorepo
from mirror.domain.errors import InvalidArchive
from mirror.domain.monorepo import Mapping, TagMatch
from mirror.formats.archive import (
    ArchiveLimits,
    HashingWriter,
    _copy_member,
    _deterministic_tar_writer,
    _normalized_mode,
    _TopLevelDirectory,
    open_tar_stream,
)
from mirror.formats.archive_limits import refuse
from mirror.formats.archive_members import MemberChecker
from mirror.formats.local_sources import escapes, module_sources

_MiB = 1024 * 1024
#: a Terraform file read for its module calls may be this large; a larger one is refused
MAX_CONFIG_FILE_BYTES = 4 * _MiB
#: and all of them together
MAX_CONFIG_TOTAL_BYTES = 64 * _MiB
_CONFIG_SUFFIXES = (".tf", ".tofu", ".tf.json", ".tofu.json")
_MAX_LINK_HOPS = 40


@dataclass(frozen=True, slots=True)
class SubtreeArchive:
    path: Path
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Release:
    """A tag that releases one module of a monorepo: which, and its archive."""

    match: TagMatch
    archive: SubtreeArchive
    mapping_from: str  # "config" or the file's name


@dataclass(frozen=True, slots=True)
class Skipped:
    """A tag that releases no module, and why (for the log and the job's outcome)."""

    reason: str


def release_for_tag(tarball: Path, tag: str, mapping: Mapping | None, out: Path, limits: ArchiveLimits) -> Release | Skipped:
    """The module ``tag`` releases and its archive written to ``out``, from the source tarball at
    ``tarball``; ``mapping`` from config wins, else the tree's ``.mirror.toml`` is read.

    Raises InvalidArchive (or PayloadTooLarge) when the tree breaks a check, ``MappingError``
    when its ``.mirror.toml`` cannot be used."""
    mapping_from = "config"
    if mapping is None:
        with tarball.open("rb") as raw:
            data = read_root_file(raw, monorepo.FILE_NAME, limits)
        if data is None:
            return Skipped(f"tag {tag}: no {monorepo.FILE_NAME} at the root of the tagged tree, and no mapping in config")
        mapping, mapping_from = monorepo.parse_file(data, f"{monorepo.FILE_NAME} at tag {tag}"), monorepo.FILE_NAME
    match = mapping.match(tag)
    if match is None:
        return Skipped(f"tag {tag} matches no module of the mapping ({mapping_from}: {'; '.join(mapping.prefixes())})")
    with tarball.open("rb") as src, out.open("wb") as dst:
        sha256, size = extract_subtree(src, dst, match.module.path, limits)
    return Release(match, SubtreeArchive(out, sha256, size), mapping_from)


def read_root_file(src: BinaryIO, name: str, limits: ArchiveLimits, max_bytes: int = monorepo.MAX_FILE_BYTES) -> bytes | None:
    """The regular file ``name`` at the root of the tree in a source tarball (under its single
    top-level directory), or None. A larger file than ``max_bytes`` is refused."""
    top = _TopLevelDirectory()
    found: bytes | None = None
    with open_tar_stream(src, limits) as tar:
        for member in tar:
            if top.reroot(member) == name and member.isreg():
                if member.size > max_bytes:
                    raise refuse(member, f"is larger than {max_bytes} bytes")
                reader = tar.extractfile(member)
                assert reader is not None
                found = reader.read(max_bytes + 1)
    return found


def extract_subtree(src: BinaryIO, dst: BinaryIO, subdir: str, limits: ArchiveLimits) -> tuple[str, int]:
    """Write the directory ``subdir`` ("" for the whole tree) of the source tarball ``src`` to
    ``dst`` as a module archive rooted there; return its sha256 hex digest and size.

    Raises InvalidArchive when the directory is missing, a member breaks a check, a hardlink
    reaches outside the directory, or a module call's local source climbs above it; on error,
    ``dst`` holds a partial archive the caller must discard."""
    sink = HashingWriter(dst)
    checker = MemberChecker(limits, stored_as_read=False)  # modes are rewritten
    top = _TopLevelDirectory()
    calls = _ModuleCalls()
    prefix = f"{subdir}/" if subdir else ""
    found = not subdir
    with open_tar_stream(src, limits) as tar, _deterministic_tar_writer(sink) as out:
        for member in tar:
            path = top.reroot(member)
            if subdir and path == subdir:
                found = True
                if not member.isdir():
                    raise refuse(member, f"the module's directory {subdir!r} is not a directory")
                inner = ""
            elif path.startswith(prefix):
                inner = path[len(prefix) :]
            else:
                continue
            checker.admit(member, inner)
            hardlink_target = None
            if member.islnk():
                target = top.reroot_hardlink_target(member)
                if not target.startswith(prefix):
                    raise refuse(member, f"hardlink target {member.linkname!r} is outside the module's directory {subdir!r}")
                hardlink_target = target[len(prefix) :]
                checker.admit_hardlink_target(member, hardlink_target)
                calls.add_link(inner, hardlink_target)
            elif member.issym():
                calls.add_link(inner, posixpath.normpath(posixpath.join(posixpath.dirname(inner), member.linkname)))
            if not inner:
                continue
            if member.isreg() and inner.endswith(_CONFIG_SUFFIXES):
                data = calls.read(tar, member, inner)
                info = tarfile.TarInfo(inner)
                info.mode, info.size = _normalized_mode(member.mode, False), len(data)
                out.addfile(info, io.BytesIO(data))
            else:
                _copy_member(tar, member, out, inner, hardlink_target)
    if not found:
        raise InvalidArchive(f"the tagged tree has no directory {subdir!r}, the module's path")
    checker.finish()
    calls.check()
    return sink.sha256.hexdigest(), sink.size


class _ModuleCalls:
    """The local module sources of the Terraform files kept, checked once every member is known."""

    def __init__(self) -> None:
        self._sources: dict[str, list[tuple[str, str]]] = {}  # file path -> (label, source)
        self._links: dict[str, str] = {}  # link path -> target path (normalized, may leave the tree)
        self._total = 0

    def read(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> bytes:
        if member.size > MAX_CONFIG_FILE_BYTES:
            raise refuse(
                member, f"is larger than {MAX_CONFIG_FILE_BYTES // _MiB} MiB, too large to check its module calls"
            )
        self._total += member.size
        if self._total > MAX_CONFIG_TOTAL_BYTES:
            raise refuse(member, f"the module has more than {MAX_CONFIG_TOTAL_BYTES // _MiB} MiB of Terraform files")
        reader = tar.extractfile(member)
        assert reader is not None
        data = reader.read(member.size)
        if b"module" in data:
            text = data.decode("utf-8", errors="replace")
            self._sources[path] = module_sources(path, text)
        return data

    def add_link(self, path: str, target: str) -> None:
        if path.endswith(_CONFIG_SUFFIXES):
            self._links[path] = target

    def check(self) -> None:
        for path, calls in sorted(self._sources.items()):
            _check_calls(path, path, calls)
        for path in sorted(self._links):
            target = self._resolve(path)
            if target is not None:
                _check_calls(path, f"{path} (a link to {target})", self._sources[target])

    def _resolve(self, path: str) -> str | None:
        for _ in range(_MAX_LINK_HOPS):
            if path in self._sources:
                return path
            if path not in self._links:
                return None
            path = self._links[path]
        return None


def _check_calls(path: str, shown: str, calls: list[tuple[str, str]]) -> None:
    directory = posixpath.dirname(path)
    for label, source in calls:
        if escapes(directory, source):
            raise InvalidArchive(
                f"{shown}: module {label!r} has source {source!r}, which reaches outside the module's "
                "directory; a module released from a monorepo must be self-contained (copy what it "
                "needs inside its directory, or call the shared module from a registry address)"
            )
