"""The Authenticator against a real SQLite store: scopes, caching, and revocation within the
cache period even for checks it remembers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mirror.domain.errors import Forbidden, Unauthorized
from mirror.services.auth import Authenticator
from mirror.services.tokens import create_token
from mirror.storage.sqlite import SqliteMetadataStore
from tests.live import ManualClock

CACHE_SECONDS = 0.3


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    store = SqliteMetadataStore(tmp_path / "mirror.db")
    await store.open()
    yield store
    await store.close()


async def test_scopes_and_namespaces(store: SqliteMetadataStore) -> None:
    auth = Authenticator(store, anonymous_read=False, cache_seconds=CACHE_SECONDS)
    _, secret = await create_token(store, "acme", "publish")
    header = f"Bearer {secret}"
    assert (await auth.authorize(header, "acme", "read")).namespace == "acme"
    assert (await auth.authorize(header, "ACME", "publish")).namespace == "acme"
    for _ in range(2):  # refusals are never remembered as grants
        with pytest.raises(Forbidden):
            await auth.authorize(header, "acme", "admin")
        with pytest.raises(Forbidden):
            await auth.authorize(header, "other", "read")
    with pytest.raises(Unauthorized):
        await auth.authorize(None, "acme", "read")
    with pytest.raises(Unauthorized):
        await auth.authorize("Basic abc", "acme", "read")
    with pytest.raises(Unauthorized):
        await auth.authorize("Bearer not-a-token", "acme", "read")


async def test_anonymous_read_only_reads(store: SqliteMetadataStore) -> None:
    auth = Authenticator(store, anonymous_read=True, cache_seconds=CACHE_SECONDS)
    assert await auth.authorize(None, "acme", "read") is None
    with pytest.raises(Unauthorized):
        await auth.authorize(None, "acme", "publish")


async def test_a_revoked_token_stops_working_within_the_cache_period(store: SqliteMetadataStore) -> None:
    clock = ManualClock()
    auth = Authenticator(store, anonymous_read=False, cache_seconds=CACHE_SECONDS, clock=clock)
    record, secret = await create_token(store, "*", "read")
    header = f"Bearer {secret}"
    await auth.authorize(header, "acme", "read")  # looked up and remembered
    assert await store.revoke_token(record.id)
    clock.advance(CACHE_SECONDS - 0.01)
    await auth.authorize(header, "acme", "read")  # still remembered: that is the cache period
    clock.advance(0.02)
    with pytest.raises(Unauthorized):
        await auth.authorize(header, "acme", "read")
    with pytest.raises(Unauthorized):
        await auth.authorize(header, "other", "read")

