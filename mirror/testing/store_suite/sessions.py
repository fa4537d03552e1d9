"""The contract: signed-in people's sessions (create, look up by hash and id, list, revoke, purge)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mirror.domain.errors import Conflict
from mirror.domain.sessions import Grant, SessionRecord
from mirror.storage.protocols import MetadataStore
from mirror.testing.store_suite.support import NOW, Backend
from mirror.testing.store_suite.support import backend, store  # noqa: F401  (the fixtures, registered here)


pytestmark = pytest.mark.asyncio


LATER = "2026-12-24T20:27:51Z"


def session(session_id: str, secret_hash: str, created_at: str = NOW, **kwargs: Any) -> SessionRecord:
    fields: dict[str, Any] = {
        "issuer": "https://login.example.com",
        "subject": f"sub-{session_id}",
        "person": f"{session_id}@example.com",
        "name": "",
        "grants": (Grant("acme", "read"),),
        "expires_at": LATER,
    }
    fields.update(kwargs)
    return SessionRecord(id=session_id, secret_hash=secret_hash, created_at=created_at, **fields)


async def test_sessions_are_found_by_hash_and_id_and_listed_oldest_first(store: MetadataStore):
    late = session("bbbbbbbbbbbb", "h" * 64, "2026-11-25T00:00:00Z", name="Ada Lovelace")
    early = session("ffffffffffff", "g" * 64, "2026-11-24T00:00:00Z")
    same_time = session("aaaaaaaaaaaa", "f" * 64, "2026-11-25T00:00:00Z")
    for record in (late, early, same_time):
        await store.create_session(record)
    assert await store.find_session("h" * 64) == late
    assert await store.find_session("x" * 64) is None
    assert await store.get_session("ffffffffffff") == early
    assert await store.get_session("000000000000") is None
    assert await store.get_session("h" * 64) is None and await store.find_session("bbbbbbbbbbbb") is None
    assert await store.list_sessions() == [early, same_time, late]  # by creation time, then id


async def test_no_sessions(store: MetadataStore):
    assert await store.list_sessions() == []
    assert await store.purge_sessions(LATER) == 0


async def test_a_taken_id_or_hash_is_a_conflict(store: MetadataStore):
    first = session("aaaaaaaaaaaa", "h" * 64)
    await store.create_session(first)
    with pytest.raises(Conflict):
        await store.create_session(session("aaaaaaaaaaaa", "k" * 64))  # the id is taken
    with pytest.raises(Conflict):
        await store.create_session(session("cccccccccccc", "h" * 64))  # the hash is taken
    assert await store.list_sessions() == [first]
    assert await store.find_session("k" * 64) is None and await store.get_session("cccccccccccc") is None


async def test_grants_round_trip_in_order(store: MetadataStore):
    several = session(
        "aaaaaaaaaaaa",
        "a" * 64,
        grants=(Grant("*", "read"), Grant("acme", "admin"), Grant("Tools-2", "publish")),
    )
    none = session("bbbbbbbbbbbb", "b" * 64, grants=())
    for record in (several, none):
        await store.create_session(record)
    for record in (several, none):
        assert (await store.find_session(record.secret_hash)).grants == record.grants
        assert (await store.get_session(record.id)).grants == record.grants
    assert [s.grants for s in await store.list_sessions()] == [several.grants, ()]
    found = await store.find_session("a" * 64)
    assert all(isinstance(grant, Grant) for grant in found.grants) and isinstance(found.grants, tuple)


async def test_revoke_once_and_find_the_revoked_session(store: MetadataStore):
    live = session("aaaaaaaaaaaa", "a" * 64)
    other = session("bbbbbbbbbbbb", "b" * 64)
    for record in (live, other):
        await store.create_session(record)
    assert await store.revoke_session("aaaaaaaaaaaa", "2026-11-30T00:00:00Z") is True
    assert await store.revoke_session("aaaaaaaaaaaa", "2026-12-01T00:00:00Z") is False
    assert await store.revoke_session("000000000000", "2026-12-01T00:00:00Z") is False
    revoked = replace(live, revoked_at="2026-11-30T00:00:00Z")  # the first revocation's time stays
    assert await store.find_session("a" * 64) == revoked
    assert await store.get_session("aaaaaaaaaaaa") == revoked
    assert await store.list_sessions() == [revoked, other]
    assert await store.find_session("b" * 64) == other


async def test_purge_removes_the_sessions_that_ended_before_the_cut(store: MetadataStore):
    cut = "2026-12-01T00:00:00Z"
    expired = session("aaaaaaaaaaaa", "a" * 64, expires_at="2026-11-30T23:59:59Z")
    revoked = session("bbbbbbbbbbbb", "b" * 64)
    live = session("cccccccccccc", "c" * 64)
    expires_at_cut = session("dddddddddddd", "d" * 64, expires_at=cut)
    revoked_after_cut = session("eeeeeeeeeeee", "e" * 64)
    expired_and_revoked = session("ffffffffffff", "f" * 64, expires_at="2026-11-29T00:00:00Z")
    for record in (expired, revoked, live, expires_at_cut, revoked_after_cut, expired_and_revoked):
        await store.create_session(record)
    await store.revoke_session("bbbbbbbbbbbb", "2026-11-30T00:00:00Z")
    await store.revoke_session("eeeeeeeeeeee", "2026-12-02T00:00:00Z")
    await store.revoke_session("ffffffffffff", "2026-11-28T00:00:00Z")

    assert await store.purge_sessions(cut) == 3
    kept = ["cccccccccccc", "dddddddddddd", "eeeeeeeeeeee"]
    assert [s.id for s in await store.list_sessions()] == kept
    for gone in (expired, revoked, expired_and_revoked):
        assert await store.find_session(gone.secret_hash) is None
        assert await store.get_session(gone.id) is None
        assert await store.revoke_session(gone.id, cut) is False
    assert await store.find_session("c" * 64) == live
    assert await store.purge_sessions(cut) == 0  # nothing more ended before it

    # a purged session's id and hash may be stored again
    await store.create_session(expired)
    assert await store.find_session("a" * 64) == expired
    assert await store.purge_sessions("2026-12-03T00:00:00Z") == 3  # dddd..., eeee... and aaaa... again
    assert [s.id for s in await store.list_sessions()] == ["cccccccccccc"]


async def test_another_replica_sees_sessions_at_once(backend: Backend):
    one, two = await backend.replica(), await backend.replica()
    record = session("aaaaaaaaaaaa", "a" * 64)
    await one.create_session(record)
    assert await two.find_session("a" * 64) == record
    assert await two.revoke_session("aaaaaaaaaaaa", "2026-11-30T00:00:00Z") is True
    assert (await one.find_session("a" * 64)).revoked_at == "2026-11-30T00:00:00Z"
    with pytest.raises(Conflict):
        await two.create_session(session("bbbbbbbbbbbb", "a" * 64))
