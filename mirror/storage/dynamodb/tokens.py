"""API tokens (an item by id and one by hash) and settings."""

from __future__ import annotations

from mirror.domain.models import TokenRecord
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.errors import MirrorError
from mirror.storage.dynamodb.items import _token_fields, _token_from_item
from mirror.storage.dynamodb.table import _Cancelled, _ConditionFailed, DynamoTable


class Tokens(DynamoTable):
    """API tokens (an item by id and one by hash) and settings."""

    async def create_token(self, record: TokenRecord) -> None:
        fields = _token_fields(record)
        try:
            await self._transact(
                [
                    self._tx_put({"PK": "TOKENS", "SK": f"TOKEN#{record.id}", **fields}, "attribute_not_exists(#PK)"),
                    self._tx_put(
                        {"PK": f"TOKEN#{record.token_hash}", "SK": "TOKEN", **fields}, "attribute_not_exists(#PK)"
                    ),
                ]
            )
        except _Cancelled as exc:
            raise MirrorError(f"token could not be stored: its id or hash exists ({exc})") from None

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        item = await self._get((f"TOKEN#{token_hash}", "TOKEN"))
        return _token_from_item(item) if item else None

    async def list_tokens(self) -> list[TokenRecord]:
        tokens = [_token_from_item(item) for item in await self._query("TOKENS", prefix="TOKEN#")]
        return sorted(tokens, key=lambda t: (t.created_at, t.id))

    async def revoke_token(self, token_id: str) -> bool:
        item = await self._get(("TOKENS", f"TOKEN#{token_id}"))
        if item is None or item.get("revoked_at"):
            return False
        now = now_rfc3339()
        try:
            await self._transact(
                [
                    self._tx_update(
                        ("TOKENS", f"TOKEN#{token_id}"),
                        set={"revoked_at": now},
                        condition="attribute_exists(#PK) AND attribute_not_exists(#revoked_at)",
                    ),
                    self._tx_update(
                        (f"TOKEN#{item['token_hash']}", "TOKEN"),
                        set={"revoked_at": now},
                        condition="attribute_exists(#PK)",
                    ),
                ]
            )
        except _Cancelled:
            return False
        return True

    async def touch_token(self, token_id: str, when: str) -> bool:
        """Record ``when`` as the token's last use on both of its items, unless a later one is
        recorded (RFC 3339 in UTC compares as text)."""
        item = await self._get(("TOKENS", f"TOKEN#{token_id}"), ("token_hash",))
        if item is None:
            return False
        condition = "attribute_exists(#PK) AND (attribute_not_exists(#last_used_at) OR #last_used_at < :when)"
        try:
            await self._transact(
                [
                    self._tx_update(key, set={"last_used_at": when}, condition=condition, values={":when": when})
                    for key in (("TOKENS", f"TOKEN#{token_id}"), (f"TOKEN#{item['token_hash']}", "TOKEN"))
                ]
            )
        except _Cancelled:
            return False
        return True

    async def get_or_create_setting(self, key: str, default: str) -> str:
        while True:
            try:
                await self._put(
                    {"PK": "SETTINGS", "SK": f"SETTING#{key}", "value": default}, "attribute_not_exists(#PK)"
                )
            except _ConditionFailed:
                pass
            item = await self._get(("SETTINGS", f"SETTING#{key}"))
            if item is not None:
                return item["value"]
