"""The JSON answers of the two provider protocols Terraform speaks, built from plain values.

- ``providers.v1`` (the provider registry protocol): ``GET :ns/:type/versions``
  (``versions_answer``) and ``GET :ns/:type/:version/download/:os/:arch`` (``download_answer``).
- The provider network mirror protocol: ``GET HOSTNAME/ns/type/index.json``
  (``mirror_index_answer``) and ``GET HOSTNAME/ns/type/VERSION.json`` (``mirror_version_answer``).

Everything here is pure: no HTTP, no storage. URLs are passed in as the caller builds them; they
may be relative (Terraform resolves a download answer's URLs against the download endpoint's URL,
and a mirror archive's ``url`` against the version JSON's URL).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from mirror.domain.providers import Platform, ProviderAddress
from mirror.domain.versions import Version

__all__ = [
    "ArmoredKey",
    "ProviderVersionInfo",
    "download_answer",
    "mirror_index_answer",
    "mirror_version_answer",
    "versions_answer",
]


@dataclass(frozen=True, slots=True)
class ProviderVersionInfo:
    """One version of a provider as the ``versions`` answer lists it: the version (SemVer text),
    the plugin protocol versions it speaks (``("5.0",)``) and the platforms it has a zip for."""

    version: str
    protocols: tuple[str, ...]
    platforms: tuple[Platform, ...]


class ArmoredKey(Protocol):
    """What ``download_answer`` needs of a signing key: its long key id (16 hex digits) and the
    ASCII-armored public key. ``mirror.formats.openpgp.SigningKey`` has both."""

    @property
    def key_id(self) -> str: ...

    @property
    def ascii_armor(self) -> str: ...


def _newest_first(versions: Iterable[str]) -> list[str]:
    """Distinct version strings, newest first by SemVer precedence (as the module protocol's
    ``versions`` answer orders them); the first spelling of a version is kept."""
    by_version: dict[Version, str] = {}
    for text in versions:
        by_version.setdefault(Version.parse(text), text)
    return [by_version[v] for v in sorted(by_version, reverse=True)]


# providers.v1 ----------------------------------------------------------------------------------


def versions_answer(
    address: ProviderAddress,
    versions: Iterable[ProviderVersionInfo],
    warnings: Sequence[str] = (),
) -> dict:
    """The body of ``GET /v1/providers/:ns/:type/versions``::

        {"id": "ns/type",
         "versions": [{"version": "1.0.0", "protocols": ["5.0"],
                       "platforms": [{"os": "linux", "arch": "amd64"}]}],
         "warnings": ["..."]}

    Versions come newest first (one entry per version: a repeated version keeps its first entry),
    each version's platforms sorted by OS then architecture, protocols in the order given.
    ``warnings`` (Terraform prints each on ``init`` under "Additional provider information from
    registry", its only deprecation channel) is left out when there are none, so a provider that
    is not deprecated answers exactly as the public registry's plain entries do.
    """
    infos: dict[str, ProviderVersionInfo] = {}
    for info in versions:
        infos.setdefault(info.version, info)
    answer: dict = {
        "id": str(address),
        "versions": [
            {
                "version": infos[text].version,
                "protocols": list(infos[text].protocols),
                "platforms": [{"os": p.os, "arch": p.arch} for p in sorted(set(infos[text].platforms))],
            }
            for text in _newest_first(infos)
        ],
    }
    if warnings:
        answer["warnings"] = list(warnings)
    return answer


def download_answer(
    platform: Platform,
    *,
    protocols: Sequence[str],
    filename: str,
    download_url: str,
    shasums_url: str,
    shasums_signature_url: str,
    shasum: str,
    signing_keys: Iterable[ArmoredKey],
    key_source: str = "",
    key_source_url: str | None = None,
) -> dict:
    """The body of ``GET /v1/providers/:ns/:type/:version/download/:os/:arch``::

        {"protocols": ["5.0"], "os": "linux", "arch": "amd64",
         "filename": "terraform-provider-TYPE_VERSION_linux_amd64.zip",
         "download_url": "...", "shasums_url": "...", "shasums_signature_url": "...",
         "shasum": "<sha256 hex of the zip>",
         "signing_keys": {"gpg_public_keys": [{"key_id": "...", "ascii_armor": "...",
                                               "trust_signature": "", "source": "...",
                                               "source_url": null}]}}

    ``signing_keys`` are listed in the order given (Terraform tries them in order); every key gets
    the same ``key_source`` (who vouches for the keys, e.g. the namespace) and ``key_source_url``
    (null when there is none, as in the public registry's answers). ``trust_signature`` is always
    empty: these are self-signed keys, which Terraform reports as "self-signed, key ID ...".
    """
    return {
        "protocols": list(protocols),
        "os": platform.os,
        "arch": platform.arch,
        "filename": filename,
        "download_url": download_url,
        "shasums_url": shasums_url,
        "shasums_signature_url": shasums_signature_url,
        "shasum": shasum,
        "signing_keys": {
            "gpg_public_keys": [
                {
                    "key_id": key.key_id,
                    "ascii_armor": key.ascii_armor,
                    "trust_signature": "",
                    "source": key_source,
                    "source_url": key_source_url,
                }
                for key in signing_keys
            ]
        },
    }


# Network mirror --------------------------------------------------------------------------------


def mirror_index_answer(versions: Iterable[str]) -> dict:
    """The body of ``GET HOSTNAME/ns/type/index.json``: ``{"versions": {"1.0.0": {}}}``, one empty
    object per distinct version, newest first."""
    return {"versions": {text: {} for text in _newest_first(versions)}}


def mirror_version_answer(archives: Mapping[Platform, tuple[str, Sequence[str]]]) -> dict:
    """The body of ``GET HOSTNAME/ns/type/VERSION.json`` from ``{platform: (url, hashes)}``::

        {"archives": {"linux_amd64": {"url": "...zip", "hashes": ["h1:...", "zh:..."]}}}

    Platforms are sorted; hashes stay in the order given (``h1:`` and/or ``zh:`` entries; Terraform
    accepts either kind alone and refuses an archive matching none). An archive with no hashes gets
    no ``hashes`` key, which Terraform installs unverified: callers should always have some.
    """
    answer: dict[str, dict] = {}
    for platform in sorted(archives):
        url, hashes = archives[platform]
        entry: dict = {"url": url}
        if hashes:
            entry["hashes"] = list(hashes)
        answer[str(platform)] = entry
    return {"archives": answer}
