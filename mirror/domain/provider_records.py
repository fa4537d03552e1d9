"""Plain records of providers passed between the layers: signing keys, providers, versions and
their platform zips, and the rule that merges a version published again. No I/O here.

Where a provider lives. A provider's full address is ``HOSTNAME/namespace/type``. This
registry's own providers (published to it) are recorded with ``hostname == ""`` and served under
whatever ``[server] registry_host`` is, so renaming the registry moves nothing; providers copied
from an upstream (pull-through, ``mirror sync``, bundles of them) are recorded under that
upstream's hostname (``registry.terraform.io``), which is how Terraform names them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from mirror.domain.blobs import provider_archive_key
from mirror.domain.lifecycle import Deprecation
from mirror.domain.providers import Platform, ProviderAddress
from mirror.domain.provenance import NotOwner, Owner
from mirror.domain.versions import Version

__all__ = [
    "LOCAL_HOST",
    "Deprecation",
    "NewProviderVersion",
    "ProviderKey",
    "ProviderPlatformFile",
    "ProviderPublishOutcome",
    "ProviderRecord",
    "ProviderVersion",
    "deprecation_warnings",
    "merge_version",
    "provider_name",
    "provider_refusal",
]

#: the hostname recorded for this registry's own providers
LOCAL_HOST = ""


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """A namespace's public signing key for provider releases."""

    namespace: str
    key_id: str  # the primary key's long key id, 16 upper-case hex digits
    fingerprint: str
    algorithm: str  # "rsa", "ecdsa" or "eddsa"
    ascii_armor: str  # the public certificate, re-armored
    created_at: str  # RFC 3339

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "key_id": self.key_id,
            "fingerprint": self.fingerprint,
            "algorithm": self.algorithm,
            "ascii_armor": self.ascii_armor,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class ProviderPlatformFile:
    """One platform's zip of a provider version.

    A zip checked at publish time is complete (``size`` and ``h1`` known) and in the blob store
    under ``blob_key``. A zip known from an upstream's signed SHA256SUMS but not fetched yet has
    ``size`` and ``h1`` None and ``upstream_url`` set: the first download fetches it, checks it
    against ``sha256`` and completes the record.
    """

    platform: Platform
    filename: str  # terraform-provider-TYPE_VERSION_OS_ARCH.zip
    sha256: str  # hex, as the signed SHA256SUMS lists it
    size: int | None = None
    h1: str | None = None  # "h1:..." over the zip's entries
    upstream_url: str | None = None  # where a pull-through fetches it from

    @property
    def complete(self) -> bool:
        return self.size is not None and self.h1 is not None

    @property
    def blob_key(self) -> str:
        return provider_archive_key(self.sha256)

    @property
    def hashes(self) -> list[str]:
        """What the network mirror lists for it: ``h1:`` when known, then ``zh:``."""
        return ([self.h1] if self.h1 else []) + ["zh:" + self.sha256]

    def to_json(self) -> dict[str, Any]:
        return {
            "os": self.platform.os,
            "arch": self.platform.arch,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "h1": self.h1,
            "upstream_url": self.upstream_url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProviderPlatformFile:
        return cls(
            platform=Platform(data["os"], data["arch"]),
            filename=data["filename"],
            sha256=data["sha256"],
            size=data.get("size"),
            h1=data.get("h1"),
            upstream_url=data.get("upstream_url"),
        )


@dataclass(frozen=True, slots=True)
class ProviderVersion:
    """A version of a provider: its signed SHA256SUMS, the key that verified it, and the
    platforms served. ``shasums`` and ``signature`` are kept byte for byte (Terraform verifies
    the signature over them and records a ``zh:`` hash for every line)."""

    hostname: str  # LOCAL_HOST for this registry's own providers
    address: ProviderAddress
    version: str  # normalized SemVer
    protocols: tuple[str, ...]
    platforms: tuple[ProviderPlatformFile, ...]  # sorted by platform
    shasums: bytes
    signature: bytes
    key_id: str
    key_armor: str
    published_at: str
    source: str | None = None  # "upload", a repository URL, "upstream:HOST", "bundle"
    revoked_at: str | None = None
    deprecation: Deprecation | None = None

    def platform(self, platform: Platform) -> ProviderPlatformFile | None:
        return next((item for item in self.platforms if item.platform == platform), None)

    @property
    def platform_names(self) -> list[str]:
        return [str(item.platform) for item in self.platforms]


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    hostname: str
    address: ProviderAddress
    created_at: str
    owner: Owner = Owner("upload")
    source_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "namespace": self.address.namespace,
            "type": self.address.type,
            "owner_source": str(self.owner),
            "owner": self.owner.describe(self.source_url),
            "source_url": self.source_url,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class NewProviderVersion:
    """A version to record for ``owner``. The store appends ``provider.created`` (a new
    provider), ``provider.version_released`` (a new version) or ``provider.platforms_added``
    (new platforms of a version) in the same transaction."""

    version: ProviderVersion
    owner: Owner = Owner("upload")
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderPublishOutcome:
    #: created: a new version; extended: new platforms (or fetched zips) recorded for it;
    #: unchanged: nothing new; conflict: the version exists with another SHA256SUMS
    status: Literal["created", "extended", "unchanged", "conflict"]
    version: ProviderVersion  # as stored after the write
    added: tuple[Platform, ...] = ()  # platforms new to the version


def merge_version(
    stored: ProviderVersion, new: ProviderVersion
) -> tuple[Literal["created", "extended", "unchanged", "conflict"], ProviderVersion, tuple[Platform, ...]]:
    """What publishing ``new`` over ``stored`` (the same version) does.

    Another SHA256SUMS is a conflict: a version is immutable. The same SHA256SUMS may bring
    platforms the version does not have yet (a release uploaded in parts, a platform a mirror
    started to serve) and may complete a platform known only from the upstream's list (its zip
    fetched); anything else is unchanged. A revoked version published again with the same
    SHA256SUMS is reinstated ("created", every platform added)."""
    if stored.shasums != new.shasums:
        return "conflict", stored, ()
    by_platform = {item.platform: item for item in stored.platforms}
    added: list[Platform] = []
    changed = False
    for item in new.platforms:
        current = by_platform.get(item.platform)
        if current is None:
            by_platform[item.platform] = item
            added.append(item.platform)
            changed = True
        elif not current.complete and item.complete and item.sha256 == current.sha256:
            by_platform[item.platform] = replace(item, upstream_url=item.upstream_url or current.upstream_url)
            changed = True
    merged = replace(stored, platforms=tuple(by_platform[p] for p in sorted(by_platform)))
    if stored.revoked_at is not None:
        reinstated = replace(merged, revoked_at=None, published_at=new.published_at, source=new.source)
        return "created", reinstated, tuple(sorted(by_platform))
    if not changed:
        return "unchanged", stored, ()
    return "extended", merged, tuple(added)


def deprecation_warnings(versions: list[ProviderVersion]) -> list[str]:
    """The ``warnings`` of a ``versions`` answer: one line per deprecated live version, newest
    first (Terraform prints each on ``init``: its only deprecation channel)."""
    lines = []
    for version in sorted(versions, key=lambda v: Version.parse(v.version), reverse=True):
        if version.deprecation is not None and version.revoked_at is None:
            line = f"Version {version.version} of {version.address} is deprecated: {version.deprecation.reason}"
            if version.deprecation.replacement:
                line += f" Use {version.deprecation.replacement} instead."
            lines.append(line)
    return lines


def provider_name(hostname: str, address: ProviderAddress) -> str:
    """How messages name a provider: ``acme/widget`` (own) or ``registry.terraform.io/hashicorp/aws``."""
    return f"{hostname}/{address}" if hostname else str(address)


def provider_refusal(
    hostname: str, address: ProviderAddress, owner: Owner, actor: Owner, action: str, *, source_url: str | None = None
) -> NotOwner:
    """A store's refusal of ``actor`` trying ``action`` on a provider that ``owner`` owns."""
    return NotOwner(
        f"provider {provider_name(hostname, address)} belongs to owner source {owner} "
        f"({owner.describe(source_url)}): {actor.describe()} cannot {action} it",
        owner=owner,
    )
