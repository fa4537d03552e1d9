"""The GitHub integration end to end, against a fake GitHub over real HTTP and signed deliveries."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from mirror.integrations.github.sync import RECONCILE
from mirror.http.keys import JOBS, STORE
from tests.conftest import Registry
from tests.live import eventually
from tests.fake_github import (
    FakeGitHub,
    FakeRepo,
    create_tag_payload,
    delete_tag_payload,
    installation_payload,
    installation_repositories_payload,
    push_tag_payload,
    repository_payload,
    sign,
    webhook_delivery,
)

SECRET = "webhook-secret-for-tests"
MAIN_TF = b'variable "name" {\n  default = "x"\n}\noutput "id" {\n  value = "%s-${var.name}"\n}\n'


def module_files(marker: str) -> dict[str, bytes]:
    return {
        "main.tf": MAIN_TF % marker.encode(),
        "modules/sub/main.tf": b'output "sub" {\n  value = 1\n}\n',
        "README.md": f"# Module {marker}\n".encode(),
    }


@dataclass
class GitHubWorld:
    fake: FakeGitHub
    server: TestServer
    registry: Registry

    async def deliver(self, event: str, payload: dict[str, Any], *, delivery_id: str | None = None):
        headers, body = webhook_delivery(event, payload, SECRET)
        if delivery_id:
            headers["X-GitHub-Delivery"] = delivery_id
        return await self.registry.client.post("/github/webhook", data=body, headers=headers)

    async def settle(self, timeout: float = 15) -> None:
        await self.registry.app[JOBS].drain(timeout)

    async def versions(self, address: str) -> list[str]:
        response = await self.registry.client.get(f"/v1/modules/{address}/versions", headers=await self.registry.auth())
        if response.status == 404:
            return []
        return [v["version"] for v in (await response.json())["modules"][0]["versions"]]

    async def archive(self, address: str, version: str) -> bytes:
        auth = await self.registry.auth()
        response = await self.registry.client.get(f"/v1/modules/{address}/{version}/download", headers=auth)
        assert response.status == 200, await response.text()
        archive = await self.registry.client.get(response.headers["X-Terraform-Get"])
        return await archive.read()

    async def event_types(self) -> list[str]:
        return [e.type for e in await self.registry.app[STORE].events_after(0, 1000)]


def github_sections(tmp_path: Path, fake: FakeGitHub, api_url: str) -> dict[str, dict[str, Any]]:
    key_file = tmp_path / "app.pem"
    key_file.write_text(fake.private_key_pem)
    return {
        "github": {
            "app_id": fake.app_id,
            "private_key_file": str(key_file),
            "webhook_secret": SECRET,
            "api_url": api_url,
            "workers": 2,
            "reconcile_interval": 0,
        },
        "jobs": {"lease_seconds": 5, "max_attempts": 4, "backoff_base": 0.05, "backoff_max": 0.2},
    }


@pytest.fixture
async def world(aiohttp_server, start_registry, make_config, tmp_path) -> GitHubWorld:
    fake = FakeGitHub()
    server = await aiohttp_server(fake.app)
    registry = await start_registry(make_config(**github_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))))
    return GitHubWorld(fake, server, registry)


def org_with_modules(fake: FakeGitHub) -> tuple[FakeRepo, FakeRepo]:
    network = fake.add_repository("acme-corp", "terraform-aws-network", installation_id=7, description="VPCs")
    fake.add_tag("acme-corp", "terraform-aws-network", "v1.0.0", module_files("net-1.0.0"))
    fake.add_tag("acme-corp", "terraform-aws-network", "v1.1.0", module_files("net-1.1.0"))
    fake.add_tag("acme-corp", "terraform-aws-network", "nightly", module_files("nightly"))  # not SemVer: ignored
    dns = fake.add_repository("acme-corp", "terraform-google-dns-zone", installation_id=7)
    fake.add_tag("acme-corp", "terraform-google-dns-zone", "2.0.0", module_files("dns-2.0.0"))
    fake.add_repository("acme-corp", "website", installation_id=7)  # not a module
    return network, dns


def archive_names(data: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return set(tar.getnames())


async def test_installation_backfills_modules_and_versions(world: GitHubWorld):
    org_with_modules(world.fake)
    response = await world.deliver("installation", installation_payload(world.fake, "created", 7))
    assert response.status == 202
    await world.settle()

    assert await world.versions("acme-corp/network/aws") == ["1.1.0", "1.0.0"]
    assert await world.versions("acme-corp/dns-zone/google") == ["2.0.0"]
    names = archive_names(await world.archive("acme-corp/network/aws", "1.1.0"))
    assert {"main.tf", "modules/sub/main.tf", "README.md"} <= names  # GitHub's top directory is gone
    assert not any(name.startswith("acme-corp-") for name in names)

    types = await world.event_types()
    assert types[0] == "app.installed"
    assert types.count("module.created") == 2 and types.count("module.version_released") == 3
    stored = await world.registry.app[STORE].get_version(
        __import__("mirror.domain.addresses", fromlist=["ModuleAddress"]).ModuleAddress("acme-corp", "network", "aws"),
        "1.0.0",
    )
    assert stored.commit_sha == world.fake.repos[("acme-corp", "terraform-aws-network")].tags["v1.0.0"]
    assert stored.raw_version == "v1.0.0" and stored.source.endswith("/acme-corp/terraform-aws-network")


async def test_namespace_mapping_and_prefix(aiohttp_server, start_registry, make_config, tmp_path):
    fake = FakeGitHub()
    server = await aiohttp_server(fake.app)
    sections = github_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))
    sections["github"] |= {"module_prefix": "tfmod-", "namespaces": "acme-corp=platform"}
    world = GitHubWorld(fake, server, await start_registry(make_config(**sections)))
    fake.add_repository("acme-corp", "tfmod-aws-queue", installation_id=7)
    fake.add_tag("acme-corp", "tfmod-aws-queue", "0.1.0", module_files("q"))
    fake.add_repository("acme-corp", "terraform-aws-ignored", installation_id=7)
    fake.add_tag("acme-corp", "terraform-aws-ignored", "1.0.0", module_files("i"))
    await world.deliver("installation", installation_payload(fake, "created", 7))
    await world.settle()
    assert await world.versions("platform/queue/aws") == ["0.1.0"]
    assert await world.versions("platform/ignored/aws") == []


async def test_tag_events_ingest_and_revoke(world: GitHubWorld):
    network, _ = org_with_modules(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()

    first_sha = world.fake.add_tag("acme-corp", network.name, "v1.2.0", module_files("net-1.2.0"))
    assert (await world.deliver("create", create_tag_payload(network, "v1.2.0"))).status == 202
    sha = world.fake.add_tag("acme-corp", network.name, "v1.3.0", module_files("net-1.3.0"))
    assert (await world.deliver("push", push_tag_payload(network, "v1.3.0", before=None, after=sha))).status == 202
    await world.settle()
    assert await world.versions("acme-corp/network/aws") == ["1.3.0", "1.2.0", "1.1.0", "1.0.0"]

    world.fake.delete_tag("acme-corp", network.name, "v1.2.0")
    await world.deliver("delete", delete_tag_payload(network, "v1.2.0"))
    await world.settle()
    assert await world.versions("acme-corp/network/aws") == ["1.3.0", "1.1.0", "1.0.0"]
    auth = await world.registry.auth()
    gone = await world.registry.client.get("/v1/modules/acme-corp/network/aws/1.2.0/download", headers=auth)
    assert gone.status == 404
    assert (await world.event_types()).count("module.version_revoked") == 1

    # the tag pushed back at the same commit releases the same version again
    released = (await world.event_types()).count("module.version_released")
    world.fake.add_tag("acme-corp", network.name, "v1.2.0", module_files("net-1.2.0"), commit_sha=first_sha)
    assert (await world.deliver("create", create_tag_payload(network, "v1.2.0"))).status == 202
    await world.settle()
    assert await world.versions("acme-corp/network/aws") == ["1.3.0", "1.2.0", "1.1.0", "1.0.0"]
    back = await world.registry.client.get("/v1/modules/acme-corp/network/aws/1.2.0/download", headers=auth)
    assert back.status == 200
    assert (await world.event_types()).count("module.version_released") == released + 1


async def test_the_same_delivery_ten_times_makes_one_version(world: GitHubWorld):
    network, _ = org_with_modules(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()
    before = await world.event_types()
    world.fake.add_tag("acme-corp", network.name, "v2.0.0", module_files("net-2.0.0"))
    payload = create_tag_payload(network, "v2.0.0")
    statuses = [(await world.deliver("create", payload, delivery_id="delivery-2-0-0")).status for _ in range(10)]
    assert statuses == [202] + [200] * 9
    await world.settle()
    after = await world.event_types()
    assert after[len(before) :] == ["module.version_released"]
    assert (await world.versions("acme-corp/network/aws")).count("2.0.0") == 1


async def test_github_failures_and_timeouts_are_retried(world: GitHubWorld):
    org_with_modules(world.fake)
    world.fake.fail_next["tarball"] = 2
    world.fake.fail_next["installation_repositories"] = 1
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle(timeout=30)
    assert await world.versions("acme-corp/network/aws") == ["1.1.0", "1.0.0"]
    assert world.fake.calls["tarball"] >= 5  # three archives, two failures
    assert await world.registry.app[STORE].list_jobs(state="failed") == []


async def test_a_moved_tag_does_not_change_a_released_version(world: GitHubWorld):
    network, _ = org_with_modules(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()
    original = await world.archive("acme-corp/network/aws", "1.0.0")
    moved = world.fake.move_tag("acme-corp", network.name, "v1.0.0", module_files("rewritten"))
    await world.deliver("push", push_tag_payload(network, "v1.0.0", before=None, after=moved))
    await world.settle()
    assert await world.archive("acme-corp/network/aws", "1.0.0") == original
    failed = await world.registry.app[STORE].list_jobs(state="failed")
    assert len(failed) == 1 and "immutable" in failed[0].last_error  # reported, visible to operators


async def test_repository_lifecycle(world: GitHubWorld):
    network, dns = org_with_modules(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()

    world.fake.rename_repository("acme-corp", network.name, "terraform-aws-vpc")
    await world.deliver("repository", repository_payload(network, "renamed", old_name="terraform-aws-network"))
    await world.settle()
    assert await world.versions("acme-corp/vpc/aws") == ["1.1.0", "1.0.0"]
    assert await world.versions("acme-corp/network/aws") == []

    world.fake.remove_repository("acme-corp", dns.name)
    await world.deliver("repository", repository_payload(dns, "deleted"))
    await world.settle()
    assert await world.versions("acme-corp/dns-zone/google") == []

    added = world.fake.add_repository("acme-corp", "terraform-aws-queue", installation_id=7)
    world.fake.add_tag("acme-corp", added.name, "1.0.0", module_files("queue"))
    await world.deliver("installation_repositories", installation_repositories_payload(world.fake, "added", 7, [added]))
    await world.settle()
    assert await world.versions("acme-corp/queue/aws") == ["1.0.0"]
    await world.deliver("installation_repositories", installation_repositories_payload(world.fake, "removed", 7, [added]))
    await world.settle()
    assert await world.versions("acme-corp/queue/aws") == []
    types = await world.event_types()
    assert types.count("module.renamed") == 1 and types.count("module.deleted") == 2


async def test_uninstall_removes_the_namespace(world: GitHubWorld):
    org_with_modules(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()
    await world.deliver("installation", installation_payload(world.fake, "deleted", 7))
    await world.settle()
    assert await world.versions("acme-corp/network/aws") == []
    types = await world.event_types()
    assert types[-3:] == ["module.deleted", "module.deleted", "app.uninstalled"]


async def test_reconcile_catches_up_on_tags_without_events(world: GitHubWorld):
    network, _ = org_with_modules(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()
    for minor in range(2, 6):  # more than three tags at once: GitHub sends no events
        world.fake.add_tag("acme-corp", network.name, f"v1.{minor}.0", module_files(f"net-1.{minor}.0"))
    world.fake.delete_tag("acme-corp", network.name, "v1.0.0")
    await world.registry.app[JOBS].enqueue(RECONCILE, {})
    await world.settle()
    assert await world.versions("acme-corp/network/aws") == ["1.5.0", "1.4.0", "1.3.0", "1.2.0", "1.1.0"]


async def test_webhook_refusals(world: GitHubWorld):
    client = world.registry.client
    body = json.dumps({"zen": "hi"}).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-1"}

    async def post(data: bytes, **extra: str):
        response = await client.post("/github/webhook", data=data, headers={**headers, **extra})
        return response.status, (await response.json() if response.status != 204 else None)

    status, answer = await post(body)
    assert status == 401 and "X-Hub-Signature-256" in answer["errors"][0]
    assert (await post(body, **{"X-Hub-Signature-256": sign("wrong-secret", body)}))[0] == 401
    assert (await post(body, **{"X-Hub-Signature-256": "sha1=abc"}))[0] == 401
    assert (await post(body, **{"X-Hub-Signature-256": sign(SECRET, body)})) == (200, {"status": "pong", "delivery": "d-1"})
    malformed = b"{not json"
    assert (await post(malformed, **{"X-Hub-Signature-256": sign(SECRET, malformed)}))[0] == 400
    form = b"payload=x"
    status, _ = await post(form, **{"X-Hub-Signature-256": sign(SECRET, form), "Content-Type": "text/plain"})
    assert status == 415
    no_event = {k: v for k, v in headers.items() if k != "X-GitHub-Event"}
    response = await client.post("/github/webhook", data=body, headers={**no_event, "X-Hub-Signature-256": sign(SECRET, body)})
    assert response.status == 400
    assert (await post(body, **{"X-Hub-Signature-256": sign(SECRET, body), "X-GitHub-Event": "star"}))[0] == 204
    huge = b"x" * (25 * 1024 * 1024 + 1)
    assert (await post(huge, **{"X-Hub-Signature-256": sign(SECRET, huge)}))[0] == 413
    assert await world.registry.app[STORE].list_jobs() == []


async def test_the_webhook_needs_github_to_be_configured(registry):
    response = await registry.client.post("/github/webhook", data=b"{}")
    assert response.status == 404
    assert (await response.json())["errors"]


async def test_jobs_survive_in_the_store(world: GitHubWorld):
    """Deliveries become durable jobs before the 202: they are in the store, not only in memory."""
    org_with_modules(world.fake)
    world.fake.delay["installation_repositories"] = 0.5
    response = await world.deliver("installation", installation_payload(world.fake, "created", 7))
    job_id = (await response.json())["job"]
    jobs = {job.id: job for job in await world.registry.app[STORE].list_jobs()}
    assert jobs[job_id].kind == "github.delivery"
    await world.settle()
    assert await asyncio.wait_for(world.versions("acme-corp/network/aws"), 5) == ["1.1.0", "1.0.0"]


async def test_reconcile_from_the_cli(world: GitHubWorld, tmp_path: Path):
    """`mirror github reconcile` queues a job in the shared store; the running server carries it out."""
    from tests.live import run_cli

    network, _ = org_with_modules(world.fake)
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    await world.settle()
    world.fake.add_tag("acme-corp", network.name, "v3.0.0", module_files("net-3.0.0"))
    result = await asyncio.to_thread(
        run_cli, "github", "reconcile", "acme-corp", "--wait", "20", "--config", str(tmp_path / "mirror.toml"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout
    await world.settle()
    assert (await world.versions("acme-corp/network/aws"))[0] == "3.0.0"
    bad = await asyncio.to_thread(run_cli, "github", "reconcile", "no/such", "--config", str(tmp_path / "mirror.toml"), cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


async def test_plain_token_for_repository_webhooks(aiohttp_server, start_registry, make_config, tmp_path):
    """Without an App: a repository webhook (no installation in the payload) and a plain token."""
    fake = FakeGitHub(plain_tokens=["ghp_plain_token"])
    server = await aiohttp_server(fake.app)
    sections = github_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))
    sections["github"] = {k: v for k, v in sections["github"].items() if k not in ("app_id", "private_key_file")}
    sections["github"]["token"] = "ghp_plain_token"
    world = GitHubWorld(fake, server, await start_registry(make_config(**sections)))
    repo = fake.add_repository("solo-dev", "terraform-aws-bucket", installation_id=None, owner_type="User")
    fake.add_tag("solo-dev", repo.name, "v0.3.0", module_files("bucket"))
    payload = create_tag_payload(repo, "v0.3.0")
    assert "installation" not in payload
    assert (await world.deliver("create", payload)).status == 202
    await world.settle()
    assert await world.versions("solo-dev/bucket/aws") == ["0.3.0"]
    assert fake.tokens_issued == 0  # no App tokens in this mode


async def test_github_timeouts_are_retried(aiohttp_server, start_registry, make_config, tmp_path):
    fake = FakeGitHub()
    server = await aiohttp_server(fake.app)
    sections = github_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))
    sections["github"]["timeout"] = 0.3
    world = GitHubWorld(fake, server, await start_registry(make_config(**sections)))
    org_with_modules(fake)
    fake.delay["tags"] = 5  # GitHub hangs past the timeout ...
    await world.deliver("installation", installation_payload(fake, "created", 7))

    async def asked_twice() -> bool:  # ... at least twice
        return fake.calls["tags"] >= 2

    await eventually(asked_twice, "two calls for the tags", timeout=20)
    del fake.delay["tags"]  # then recovers
    await world.settle(timeout=30)
    assert await world.versions("acme-corp/network/aws") == ["1.1.0", "1.0.0"]
    assert await world.registry.app[STORE].list_jobs(state="failed") == []


@pytest.mark.parametrize("on_uninstall", ["keep", "delete"])
async def test_uninstall_keeps_or_deletes_archives(aiohttp_server, start_registry, make_config, tmp_path, on_uninstall):
    fake = FakeGitHub()
    server = await aiohttp_server(fake.app)
    sections = github_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))
    sections["github"]["on_uninstall"] = on_uninstall
    world = GitHubWorld(fake, server, await start_registry(make_config(**sections)))
    org_with_modules(fake)
    await world.deliver("installation", installation_payload(fake, "created", 7))
    await world.settle()
    blobs = tmp_path / "data" / "blobs"
    assert len([p for p in blobs.rglob("*.tar.gz")]) == 3
    await world.deliver("installation", installation_payload(fake, "deleted", 7))
    await world.settle()
    assert len([p for p in blobs.rglob("*.tar.gz")]) == (3 if on_uninstall == "keep" else 0)
