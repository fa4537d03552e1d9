"""Creating tokens: the secret is returned once and only its hash is stored."""

from __future__ import annotations

from mirror.domain.models import Scope, TokenRecord
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.tokens import hash_token, new_token
from mirror.storage.protocols import TokenStore


async def create_token(store: TokenStore, namespace: str, scope: Scope, description: str = "") -> tuple[TokenRecord, str]:
    token_id, secret = new_token()
    record = TokenRecord(
        id=token_id,
        token_hash=hash_token(secret),
        namespace=namespace,
        scope=scope,
        created_at=now_rfc3339(),
        description=description,
    )
    await store.create_token(record)
    return record, secret
