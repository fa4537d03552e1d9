"""Tokens as a resource: made over the API within the caller's grant, with an expiry (a default
and a maximum from the config), listed and revoked by whoever may manage them, their last use
recorded coarsely; and ``mirror token`` over HTTP and straight in the store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mirror.config import load_config
from mirror.domain.errors import ConfigError, Unauthorized
from mirror.http.keys import AUTH, STORE
from mirror.services.auth import Authenticator
from mirror.services.tokens import create_token, timestamp
from mirror.storage.sqlite import SqliteMetadataStore
from tests.live import ManualClock, write_config
from tests.test_sync import run_mirror

pytestmark = pytest.mark.asyncio


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def make(registry, secret: str, **body) -> tuple[int, dict]:
    response = await registry.client.post("/api/v1/tokens", json=body, headers=bearer(secret))
    return response.status, await response.json()


async def listed(registry, secret: str) -> dict[str, dict]:
    response = await registry.client.get("/api/v1/tokens", headers=bearer(secret))
    assert response.status == 200, await response.text()
    return {token["id"]: token for token in (await response.json())["tokens"]}


async def test_a_token_makes_tokens_within_its_grant(registry):
    publisher = await registry.token("acme", "publish")
    status, answer = await make(registry, publisher, namespace="ACME", scope="read", description="ci reader")
    assert status == 201, answer
    made = answer["token"]
    assert made["secret"].startswith("mirror_") and (made["namespace"], made["scope"]) == ("ACME", "read")
    assert made["description"] == "ci reader" and made["state"] == "active" and made["last_used_at"] is None
    assert "token_hash" not in made
    # the new token works, within its own grant
    assert (await registry.client.get("/api/v1/tokens", headers=bearer(made["secret"]))).status == 200
    for namespace, scope in (("acme", "admin"), ("other", "read"), ("*", "read")):
        status, answer = await make(registry, publisher, namespace=namespace, scope=scope)
        assert status == 403, (namespace, scope, answer)
        assert len(answer["errors"]) == 1
    status, answer = await make(registry, made["secret"], namespace="acme", scope="publish")  # read cannot make publish
    assert status == 403 and "read < publish < admin" in answer["errors"][0]
    everywhere = await registry.token("*", "publish")  # a `*` token: any namespace, up to its scope
    assert (await make(registry, everywhere, namespace="other", scope="publish"))[0] == 201
    assert (await make(registry, everywhere, namespace="*", scope="read"))[0] == 201
    assert (await make(registry, everywhere, namespace="other", scope="admin"))[0] == 403


async def test_a_registry_admin_makes_tokens_for_anyone_and_bad_bodies_are_400(registry):
    admin = await registry.token("*", "admin")
    for namespace, scope in (("acme", "admin"), ("*", "admin"), ("other", "read")):
        status, answer = await make(registry, admin, namespace=namespace, scope=scope)
        assert status == 201 and answer["token"]["created_by"] != "", answer
    for body in (
        {"scope": "read"},
        {"namespace": "acme", "scope": "owner"},
        {"namespace": "no/slash", "scope": "read"},
        {"namespace": "acme", "scope": "read", "expires_in": 0},
        {"namespace": "acme", "scope": "read", "expires_in": "3600"},
        {"namespace": "acme", "scope": "read", "expires_in": True},
        {"namespace": "acme", "scope": "read", "description": "x" * 257},
    ):
        status, answer = await make(registry, admin, **body)
        assert status == 400 and len(answer["errors"]) == 1, (body, answer)
    response = await registry.client.post("/api/v1/tokens", data=b"[]", headers=bearer(admin))
    assert response.status == 400
    assert (await registry.client.post("/api/v1/tokens", json={"namespace": "acme", "scope": "read"})).status == 401


async def test_expiry_has_a_default_and_a_maximum(start_registry, make_config):
    registry = await start_registry(
        make_config(auth={"token_default_expiry_seconds": 3600, "token_max_expiry_seconds": 7200})
    )
    admin = await registry.token("*", "admin")
    before = time.time()
    status, answer = await make(registry, admin, namespace="acme", scope="publish")
    assert status == 201
    publisher = answer["token"]
    assert before + 3600 <= timestamp(publisher["expires_at"]) <= time.time() + 3601
    status, answer = await make(registry, admin, namespace="acme", scope="read", expires_in=7201)
    assert status == 400 and "at most 7200 seconds" in answer["errors"][0]
    status, answer = await make(registry, admin, namespace="acme", scope="read", expires_in=7200)
    assert status == 201 and timestamp(answer["token"]["expires_at"]) >= before + 7200
    # a token that expires cannot make one that outlives it; by default its tokens end with it
    status, answer = await make(registry, publisher["secret"], namespace="acme", scope="read", expires_in=7000)
    assert status == 403 and "outlive" in answer["errors"][0]
    status, answer = await make(registry, publisher["secret"], namespace="acme", scope="read")
    assert status == 201 and answer["token"]["expires_at"] == publisher["expires_at"]
    status, answer = await make(registry, publisher["secret"], namespace="acme", scope="read", expires_in=60)
    assert status == 201 and timestamp(answer["token"]["expires_at"]) <= time.time() + 61


async def test_tokens_made_on_the_server_never_expire_unless_asked(registry):
    record, _ = await create_token(registry.app[STORE], "acme", "read")
    assert record.expires_at is None and record.created_by == ""


async def test_an_expired_token_is_refused_with_a_401_saying_so(registry):
    admin = await registry.token("*", "admin")
    status, answer = await make(registry, admin, namespace="acme", scope="read", expires_in=1)
    assert status == 201
    short = answer["token"]
    headers = bearer(short["secret"])
    assert (await registry.client.get("/api/v1/tokens", headers=headers)).status == 200  # remembered as granted
    await asyncio.sleep(max(0.0, timestamp(short["expires_at"]) - time.time()) + 0.05)
    response = await registry.client.get("/api/v1/tokens", headers=headers)
    assert response.status == 401
    assert (await response.json())["errors"] == [f"the token expired at {short['expires_at']}"]
    assert (await listed(registry, admin))[short["id"]]["state"] == "expired"


async def test_cached_lookups_and_grants_never_outlive_the_expiry(tmp_path: Path):
    store = SqliteMetadataStore(tmp_path / "mirror.db")
    await store.open()
    try:
        clock = ManualClock(start=1_800_000_000.0)
        auth = Authenticator(store, anonymous_read=False, cache_seconds=5.0, clock=clock)
        record, secret = await create_token(store, "acme", "read", expires_in=10, now=clock())
        header = f"Bearer {secret}"
        assert (await auth.authorize(header, "acme", "read")).id == record.id
        clock.advance(5.0)  # the lookup's cache period is over, the token has 5 s left
        await auth.authorize(header, "acme", "read")
        clock.advance(4.9)
        await auth.authorize(header, "acme", "read")  # remembered, and still before its expiry
        clock.advance(0.1)  # its expiry, within the cache period of the lookup above
        for _ in range(2):
            with pytest.raises(Unauthorized, match=r"expired at 2027-01-15T08:00:10Z"):
                await auth.authorize(header, "acme", "read")
        await auth.drain()
    finally:
        await store.close()


async def test_last_use_is_recorded_coarsely_in_the_background(tmp_path: Path):
    store = SqliteMetadataStore(tmp_path / "mirror.db")
    await store.open()
    try:
        clock = ManualClock(start=1_800_000_000.0)
        auth = Authenticator(store, anonymous_read=False, cache_seconds=5.0, clock=clock, touch_seconds=600)
        record, secret = await create_token(store, "acme", "read", now=clock())
        header = f"Bearer {secret}"

        async def last_used() -> str | None:
            await auth.drain()
            return (await store.find_token(record.token_hash)).last_used_at

        assert await last_used() is None
        await auth.authorize(header, "acme", "read")
        assert await last_used() == "2027-01-15T08:00:00Z"
        for _ in range(50):  # many requests, many lookups: no write until touch_seconds have passed
            clock.advance(10.0)
            await auth.authorize(header, "acme", "read")
        assert clock() - 1_800_000_000.0 == 500.0
        assert await last_used() == "2027-01-15T08:00:00Z"
        clock.advance(100.0)
        await auth.authorize(header, "acme", "read")
        assert await last_used() == "2027-01-15T08:10:00Z"
    finally:
        await store.close()


async def test_last_use_shows_in_the_list_and_is_not_written_per_request(registry):
    admin = await registry.token("*", "admin")
    status, answer = await make(registry, admin, namespace="acme", scope="read")
    reader = answer["token"]
    assert reader["last_used_at"] is None
    for _ in range(20):
        assert (await registry.client.get("/api/v1/tokens", headers=bearer(reader["secret"]))).status == 200
    await registry.app[AUTH].drain()
    first = (await listed(registry, admin))[reader["id"]]["last_used_at"]
    assert first is not None and abs(timestamp(first) - time.time()) < 5
    await asyncio.sleep(1.1)  # a later second: a write per request would show it
    for _ in range(5):
        assert (await registry.client.get("/api/v1/tokens", headers=bearer(reader["secret"]))).status == 200
    await registry.app[AUTH].drain()
    assert (await listed(registry, admin))[reader["id"]]["last_used_at"] == first


async def test_the_list_shows_what_each_token_may_manage_and_never_a_secret(registry):
    admin = await registry.token("*", "admin")
    acme_admin = (await make(registry, admin, namespace="acme", scope="admin", description="acme admin"))[1]["token"]
    publisher = (await make(registry, acme_admin["secret"], namespace="acme", scope="publish"))[1]["token"]
    reader = (await make(registry, publisher["secret"], namespace="acme", scope="read"))[1]["token"]
    outsider = (await make(registry, admin, namespace="other", scope="admin"))[1]["token"]
    everything = await listed(registry, admin)
    assert {acme_admin["id"], publisher["id"], reader["id"], outsider["id"]} <= set(everything)
    assert everything[publisher["id"]]["created_by"] == acme_admin["id"]
    assert everything[publisher["id"]]["created_by_description"] == "acme admin"
    for token in everything.values():
        assert "secret" not in token and "token_hash" not in token
        assert set(token) >= {"expires_at", "created_by", "last_used_at", "description", "state"}
    # a namespace admin: its namespace's tokens; others: themselves and what they made
    assert set(await listed(registry, acme_admin["secret"])) == {acme_admin["id"], publisher["id"], reader["id"]}
    assert set(await listed(registry, publisher["secret"])) == {publisher["id"], reader["id"]}
    assert set(await listed(registry, reader["secret"])) == {reader["id"]}
    assert set(await listed(registry, outsider["secret"])) == {outsider["id"]}
    assert (await registry.client.get("/api/v1/tokens")).status == 401


async def test_revoke_what_one_may_manage(registry):
    admin = await registry.token("*", "admin")
    publisher = (await make(registry, admin, namespace="acme", scope="publish"))[1]["token"]
    reader = (await make(registry, publisher["secret"], namespace="acme", scope="read"))[1]["token"]
    stranger = (await make(registry, admin, namespace="acme", scope="read"))[1]["token"]

    async def revoke(token_id: str, secret: str) -> int:
        return (await registry.client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(secret))).status

    assert await revoke(stranger["id"], publisher["secret"]) == 404  # not its own, not made by it
    assert await revoke("nope", publisher["secret"]) == 404
    admin_id = next(t["id"] for t in (await listed(registry, admin)).values() if t["created_by"] == "")
    assert await revoke(admin_id, reader["secret"]) == 404
    assert (await registry.client.get("/api/v1/tokens", headers=bearer(reader["secret"]))).status == 200
    assert await revoke(reader["id"], publisher["secret"]) == 204
    response = await registry.client.get("/api/v1/tokens", headers=bearer(reader["secret"]))
    assert response.status == 401  # at once in this process, though it was remembered as granted
    assert await revoke(reader["id"], publisher["secret"]) == 404  # revoked already
    assert await revoke(stranger["id"], admin) == 204  # an admin revokes any
    assert await revoke(publisher["id"], publisher["secret"]) == 204  # and a token itself
    assert (await registry.client.get("/api/v1/tokens", headers=bearer(publisher["secret"]))).status == 401
    states = {token_id: token["state"] for token_id, token in (await listed(registry, admin)).items()}
    assert states[reader["id"]] == states[stranger["id"]] == states[publisher["id"]] == "revoked"


async def test_the_config_checks_the_expiry_settings(tmp_path: Path):
    def problems(auth: dict) -> str:
        path = write_config(tmp_path / "mirror.toml", {"auth": auth})
        with pytest.raises(ConfigError) as raised:
            load_config(path, environ={})
        return str(raised.value)

    assert "token_default_expiry_seconds must be between 1 and token_max_expiry_seconds" in problems(
        {"token_default_expiry_seconds": 7200, "token_max_expiry_seconds": 3600}
    )
    assert "token_max_expiry_seconds must be between 0" in problems({"token_max_expiry_seconds": -1})
    assert "token_default_expiry_seconds must be between 1" in problems({"token_default_expiry_seconds": 0})
    never = load_config(
        write_config(tmp_path / "ok.toml", {"auth": {"token_default_expiry_seconds": 0, "token_max_expiry_seconds": 0}}),
        environ={},
    )
    assert never.auth.token_default_expiry_seconds == 0


async def test_the_cli_over_http(registry, tmp_path: Path):
    admin = await registry.token("*", "admin")
    url = str(registry.client.make_url("")).rstrip("/")
    env = {"MIRROR_TOKEN": admin}
    code, out, err = await run_mirror(
        "token", "create", "--namespace", "acme", "--scope", "publish", "--description", "deploys",
        "--expires", "30d", "--registry", url, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 0, err
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("mirror_") and "expires at" in out
    made = next(t for t in (await listed(registry, admin)).values() if t["description"] == "deploys")
    assert abs(timestamp(made["expires_at"]) - (time.time() + 30 * 86400)) < 30
    # $MIRROR_REGISTRY does the same; the new token makes its own, within its grant
    code, out, err = await run_mirror(
        "token", "create", "--namespace", "acme", "--scope", "admin", cwd=tmp_path,
        env={"MIRROR_TOKEN": secret, "MIRROR_REGISTRY": url},
    )  # fmt: skip
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "(403)" in err and "cannot make a 'admin' token" in err
    code, out, err = await run_mirror("token", "list", "--registry", url, cwd=tmp_path, env={"MIRROR_TOKEN": secret})
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:5] == ["ID", "NAMESPACE", "SCOPE", "STATE", "CREATED"]
    assert "EXPIRES" in lines[0] and "CREATED BY" in lines[0] and "LAST USED" in lines[0]
    assert len(lines) == 2 and made["id"] in lines[1] and made["expires_at"] in lines[1] and "deploys" in lines[1]
    code, out, err = await run_mirror("token", "revoke", made["id"], "--registry", url, cwd=tmp_path, env=env)
    assert code == 0 and f"revoked token {made['id']}" in out, err
    code, out, err = await run_mirror("token", "list", "--registry", url, cwd=tmp_path, env={"MIRROR_TOKEN": secret})
    assert code == 1 and len(err.strip().splitlines()) == 1 and "(401)" in err
    code, out, err = await run_mirror("token", "list", "--registry", url, cwd=tmp_path)  # no $MIRROR_TOKEN
    assert code == 2 and "MIRROR_TOKEN" in err and len(err.strip().splitlines()) == 1
    code, out, err = await run_mirror(
        "token", "create", "--namespace", "acme", "--scope", "read", "--expires", "soon", cwd=tmp_path
    )
    assert code == 2 and "invalid duration 'soon'" in err


async def test_the_cli_in_the_store(registry, tmp_path: Path):
    config = str(tmp_path / "mirror.toml")  # the registry fixture's own config: the same database
    code, out, err = await run_mirror(
        "token", "create", "--namespace", "*", "--scope", "read", "--expires", "12h", "--config", config, cwd=tmp_path
    )
    assert code == 0, err
    secret = out.strip().splitlines()[-1]
    code, out, err = await run_mirror(
        "token", "create", "--namespace", "acme", "--scope", "read", "--description", "forever", "--config", config,
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 0 and "never expires" in out, err
    records = {record.description: record for record in await registry.app[STORE].list_tokens()}
    assert records["forever"].expires_at is None and records["forever"].created_by == ""
    twelve_hours = next(r for r in records.values() if r.expires_at is not None)
    assert abs(timestamp(twelve_hours.expires_at) - (time.time() + 12 * 3600)) < 30
    assert (await registry.client.get("/api/v1/tokens", headers=bearer(secret))).status == 200
    await registry.app[AUTH].drain()
    code, out, err = await run_mirror("token", "list", "--config", config, cwd=tmp_path)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.strip().splitlines()[1:]}
    assert "never" in rows[records["forever"].id] and "server" in rows[records["forever"].id]
    assert twelve_hours.expires_at in rows[twelve_hours.id]
    assert rows[twelve_hours.id].split()[7].startswith("20")  # LAST USED: recorded by the request above
    code, out, err = await run_mirror("token", "revoke", records["forever"].id, "--config", config, cwd=tmp_path)
    assert code == 0, err
    code, out, err = await run_mirror("token", "revoke", records["forever"].id, "--config", config, cwd=tmp_path)
    assert code == 1 and "no active token" in err
