"""The check every provider release goes through before anything of it is stored.

Whoever sends a release (an upload to ``POST /api/v1/providers/:ns/:type/:version``, a GitHub
release, ``mirror sync``, a bundle import), ``check_release`` takes its files as they lie on disk
and either refuses the release with one readable line naming the file at fault, or describes it as
a :class:`CheckedRelease` ready to be stored. Nothing is stored here.

What is checked, in this order (cheap checks first; nothing unsigned is unpacked):

1. the file names: exactly one ``terraform-provider-TYPE_VERSION_SHA256SUMS``, one
   ``..._SHA256SUMS.sig``, zero or one ``..._manifest.json`` and one or more
   ``..._OS_ARCH.zip``, all for this provider type and version, spelled as GoReleaser writes them
   (the version normalized, without ``v``); any other file is refused by name;
2. the namespace has signing keys (none: refused, telling how to add one);
3. SHA256SUMS is well formed, and the signature, a binary detached OpenPGP signature, verifies
   over its exact bytes with one of the keys (tried in order, as Terraform does);
4. every zip is listed in SHA256SUMS and its sha256 is the listed one; the manifest too, when
   SHA256SUMS lists it (GoReleaser's standard set-up does; older set-ups do not, and then the
   manifest, which only names protocol versions, is taken as sent);
5. every zip passes :func:`mirror.formats.provider_zip.check_provider_zip` (file entries only,
   safe names, bounded sizes, the provider binary at the root), in a worker thread.

SHA256SUMS is kept whole, byte for byte, and may list platforms whose zips were not sent:
Terraform records a ``zh:`` hash in the lock file for every line of the signed SHA256SUMS, so
serving it back unchanged keeps the lock files of every platform valid, and editing it would
break the signature anyway. A platform is served only if its zip was sent and checked.

Errors are :class:`BadRequest` (400), :class:`InvalidArchive` (422) or :class:`PayloadTooLarge`
(413), each one line starting with the name of the file at fault.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from mirror.domain.errors import BadRequest, InvalidArchive, MirrorError, PayloadTooLarge
from mirror.domain.providers import (
    DEFAULT_PROTOCOLS,
    MAX_MANIFEST_BYTES,
    MAX_SHASUMS_BYTES,
    Platform,
    ProviderAddress,
    ReleaseFile,
    ReleaseFileKind,
    parse_manifest,
    parse_release_file_name,
    parse_shasums,
)
from mirror.domain.versions import Version
from mirror.formats.archive_limits import describe_size
from mirror.formats.openpgp import MAX_SIGNATURE_BYTES, SigningKey, verify_detached
from mirror.formats.provider_zip import ProviderZipLimits, check_provider_zip, zh_hash

__all__ = [
    "CheckedPlatform",
    "CheckedRelease",
    "check_release",
    "no_keys_message",
]


@dataclass(frozen=True, slots=True)
class CheckedPlatform:
    """One checked zip of a release: what the registry stores and serves for a platform."""

    platform: Platform
    filename: str  # as listed in SHA256SUMS: terraform-provider-TYPE_VERSION_OS_ARCH.zip
    sha256: str  # hex, equal to the SHA256SUMS line (the lock file's zh: hash)
    size: int  # bytes of the zip
    h1: str  # "h1:..." over the zip's entries (the network mirror's hash)
    path: Path  # where the checked zip lies

    @property
    def zh(self) -> str:
        return "zh:" + self.sha256


@dataclass(frozen=True, slots=True)
class CheckedRelease:
    """A provider release that passed :func:`check_release`.

    ``shasums`` and ``signature`` are the exact bytes received, to be served back verbatim
    (Terraform verifies the signature over them). ``sums`` is SHA256SUMS parsed, every line,
    including platforms whose zips were not sent. ``platforms`` are the zips sent, sorted by
    platform.
    """

    address: ProviderAddress
    version: str  # normalized: 1.2.0, never v1.2
    protocols: tuple[str, ...]
    key: SigningKey  # the namespace key that verified the signature
    shasums: bytes
    signature: bytes
    sums: Mapping[str, str]  # {file name: sha256 hex}, in SHA256SUMS order
    platforms: tuple[CheckedPlatform, ...]
    shasums_filename: str
    signature_filename: str

    def platform(self, platform: Platform) -> CheckedPlatform | None:
        return next((item for item in self.platforms if item.platform == platform), None)

    @property
    def zh_hashes(self) -> tuple[str, ...]:
        """``zh:`` for every line of SHA256SUMS, as Terraform's lock file records them after a
        signed registry install."""
        return tuple("zh:" + digest for digest in self.sums.values())


def no_keys_message(namespace: str) -> str:
    return (
        f"namespace {namespace!r} has no provider signing keys to verify the release with: add the "
        f"public key that signed SHA256SUMS with `mirror provider keys add {namespace} KEYFILE` "
        f"(or POST /api/v1/providers/{namespace}/keys)"
    )


async def check_release(
    address: ProviderAddress,
    version: str,
    files: Mapping[str, Path],
    keys: Sequence[SigningKey],
    *,
    limits: ProviderZipLimits = ProviderZipLimits(),
) -> CheckedRelease:
    """Check the release ``address`` ``version`` made of ``files`` (``{file name: path}``) against
    the namespace's signing ``keys``; see the module's description for what is checked.

    ``version`` may be written ``v1.2``; the file names must use the normalized spelling.
    Blocking reads run in worker threads.
    """
    normalized = str(Version.parse(version))
    named = _sort_names(address, normalized, files)
    shasums_name = named[ReleaseFileKind.SHASUMS][0].name
    signature_name = named[ReleaseFileKind.SIGNATURE][0].name
    if not keys:
        raise BadRequest(no_keys_message(address.namespace))

    shasums = await _read_small(shasums_name, files[shasums_name], MAX_SHASUMS_BYTES)
    signature = await _read_small(signature_name, files[signature_name], MAX_SIGNATURE_BYTES)
    with _about(shasums_name):
        sums = parse_shasums(shasums)
    with _about(signature_name):
        key = await asyncio.to_thread(verify_detached, shasums, signature, keys)

    protocols = DEFAULT_PROTOCOLS
    for manifest in named[ReleaseFileKind.MANIFEST]:
        data = await _read_small(manifest.name, files[manifest.name], MAX_MANIFEST_BYTES)
        if manifest.name in sums:
            _check_digest(manifest.name, sums[manifest.name], _sha256_hex(data))
        with _about(manifest.name):
            protocols = parse_manifest(data)

    zips = named[ReleaseFileKind.ZIP]
    for item in zips:  # every zip is listed before any is read
        if item.name not in sums:
            raise InvalidArchive(
                f"{item.name}: not listed in {shasums_name}; every zip must be in the signed SHA256SUMS"
            )
    checked = [await _check_zip(item, files[item.name], sums[item.name], address, limits) for item in zips]
    return CheckedRelease(
        address=address,
        version=normalized,
        protocols=protocols,
        key=key,
        shasums=shasums,
        signature=signature,
        sums=MappingProxyType(sums),
        platforms=tuple(sorted(checked, key=lambda item: item.platform)),
        shasums_filename=shasums_name,
        signature_filename=signature_name,
    )


# File names --------------------------------------------------------------------------------------

_EXPECTED = "a SHA256SUMS, its .sig, an optional manifest.json and one zip per platform"


def _sort_names(
    address: ProviderAddress, version: str, files: Mapping[str, Path]
) -> dict[ReleaseFileKind, list[ReleaseFile]]:
    """The release's files by kind, each name checked; the counts as a release needs them."""
    found: dict[ReleaseFileKind, list[tuple[str, ReleaseFile]]] = {kind: [] for kind in ReleaseFileKind}
    for name in sorted(files):
        shown = repr(name[:200])
        try:
            parsed = parse_release_file_name(name)
        except BadRequest as exc:
            raise BadRequest(f"{exc.message} (a provider release is {_EXPECTED})") from None
        if parsed.type != address.type:
            raise BadRequest(
                f"{shown} is a file of provider type {parsed.type!r}, not of {address.type!r} ({address})"
            )
        if parsed.version != version:
            raise BadRequest(f"{shown} is a file of version {parsed.version}, not of {version}")
        found[parsed.kind].append((name, parsed))
    for kind, label in ((ReleaseFileKind.SHASUMS, "SHA256SUMS"), (ReleaseFileKind.SIGNATURE, "SHA256SUMS.sig")):
        if len(found[kind]) != 1:
            raise BadRequest(
                f"a provider release needs exactly one {label} file; got {_listed(found[kind]) or 'none'}"
            )
    if len(found[ReleaseFileKind.MANIFEST]) > 1:
        manifests = _listed(found[ReleaseFileKind.MANIFEST])
        raise BadRequest(f"a provider release has at most one manifest.json; got {manifests}")
    zips = found[ReleaseFileKind.ZIP]
    if not zips:
        raise BadRequest(
            f"the release of {address} {version} has no zip: send one "
            f"terraform-provider-{address.type}_{version}_OS_ARCH.zip per platform"
        )
    by_platform: dict[Platform, str] = {}
    for name, parsed in zips:
        assert parsed.platform is not None
        if parsed.platform in by_platform:
            raise BadRequest(
                f"{by_platform[parsed.platform]!r} and {name!r} are both the {parsed.platform} zip; send one"
            )
        by_platform[parsed.platform] = name
    for entries in found.values():
        for name, parsed in entries:
            if parsed.name != name:
                raise BadRequest(
                    f"{name[:200]!r} must be named {parsed.name!r} (the version written {version}, "
                    "as GoReleaser writes it)"
                )
    return {kind: [parsed for _name, parsed in entries] for kind, entries in found.items()}


def _listed(entries: list[tuple[str, ReleaseFile]]) -> str:
    return ", ".join(repr(name[:200]) for name, _parsed in entries)


# Reading and checking ----------------------------------------------------------------------------


class _about:
    """Prefix the message of a refusal raised inside with the file it is about (same type and
    status): ``with _about(name): ...``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> bool:
        if isinstance(exc, MirrorError) and not exc.message.startswith(self.name + ":"):
            raise type(exc)(f"{self.name}: {exc.message}", status=exc.status) from None
        return False


def _size(name: str, path: Path) -> int:
    try:
        info = path.stat()
    except OSError as exc:
        raise BadRequest(f"{name}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not path.is_file():
        raise BadRequest(f"{name}: is not a regular file")
    return info.st_size


async def _read_small(name: str, path: Path, limit: int) -> bytes:
    size = await asyncio.to_thread(_size, name, path)
    if size > limit:
        raise PayloadTooLarge(f"{name}: is {size} bytes; the limit is {limit}")
    if size == 0:
        raise BadRequest(f"{name}: is empty")
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise BadRequest(f"{name}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > limit:  # grew since its size was taken
        raise PayloadTooLarge(f"{name}: is over {limit} bytes")
    return data


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_digest(name: str, listed: str, actual: str) -> None:
    if not hmac.compare_digest(listed, actual):
        raise InvalidArchive(
            f"{name}: sha256 is {actual}, but the signed SHA256SUMS lists {listed} "
            "(the file was changed or is not the one that was signed)"
        )


async def _check_zip(
    item: ReleaseFile, path: Path, listed: str, address: ProviderAddress, limits: ProviderZipLimits
) -> CheckedPlatform:
    """The zip's sha256 against its signed line first (only signed content is unpacked), then
    its contents."""
    assert item.platform is not None
    size = await asyncio.to_thread(_size, item.name, path)
    if size > limits.max_zip_bytes:
        raise PayloadTooLarge(
            f"{item.name}: is {describe_size(size)}; the limit is {describe_size(limits.max_zip_bytes)}"
        )
    try:
        actual = (await asyncio.to_thread(zh_hash, path)).removeprefix("zh:")
    except OSError as exc:
        raise BadRequest(f"{item.name}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    _check_digest(item.name, listed, actual)
    with _about(item.name):
        try:
            info = await asyncio.to_thread(check_provider_zip, path, address.type, limits)
        except OSError as exc:
            raise BadRequest(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    _check_digest(item.name, listed, info.sha256)  # unchanged while it was checked
    return CheckedPlatform(
        platform=item.platform,
        filename=item.name,
        sha256=info.sha256,
        size=info.size,
        h1=info.h1,
        path=path,
    )
