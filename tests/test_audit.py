"""The audit trail: every change records who made it (a token, a GitHub delivery, an upstream, a
bundle), the log, the feed and webhooks carry it, and ``GET /api/v1/audit`` / ``mirror audit``
list the changes by actor, namespace and time within the reader's scope."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from mirror.domain.audit import Actor, acting_as
from mirror.domain.addresses import ModuleAddress
from mirror.http.keys import STORE
from mirror.services.tokens import create_token
from tests.conftest import Registry
from tests.live import eventually
from tests.test_github import GitHubWorld, installation_payload, org_with_modules, world  # noqa: F401  (the fixture)
from tests.test_sync import config_of, mirror_config, run_mirror, statuses, version_of


async def token(registry: Registry, namespace: str = "*", scope: str = "admin", description: str = "") -> tuple[str, str]:
    """A new token's id and secret."""
    record, secret = await create_token(registry.app[STORE], namespace, scope, description)
    return record.id, secret


def _key(actor: Any) -> str:
    return json.dumps(actor, sort_keys=True)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def publish(registry: Registry, module_archive, secret: str, address: str, version: str) -> None:
    response = await registry.publish(address, version, module_archive(f"{address}-{version}"), bearer(secret))
    assert response.status == 201, await response.text()


async def audit(registry: Registry, secret: str, status: int = 200, **query: Any) -> dict[str, Any]:
    response = await registry.client.get("/api/v1/audit", params={k: str(v) for k, v in query.items()}, headers=bearer(secret))
    body = await response.json()
    assert response.status == status, body
    return body


# -- who made a change --------------------------------------------------------------------------


async def test_a_publish_with_a_token_is_that_tokens_and_the_log_feed_and_store_say_so(
    registry: Registry, module_archive, tmp_path: Path
):
    token_id, secret = await token(registry, "acme", "publish", "CI pipeline")
    await publish(registry, module_archive, secret, "acme/network/aws", "1.0.0")
    actor = {"kind": "token", "id": token_id, "description": "CI pipeline"}

    stored = await registry.app[STORE].events_after(0, 100)
    assert [(e.type, e.actor) for e in stored] == [("module.created", actor), ("module.version_released", actor)]

    _, reader = await token(registry, "*", "read")
    feed = await (await registry.client.get("/api/v1/events", headers=bearer(reader))).json()
    assert [e["actor"] for e in feed["events"]] == [actor, actor]
    assert list(feed["events"][1]) == ["serial", "type", "occurred_at", "actor", "data"]

    log = tmp_path / "data" / "events.jsonl"

    def logged() -> list[dict[str, Any]]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    lines = await eventually(lambda: len(logged()) == 2 and logged(), "the JSONL log's two lines", timeout=10)
    assert [line["actor"] for line in lines] == [actor, actor]


async def test_reads_record_nothing_and_a_change_without_a_token_is_the_systems(registry: Registry, module_archive):
    _, secret = await token(registry, "*", "admin", "admin")
    await publish(registry, module_archive, secret, "acme/network/aws", "1.0.0")
    store = registry.app[STORE]
    await store.revoke_version(ModuleAddress.parse("acme/network/aws"), "1.0.0")  # no request, no job: the system
    assert (await store.events_after(0, 100))[-1].actor == {"kind": "system"}


async def test_a_github_delivery_and_the_work_it_queues_are_that_deliverys(world: GitHubWorld):  # noqa: F811
    org_with_modules(world.fake)
    response = await world.deliver(
        "installation", installation_payload(world.fake, "created", 7), delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
    assert response.status == 202
    await world.settle()
    events = await world.registry.app[STORE].events_after(0, 1000)
    types = [e.type for e in events]
    assert types[0] == "app.installed" and types.count("module.version_released") == 3  # backfill: follow-up jobs
    assert {_key(e.actor) for e in events} == {
        _key({"kind": "github", "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"})
    }


async def test_mirror_import_is_the_bundles_and_mirror_sync_the_upstreams(
    registry: Registry, module_archive, tmp_path: Path
):
    _, secret = await token(registry, "*", "admin", "upstream admin")
    await publish(registry, module_archive, secret, "acme/network/aws", "1.0.0")
    await publish(registry, module_archive, secret, "acme/dns/aws", "2.0.0")

    # export from this registry (offline, its config), import the bundle into another
    bundle = tmp_path / "release-2026-11.tar"
    code, out, err = await run_mirror("export", str(bundle), "--config", str(tmp_path / "mirror.toml"), cwd=tmp_path)
    assert code == 0, out + err
    imported = mirror_config(tmp_path / "imported")
    code, out, err = await run_mirror("import", str(bundle), "--config", str(imported), cwd=tmp_path)
    assert code == 0, out + err
    events = await _events_of(imported)
    assert [e.type for e in events].count("module.version_released") == 2
    assert {_key(e.actor) for e in events} == {_key({"kind": "bundle", "file": "release-2026-11.tar"})}

    # follow this registry's feed from a third one
    url = str(registry.client.make_url("")).rstrip("/")
    synced = mirror_config(tmp_path / "synced")
    code, out, err = await run_mirror(
        "sync", "--config", str(synced), "--from-mirror", url, cwd=tmp_path, env={"MIRROR_UPSTREAM_TOKEN": secret}
    )
    assert code == 0, out + err
    assert statuses(out) == {"acme/network/aws 1.0.0": "copied", "acme/dns/aws 2.0.0": "copied"}
    assert (await version_of(synced, "acme/dns/aws", "2.0.0")) is not None
    events = await _events_of(synced)
    assert len(events) == 4 and {_key(e.actor) for e in events} == {_key({"kind": "upstream", "host": url})}


async def _events_of(config_file: Path) -> list[Any]:
    from mirror.cli.common import with_store

    return await with_store(config_of(config_file), lambda store: store.events_after(0, 1000))


# -- the audit API --------------------------------------------------------------------------------


async def _history(registry: Registry, module_archive) -> dict[str, tuple[str, str]]:
    """acme/a and acme/b by the CI token, other/c by another, a bundle's and an upstream's change."""
    tokens = {
        "ci": await token(registry, "*", "publish", "CI"),
        "ops": await token(registry, "other", "admin", "ops laptop"),
    }
    await publish(registry, module_archive, tokens["ci"][1], "acme/a/aws", "1.0.0")
    await publish(registry, module_archive, tokens["ci"][1], "acme/b/aws", "1.0.0")
    await publish(registry, module_archive, tokens["ops"][1], "other/c/aws", "1.0.0")
    store = registry.app[STORE]
    with acting_as(Actor.bundle("b.tar")):
        await store.revoke_version(ModuleAddress.parse("acme/a/aws"), "1.0.0")
    with acting_as(Actor.upstream("registry.example.com")):
        await store.revoke_version(ModuleAddress.parse("other/c/aws"), "1.0.0")
    return tokens


def summary(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["type"], f"{e['data']['namespace']}/{e['data']['name']}") for e in body["events"]]


async def test_the_audit_api_filters_by_actor_namespace_and_time(registry: Registry, module_archive):
    tokens = await _history(registry, module_archive)
    _, admin = await token(registry, "*", "admin", "auditor")
    everything = await audit(registry, admin)
    assert len(everything["events"]) == 8 and everything["next_after"] == everything["latest"] == 8
    assert [e["serial"] for e in everything["events"]] == list(range(1, 9))  # oldest first

    by_ci = await audit(registry, admin, actor=tokens["ci"][0])
    assert summary(by_ci) == [
        ("module.created", "acme/a"), ("module.version_released", "acme/a"),
        ("module.created", "acme/b"), ("module.version_released", "acme/b"),
    ]  # fmt: skip
    assert by_ci["events"][0]["actor"] == {"kind": "token", "id": tokens["ci"][0], "description": "CI"}
    assert len((await audit(registry, admin, actor="token"))["events"]) == 6  # by kind
    assert summary(await audit(registry, admin, actor="b.tar")) == [("module.version_revoked", "acme/a")]
    assert summary(await audit(registry, admin, actor="registry.example.com")) == [("module.version_revoked", "other/c")]
    assert summary(await audit(registry, admin, actor="upstream")) == [("module.version_revoked", "other/c")]
    assert (await audit(registry, admin, actor="nobody"))["events"] == []

    acme = await audit(registry, admin, namespace="ACME")  # case-insensitive
    assert {name for _, name in summary(acme)} == {"acme/a", "acme/b"} and len(acme["events"]) == 5
    both = await audit(registry, admin, namespace="acme", actor=tokens["ci"][0])
    assert len(both["events"]) == 4

    when = everything["events"][0]["occurred_at"]
    assert len((await audit(registry, admin, since=when, until=when))["events"]) >= 1
    assert len((await audit(registry, admin, since="2000-01-01T00:00:00Z"))["events"]) == 8
    assert (await audit(registry, admin, since="2999-01-01T00:00:00+01:00"))["events"] == []
    assert (await audit(registry, admin, until="2000-01-01T00:00:00Z"))["events"] == []

    for bad in ({"since": "yesterday"}, {"until": "2026-11-24"}, {"since": "2026-11-24T20:27:51"},
                {"namespace": "not a namespace"}, {"limit": "0"}, {"after": "-1"}, {"actor": ""}):  # fmt: skip
        body = await audit(registry, admin, 400, **bad)
        assert len(body["errors"]) == 1, body


async def test_the_audit_api_pages_by_serial(registry: Registry, module_archive):
    await _history(registry, module_archive)
    _, admin = await token(registry, "*", "read")
    seen, after = [], 0
    while True:
        page = await audit(registry, admin, limit=3, after=after)
        assert len(page["events"]) <= 3
        seen += [e["serial"] for e in page["events"]]
        after = page["next_after"]
        if after >= page["latest"]:
            break
    assert seen == list(range(1, 9))
    tail = await audit(registry, admin, after=8)
    assert tail == {"events": [], "next_after": 8, "latest": 8}


async def test_a_namespace_token_sees_its_namespace_only(registry: Registry, module_archive):
    await _history(registry, module_archive)
    _, other = await token(registry, "other", "read")
    mine = await audit(registry, other)
    assert {name for _, name in summary(mine)} == {"other/c"} and len(mine["events"]) == 3
    assert len((await audit(registry, other, namespace="OTHER"))["events"]) == 3
    refused = await audit(registry, other, 403, namespace="acme")
    assert len(refused["errors"]) == 1
    response = await registry.client.get("/api/v1/audit")
    assert response.status == 401 and "errors" in await response.json()


async def test_one_request_reads_at_most_5000_events(registry: Registry, module_archive, tmp_path: Path):
    _, admin = await token(registry, "*", "admin")
    await publish(registry, module_archive, admin, "acme/a/aws", "1.0.0")  # serials 1, 2
    with sqlite3.connect(tmp_path / "data" / "mirror.db") as db:  # 6,000 more changes in another namespace
        db.executemany(
            "INSERT INTO events (type, occurred_at, data, actor) VALUES (?, ?, ?, ?)",
            [("module.created", "2026-11-24T00:00:00Z", json.dumps({"namespace": "bulk", "name": f"m{n}",
              "provider": "aws"}), json.dumps({"kind": "cli"})) for n in range(6000)],
        )  # fmt: skip
    first = await audit(registry, admin, namespace="acme", after=2)
    assert first["events"] == [] and first["next_after"] == 5002 and first["latest"] == 6002
    second = await audit(registry, admin, namespace="acme", after=first["next_after"])
    assert second["events"] == [] and second["next_after"] == 6002
    assert len((await audit(registry, admin, actor="cli", limit=1000))["events"]) == 1000


async def test_events_recorded_before_actors_have_none(registry: Registry, module_archive, tmp_path: Path):
    _, admin = await token(registry, "*", "admin")
    await publish(registry, module_archive, admin, "acme/a/aws", "1.0.0")
    with sqlite3.connect(tmp_path / "data" / "mirror.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 14
        db.execute("UPDATE events SET actor = NULL WHERE serial = 1")  # as migration 14 leaves older events
    page = await audit(registry, admin)
    assert page["events"][0]["actor"] is None and page["events"][1]["actor"]["kind"] == "token"
    assert (await audit(registry, admin, actor="token"))["events"][0]["serial"] == 2


# -- mirror audit ------------------------------------------------------------------------------------


async def test_mirror_audit_lists_changes_over_http(registry: Registry, module_archive, tmp_path: Path):
    tokens = await _history(registry, module_archive)
    url = str(registry.client.make_url("")).rstrip("/")
    _, admin = await token(registry, "*", "read")
    env = {"MIRROR_TOKEN": admin}
    code, out, err = await run_mirror("audit", "--registry", url, "--actor", tokens["ci"][0], cwd=tmp_path, env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4 and all(f"token {tokens['ci'][0]} (CI)" in line for line in lines)
    assert "acme/b/aws 1.0.0" in lines[-1] and "module.version_released" in lines[-1]

    code, out, err = await run_mirror("audit", "--registry", url, "--namespace", "other", "--json", cwd=tmp_path, env=env)
    assert code == 0, err
    changes = [json.loads(line) for line in out.splitlines()]
    assert [c["actor"]["kind"] for c in changes] == ["token", "token", "upstream"]

    code, out, err = await run_mirror("audit", "--registry", url, "--since", "2026-11-24", cwd=tmp_path, env=env)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "since" in err
    code, out, err = await run_mirror("audit", "--registry", url, cwd=tmp_path, env={})
    assert code == 2 and "MIRROR_TOKEN" in err and len(err.strip().splitlines()) == 1
