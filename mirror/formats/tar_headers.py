"""Reading tar headers as Terraform's reader (Go's ``archive/tar``) reads them.

``StrictTarInfo`` is the ``tarinfo`` class every archive is opened with: headers that Python's
``tarfile`` and Go would read differently -- pax keys that rename a member or change its layout
(``GNU.sparse.*``), pax records Go would parse otherwise, stacked or mixed extended headers, a
global header carrying a name or size, a name prefix outside a POSIX ustar header -- are refused,
so the file list the archive checks see is the one Terraform installs. Damaged headers are errors
(never a silently shortened member list), and extended header bodies have their own size cap.
"""

from __future__ import annotations

import re
import tarfile

from mirror.domain.errors import InvalidArchive
from mirror.formats.archive_limits import MiB, describe_size, not_a_tar_gz, refuse

#: pax and GNU long-name header bodies are read into memory whole, so they get their own cap
_MAX_EXTENDED_HEADER_BYTES = MiB
_EXTENDED_HEADER_TYPES = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
)
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
            raise not_a_tar_gz(exc) from None

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _EXTENDED_HEADER_TYPES and info.size > _MAX_EXTENDED_HEADER_BYTES:
            raise InvalidArchive(
                f"archive has a {describe_size(info.size)} extended header; "
                f"the limit is {describe_size(_MAX_EXTENDED_HEADER_BYTES)}"
            )
        if info.type not in tarfile.GNU_TYPES and buf[345] and not _go_reads_the_prefix(buf):
            raise refuse(
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
        raise not_a_tar_gz(exc) from None
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
            raise refuse(member, self._problem)

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
            raise refuse(member, "has both a pax 'path' and a GNU long name, which tar readers order differently")
        if "linkpath" in pax and self._long_link is not None:
            raise refuse(member, "has both a pax 'linkpath' and a GNU long link, which tar readers order differently")
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
