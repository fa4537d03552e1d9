"""GitHub App installations and what they brought."""

from __future__ import annotations

from mirror.domain import events
from mirror.domain.models import Installation, ModuleRecord
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import StorageUnavailable
from mirror.storage.dynamodb.keys import COMMIT_ATTEMPTS, _ns_pk, _namespace_key, _installation_key
from mirror.storage.dynamodb.items import _installation_from_item
from mirror.storage.dynamodb.table import _AGAIN, _Plan
from mirror.storage.dynamodb.modules import Modules


class Installations(Modules):
    """GitHub App installations and what they brought."""

    async def record_installation(self, installation: Installation) -> bool:
        """Remember an installation and create its namespace (``app.installed``); True if new."""
        key = _installation_key(installation.id)

        async def plan() -> _Plan:
            if await self._get(key) is not None:
                return _Plan(False)
            item = {
                "PK": key[0],
                "SK": key[1],
                "id": installation.id,
                "account": installation.account,
                "namespace": installation.namespace,
                "created_at": installation.created_at,
            }
            items = [
                self._tx_put(item, "attribute_not_exists(#PK)"),
                self._tx_namespace(installation.namespace, installation.created_at),
            ]
            return _Plan(
                True, items, [events.app_installed(installation.namespace)], installation.created_at
            )

        return await self._commit(plan)

    async def installation(self, installation_id: int) -> Installation | None:
        item = await self._get(_installation_key(installation_id))
        return _installation_from_item(item) if item else None

    async def list_installations(self) -> list[Installation]:
        return [_installation_from_item(item) for item in await self._query("INSTALLATIONS", prefix="INSTALLATION#")]

    async def remove_installation(self, installation_id: int) -> list[str]:
        """Remove an installation's namespace and everything in it: ``module.deleted`` for each
        module (a transaction each), then ``app.uninstalled`` with the installation. Returns blob
        keys nothing uses any more. Interrupted, it is simply run again."""
        key = _installation_key(installation_id)
        now = now_rfc3339()
        orphans: list[str] = []
        for _ in range(COMMIT_ATTEMPTS):
            installation = await self._get(key)
            if installation is None:
                return orphans
            namespace = installation["namespace"]
            for record in await self._brought_by(installation_id, namespace):
                orphans += await self._delete_module(record.address, now, record.owner)

            if await self._commit(lambda ns=namespace: self._uninstall_plan(key, installation_id, ns, now)) is not _AGAIN:
                return orphans
        raise StorageUnavailable(f"DynamoDB table {self.table!r} is too busy to remove installation {installation_id}")

    async def _brought_by(self, installation_id: int, namespace: str) -> list[ModuleRecord]:
        """The modules of ``namespace`` an installation brought (owned by a repository through it)."""
        return [
            record
            for record in await self.list_modules(namespace)
            if record.owner.kind == "github" and record.installation_id == installation_id
        ]

    async def _uninstall_plan(self, key: tuple[str, str], installation_id: int, namespace: str, now: str) -> _Plan:
        if await self._get(key) is None:
            return _Plan(None)
        if await self._brought_by(installation_id, namespace):
            return _Plan(_AGAIN)  # a module arrived meanwhile: delete it too
        items = [self._tx_delete(key, "attribute_exists(#PK)")]
        others = [i for i in await self.list_installations() if i.id != installation_id and i.namespace.lower() == namespace.lower()]
        if not others and not await self._query(_ns_pk(namespace), prefix="MODULE#", limit=1):
            items.append(self._tx_delete(_namespace_key(namespace)))  # nothing else lives there
        return _Plan(True, items, [events.app_uninstalled(namespace)], now)
