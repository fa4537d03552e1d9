"""A module version's lifecycle after publishing: deprecate, revoke, and deleting a whole module;
and the removal of archives no version uses any more, shared with providers.

Writes go through the store with the owner the caller acts as (publish scope: uploads; admin: None,
whatever owns the module), and drop the module's catalog entry so this process reads them back at
once. Orphan archives are deleted from the blob store after the metadata commit; a failure there
is logged and leaves a stray file, never a failed request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog

from mirror.domain import provenance
from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import BadRequest, MirrorError, NotFound
from mirror.domain.lifecycle import Deprecation
from mirror.domain.models import ModuleVersion
from mirror.domain.provenance import Owner
from mirror.domain.timeutil import rfc3339
from mirror.services.catalog import ModuleCatalog
from mirror.storage.protocols import BlobStore, MetadataStore

log = structlog.get_logger("mirror.lifecycle")

#: longest deprecation reason
MAX_REASON = 1000
#: longest suggested replacement (a version, or an address and a version)
MAX_REPLACEMENT = 200


def new_deprecation(reason: str, replacement: str | None, when: float) -> Deprecation:
    """A checked deprecation: the reason's whitespace collapsed (1 to ``MAX_REASON`` characters),
    the replacement printable text of 1 to ``MAX_REPLACEMENT`` characters, or None."""
    reason = " ".join(reason.split())
    if not 1 <= len(reason) <= MAX_REASON:
        raise BadRequest(f"reason must be 1 to {MAX_REASON} characters of text")
    if replacement is not None:
        replacement = replacement.strip()
        if not 1 <= len(replacement) <= MAX_REPLACEMENT or not replacement.isprintable():
            raise BadRequest(
                f"replacement must be 1 to {MAX_REPLACEMENT} printable characters, e.g. a version such as 2.0.0"
            )
    return Deprecation(reason, replacement, rfc3339(when))


async def remove_blobs(blobs: BlobStore, keys: Iterable[str]) -> None:
    """Delete archives nothing refers to any more; each failure is logged and skipped."""
    for key in keys:
        try:
            await blobs.delete(key)
        except (MirrorError, OSError) as exc:
            log.warning("orphan archive not deleted; remove it by hand", key=key, error=str(exc))


class ModuleLifecycle:
    """Deprecate, revoke and delete modules' versions, as an owner source or as an admin (None)."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        catalog: ModuleCatalog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._catalog = catalog
        self._clock = clock

    async def _check(self, address: ModuleAddress, owner: Owner | None, action: provenance.Action) -> None:
        """NotFound for an unknown module; NotOwner (naming the owner) when ``owner`` is not it."""
        record = await self._store.get_module(address)
        if record is None:
            raise NotFound(f"module {address} not found")
        if owner is not None:
            provenance.check(address, record.owner, owner, action, source_url=record.source_url)

    async def deprecate(
        self, address: ModuleAddress, version: str, reason: str, replacement: str | None, *, owner: Owner | None
    ) -> ModuleVersion:
        """Deprecate a live version (posting again replaces it); the version as stored now."""
        deprecation = new_deprecation(reason, replacement, self._clock())
        await self._check(address, owner, "deprecate versions of")
        try:
            if not await self._store.deprecate_version(address, version, deprecation, owner=owner):
                raise NotFound(f"version {version} of module {address} is not live here")
        finally:
            self._catalog.invalidate(address)
        found = await self._store.get_version(address, version)
        if found is None:  # deleted since
            raise NotFound(f"version {version} of module {address} not found")
        log.info("module version deprecated", module=str(address), version=version, reason=deprecation.reason)
        return found

    async def revoke(self, address: ModuleAddress, version: str, *, owner: Owner | None) -> None:
        """Take a live version out of service: gone from ``versions`` and downloads."""
        await self._check(address, owner, "revoke versions of")
        try:
            if not await self._store.revoke_version(address, version, owner=owner):
                raise NotFound(f"version {version} of module {address} is not live here")
        finally:
            self._catalog.invalidate(address)
        log.info("module version revoked", module=str(address), version=version)

    async def delete(self, address: ModuleAddress, *, owner: Owner | None = None) -> None:
        """Remove the module and all its versions, then the archives no other version uses."""
        await self._check(address, owner, "delete")
        try:
            orphans = await self._store.delete_module(address, owner=owner)
        finally:
            self._catalog.invalidate(address)
        await remove_blobs(self._blobs, orphans)
        log.info("module deleted", module=str(address), archives_removed=len(orphans))
