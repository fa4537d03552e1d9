"""Module lifecycle driven by its owner source: create, policy, delete, rename, revoke, deprecate."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import replace
from typing import Any

from mirror.domain import events
from mirror.domain.addresses import ModuleAddress
from mirror.domain import provenance
from mirror.domain.provenance import Owner
from mirror.domain.lifecycle import Deprecation
from mirror.domain.models import ModuleRecord
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import Conflict, StorageUnavailable
from mirror.storage.dynamodb.wire import _Raw
from mirror.storage.dynamodb.keys import (
    COMMIT_ATTEMPTS,
    _ns_pk,
    _module_key,
    _version_prefix,
    _version_sk,
    _version_key,
    _browse_key,
    _blob_key,
    _repository_pointer,
)
from mirror.storage.dynamodb.items import (
    _new_module_item,
    _owner_of,
    _check_owner,
    _record_from_item,
    _fitting,
    _backoff,
)
from mirror.storage.dynamodb.table import _Cancelled, _ConditionFailed, _AGAIN, _Plan
from mirror.storage.dynamodb.versions import Versions


class Modules(Versions):
    """Module lifecycle driven by its owner source: create, policy, delete, rename, revoke, deprecate."""

    async def ensure_module(
        self,
        address: ModuleAddress,
        *,
        owner: Owner = Owner("upload"),
        source_url: str | None = None,
        installation_id: int | None = None,
    ) -> bool:
        """Create the module (and its namespace) for ``owner`` if it is new, with ``module.created``;
        True if created. An existing module of ``owner`` takes the given source URL and installation;
        one of another owner is left alone (NotOwner)."""
        now = now_rfc3339()
        key = _module_key(address)

        async def plan() -> _Plan:
            module = await self._get(key)
            if module is not None:
                return _Plan(module)
            item = _new_module_item(address, now, owner) | {"source_url": source_url, "installation_id": installation_id}
            items = [self._tx_put(item, "attribute_not_exists(#PK)"), self._tx_namespace(address.namespace, now)]
            if owner.repository_id is not None:
                items.append(self._tx_put(_repository_pointer(owner.repository_id, key)))
            return _Plan(None, items, [events.module_created(address)], now)

        for attempt in range(COMMIT_ATTEMPTS):
            existing = await self._commit(plan)
            if existing is None:
                return True
            current = _owner_of(existing)
            if current != owner:
                raise provenance.refusal(address, current, owner, "change")
            changes: dict[str, Any] = {}
            if source_url is not None:
                changes["source_url"] = source_url
            if installation_id is not None:
                changes["installation_id"] = installation_id
            if not changes:
                return False
            # on the condition that the owner is unchanged (``vrev`` moves with every change of it)
            items = [
                self._tx_update(
                    key, set=changes, add={"rev": 1}, condition="#vrev = :vrev", values={":vrev": existing["vrev"]}
                )
            ]
            try:
                await self._transact(items)
                return False
            except _Cancelled:  # renamed, deleted or given another owner meanwhile: look again
                await asyncio.sleep(_backoff(attempt))
        raise StorageUnavailable(f"DynamoDB table {self.table!r} is too busy to update module {address}")

    async def get_module(self, address: ModuleAddress) -> ModuleRecord | None:
        item = await self._get(_module_key(address))
        return _record_from_item(item) if item else None

    async def list_modules(self, namespace: str) -> list[ModuleRecord]:
        return [_record_from_item(item) for item in await self._query(_ns_pk(namespace), prefix="MODULE#")]

    async def module_by_repository(self, repository_id: int) -> ModuleRecord | None:
        pointer = await self._get((f"REPOSITORY#{repository_id}", "REPOSITORY"))
        if pointer is None:
            return None
        module = await self._get((pointer["module_pk"], pointer["module_sk"]))
        if module is None or _owner_of(module) != Owner.github(repository_id):
            return None
        return _record_from_item(module)

    async def set_module_policy(
        self, address: ModuleAddress, *, owner: Owner | None = None, allow_uploads: bool | None = None
    ) -> ModuleRecord | None:
        """An admin's change of the module's owner source or upload allowance, with
        ``module.policy_changed``; None when there is no such module."""
        now = now_rfc3339()
        key = _module_key(address)

        async def plan() -> _Plan:
            module = await self._get(key)
            if module is None:
                return _Plan(None)
            current = _owner_of(module)
            new_owner = current if owner is None else owner
            changes: dict[str, Any] = {"owner": str(new_owner), "vrev": _Raw("#vrev + :one")}
            if allow_uploads is not None:
                changes["allow_uploads"] = allow_uploads
            remove = []
            if new_owner != current:
                remove.append("installation_id")
            if new_owner.repository_id is None:
                remove.append("repository_id")
            else:
                changes["repository_id"] = new_owner.repository_id
            items = [
                self._tx_update(
                    key, set=changes, remove=remove, condition="#vrev = :vrev", values={":vrev": module["vrev"], ":one": 1}
                )
            ]
            if new_owner != current and new_owner.repository_id is not None:
                other = await self.module_by_repository(new_owner.repository_id)
                if other is not None:
                    raise Conflict(f"another module is already owned by {new_owner}: a repository owns one module")
                items.append(self._tx_put(_repository_pointer(new_owner.repository_id, key)))
            if new_owner != current and current.repository_id is not None:
                pointer_key = (f"REPOSITORY#{current.repository_id}", "REPOSITORY")
                items.append(self._tx_delete(pointer_key, "#module_pk = :pk AND #module_sk = :sk", {":pk": key[0], ":sk": key[1]}))
            record = replace(
                _record_from_item(module),
                owner=new_owner,
                repository_id=new_owner.repository_id,
                installation_id=module.get("installation_id") if new_owner == current else None,
                allow_uploads=bool(module.get("allow_uploads")) if allow_uploads is None else allow_uploads,
            )
            if record.installation_id is not None:
                record = replace(record, installation_id=int(record.installation_id))
            changed = events.module_policy_changed(address, new_owner, record.allow_uploads)
            return _Plan(record, items, [changed], now)

        return await self._commit(plan)

    async def delete_module(self, address: ModuleAddress, *, owner: Owner | None = None) -> list[str]:
        """Remove a module and its versions (``module.deleted``); return blob keys nothing uses any more.
        With ``owner``, only while the module is that owner's (NotOwner otherwise).

        Up to 48 versions go in one transaction with the event; a larger module loses its versions
        in transactions of 48 first, then the module and the event go last."""
        return await self._delete_module(address, now_rfc3339(), owner)

    async def _delete_module(self, address: ModuleAddress, now: str, owner: Owner | None = None) -> list[str]:
        key = _module_key(address)

        async def plan() -> _Plan:
            module = await self._get(key)
            if module is None:
                return _Plan(None)
            _check_owner(address, module, owner)
            versions = await self._query(
                _ns_pk(address.namespace), prefix=_version_prefix(address), fields=("PK", "SK", "blob_key")
            )
            fixed = 4  # the module, its repository pointer, the event, the counter
            fits = _fitting(versions, per_item=2, fixed=fixed)
            final = fits == len(versions)
            batch = versions if final else versions[: _fitting(versions, per_item=2, fixed=1)]
            refs = Counter(v["blob_key"] for v in batch)
            # a version deleted twice (two replicas at once) would release its archive twice
            items = [self._tx_delete((v["PK"], v["SK"]), "attribute_exists(#PK)") for v in batch]
            items += [self._tx_update(_blob_key(blob), add={"refs": -n}) for blob, n in refs.items()]
            if not final:
                return _Plan((_AGAIN, set(refs)), items)
            items.append(self._tx_delete(key, "#vrev = :vrev", {":vrev": module["vrev"]}))
            if module.get("repository_id") is not None:
                pointer_key = (f"REPOSITORY#{module['repository_id']}", "REPOSITORY")
                pointer = await self._get(pointer_key)
                if pointer is not None and (pointer["module_pk"], pointer["module_sk"]) == key:
                    items.append(
                        self._tx_delete(
                            pointer_key, "#module_pk = :pk AND #module_sk = :sk", {":pk": key[0], ":sk": key[1]}
                        )
                    )
            return _Plan((None, set(refs)), items, [events.module_deleted(address)], now)

        touched: set[str] = set()
        while True:
            outcome = await self._commit(plan)
            if outcome is None:
                break
            again, blobs = outcome
            touched |= blobs
            if again is not _AGAIN:
                break
        return [blob for blob in sorted(touched) if await self._release_blob(blob)]

    async def _release_blob(self, blob_key: str) -> bool:
        """Drop an archive's reference count once nothing refers to it; True when it went."""
        try:
            await self._delete(_blob_key(blob_key), "attribute_not_exists(#refs) OR #refs <= :zero", {":zero": 0})
        except _ConditionFailed:
            return False
        return True

    async def rename_module(self, address: ModuleAddress, new_name: str, *, owner: Owner | None = None) -> bool:
        """Rename a module in place (``module.renamed``); False when there is no such module.

        Versions carry the name in their keys, so they move: up to 47 in the transaction with the
        event; a larger module has its other versions moved first, 47 per transaction."""
        now = now_rfc3339()
        key = _module_key(address)
        target = ModuleAddress(address.namespace, new_name, address.provider)
        target_key = _module_key(target)

        async def plan() -> _Plan:
            module = await self._get(key)
            if module is None:
                return _Plan(False)
            _check_owner(address, module, owner)
            if target_key == key or await self._get(target_key) is not None:
                raise Conflict(f"cannot rename {address} to {target}: that module exists")
            versions = await self._query(key[0], prefix=_version_prefix(address))
            final = _fitting(versions, per_item=2, fixed=5) == len(versions)
            batch = versions if final else versions[: _fitting(versions, per_item=2, fixed=1)]
            items: list[dict[str, Any]] = []
            for version in batch:
                moved = {**version, "SK": _version_sk(new_name, address.provider, version["version"]), "name": new_name}
                items.append(
                    self._tx_delete(
                        (version["PK"], version["SK"]), "#downloads = :downloads", {":downloads": version["downloads"]}
                    )
                )
                items.append(self._tx_put(moved))
            if not final:
                return _Plan(_AGAIN, items)
            moved_module = {**module, "SK": target_key[1], "name": new_name}
            if "latest" in module:
                moved_module["GSI1SK"] = _browse_key(module["namespace"], new_name, module["provider"])
            items.append(
                self._tx_delete(key, "#rev = :rev AND #vrev = :vrev", {":rev": module["rev"], ":vrev": module["vrev"]})
            )
            items.append(self._tx_put(moved_module, "attribute_not_exists(#PK)"))
            if module.get("repository_id") is not None:
                items.append(self._tx_put(_repository_pointer(module["repository_id"], target_key)))
            return _Plan(True, items, [events.module_renamed(target, address.name)], now)

        while (result := await self._commit(plan)) is _AGAIN:
            pass
        return result

    async def revoke_version(self, address: ModuleAddress, version: str, *, owner: Owner | None = None) -> bool:
        """Take a version out of service (``module.version_revoked``); False if not live."""
        now = now_rfc3339()
        key = _version_key(address, version)

        async def plan() -> _Plan:
            module, target, briefs = await asyncio.gather(
                self._get(_module_key(address)), self._get(key, ("revoked_at",)), self._briefs(address)
            )
            if module is not None:
                _check_owner(address, module, owner)
            if module is None or target is None or target.get("revoked_at"):
                return _Plan(False)
            briefs = [{**b, "revoked_at": now} if b["version"] == version else b for b in briefs]
            items = [
                self._tx_update(
                    key,
                    set={"revoked_at": now},
                    condition="attribute_exists(#PK) AND attribute_not_exists(#revoked_at)",
                ),
                self._tx_latest(module, briefs),
            ]
            return _Plan(True, items, [events.version_revoked(address, version)], now)

        return await self._commit(plan)

    async def deprecate_version(
        self, address: ModuleAddress, version: str, deprecation: Deprecation, *, owner: Owner | None = None
    ) -> bool:
        """Record (or replace) a live version's deprecation (``module.version_deprecated``); False
        if not live. The commit holds to the event counter read before the module, so an owner
        changed meanwhile (its own event) makes it decide again."""
        key = _version_key(address, version)

        async def plan() -> _Plan:
            module, target = await asyncio.gather(self._get(_module_key(address)), self._get(key, ("revoked_at",)))
            if module is None:
                return _Plan(False)
            current = _owner_of(module)
            if owner is not None and owner != current:
                raise provenance.refusal(address, current, owner, "deprecate versions of")
            if target is None or target.get("revoked_at"):
                return _Plan(False)
            item = self._tx_update(
                key,
                set={"deprecation": json.dumps(deprecation.to_json())},
                condition="attribute_exists(#PK) AND attribute_not_exists(#revoked_at)",
            )
            event = events.version_deprecated(address, version, deprecation.reason, deprecation.replacement)
            return _Plan(True, [item], [event], deprecation.deprecated_at)

        return await self._commit(plan)
