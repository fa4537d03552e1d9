"""The providers of a bundle's ``manifest.json`` (format version 2): written from provider
versions, read back strictly.

Each entry of ``providers`` is one provider (``hostname`` "" for the exporting registry's own,
else the upstream it was copied from) with its versions; each version carries its signed
SHA256SUMS and signature (base64), the armored key that verified it, its protocols and its
platforms' zips (``providers/<sha256>.zip`` members of the bundle). Only zips the exporting
registry holds are listed. Importing checks the signature over SHA256SUMS with that key, every
zip against the signed list, and each zip's contents and ``h1`` as a publish does.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any

from mirror.domain.errors import MirrorError
from mirror.domain.provider_records import ProviderPlatformFile, ProviderVersion, provider_name
from mirror.domain.providers import MAX_SHASUMS_BYTES, Platform, ProviderAddress
from mirror.domain.urls import valid_registry_host
from mirror.domain.versions import normalize

ZIP_NAME_RE = re.compile(r"^providers/([0-9a-f]{64})\.zip$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
_MAX_SIGNATURE = 64 * 1024
_MAX_ARMOR = 256 * 1024


def provider_entries(versions: Iterable[ProviderVersion]) -> list[dict[str, Any]]:
    """The manifest's ``providers`` list: one entry per provider, its versions in the order given,
    each with the platforms whose zips are complete."""
    providers: dict[tuple[str, str, str], dict[str, Any]] = {}
    for version in versions:
        key = (version.hostname, version.address.namespace, version.address.type)
        entry = providers.setdefault(key, {"hostname": version.hostname, "namespace": version.address.namespace,
                                           "type": version.address.type, "versions": []})
        entry["versions"].append({
            "version": version.version,
            "protocols": list(version.protocols),
            "shasums": base64.b64encode(version.shasums).decode(),
            "signature": base64.b64encode(version.signature).decode(),
            "key_id": version.key_id,
            "key_armor": version.key_armor,
            "published_at": version.published_at,
            "source": version.source,
            "platforms": [
                {"os": f.platform.os, "arch": f.platform.arch, "filename": f.filename, "sha256": f.sha256,
                 "size": f.size, "h1": f.h1}
                for f in version.platforms
                if f.complete
            ],
        })
    return list(providers.values())


def parse_providers(
    raw: Any, error: type[MirrorError], refused: str = "bundle refused", document: str = "manifest.json"
) -> list[ProviderVersion]:
    """The ``providers`` list of a manifest, checked strictly; ``error`` (the bundle's error type)
    names the first problem, as ``"{refused}: {document} ..."``."""
    if not isinstance(raw, list):
        raise error(f"{refused}: {document} has a providers entry that is not a list")
    versions: list[ProviderVersion] = []
    seen: set[tuple[str, str, str, str]] = set()
    for index, provider in enumerate(raw):
        where = f"{document} providers[{index}]"
        if not isinstance(provider, dict) or not all(isinstance(provider.get(k), str) for k in ("hostname", "namespace", "type")):
            raise error(f"{refused}: {where} needs string hostname, namespace and type")
        hostname = provider["hostname"].lower()
        if hostname and not valid_registry_host(hostname):
            raise error(f"{refused}: {where}: {provider['hostname'][:100]!r} is not a registry hostname")
        try:
            address = ProviderAddress.parse_parts(provider["namespace"], provider["type"])
        except MirrorError as exc:
            raise error(f"{refused}: {where}: {exc}") from None
        entries = provider.get("versions")
        if not isinstance(entries, list) or not entries:
            raise error(f"{refused}: {where} ({address}) has no versions")
        for entry in entries:
            version = _parse_version(hostname, address, entry, where, error, refused)
            key = (hostname, address.namespace.lower(), address.type, version.version)
            if key in seen:
                raise error(f"{refused}: {document} lists {provider_name(hostname, address)} {version.version} twice")
            seen.add(key)
            versions.append(version)
    return versions


def _parse_version(
    hostname: str, address: ProviderAddress, entry: Any, where: str, error: type[MirrorError], refused: str
) -> ProviderVersion:
    name = provider_name(hostname, address)
    if not isinstance(entry, dict):
        raise error(f"{refused}: {where} ({name}) has a version that is not an object")
    try:
        version = normalize(_text(entry, "version", 128))
        protocols = entry.get("protocols")
        if not isinstance(protocols, list) or not protocols or not all(isinstance(p, str) and len(p) <= 16 for p in protocols):
            raise ValueError("protocols must be a list of strings such as [\"5.0\"]")
        shasums = _base64(entry, "shasums", MAX_SHASUMS_BYTES)
        signature = _base64(entry, "signature", _MAX_SIGNATURE)
        platforms = entry.get("platforms")
        if not isinstance(platforms, list) or not platforms:
            raise ValueError("it has no platforms")
        files = tuple(sorted((_platform(item) for item in platforms), key=lambda f: f.platform))
        if len({f.platform for f in files}) != len(files):
            raise ValueError("a platform is listed twice")
        source = entry.get("source")
        if source is not None and not isinstance(source, str):
            raise ValueError("source must be a string")
        return ProviderVersion(
            hostname=hostname,
            address=address,
            version=version,
            protocols=tuple(protocols),
            platforms=files,
            shasums=shasums,
            signature=signature,
            key_id=_text(entry, "key_id", 40),
            key_armor=_text(entry, "key_armor", _MAX_ARMOR),
            published_at=_text(entry, "published_at", 64),
            source=source[:500] if source else None,
        )
    except (MirrorError, ValueError, TypeError) as exc:
        raise error(f"{refused}: {where} ({name}): {exc}") from None


def _platform(item: Any) -> ProviderPlatformFile:
    if not isinstance(item, dict):
        raise ValueError("a platform is not an object")
    sha256, size, h1 = item.get("sha256"), item.get("size"), item.get("h1")
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256):
        raise ValueError("a platform's sha256 is not 64 lowercase hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError("a platform's size is not a positive integer")
    if not isinstance(h1, str) or not h1.startswith("h1:") or len(h1) > 100:
        raise ValueError("a platform's h1 is not an h1: hash")
    platform = Platform.parse_parts(_text(item, "os", 32), _text(item, "arch", 32))
    return ProviderPlatformFile(platform, _text(item, "filename", 255), sha256, size, h1)


def _text(entry: dict[str, Any], key: str, limit: int) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{key} must be a string of 1 to {limit} characters")
    return value


def _base64(entry: dict[str, Any], key: str, limit: int) -> bytes:
    value = _text(entry, key, limit * 4 // 3 + 4)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{key} is not base64") from None
