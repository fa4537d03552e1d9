"""Providers: addresses, platforms, the file names of a GoReleaser provider release, and its
SHA256SUMS and manifest.

A provider release, as GoReleaser's standard Terraform set-up publishes it, is one zip per
platform (``terraform-provider-TYPE_VERSION_OS_ARCH.zip``), ``..._SHA256SUMS`` listing them,
``..._SHA256SUMS.sig`` (a binary detached OpenPGP signature of those exact bytes) and optionally
``..._manifest.json`` naming the plugin protocol versions the provider speaks.

Everything here is pure: names are built and parsed, file contents are parsed from bytes.
Bad names raise ``BadRequest``; bad SHA256SUMS or manifest contents raise ``InvalidArchive``;
each with one readable line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum

from mirror.domain.addresses import valid_namespace
from mirror.domain.errors import BadRequest, InvalidArchive
from mirror.domain.versions import Version

__all__ = [
    "BINARY_PREFIX",
    "DEFAULT_PROTOCOLS",
    "MAX_MANIFEST_BYTES",
    "MAX_SHASUMS_BYTES",
    "Platform",
    "ProviderAddress",
    "ReleaseFile",
    "ReleaseFileKind",
    "manifest_name",
    "parse_manifest",
    "parse_release_file_name",
    "parse_shasums",
    "shasums_name",
    "signature_name",
    "valid_provider_type",
    "zip_name",
]

BINARY_PREFIX = "terraform-provider-"
#: what a provider speaks when its release has no manifest (GoReleaser's and Terraform's default)
DEFAULT_PROTOCOLS: tuple[str, ...] = ("5.0",)
#: Terraform installs a provider only if it speaks a protocol version in [5, 7)
_SUPPORTED_PROTOCOL_MAJORS = frozenset({5, 6})
MAX_SHASUMS_BYTES = 1024 * 1024
_MAX_SHASUMS_LINES = 10_000
MAX_MANIFEST_BYTES = 64 * 1024
_MAX_PROTOCOLS = 16

_NAMESPACE_RULE = "1-64 letters, digits, '-' or '_', starting and ending with a letter or digit"
# terraform-registry-address: provider types are lowercase letters, digits and hyphens, neither
# starting nor ending with a hyphen (and, as IDNA labels, never with "--" in the middle either)
_TYPE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
_TYPE_RULE = "1-64 lowercase letters, digits or '-', starting and ending with a letter or digit"
# Go's GOOS and GOARCH values: lowercase letters and digits (linux, darwin, amd64, 386, ppc64le)
_OS_RE = re.compile(r"^[a-z][a-z0-9]{0,31}\Z")
_ARCH_RE = re.compile(r"^[a-z0-9]{1,32}\Z")
_SHASUMS_LINE_RE = re.compile(rb"^(?P<hex>[0-9a-f]{64})  (?P<name>[A-Za-z0-9._+-]{1,255})\Z")
_PROTOCOL_RE = re.compile(r"^(?P<major>0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})\Z")


def valid_provider_type(value: str) -> bool:
    return bool(_TYPE_RE.match(value)) and "--" not in value


@dataclass(frozen=True, slots=True)
class ProviderAddress:
    """``namespace/type``, as in ``required_providers { x = { source = "HOST/namespace/type" } }``."""

    namespace: str
    type: str

    @classmethod
    def parse_parts(cls, namespace: str, type_: str) -> ProviderAddress:
        problems = []
        if not valid_namespace(namespace):
            problems.append(f"invalid provider namespace {namespace!r} ({_NAMESPACE_RULE})")
        if not valid_provider_type(type_):
            problems.append(f"invalid provider type {type_!r} ({_TYPE_RULE}, no '--')")
        if problems:
            raise BadRequest("; ".join(problems))
        return cls(namespace, type_)

    @classmethod
    def parse(cls, text: str) -> ProviderAddress:
        """Parse ``NAMESPACE/TYPE``."""
        parts = text.strip().split("/")
        if len(parts) != 2:
            raise BadRequest(f"provider address {text[:200]!r} must be NAMESPACE/TYPE, e.g. hashicorp/aws")
        return cls.parse_parts(*parts)

    @property
    def binary_prefix(self) -> str:
        """How the provider's executable is named in its zips (``terraform-provider-aws_v5.0.0``)."""
        return BINARY_PREFIX + self.type

    def __str__(self) -> str:
        return f"{self.namespace}/{self.type}"


@dataclass(frozen=True, slots=True, order=True)
class Platform:
    """An ``OS_ARCH`` pair such as ``linux_amd64`` (Go's GOOS and GOARCH)."""

    os: str
    arch: str

    @classmethod
    def parse_parts(cls, os: str, arch: str) -> Platform:
        if not _OS_RE.match(os) or not _ARCH_RE.match(arch):
            raise BadRequest(
                f"invalid platform {os[:40]!r}/{arch[:40]!r}: OS and architecture are lowercase letters "
                "and digits, as Go names them (e.g. linux and amd64)"
            )
        return cls(os, arch)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``OS_ARCH`` (``linux_amd64``)."""
        parts = text.split("_")
        if len(parts) != 2:
            raise BadRequest(f"invalid platform {text[:80]!r}: expected OS_ARCH, e.g. linux_amd64 or darwin_arm64")
        return cls.parse_parts(*parts)

    def __str__(self) -> str:
        return f"{self.os}_{self.arch}"


# Release file names ------------------------------------------------------------------------------


class ReleaseFileKind(Enum):
    ZIP = "zip"
    SHASUMS = "SHA256SUMS"
    SIGNATURE = "SHA256SUMS.sig"
    MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    """What a release file's name says: its kind, the provider type, the (normalized) version, and
    for a zip its platform."""

    kind: ReleaseFileKind
    type: str
    version: str
    platform: Platform | None = None

    @property
    def name(self) -> str:
        if self.kind is ReleaseFileKind.ZIP:
            assert self.platform is not None
            return zip_name(self.type, self.version, self.platform)
        return f"{_stem(self.type, self.version)}_{self.kind.value}"


def _stem(type_: str, version: str) -> str:
    if not valid_provider_type(type_):
        raise BadRequest(f"invalid provider type {type_!r} ({_TYPE_RULE}, no '--')")
    return f"{BINARY_PREFIX}{type_}_{Version.parse(version)}"


def zip_name(type_: str, version: str, platform: Platform) -> str:
    """``terraform-provider-TYPE_VERSION_OS_ARCH.zip``, the version written normalized (no ``v``)."""
    return f"{_stem(type_, version)}_{platform}.zip"


def shasums_name(type_: str, version: str) -> str:
    return f"{_stem(type_, version)}_SHA256SUMS"


def signature_name(type_: str, version: str) -> str:
    return f"{_stem(type_, version)}_SHA256SUMS.sig"


def manifest_name(type_: str, version: str) -> str:
    return f"{_stem(type_, version)}_manifest.json"


_SUFFIXES = (
    ("_SHA256SUMS.sig", ReleaseFileKind.SIGNATURE),
    ("_SHA256SUMS", ReleaseFileKind.SHASUMS),
    ("_manifest.json", ReleaseFileKind.MANIFEST),
    (".zip", ReleaseFileKind.ZIP),
)
_EXPECTED_NAMES = (
    "expected terraform-provider-TYPE_VERSION_OS_ARCH.zip, terraform-provider-TYPE_VERSION_SHA256SUMS, "
    "..._SHA256SUMS.sig or ..._manifest.json"
)


def parse_release_file_name(name: str) -> ReleaseFile:
    """Read a GoReleaser provider release file name; the version in it may be any SemVer
    (``v1.2`` reads as ``1.2.0``), and ``ReleaseFile.name`` gives the canonical spelling."""
    shown = name[:200]
    if len(name) > 255 or not name.startswith(BINARY_PREFIX):
        raise BadRequest(f"unexpected provider release file name {shown!r}: {_EXPECTED_NAMES}")
    for suffix, kind in _SUFFIXES:
        if name.endswith(suffix):
            break
    else:
        raise BadRequest(f"unexpected provider release file name {shown!r}: {_EXPECTED_NAMES}")
    # neither type nor version nor OS nor arch contains '_', so the parts are unambiguous
    parts = name[len(BINARY_PREFIX) : len(name) - len(suffix)].split("_")
    expected = 4 if kind is ReleaseFileKind.ZIP else 2
    if len(parts) != expected:
        raise BadRequest(f"unexpected provider release file name {shown!r}: {_EXPECTED_NAMES}")
    type_, raw_version = parts[0], parts[1]
    if not valid_provider_type(type_):
        raise BadRequest(f"provider release file {shown!r}: invalid provider type {type_!r} ({_TYPE_RULE})")
    try:
        version = str(Version.parse(raw_version))
    except BadRequest as exc:
        raise BadRequest(f"provider release file {shown!r}: {exc}") from None
    platform = None
    if kind is ReleaseFileKind.ZIP:
        try:
            platform = Platform.parse_parts(parts[2], parts[3])
        except BadRequest as exc:
            raise BadRequest(f"provider release file {shown!r}: {exc}") from None
    return ReleaseFile(kind, type_, version, platform)


# SHA256SUMS ------------------------------------------------------------------------------------


def parse_shasums(data: bytes, *, max_bytes: int = MAX_SHASUMS_BYTES) -> dict[str, str]:
    """``{file name: sha256 hex}`` from a SHA256SUMS file, as ``sha256sum`` and GoReleaser write it:
    one ``<64 lowercase hex>  <name>`` line per file, each ending in a newline.

    Strict: a line of any other shape, a name listed twice, an empty file or one over ``max_bytes``
    is refused (``InvalidArchive``). The bytes are what the signature covers, so nothing is
    normalized.
    """
    if len(data) > max_bytes:
        raise InvalidArchive(f"SHA256SUMS is {len(data)} bytes; the limit is {max_bytes}")
    if not data.strip():
        raise InvalidArchive("SHA256SUMS lists no files")
    if not data.endswith(b"\n"):
        raise InvalidArchive("SHA256SUMS does not end with a newline (is it truncated?)")
    lines = data[:-1].split(b"\n")
    if len(lines) > _MAX_SHASUMS_LINES:
        raise InvalidArchive(f"SHA256SUMS has more than {_MAX_SHASUMS_LINES} lines")
    sums: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        match = _SHASUMS_LINE_RE.match(line)
        if match is None:
            raise InvalidArchive(
                f"SHA256SUMS line {number} {line[:120].decode('utf-8', 'replace')!r} is not "
                "'<64 lowercase hex digits>  <file name>'"
            )
        name = match["name"].decode("ascii")
        if name in sums:
            raise InvalidArchive(f"SHA256SUMS lists {name!r} more than once (line {number})")
        sums[name] = match["hex"].decode("ascii")
    return sums


# manifest.json ---------------------------------------------------------------------------------


def parse_manifest(data: bytes, *, max_bytes: int = MAX_MANIFEST_BYTES) -> tuple[str, ...]:
    """The plugin protocol versions a GoReleaser ``manifest.json`` declares:
    ``{"version": 1, "metadata": {"protocol_versions": ["6.0"]}}``. ``DEFAULT_PROTOCOLS`` when the
    manifest names none; refused (``InvalidArchive``) unless one is in [5, 7), the versions
    Terraform can install."""
    if len(data) > max_bytes:
        raise InvalidArchive(f"manifest.json is {len(data)} bytes; the limit is {max_bytes}")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidArchive(f"manifest.json is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise InvalidArchive("manifest.json must be a JSON object")
    version = doc.get("version", 1)
    if type(version) is not int or version != 1:
        raise InvalidArchive(f"manifest.json has version {str(version)[:40]!r}; only version 1 is known")
    metadata = doc.get("metadata")
    if metadata is None:
        return DEFAULT_PROTOCOLS
    if not isinstance(metadata, dict):
        raise InvalidArchive("manifest.json: 'metadata' must be a JSON object")
    protocols = metadata.get("protocol_versions")
    if protocols is None:
        return DEFAULT_PROTOCOLS
    return _checked_protocols(protocols)


def _checked_protocols(protocols: object) -> tuple[str, ...]:
    if not isinstance(protocols, list) or not protocols:
        raise InvalidArchive(
            "manifest.json: 'metadata.protocol_versions' must be a non-empty list such as [\"5.0\"]"
        )
    if len(protocols) > _MAX_PROTOCOLS:
        raise InvalidArchive(f"manifest.json lists more than {_MAX_PROTOCOLS} protocol versions")
    seen: list[str] = []
    for item in protocols:
        match = _PROTOCOL_RE.match(item) if isinstance(item, str) else None
        if match is None:
            raise InvalidArchive(
                f"manifest.json: protocol version {str(item)[:40]!r} is not MAJOR.MINOR, e.g. \"5.0\""
            )
        if item in seen:
            raise InvalidArchive(f"manifest.json lists protocol version {item!r} more than once")
        seen.append(item)
    if not any(int(p.split(".")[0]) in _SUPPORTED_PROTOCOL_MAJORS for p in seen):
        raise InvalidArchive(
            f"manifest.json: protocol versions {', '.join(seen)} include none that Terraform can use "
            "(5.x or 6.x)"
        )
    return tuple(seen)
