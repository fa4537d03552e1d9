"""Module provenance end to end: each module has one owner source, and no other source changes it.

Against a fake GitHub over real HTTP, signed deliveries, the real job queue and store, the HTTP API
and the real CLI. Every refused change leaves the module as it was and says who owns it.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from mirror.formats.archive import pack_directory
from mirror.http.keys import JOBS, STORE
from tests.fake_github import (
    FakeGitHub,
    delete_tag_payload,
    installation_payload,
    push_tag_payload,
    repository_payload,
)
from tests.live import run_cli
from tests.test_github import GitHubWorld, github_sections, module_files, world  # noqa: F401 (fixture)
from tests.test_sync import start_mirror  # noqa: F401 (fixture)

NETWORK = "acme-corp/network/aws"


def packed(tmp_path: Path, marker: str) -> bytes:
    root = tmp_path / f"module-{marker}"
    for name, data in module_files(marker).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    out = io.BytesIO()
    pack_directory(root, out)
    return out.getvalue()


async def upload(world: GitHubWorld, tmp_path: Path, version: str, *, scope: str = "publish") -> tuple[int, dict]:
    headers = await world.registry.auth("acme-corp", scope)
    response = await world.registry.publish(NETWORK, version, packed(tmp_path, version), headers)
    return response.status, await response.json()


async def failed_errors(world: GitHubWorld) -> list[str]:
    return [job.last_error or "" for job in await world.registry.app[STORE].list_jobs("failed")]


def network_repository(fake: FakeGitHub):
    repo = fake.add_repository("acme-corp", "terraform-aws-network", installation_id=7)
    fake.add_tag("acme-corp", "terraform-aws-network", "v1.0.0", module_files("net-1.0.0"))
    return repo


async def test_github_never_changes_an_uploaded_module(world: GitHubWorld, tmp_path: Path):
    """An uploaded acme-corp/network/aws and a repository acme-corp/terraform-aws-network: tags,
    tag deletes, renames, deletes and uninstalling leave the uploaded module alone, and each
    refused job names the owner."""
    assert (await upload(world, tmp_path, "0.9.0"))[0] == 201
    repo = network_repository(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()
    assert await world.versions(NETWORK) == ["0.9.0"]
    errors = await failed_errors(world)
    assert errors and all("belongs to owner source upload" in e for e in errors), errors

    sha = world.fake.add_tag("acme-corp", repo.name, "v1.2.0", module_files("net-1.2.0"))
    await world.deliver("push", push_tag_payload(repo, "v1.2.0", before=None, after=sha))
    world.fake.add_tag("acme-corp", repo.name, "v0.9.0", module_files("tagged-0.9.0"))
    world.fake.delete_tag("acme-corp", repo.name, "v0.9.0")
    await world.deliver("delete", delete_tag_payload(repo, "v0.9.0"))
    await world.settle()
    assert await world.versions(NETWORK) == ["0.9.0"]  # neither added nor revoked
    errors = await failed_errors(world)
    assert any("cannot revoke versions of it" in e for e in errors), errors
    assert any("cannot add versions to it" in e and "github" in e.lower() for e in errors), errors

    # the jobs list shows why, owner first
    listing = await asyncio.to_thread(
        run_cli, "jobs", "list", "--state", "failed", "--config", str(tmp_path / "mirror.toml"), cwd=tmp_path
    )
    assert listing.returncode == 0, listing.stderr
    assert "belongs to owner source upload" in listing.stdout

    before = await world.registry.app[STORE].latest_serial()
    repo.name = "terraform-aws-net"
    world.fake.repos[("acme-corp", repo.name)] = world.fake.repos.pop(("acme-corp", "terraform-aws-network"))
    await world.deliver("repository", repository_payload(repo, "renamed", old_name="terraform-aws-network"))
    await world.deliver("repository", repository_payload(repo, "deleted"))
    await world.deliver("installation", installation_payload(world.fake, "deleted", 7))
    await world.settle()
    assert await world.versions(NETWORK) == ["0.9.0"]
    record = await world.registry.app[STORE].get_module(world_address())
    assert str(record.owner) == "upload"
    # the renamed repository made a module of its own (acme-corp/net/aws), then lost it: the
    # uploaded module saw no event at all
    new_events = await world.registry.app[STORE].events_after(before, 100)
    assert "app.uninstalled" in [e.type for e in new_events]
    assert [e.type for e in new_events if e.data.get("name") == "network"] == []
    assert NETWORK in [str(m.address) for m in await world.registry.app[STORE].list_modules("acme-corp")]


def world_address():
    from mirror.domain.addresses import ModuleAddress

    return ModuleAddress.parse(NETWORK)


async def test_a_repository_module_takes_uploads_only_when_an_admin_allows_them(world: GitHubWorld, tmp_path: Path):
    repo = network_repository(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()
    assert await world.versions(NETWORK) == ["1.0.0"]
    owner = f"github:{repo.id}"

    status, body = await upload(world, tmp_path, "2.0.0")
    assert status == 409
    [error] = body["errors"]
    assert f"belongs to owner source {owner}" in error and "allow_uploads" in error

    client, admin = world.registry.client, await world.registry.auth()
    shown = await client.get(f"/api/v1/modules/{NETWORK}", headers=await world.registry.auth("acme-corp", "read"))
    module = (await shown.json())["module"]
    assert (module["owner_source"], module["installation_id"], module["allow_uploads"]) == (owner, 7, False)
    detail = await (await client.get(f"/v1/modules/{NETWORK}", headers=admin)).json()
    assert detail["owner_source"] == owner

    publisher = await world.registry.auth("acme-corp", "publish")
    refused = await client.patch(f"/api/v1/modules/{NETWORK}", json={"allow_uploads": True}, headers=publisher)
    assert refused.status == 403
    allowed = await client.patch(f"/api/v1/modules/{NETWORK}", json={"allow_uploads": True}, headers=admin)
    assert allowed.status == 200 and (await allowed.json())["module"]["allow_uploads"] is True
    assert (await upload(world, tmp_path, "2.0.0"))[0] == 201
    assert (await world.registry.app[STORE].get_module(world_address())).owner == module_owner(repo.id)

    # the uploaded version is the uploader's: the repository's tag delete and reconcile leave it
    await world.deliver("delete", delete_tag_payload(repo, "v2.0.0"))
    await world.settle()
    await world.registry.app[JOBS].enqueue("github.reconcile", {})
    await world.settle()
    assert await world.versions(NETWORK) == ["2.0.0", "1.0.0"]
    assert any("was uploaded into the module" in e for e in await failed_errors(world))

    # the repository's own tag delete still revokes its own version
    world.fake.delete_tag("acme-corp", repo.name, "v1.0.0")
    await world.deliver("delete", delete_tag_payload(repo, "v1.0.0"))
    await world.settle()
    assert await world.versions(NETWORK) == ["2.0.0"]

    closed = await client.patch(f"/api/v1/modules/{NETWORK}", json={"allow_uploads": False}, headers=admin)
    assert closed.status == 200
    assert (await upload(world, tmp_path, "2.1.0"))[0] == 409

    # the CLI does the same over HTTP
    env_config = str(tmp_path / "mirror.toml")
    registry_url = str(client.make_url("/"))
    token = admin["Authorization"].removeprefix("Bearer ")
    shown_cli = await asyncio.to_thread(
        run_cli, "modules", "set", NETWORK, "--allow-uploads", "--registry", registry_url, "--config", env_config,
        cwd=tmp_path, env={"MIRROR_TOKEN": token},
    )
    assert shown_cli.returncode == 0, shown_cli.stderr
    assert f"owner source {owner}" in shown_cli.stdout and "uploads allowed" in shown_cli.stdout
    bad = await asyncio.to_thread(
        run_cli, "modules", "set", NETWORK, "--owner", "github:x", "--registry", registry_url, "--config", env_config,
        cwd=tmp_path, env={"MIRROR_TOKEN": token},
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def module_owner(repository_id: int):
    from mirror.domain.provenance import Owner

    return Owner.github(repository_id)


async def test_an_admin_hands_a_module_to_another_source(world: GitHubWorld, tmp_path: Path):
    """An uploaded module handed to the repository: from then on its tags are ingested."""
    assert (await upload(world, tmp_path, "0.9.0"))[0] == 201
    repo = network_repository(world.fake)
    admin = await world.registry.auth()
    body = {"owner_source": f"github:{repo.id}"}
    handed = await world.registry.client.patch(f"/api/v1/modules/{NETWORK}", json=body, headers=admin)
    assert handed.status == 200, await handed.text()
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()
    assert await world.versions(NETWORK) == ["1.0.0", "0.9.0"]
    assert (await upload(world, tmp_path, "3.0.0"))[0] == 409
    types = [e.type for e in await world.registry.app[STORE].events_after(0, 100)]
    assert types.count("module.policy_changed") == 1


@pytest.mark.slow
async def test_sync_and_bundles_leave_other_sources_modules_alone(start_mirror, tmp_path: Path):  # noqa: F811
    """`mirror sync` does not add versions to a module uploaded here, and reports the conflict
    naming its owner; what it creates is the upstream's. A bundle never adds to a module that
    sync or uploads own, and imports nothing."""
    from tests.test_sync import run_mirror, statuses, version_of

    upstream = await start_mirror("upstream")
    await upstream.publish("acme/a/aws", "1.0.0", "up-a")
    await upstream.publish("acme/b/aws", "1.0.0", "up-b")
    down = await start_mirror("down")
    await down.publish("acme/a/aws", "0.1.0", "local-a")
    env = {"MIRROR_UPSTREAM_TOKEN": upstream.token}
    code, out, err = await run_mirror(
        "sync", "--config", str(down.config_file), "--from-mirror", upstream.url, cwd=tmp_path, env=env
    )
    assert {k.rstrip(":"): v for k, v in statuses(out).items()} == {
        "acme/a/aws 1.0.0": "conflict",
        "acme/b/aws 1.0.0": "copied",
    }, out + err
    assert "fetching  acme/a/aws" not in out  # refused before anything was downloaded
    assert "belongs to owner source upload" in out
    assert await version_of(down.config_file, "acme/a/aws", "1.0.0") is None
    host = upstream.url.split("://", 1)[1]
    shown = await run_mirror(
        "modules", "show", "acme/b/aws", "--registry", down.url, cwd=tmp_path, env={"MIRROR_TOKEN": down.token}
    )
    assert shown[0] == 0 and f"owner source upstream:{host}" in shown[1], shown

    bundle = tmp_path / "b.tar"
    code, out, err = await run_mirror("export", "--config", str(upstream.config_file), str(bundle), cwd=tmp_path)
    assert code == 0, out + err
    code, out, err = await run_mirror("import", "--config", str(down.config_file), str(bundle), cwd=tmp_path)
    assert code == 1 and "Traceback" not in err
    assert "belongs to owner source" in err and "nothing was imported" in err
    assert await version_of(down.config_file, "acme/a/aws", "1.0.0") is None


async def test_pull_through_offers_nothing_for_a_module_another_source_owns(tmp_path: Path):
    """A proxied namespace with a module uploaded here: the upstream's versions of it are neither
    listed nor fetched, and a download of one is a 404 naming the owner."""
    import aiohttp

    from tests.test_pullthrough import start_downstream
    from tests.live import MirrorServer
    from tests.test_sync import LiveMirror, config_of, mirror_config, token_for, version_of

    config_file = mirror_config(tmp_path / "upstream")
    up_server = MirrorServer(config_file, config_of(config_file).server.port, config_file.parent).start()
    upstream = LiveMirror(config_file, up_server, await token_for(config_file))
    async with aiohttp.ClientSession() as session:
        try:
            await upstream.publish("acme/network/aws", "1.0.0", "up")
            await upstream.publish("acme/other/aws", "1.0.0", "up-other")
            settings = {"host": upstream.url, "token": upstream.token, "proxy_namespaces": ["acme"], "proxy_ttl_seconds": 2}
            down = await start_downstream(tmp_path / "down", session, settings)
            try:
                local = LiveMirror(down.server.config_file, down.server, down.admin)
                await local.publish("acme/network/aws", "0.1.0", "here")
                assert await down.versions("acme/network/aws") == ["0.1.0"]
                status, body = await down.download("1.0.0", "acme/network/aws")
                assert status == 404 and body["errors"], body  # not offered, so not found
                assert await version_of(down.server.config_file, "acme/network/aws", "1.0.0") is None
                assert await down.versions("acme/other/aws") == ["1.0.0"]  # the upstream's own still comes
                assert (await down.download("1.0.0", "acme/other/aws"))[0] == 200
                shown = await down.get("/api/v1/modules/acme/other/aws", token=down.admin)
                assert shown[1]["module"]["owner_source"] == "upstream:" + upstream.url.split("://")[1]
            finally:
                assert down.server.stop() == 0, down.server.logs()
        finally:
            up_server.stop()
