"""The per-member checks of one streaming pass over a module archive (``MemberChecker``): limits,
unique and case-distinct paths, allowed member types and modes, safe links, and a configuration file
(``.tf``, ``.tf.json``, ``.tofu`` or ``.tofu.json``) at the archive root.
"""

from __future__ import annotations

import stat
import tarfile

from mirror.domain.errors import InvalidArchive, PayloadTooLarge
from mirror.formats.archive_limits import ArchiveLimits, describe_size, refuse
from mirror.formats.archive_names import Spellings, SymlinkResolver, folded, is_terraform_config, symlink_problem

_REGULAR_TYPES = frozenset({tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE})
_SPECIAL_TYPE_NAMES = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}
#: mode bits that say what a member is; allowed only when they agree with its tar type
_MODE_TYPE_BITS = {
    tarfile.REGTYPE: stat.S_IFREG,
    tarfile.AREGTYPE: stat.S_IFREG,
    tarfile.CONTTYPE: stat.S_IFREG,
    tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.SYMTYPE: stat.S_IFLNK,
    tarfile.LNKTYPE: stat.S_IFREG,
}


class MemberChecker:
    """The per-member checks of one streaming pass, and what they learn about the archive.

    Paths given to it are normalized and relative to the (re-rooted) archive root, '' being the
    root itself. Its state grows with the member count, which ``max_files`` bounds.
    """

    def __init__(self, limits: ArchiveLimits, *, stored_as_read: bool) -> None:
        self._limits = limits
        #: the archive is kept byte for byte (an upload), not repacked with canonical modes
        self._stored_as_read = stored_as_read
        self._paths: set[str] = set()
        self._spellings = Spellings()
        self._regular_files: set[str] = set()
        self._folded_regular_files: set[str] = set()
        self._resolver = SymlinkResolver()
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
                raise refuse(member, "only a directory can stand for the archive root")
        else:
            self._admit_path(member, path)
        if self._stored_as_read:
            self._admit_mode(member)

    def _admit_path(self, member: tarfile.TarInfo, path: str) -> None:
        if path in self._paths:
            raise refuse(member, "appears more than once")
        self._paths.add(path)
        clash = self._spellings.clash(path)
        if clash:
            raise refuse(
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
            raise refuse(member, f"is {kind}; only regular files, directories and links are allowed")

    def admit_hardlink_target(self, member: tarfile.TarInfo, target: str) -> None:
        """Refuse a hardlink unless ``target`` (normalized, root-relative) is an earlier regular file,
        spelled as that file is."""
        if target in self._regular_files:
            return
        if folded(target) in self._folded_regular_files:
            raise refuse(
                member,
                f"hardlink target {member.linkname!r} differs only in letter case from an earlier regular file",
            )
        raise refuse(member, f"hardlink target {member.linkname!r} is not an earlier regular file in the archive")

    def _admit_mode(self, member: tarfile.TarInfo) -> None:
        """An archive stored as sent keeps its modes: refuse setuid, setgid and sticky bits, and file
        type bits that disagree with the tar type (Go reads a member's type from both)."""
        if member.mode & 0o7000:
            raise refuse(member, f"mode {member.mode:o} has setuid, setgid or sticky bits")
        type_bits = stat.S_IFMT(member.mode)
        if type_bits and type_bits != _MODE_TYPE_BITS.get(member.type):
            raise refuse(member, f"mode {member.mode:o} names another file type than the member's tar type")

    def finish(self) -> None:
        """The checks that need the whole archive: symlink chains, and a configuration file at the root."""
        for path, target in self._resolver.links.values():
            if not self._resolver.stays_inside(path, target):
                raise InvalidArchive(
                    f"archive member {path!r}: symlink target {target!r} points outside the module "
                    "once the archive's other symlinks are followed"
                )
        if not self.root_tf_files:
            raise InvalidArchive(
                "archive has no .tf file at its root (nor .tf.json, .tofu or .tofu.json); put the module's "
                "configuration (e.g. main.tf) at the top of the archive, not inside a directory"
            )

    def _admit_regular_file(self, member: tarfile.TarInfo, path: str) -> None:
        self.unpacked_bytes += member.size
        if self.unpacked_bytes > self._limits.max_unpacked_bytes:
            raise PayloadTooLarge(
                f"archive member {member.name!r}: takes the archive's unpacked size over the "
                f"{describe_size(self._limits.max_unpacked_bytes)} limit"
            )
        self._regular_files.add(path)
        self._folded_regular_files.add(folded(path))
        if "/" not in path and is_terraform_config(path):
            self.root_tf_files.append(path)

    def _admit_symlink(self, member: tarfile.TarInfo, path: str) -> None:
        problem = symlink_problem(path, member.linkname, self._resolver)
        if problem:
            raise refuse(member, f"symlink target {member.linkname!r} {problem}")
        self._resolver.links[folded(path)] = (path, member.linkname)

