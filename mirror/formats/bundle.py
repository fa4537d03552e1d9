"""The bundle file of ``mirror export`` / ``mirror import``: a blocking codec, run in a worker thread.

A bundle is a plain (uncompressed) tar, written by ``BundleWriter`` and nothing else:

1. ``manifest.json``: what the bundle holds (``FORMAT``, ``FORMAT_VERSION``, the modules and their
   live versions with sha256, size, README, analysis, and the range of the event log it covers;
   format version 2 adds ``providers``, see ``mirror.formats.bundle_providers``);
2. ``manifest.sig``, when signed: the hex HMAC-SHA256 of the exact bytes of ``manifest.json``;
3. ``archives/<sha256>.tar.gz`` and ``providers/<sha256>.zip``: each archive or zip the manifest
   names, once, however many versions share it.

Every member is a regular file with a USTAR header, and the tar ends with exactly two zero blocks
(no record padding), so a bundle cut anywhere is recognised as cut. ``BundleReader`` reads it back
strictly, in one pass: the signature, the manifest (``parse_manifest``), and every archive's size,
sha256 and archive checks while it is copied to a spool directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mirror.domain.addresses import ModuleAddress
from mirror.domain.blobs import is_sha256
from mirror.domain.errors import MirrorError, StorageUnavailable
from mirror.domain.versions import normalize
from mirror.domain.provider_records import ProviderVersion, provider_name
from mirror.formats.archive import ArchiveLimits, check_archive
from mirror.formats.bundle_providers import ZIP_NAME_RE, parse_providers
from mirror.formats.provider_zip import ProviderZipLimits, check_provider_zip

FORMAT = "mirror-bundle"
#: written for bundles of modules only (readable by every mirror); 2 when they carry providers
FORMAT_VERSION = 1
PROVIDERS_FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
ARCHIVE_NAME_RE = re.compile(r"^archives/([0-9a-f]{64})\.tar\.gz$")
#: the manifest is read into memory to be parsed; READMEs (512 KiB at most each) dominate it
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_SIGNATURE_BYTES = 1024

_BLOCK = tarfile.BLOCKSIZE
_ZERO_BLOCK = b"\0" * _BLOCK
_CHUNK = 256 * 1024


class BundleError(MirrorError):
    """A bundle that cannot be imported (damaged, tampered, badly signed, or in conflict)."""

    status = 422


def manifest_signature(manifest: bytes, key: bytes) -> str:
    """The hex HMAC-SHA256 of the manifest's exact bytes."""
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


def encode_manifest(
    *,
    created_at: str,
    source: str | None,
    namespace: str | None,
    since: int | None,
    latest: int,
    modules: list[dict[str, Any]],
    providers: list[dict[str, Any]] | None = None,
) -> bytes:
    """The bytes of ``manifest.json`` for the ``modules`` (and ``providers``) entries, covering
    events ``(since, latest]``."""
    manifest = {
        "format": FORMAT,
        "format_version": PROVIDERS_FORMAT_VERSION if providers else FORMAT_VERSION,
        "created_at": created_at,
        "source": source,
        "namespace": namespace,
        "since": since,
        "events": {"from": (since or 0) + 1, "to": latest},
        "modules": modules,
    }
    if providers:
        manifest["providers"] = providers
    return json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"


# -- writing -------------------------------------------------------------------------------------


class BundleWriter:
    """Writes the bundle's tar by hand (USTAR headers, data, padding, two zero blocks): archives
    arrive as async chunks, which ``tarfile`` cannot take, and the end is exact."""

    def __init__(self, handle: BinaryIO, mtime: int) -> None:
        self._out = handle
        self._mtime = mtime

    @classmethod
    def create(cls, path: Path) -> BundleWriter:
        return cls(path.open("wb"), int(time.time()))

    def begin(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self._mtime
        info.mode = 0o644
        info.type = tarfile.REGTYPE
        self._out.write(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))

    def write(self, chunk: bytes, digest: Any) -> None:
        digest.update(chunk)
        self._out.write(chunk)

    def end_member(self, size: int) -> None:
        self._out.write(b"\0" * (-size % _BLOCK))

    def add_bytes(self, name: str, data: bytes) -> None:
        self.begin(name, len(data))
        self._out.write(data)
        self.end_member(len(data))

    def finish(self) -> None:
        self._out.write(_ZERO_BLOCK * 2)
        self._out.flush()
        os.fsync(self._out.fileno())

    def close(self) -> None:
        self._out.close()


def discard(part: Path) -> None:
    with contextlib.suppress(OSError):
        part.unlink(missing_ok=True)


def replace_synced(part: Path, out: Path) -> None:
    """Rename ``part`` to ``out`` and sync the directory (best effort)."""
    os.replace(part, out)
    with contextlib.suppress(OSError):
        fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the manifest --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BundleVersion:
    address: ModuleAddress
    version: str  # normalized
    raw_version: str
    sha256: str
    size: int
    source: str | None
    commit_sha: str | None

    def __str__(self) -> str:
        return f"{self.address} {self.version}"


@dataclass(frozen=True, slots=True)
class Manifest:
    versions: list[BundleVersion]  # in manifest order
    archives: dict[str, int]  # sha256 -> size
    source: str | None
    created_at: str
    events_from: int
    events_to: int
    providers: list[ProviderVersion] = field(default_factory=list)
    zips: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # sha256 -> (size, type, h1)

    def users(self, sha256: str) -> str:
        """The versions stored under an archive (or zip), for messages."""
        names = [str(v) for v in self.versions if v.sha256 == sha256] + [
            f"{provider_name(v.hostname, v.address)} {v.version}"
            for v in self.providers
            if any(f.sha256 == sha256 for f in v.platforms)
        ]
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


#: containers inside containers in ``manifest.json``: room for what export writes (a variable's
#: default value is its deepest part), far below the recursion limit of the JSON code that
#: handles the manifest's parts later
MAX_MANIFEST_DEPTH = 64


def parse_manifest(data: bytes) -> Manifest:
    """Validate ``manifest.json`` strictly; raise BundleError naming the first problem."""
    too_deep = BundleError(f"bundle refused: manifest.json is nested too deeply (the limit is {MAX_MANIFEST_DEPTH} levels)")
    try:
        raw = json.loads(data.decode("utf-8"))
    except RecursionError:  # the decoder stops at Python's recursion limit: far past ours
        raise too_deep from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"bundle refused: manifest.json is not valid JSON ({_one_line(str(exc))})") from None
    containers = [(raw, 1)]  # checked without recursion
    while containers:
        value, depth = containers.pop()
        if depth > MAX_MANIFEST_DEPTH:
            raise too_deep
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        containers.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BundleError(f"bundle refused: manifest.json is not a {FORMAT} manifest")
    format_version = raw.get("format_version")
    if not _is_int(format_version):
        raise BundleError("bundle refused: manifest.json has no valid format_version")
    if format_version not in (FORMAT_VERSION, PROVIDERS_FORMAT_VERSION):
        raise BundleError(
            f"bundle refused: its format version is {format_version}, and this mirror reads versions "
            f"{FORMAT_VERSION} and {PROVIDERS_FORMAT_VERSION}"
            + (" (upgrade mirror to import it)" if format_version > PROVIDERS_FORMAT_VERSION else "")
        )
    events = raw.get("events")
    if not (isinstance(events, dict) and _is_int(events.get("from")) and _is_int(events.get("to"))):
        raise BundleError("bundle refused: manifest.json has no valid events range")
    source = raw.get("source")
    created_at = raw.get("created_at")
    if not (source is None or isinstance(source, str)) or not isinstance(created_at, str):
        raise BundleError("bundle refused: manifest.json has an invalid source or created_at")
    modules = raw.get("modules")
    if not isinstance(modules, list):
        raise BundleError("bundle refused: manifest.json has no modules list")

    versions: list[BundleVersion] = []
    archives: dict[str, int] = {}
    seen: set[tuple[str, str, str, str]] = set()
    for index, module in enumerate(modules):
        where = f"manifest.json modules[{index}]"
        if not isinstance(module, dict) or not all(isinstance(module.get(k), str) for k in ("namespace", "name", "provider")):
            raise BundleError(f"bundle refused: {where} needs string namespace, name and provider")
        try:
            address = ModuleAddress.parse_parts(module["namespace"], module["name"], module["provider"])
        except MirrorError as exc:
            raise BundleError(f"bundle refused: {where}: {exc}") from None
        entries = module.get("versions")
        if not isinstance(entries, list) or not entries:
            raise BundleError(f"bundle refused: {where} ({address}) has no versions")
        for entry in entries:
            version = _parse_version(address, entry, where)
            key = (address.namespace.lower(), address.name.lower(), address.provider, version.version)
            if key in seen:
                raise BundleError(f"bundle refused: manifest.json lists {version} twice")
            seen.add(key)
            if archives.setdefault(version.sha256, version.size) != version.size:
                raise BundleError(f"bundle refused: manifest.json gives archive {version.sha256} two different sizes")
            versions.append(version)
    providers = parse_providers(raw["providers"], BundleError) if "providers" in raw else []
    zips: dict[str, tuple[int, str, str]] = {}
    for provider in providers:
        for file in provider.platforms:
            assert file.size is not None and file.h1 is not None
            if zips.setdefault(file.sha256, (file.size, provider.address.type, file.h1)) != (file.size, provider.address.type, file.h1):
                raise BundleError(f"bundle refused: manifest.json describes zip {file.sha256} in two different ways")
            if file.sha256 in archives:
                raise BundleError(f"bundle refused: manifest.json lists {file.sha256} as an archive and as a zip")
    source = _one_line(source)[:500] if source is not None else None  # shown to the operator: one line
    return Manifest(
        versions, archives, source, _one_line(created_at)[:100], events["from"], events["to"], providers, zips
    )


def _parse_version(address: ModuleAddress, entry: Any, where: str) -> BundleVersion:
    if not isinstance(entry, dict):
        raise BundleError(f"bundle refused: {where} ({address}) has a version that is not an object")
    raw_version, version = entry.get("raw_version"), entry.get("version")
    if not isinstance(raw_version, str) or not isinstance(version, str):
        raise BundleError(f"bundle refused: {where} ({address}) has a version without version and raw_version")
    try:
        normalized = normalize(raw_version)
    except MirrorError as exc:
        raise BundleError(f"bundle refused: {address}: {exc}") from None
    if normalized != version:
        raise BundleError(f"bundle refused: {address} {version!r}: raw version {raw_version!r} normalizes to {normalized!r}")
    sha256, size = entry.get("sha256"), entry.get("size")
    if not isinstance(sha256, str) or not is_sha256(sha256):
        raise BundleError(f"bundle refused: {address} {version}: sha256 is not a lowercase hex SHA-256 digest")
    if not _is_int(size) or size <= 0:
        raise BundleError(f"bundle refused: {address} {version}: size is not a positive whole number")
    for name in ("readme", "source", "commit_sha", "published_at"):
        if not (entry.get(name) is None or isinstance(entry.get(name), str)):
            raise BundleError(f"bundle refused: {address} {version}: {name} must be a string or null")
    if not (entry.get("analysis") is None or isinstance(entry.get("analysis"), dict)):
        raise BundleError(f"bundle refused: {address} {version}: analysis must be an object or null")
    return BundleVersion(address, version, raw_version, sha256, size, entry.get("source"), entry.get("commit_sha"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

# -- reading -------------------------------------------------------------------------------------


class BundleReader:
    """Reads a bundle's tar strictly and in one pass (synchronous: runs in a worker thread)."""

    def __init__(self, path: Path, handle: BinaryIO) -> None:
        self._path = path
        self._in = handle
        self._offset = 0
        self._pending: tarfile.TarInfo | None = None  # a header read ahead
        self._ended = False  # the end-of-archive marker was read

    @classmethod
    def open(cls, path: Path) -> BundleReader:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise BundleError(f"cannot read the bundle {path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            handle.close()
            raise BundleError(f"cannot read the bundle {path}: not a regular file")
        return cls(path, handle)

    def close(self) -> None:
        self._in.close()

    def read_head(self, key: bytes | None) -> tuple[Manifest, str]:
        """Read ``manifest.json`` and ``manifest.sig``, check the signature, parse the manifest."""
        first = self._next()
        if first is None or first.name != MANIFEST_NAME:
            raise BundleError(f"bundle refused: {self._path} does not start with {MANIFEST_NAME}; is it a mirror bundle?")
        if first.size > MAX_MANIFEST_BYTES:
            raise BundleError(f"bundle refused: its manifest is {first.size} bytes, over the {MAX_MANIFEST_BYTES} byte limit")
        manifest_bytes = self._read_data(first)
        signature_text: bytes | None = None
        second = self._next()
        if second is not None and second.name == SIGNATURE_NAME:
            if second.size > MAX_SIGNATURE_BYTES:
                raise BundleError(f"bundle refused: {SIGNATURE_NAME} is too large to be a signature")
            signature_text = self._read_data(second).strip()
        else:
            self._pending = second
        if key is not None:
            if signature_text is None:
                raise BundleError("bundle refused: a signing key was given but the bundle is not signed (no manifest.sig)")
            expected = manifest_signature(manifest_bytes, key).encode()
            if not hmac.compare_digest(signature_text, expected):
                raise BundleError(
                    "bundle refused: the manifest signature does not match (wrong signing key, or the manifest was altered)"
                )
            signature = "verified"
        else:
            signature = "absent" if signature_text is None else "unchecked"
        return parse_manifest(manifest_bytes), signature

    def read_archives(
        self, manifest: Manifest, spool: Path, limits: ArchiveLimits, zip_limits: ProviderZipLimits = ProviderZipLimits()
    ) -> dict[str, Path]:
        """Copy each archive (and provider zip) to ``spool`` while hashing it, check it, and read
        the tar to its end."""
        spooled: dict[str, Path] = {}
        while (member := self._next()) is not None:
            match = ARCHIVE_NAME_RE.match(member.name)
            zip_match = ZIP_NAME_RE.match(member.name)
            if zip_match is not None:
                spooled[zip_match.group(1)] = self._read_zip(manifest, member, zip_match.group(1), spool, spooled, zip_limits)
                continue
            if member.name in (MANIFEST_NAME, SIGNATURE_NAME) or match is None:
                raise BundleError(f"bundle refused: unexpected member {member.name!r} (only {MANIFEST_NAME} first, "
                                  f"then {SIGNATURE_NAME}, then archives/<sha256>.tar.gz and providers/<sha256>.zip)")
            sha256 = match.group(1)
            if sha256 not in manifest.archives:
                raise BundleError(f"bundle refused: archive {sha256} is not listed in the manifest")
            if sha256 in spooled:
                raise BundleError(f"bundle refused: archive {sha256} appears twice")
            if member.size != manifest.archives[sha256]:
                raise BundleError(
                    f"bundle refused: archive {sha256} is {member.size} bytes, the manifest says "
                    f"{manifest.archives[sha256]} ({manifest.users(sha256)})"
                )
            if member.size > limits.max_archive_bytes:
                raise BundleError(
                    f"bundle refused: archive {sha256} ({manifest.users(sha256)}) is {member.size} bytes; "
                    f"this registry's limit is {limits.max_archive_bytes} ([limits] max_archive_bytes)"
                )
            target = spool / f"{sha256}.tar.gz"
            actual = self._copy_data(member, target)
            if actual != sha256:
                raise BundleError(
                    f"bundle refused: archive {sha256} ({manifest.users(sha256)}) does not match its sha256 "
                    f"(its bytes hash to {actual}): the bundle was altered or damaged"
                )
            try:
                check_archive(target, limits)
            except MirrorError as exc:
                raise BundleError(
                    f"bundle refused: archive {sha256} ({manifest.users(sha256)}) fails the archive checks: {exc}"
                ) from None
            spooled[sha256] = target
        missing = [sha for sha in [*manifest.archives, *manifest.zips] if sha not in spooled]
        if missing:
            raise BundleError(
                f"bundle refused: archive {missing[0]} ({manifest.users(missing[0])}) is missing from the bundle"
                + (f", and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        return spooled

    def _read_zip(self, manifest: Manifest, member: tarfile.TarInfo, sha256: str, spool: Path,
                  spooled: dict[str, Path], limits: ProviderZipLimits) -> Path:
        if sha256 not in manifest.zips or sha256 in spooled:
            raise BundleError(f"bundle refused: zip {sha256} is not listed in the manifest, or appears twice")
        size, type_, h1 = manifest.zips[sha256]
        if member.size != size or size > limits.max_zip_bytes:
            raise BundleError(f"bundle refused: zip {sha256} ({manifest.users(sha256)}) is {member.size} bytes, the "
                              f"manifest says {size} (this registry takes at most {limits.max_zip_bytes})")
        target = spool / f"{sha256}.zip"
        if self._copy_data(member, target) != sha256:
            raise BundleError(f"bundle refused: zip {sha256} ({manifest.users(sha256)}) does not match its sha256: "
                              "the bundle was altered or damaged")
        try:
            found = check_provider_zip(target, type_, limits).h1
        except MirrorError as exc:
            raise BundleError(f"bundle refused: zip {sha256} ({manifest.users(sha256)}) is refused: {exc}") from None
        if found != h1:
            raise BundleError(f"bundle refused: zip {sha256} ({manifest.users(sha256)}) has h1 {found}, not {h1}")
        return target

    # -- the tar, block by block --

    def _next(self) -> tarfile.TarInfo | None:
        """The next member's header, or None at a complete end of archive."""
        if self._pending is not None:
            member, self._pending = self._pending, None
            return member
        if self._ended:
            return None
        start = self._offset
        block = self._read(_BLOCK, "a member header")
        if block == _ZERO_BLOCK:
            if self._read(_BLOCK, "the end-of-archive marker") != _ZERO_BLOCK:
                raise BundleError(f"bundle refused: damaged end-of-archive marker at byte {start}")
            self._trailing_zeros()
            self._ended = True
            return None
        try:
            member = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError, ValueError) as exc:
            if start == 0:
                raise BundleError(f"bundle refused: {self._path} is not a mirror bundle (not a tar file)") from None
            raise BundleError(f"bundle refused: damaged tar header at byte {start} ({_one_line(str(exc))})") from None
        if member.size < 0:
            raise BundleError(f"bundle refused: damaged tar header at byte {start} (negative size)")
        if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise BundleError(f"bundle refused: unexpected member {member.name!r} (not a regular file)")
        return member

    def _read(self, size: int, what: str) -> bytes:
        data = self._in.read(size)
        self._offset += len(data)
        if len(data) != size:
            raise BundleError(
                f"bundle refused: it is truncated: {self._path} ends at byte {self._offset} in the middle of {what}"
            )
        return data

    def _read_data(self, member: tarfile.TarInfo) -> bytes:
        data = self._read(member.size, repr(member.name))
        self._read(-member.size % _BLOCK, f"the padding of {member.name!r}")
        return data

    def _copy_data(self, member: tarfile.TarInfo, target: Path) -> str:
        digest = hashlib.sha256()
        left = member.size
        try:
            with target.open("wb") as out:
                while left:
                    chunk = self._read(min(left, _CHUNK), repr(member.name))
                    digest.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
        except OSError as exc:
            raise StorageUnavailable(f"cannot spool {member.name} to {target.parent}: {exc.strerror or exc}") from None
        self._read(-member.size % _BLOCK, f"the padding of {member.name!r}")
        return digest.hexdigest()

    def _trailing_zeros(self) -> None:
        """After the end marker only zeros may follow (padding some media add)."""
        while chunk := self._in.read(_CHUNK):
            if chunk.count(0) != len(chunk):
                raise BundleError(f"bundle refused: unexpected data after the end of the archive at byte {self._offset}")
            self._offset += len(chunk)


def _one_line(text: str) -> str:
    return " ".join(text.split())

