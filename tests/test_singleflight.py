"""Concurrent cache misses make one store request: ``SingleFlight``, the module catalog, tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import ModuleVersion, TokenRecord
from mirror.domain.errors import StorageUnavailable
from mirror.services.auth import Authenticator
from mirror.services.catalog import ModuleCatalog
from mirror.services.singleflight import SingleFlight
from mirror.services.tokens import create_token
from mirror.storage.sqlite import SqliteMetadataStore
from tests.test_store_contract import addr, mv, released


class Counted:
    """The real store, counting the calls that reach it and holding each answer for a moment."""

    def __init__(self, store: SqliteMetadataStore) -> None:
        self.store = store
        self.calls: list[str] = []
        self.listed = asyncio.Event()  # a list_versions answer has been read

    async def list_versions(self, address: ModuleAddress, *, readme: bool = True) -> list[ModuleVersion]:
        self.calls.append(f"list_versions readme={readme}")
        found = await self.store.list_versions(address, readme=readme)
        self.listed.set()
        await asyncio.sleep(0.02)  # the answer is on its way: a write may land meanwhile
        return found

    async def get_version(self, address: ModuleAddress, version: str) -> ModuleVersion | None:
        return await self.store.get_version(address, version)

    async def version_analysis(self, address: ModuleAddress, version: str) -> dict[str, Any] | None:
        return await self.store.version_analysis(address, version)

    async def find_token(self, token_hash: str) -> TokenRecord | None:
        self.calls.append("find_token")
        await asyncio.sleep(0.02)
        return await self.store.find_token(token_hash)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteMetadataStore]:
    opened = SqliteMetadataStore(tmp_path / "mirror.db")
    await opened.open()
    await opened.publish_version(released(mv(version="1.0.0")))
    yield opened
    await opened.close()


async def test_concurrent_calls_share_one_and_errors_reach_each():
    flight: SingleFlight[str, int] = SingleFlight()
    started = 0

    async def call() -> int:
        nonlocal started
        started += 1
        await asyncio.sleep(0.02)
        return started

    assert await asyncio.gather(*(flight.do("k", call) for _ in range(50))) == [1] * 50
    assert await flight.do("k", call) == 2  # finished calls are not cached

    async def failing() -> int:
        await asyncio.sleep(0.02)
        raise StorageUnavailable("down")

    outcomes = await asyncio.gather(*(flight.do("k", failing) for _ in range(3)), return_exceptions=True)
    assert [type(o) for o in outcomes] == [StorageUnavailable] * 3


async def test_a_cancelled_caller_cancels_neither_the_call_nor_the_others():
    flight: SingleFlight[str, str] = SingleFlight()
    started, release = asyncio.Event(), asyncio.Event()

    async def call() -> str:
        started.set()
        await release.wait()
        return "answer"

    first = asyncio.create_task(flight.do("k", call))
    second = asyncio.create_task(flight.do("k", call))
    async with asyncio.timeout(5):
        await started.wait()
    first.cancel()  # the client that started the call went away
    release.set()
    assert await second == "answer"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_stampede_on_an_expired_module_is_one_store_query(store: SqliteMetadataStore):
    counted = Counted(store)
    catalog = ModuleCatalog(counted, ttl_seconds=60)
    entries = await asyncio.gather(*(catalog.module(addr()) for _ in range(64)))
    assert counted.calls == ["list_versions readme=False"]  # one query, without the READMEs
    assert {entry.newest_first for entry in entries} == {("1.0.0",)}
    assert all(v.readme is None for v in entries[0].versions.values())
    await catalog.module(addr())
    assert len(counted.calls) == 1  # kept for ttl_seconds


async def test_a_write_during_a_load_is_seen_by_the_next_request(store: SqliteMetadataStore):
    counted = Counted(store)
    catalog = ModuleCatalog(counted, ttl_seconds=60)
    loading = asyncio.create_task(catalog.module(addr()))
    async with asyncio.timeout(5):
        await counted.listed.wait()  # the load has read, and waits
    await store.publish_version(released(mv(version="1.1.0", sha="b")))
    catalog.invalidate(addr())  # as the ingest path does after its write
    assert (await loading).newest_first == ("1.0.0",)  # it started before the write
    assert (await catalog.module(addr())).newest_first == ("1.1.0", "1.0.0")  # that answer was not kept


async def test_without_a_ttl_nothing_is_kept(store: SqliteMetadataStore):
    counted = Counted(store)
    catalog = ModuleCatalog(counted, ttl_seconds=0)
    await catalog.module(addr())
    await catalog.module(addr())
    assert len(counted.calls) == 2


async def test_a_stampede_of_one_token_is_one_lookup(store: SqliteMetadataStore):
    _, secret = await create_token(store, "*", "read")
    counted = Counted(store)
    auth = Authenticator(counted, anonymous_read=False)
    header = f"Bearer {secret}"
    records = await asyncio.gather(*(auth.authorize(header, "acme", "read") for _ in range(64)))
    assert counted.calls == ["find_token"]
    assert len({record.id for record in records}) == 1
