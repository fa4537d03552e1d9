"""The one path by which a provider version enters the registry, and the namespaces' signing keys.

An upload, a GitHub release, a sync or a bundle import hands ``publish`` the release's files as
they lie on disk. They are checked whole first (``provider_release.check_release``: names,
the signature with one of the namespace's keys, every zip against the signed SHA256SUMS, every
zip's contents); then the zips go to the blob store under their content address and the version
is recorded with its events in one metadata transaction. Nothing of a refused release is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from mirror.domain.errors import BadRequest, Conflict, NotFound
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import (
    LOCAL_HOST,
    Deprecation,
    NewProviderVersion,
    ProviderKey,
    ProviderPlatformFile,
    ProviderPublishOutcome,
    ProviderVersion,
    provider_name,
    provider_refusal,
)
from mirror.domain.providers import ProviderAddress
from mirror.domain.timeutil import rfc3339
from mirror.formats.openpgp import SigningKey, parse_public_key
from mirror.formats.provider_zip import ProviderZipLimits
from mirror.services.lifecycle import remove_blobs
from mirror.services.provider_release import CheckedRelease, check_release
from mirror.storage.protocols import BlobStore, MetadataStore

log = structlog.get_logger("mirror.providers")

#: most signing keys one namespace may hold (each is tried on every publish)
MAX_KEYS_PER_NAMESPACE = 32
#: longest deprecation reason (Terraform prints it on every init)
MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class AddedKey:
    key: ProviderKey
    created: bool  # False: the namespace had that key already
    warnings: tuple[str, ...]


def signing_key(key: ProviderKey) -> SigningKey:
    """A stored key in the form signature checks take."""
    return SigningKey(key.key_id, key.fingerprint, key.algorithm, key.ascii_armor)


class ProviderRegistry:
    """Signing keys per namespace, and the publishing and reading of provider versions."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        limits: ProviderZipLimits = ProviderZipLimits(),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._limits = limits
        self._clock = clock

    # -- keys ------------------------------------------------------------------------------------

    async def add_key(self, namespace: str, armored: str | bytes) -> AddedKey:
        """Parse and record one armored public key for ``namespace`` (BadRequest when it is not
        one, or the namespace has ``MAX_KEYS_PER_NAMESPACE`` already)."""
        parsed = parse_public_key(armored)
        key = ProviderKey(
            namespace=namespace,
            key_id=parsed.key_id,
            fingerprint=parsed.fingerprint,
            algorithm=parsed.algorithm,
            ascii_armor=parsed.ascii_armor,
            created_at=rfc3339(self._clock()),
        )
        existing = await self._store.list_provider_keys(namespace)
        for old in existing:
            if old.key_id == key.key_id:
                return AddedKey(old, False, parsed.warnings)
        if len(existing) >= MAX_KEYS_PER_NAMESPACE:
            raise BadRequest(
                f"namespace {namespace!r} has {len(existing)} provider signing keys, the most it may hold; "
                "remove one first"
            )
        created = await self._store.add_provider_key(key)
        log.info("provider signing key added", namespace=namespace, key_id=key.key_id, algorithm=key.algorithm)
        return AddedKey(key, created, parsed.warnings)

    async def keys(self, namespace: str) -> list[ProviderKey]:
        return await self._store.list_provider_keys(namespace)

    async def remove_key(self, namespace: str, key_id: str) -> None:
        """Remove a key (NotFound when the namespace has none by that id). Versions it verified
        keep serving it: Terraform checks each against the key recorded with it."""
        if not await self._store.remove_provider_key(namespace, key_id.upper()):
            raise NotFound(f"namespace {namespace!r} has no provider signing key {key_id[:40]!r}")
        log.info("provider signing key removed", namespace=namespace, key_id=key_id.upper())

    # -- publishing ------------------------------------------------------------------------------

    async def check(self, address: ProviderAddress, version: str, files: Mapping[str, Path]) -> CheckedRelease:
        """Check a release against the namespace's keys; nothing is stored."""
        keys = [signing_key(k) for k in await self._store.list_provider_keys(address.namespace)]
        return await check_release(address, version, files, keys, limits=self._limits)

    async def publish(
        self,
        address: ProviderAddress,
        version: str,
        files: Mapping[str, Path],
        *,
        owner: Owner = Owner("upload"),
        source: str = "upload",
        source_url: str | None = None,
    ) -> ProviderPublishOutcome:
        """Check the release, store its zips, record the version; Conflict when the version is
        there with another SHA256SUMS, NotOwner when another source owns the provider."""
        record = await self._store.get_provider(LOCAL_HOST, address)
        if record is not None and record.owner != owner:  # refused before anything is read
            raise provider_refusal(LOCAL_HOST, address, record.owner, owner, "add versions to", source_url=record.source_url)
        checked = await self.check(address, version, files)
        for item in checked.platforms:
            key = ProviderPlatformFile(item.platform, item.filename, item.sha256).blob_key
            if not await self._blobs.exists(key):
                await self._blobs.put_file(key, item.path, sha256=item.sha256, size=item.size)
        return await self.record(checked, owner=owner, source=source, source_url=source_url)

    async def record(
        self,
        checked: CheckedRelease,
        *,
        owner: Owner,
        source: str,
        source_url: str | None = None,
        hostname: str = LOCAL_HOST,
    ) -> ProviderPublishOutcome:
        """Record a checked release whose zips are stored already."""
        new = ProviderVersion(
            hostname=hostname,
            address=checked.address,
            version=checked.version,
            protocols=checked.protocols,
            platforms=tuple(
                ProviderPlatformFile(item.platform, item.filename, item.sha256, item.size, item.h1)
                for item in checked.platforms
            ),
            shasums=checked.shasums,
            signature=checked.signature,
            key_id=checked.key.key_id,
            key_armor=checked.key.ascii_armor,
            published_at=rfc3339(self._clock()),
            source=source,
        )
        outcome = await self._store.publish_provider_version(NewProviderVersion(new, owner, source_url))
        if outcome.status == "conflict":
            raise Conflict(
                f"version {checked.version} of provider {provider_name(hostname, checked.address)} exists with "
                "another SHA256SUMS; a published version never changes (publish a new version)"
            )
        log.info(
            "provider version recorded",
            provider=provider_name(hostname, checked.address),
            version=checked.version,
            status=outcome.status,
            platforms=[str(p) for p in outcome.added],
        )
        return outcome

    # -- lifecycle -------------------------------------------------------------------------------

    async def deprecate(
        self, address: ProviderAddress, version: str, reason: str, replacement: str | None, *, owner: Owner | None
    ) -> ProviderVersion:
        """Deprecate a live version of this registry's own provider (``owner`` None: whoever owns
        it, an admin's change). Terraform prints the reason on ``init`` (the versions answer's
        ``warnings``)."""
        reason = " ".join(reason.split())
        if not 1 <= len(reason) <= MAX_REASON:
            raise BadRequest(f"reason must be 1 to {MAX_REASON} characters of text")
        if replacement is not None:
            replacement = replacement.strip()
            if not 1 <= len(replacement) <= 200 or not replacement.isprintable():
                raise BadRequest("replacement must be 1 to 200 printable characters, e.g. a version such as 2.0.0")
        deprecation = Deprecation(reason, replacement, rfc3339(self._clock()))
        if not await self._store.deprecate_provider_version(LOCAL_HOST, address, version, deprecation, owner=owner):
            raise NotFound(f"version {version} of provider {address} is not live here")
        return await self.version(address, version)

    async def revoke(self, address: ProviderAddress, version: str, *, owner: Owner | None) -> None:
        """Take a live version out of service: gone from ``versions`` and downloads."""
        if not await self._store.revoke_provider_version(LOCAL_HOST, address, version, owner=owner):
            raise NotFound(f"version {version} of provider {address} is not live here")
        log.info("provider version revoked", provider=str(address), version=version)

    async def delete(self, address: ProviderAddress) -> None:
        """Remove this registry's own provider and all its versions (an admin's change, whatever
        owns it), then the zips no other provider version lists."""
        if await self._store.get_provider(LOCAL_HOST, address) is None:
            raise NotFound(f"provider {address} not found")
        orphans = await self._store.delete_provider(LOCAL_HOST, address)
        await remove_blobs(self._blobs, orphans)
        log.info("provider deleted", provider=str(address), zips_removed=len(orphans))

    # -- reading ---------------------------------------------------------------------------------

    async def versions(self, address: ProviderAddress, hostname: str = LOCAL_HOST) -> list[ProviderVersion]:
        """Live versions; NotFound when the provider has none."""
        found = await self._store.provider_versions(hostname, address)
        if not found:
            raise NotFound(f"provider {provider_name(hostname, address)} not found")
        return found

    async def version(self, address: ProviderAddress, version: str, hostname: str = LOCAL_HOST) -> ProviderVersion:
        """A live version; NotFound otherwise."""
        found = await self._store.get_provider_version(hostname, address, version)
        if found is None or found.revoked_at is not None:
            raise NotFound(f"version {version} of provider {provider_name(hostname, address)} not found")
        return found
