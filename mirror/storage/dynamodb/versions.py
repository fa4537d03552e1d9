"""Modules' versions: the protocol's reads, publishing, browsing and download counts."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import aclosing
from typing import Any

from mirror.domain.addresses import ModuleAddress
from mirror.domain import provenance
from mirror.domain.models import ModuleVersion, NewVersion, PublishOutcome
from mirror.domain.publishing import plan_publish
from mirror.storage.protocols import ModuleSummary
from mirror.storage.dynamodb.wire import _Raw
from mirror.storage.dynamodb.keys import (
    DOWNLOAD_WRITERS,
    _ns_pk,
    _module_key,
    _version_prefix,
    _version_key,
    _blob_key,
    _repository_pointer,
)
from mirror.storage.dynamodb.items import (
    _VERSION_FIELDS,
    _VERSION_FIELDS_NO_README,
    _BRIEF_FIELDS,
    _address_of,
    _new_module_item,
    _version_item,
    _pick_latest,
    _latest_fields,
    _latest_version_key,
    _browse_sort,
    _summary_from_item,
    _version_from_item,
    _owner_of,
    _unpack,
)
from mirror.storage.dynamodb.table import _ConditionFailed, _Plan, DynamoTable

#: what ``version_downloads`` reads of each version
_DOWNLOAD_FIELDS = ("version", "downloads")


class Versions(DynamoTable):
    """Modules' versions: the protocol's reads, publishing, browsing and download counts."""

    async def list_versions(self, address: ModuleAddress, *, readme: bool = True) -> list[ModuleVersion]:
        return [v for v in await self._versions(address, readme) if v.revoked_at is None]

    async def all_versions(self, address: ModuleAddress) -> list[ModuleVersion]:
        """Every version, revoked ones included: one query of the module's version prefix."""
        return await self._versions(address, readme=True)

    async def _versions(self, address: ModuleAddress, readme: bool) -> list[ModuleVersion]:
        fields = _VERSION_FIELDS if readme else _VERSION_FIELDS_NO_README
        items = await self._query(_ns_pk(address.namespace), prefix=_version_prefix(address), fields=fields)
        return [_version_from_item(item) for item in items]

    async def get_version(self, address: ModuleAddress, version: str) -> ModuleVersion | None:
        item = await self._get(_version_key(address, version), _VERSION_FIELDS)
        return _version_from_item(item) if item else None

    async def version_analysis(self, address: ModuleAddress, version: str) -> dict[str, Any] | None:
        item = await self._get(_version_key(address, version), ("analysis", "analysis_z"))
        text = _unpack(item, "analysis") if item else None
        return json.loads(text) if text else None

    async def publish_version(self, new: NewVersion) -> PublishOutcome:
        mv = new.version
        address = mv.address
        module_key, version_key = _module_key(address), _version_key(address, mv.version)

        async def plan() -> _Plan:
            module, existing, briefs = await asyncio.gather(
                self._get(module_key), self._get(version_key, _VERSION_FIELDS), self._briefs(address)
            )
            if new.expected_owner != "any":
                # a change of owner bumps ``vrev``, which ``_tx_latest`` holds the write to
                current = _owner_of(module) if module is not None else None
                if current != new.expected_owner:
                    raise provenance.changed(address, current, new.expected_owner)
            stored = _version_from_item(existing) if existing is not None else None
            decided = plan_publish(new, stored, module_exists=module is not None)
            if decided.action in ("conflict", "unchanged"):
                return _Plan(decided.outcome)
            if decided.action == "reinstate" and module is None:  # a version item its module item lost:
                return _Plan(PublishOutcome("unchanged", stored))  # nothing to point at it, left as it is
            if decided.action == "reinstate":
                briefs = [{**b, "revoked_at": None} if b["version"] == mv.version else b for b in briefs]
                items = [
                    self._tx_update(version_key, remove=["revoked_at"], condition="attribute_exists(#revoked_at)"),
                    self._tx_latest(module, briefs),
                ]
                return _Plan(decided.outcome, items, list(decided.events), mv.published_at)

            now = mv.published_at
            display = address if module is None else _address_of(module)
            item = _version_item(display, mv, new.analysis)
            briefs.append({f: item.get(f) for f in _BRIEF_FIELDS})
            items = [
                self._tx_put(item, "attribute_not_exists(#PK)"),
                self._tx_namespace(address.namespace, now),
                self._tx_update(_blob_key(mv.blob_key), add={"refs": 1}),
            ]
            if module is None:
                module_item = (
                    _new_module_item(address, now, new.owner)
                    | _latest_fields(address, _pick_latest(briefs), put=True)
                )
                items.append(self._tx_put(module_item, "attribute_not_exists(#PK)"))
                if new.owner.repository_id is not None:
                    items.append(self._tx_put(_repository_pointer(new.owner.repository_id, module_key)))
            else:
                items.append(self._tx_latest(module, briefs))
            return _Plan(decided.outcome, items, list(decided.events), now)

        return await self._commit(plan)

    async def _briefs(self, address: ModuleAddress) -> list[dict[str, Any]]:
        return await self._query(_ns_pk(address.namespace), prefix=_version_prefix(address), fields=_BRIEF_FIELDS)

    def _tx_latest(self, module: dict[str, Any], briefs: list[dict[str, Any]]) -> dict[str, Any]:
        """The module's summary pointed at its latest live version, if nobody changed its versions
        since they were read (``vrev`` counts those changes)."""
        fields = _latest_fields(_address_of(module), _pick_latest(briefs))
        return self._tx_update(
            (module["PK"], module["SK"]),
            set={**fields, "vrev": _Raw("#vrev + :one")},
            condition="#vrev = :vrev",
            values={":vrev": module["vrev"], ":one": 1},
        )

    async def latest_versions(
        self, *, namespace: str | None = None, name: str | None = None, provider: str | None = None
    ) -> list[ModuleSummary]:
        """Each matching module with a live version, with its latest one, sorted by address."""
        if namespace is not None and name is not None and provider is not None:
            module = await self._get(_module_key(ModuleAddress(namespace, name, provider)))
            items = [module] if module else []
        elif namespace is not None:
            prefix = "MODULE#" if name is None else f"MODULE#{name.lower()}#PROVIDER#"
            items = await self._query(_ns_pk(namespace), prefix=prefix)
        else:
            items = await self._query("MODULES", index=True)
        items = [
            item
            for item in items
            if "latest" in item
            and (name is None or item["name"].lower() == name.lower())
            and (provider is None or item["provider"] == provider)
        ]
        items.sort(key=_browse_sort)
        readmes = {
            (i["PK"], i["SK"]): _unpack(i, "readme")
            for i in await self._batch_get([_latest_version_key(item) for item in items], ("readme", "readme_z"))
        }
        return [_summary_from_item(item, readmes.get(_latest_version_key(item))) for item in items]

    async def browse_modules(
        self,
        *,
        namespace: str | None = None,
        provider: str | None = None,
        query: str = "",
        only_namespaces: Collection[str] | None = None,
        exclude_namespaces: Collection[str] = (),
        offset: int = 0,
        limit: int = 15,
    ) -> tuple[list[ModuleSummary], bool]:
        """A page in address order. One namespace (or a list of them) is read from its partition;
        everything else walks GSI1's ``MODULES`` partition, whose sort key is the address.
        Filters and ``offset`` are applied while walking (DynamoDB has no OFFSET)."""
        excluded = {n.lower() for n in exclude_namespaces}
        only = None if only_namespaces is None else {n.lower() for n in only_namespaces}
        needle = query.lower()

        def wanted(item: dict[str, Any]) -> bool:
            if "latest" not in item or item["namespace"].lower() in excluded:
                return False
            if only is not None and item["namespace"].lower() not in only:
                return False
            if namespace is not None and item["namespace"].lower() != namespace.lower():
                return False
            if provider is not None and item["provider"] != provider:
                return False
            fields = (item["namespace"], item["name"], item["provider"], item.get("description", ""))
            return not needle or any(needle in field.lower() for field in fields)

        if namespace is not None:
            partitions: list[str] | None = [namespace.lower()]
        elif only is not None:
            partitions = sorted(only - excluded)
        else:
            partitions = None
        page: list[dict[str, Any]] = []
        skipped = 0
        async with aclosing(self._browse_pages(partitions)) as pages:
            async for items in pages:
                for item in items:
                    if not wanted(item):
                        continue
                    if skipped < offset:
                        skipped += 1
                        continue
                    page.append(item)
                if len(page) > limit:
                    break
        return [_summary_from_item(item, None) for item in page[:limit]], len(page) > limit

    async def _browse_pages(self, partitions: list[str] | None) -> AsyncIterator[list[dict[str, Any]]]:
        sources = (
            [self._pages("MODULES", index=True)]
            if partitions is None  # the sorted lowercased names give the addresses' order:
            else [self._pages(_ns_pk(namespace), prefix="MODULE#") for namespace in partitions]
        )
        for source in sources:
            async with aclosing(source):
                async for page in source:
                    yield page

    async def version_downloads(self, address: ModuleAddress) -> dict[str, int]:
        """One query of the module's version prefix, reading two fields of each version."""
        items = await self._query(_ns_pk(address.namespace), prefix=_version_prefix(address), fields=_DOWNLOAD_FIELDS)
        return {item["version"]: int(item.get("downloads", 0)) for item in items}

    async def add_downloads(self, counts: Mapping[tuple[ModuleAddress, str], int]) -> None:
        """Add counted downloads to their versions and modules (``ADD``: replicas never lose counts)."""
        if not counts:
            return
        per_module: Counter[tuple[str, str]] = Counter()
        writes: list[tuple[tuple[str, str], dict[str, int]]] = []
        for (address, version), count in counts.items():
            writes.append((_version_key(address, version), {"downloads": count}))
            per_module[_module_key(address)] += count
        writes += [(key, {"downloads": count, "rev": 1}) for key, count in per_module.items()]
        gate = asyncio.Semaphore(DOWNLOAD_WRITERS)

        async def add(key: tuple[str, str], amounts: dict[str, int]) -> None:
            async with gate:
                try:  # only to what exists: a count never makes an item up
                    await self._update(key, add=amounts, condition="attribute_exists(#PK)")
                except _ConditionFailed:
                    pass

        await asyncio.gather(*(add(key, amounts) for key, amounts in writes))
