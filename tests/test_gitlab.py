"""The GitLab source plug-in end to end, against a stand-in GitLab over real HTTP."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from mirror.app.gitlab import GitLabSource
from mirror.app.plugins import load_app_config
from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import ConfigError
from mirror.domain.provenance import Owner
from mirror.http.keys import JOBS, STORE
from mirror.integrations.gitlab.naming import GitLabNaming
from mirror.integrations.gitlab.settings import parse_settings
from mirror.integrations.gitlab.sync import POLL
from tests.conftest import Registry
from tests.fake_gitlab import FakeGitLab, FakeProject, delivery, project_event_payload, tag_push_payload
from tests.live import eventually, write_config
from tests.test_github import module_files

WEBHOOK_TOKEN = "gitlab-webhook-token-for-tests"


@dataclass
class GitLabWorld:
    fake: FakeGitLab
    server: TestServer
    registry: Registry

    async def deliver(self, event: str, payload: dict[str, Any], token: str | None = WEBHOOK_TOKEN):
        headers, body = delivery(event, payload, token)
        return await self.registry.client.post("/gitlab/webhook", data=body, headers=headers)

    async def settle(self, timeout: float = 15) -> None:
        await self.registry.app[JOBS].drain(timeout)

    async def versions(self, address: str) -> list[str]:
        response = await self.registry.client.get(f"/v1/modules/{address}/versions", headers=await self.registry.auth())
        if response.status == 404:
            return []
        return [v["version"] for v in (await response.json())["modules"][0]["versions"]]

    async def archive_names(self, address: str, version: str) -> set[str]:
        auth = await self.registry.auth()
        response = await self.registry.client.get(f"/v1/modules/{address}/{version}/download", headers=auth)
        assert response.status == 200, await response.text()
        archive = await self.registry.client.get(response.headers["X-Terraform-Get"])
        with tarfile.open(fileobj=io.BytesIO(await archive.read()), mode="r:gz") as tar:
            return set(tar.getnames())

    async def failed_jobs(self) -> list[str]:
        return [job.last_error or "" for job in await self.registry.app[STORE].list_jobs("failed")]


def gitlab_table(url: str, token: str, **overrides: Any) -> dict[str, Any]:
    table = {"url": url, "token": token, "groups": ["acme"], "webhook_token": WEBHOOK_TOKEN, "poll_interval": 0}
    table.update(overrides)
    return {key: value for key, value in table.items() if value is not None}


def sections(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "plugins.gitlab": table,
        "jobs": {"lease_seconds": 5, "max_attempts": 2, "backoff_base": 0.05, "backoff_max": 0.2},
    }


@pytest.fixture
async def start_world(aiohttp_server, start_registry, make_config):
    async def start(fake: FakeGitLab | None = None, **overrides: Any) -> GitLabWorld:
        fake = fake or FakeGitLab()
        server = await aiohttp_server(fake.app)
        url = str(server.make_url("")).rstrip("/")
        fake.base = url
        registry = await start_registry(make_config(**sections(gitlab_table(url, fake.token, **overrides))))
        return GitLabWorld(fake, server, registry)

    return start


@pytest.fixture
async def world(start_world) -> GitLabWorld:
    return await start_world()


def vpc_project(fake: FakeGitLab, namespace: str = "acme") -> FakeProject:
    project = fake.add_project(namespace, "terraform-aws-vpc")
    fake.add_tag(project, "v1.0.0", module_files("vpc-1.0.0"))
    return project


async def test_tag_push_webhook_creates_a_version(world: GitLabWorld):
    project = vpc_project(world.fake)
    response = await world.deliver("Tag Push Hook", tag_push_payload(world.fake, project, "v1.0.0"))
    assert response.status == 202, await response.text()
    assert (await response.json())["status"] == "queued"
    await world.settle()

    assert await world.versions("acme/vpc/aws") == ["1.0.0"]
    names = await world.archive_names("acme/vpc/aws", "1.0.0")
    assert {"main.tf", "modules/sub/main.tf", "README.md"} <= names
    assert not any(name.startswith("terraform-aws-vpc-") for name in names)  # GitLab's top directory is gone
    store = world.registry.app[STORE]
    module = await store.get_module(ModuleAddress("acme", "vpc", "aws"))
    assert module.owner == Owner.gitlab(project.id) and module.source_url.endswith("/acme/terraform-aws-vpc")
    stored = await store.get_version(ModuleAddress("acme", "vpc", "aws"), "1.0.0")
    assert stored.commit_sha == project.tags["v1.0.0"] and stored.raw_version == "v1.0.0"
    # the change is the delivery's, in the audit trail
    audit = await world.registry.client.get("/api/v1/audit?actor=gitlab", headers=await world.registry.auth())
    published = [e for e in (await audit.json())["events"] if e["type"] == "module.version_released"]
    assert published and published[0]["actor"]["kind"] == "gitlab" and published[0]["actor"]["delivery"]

    # the same event again (a redelivery keeps its UUID) is a duplicate
    headers, body = delivery("Tag Push Hook", tag_push_payload(world.fake, project, "v1.0.0"), WEBHOOK_TOKEN)
    first = await world.registry.client.post("/gitlab/webhook", data=body, headers=headers)
    again = await world.registry.client.post("/gitlab/webhook", data=body, headers=headers)
    assert first.status == 202 and again.status == 200 and (await again.json())["status"] == "duplicate"
    await world.settle()
    assert await world.failed_jobs() == []


async def test_webhook_refusals(world: GitLabWorld):
    project = vpc_project(world.fake)
    payload = tag_push_payload(world.fake, project, "v1.0.0")
    missing = await world.deliver("Tag Push Hook", payload, token=None)
    assert missing.status == 401 and "X-Gitlab-Token" in (await missing.json())["errors"][0]
    wrong = await world.deliver("Tag Push Hook", payload, token=WEBHOOK_TOKEN[:-1] + "x")
    assert wrong.status == 403 and (await wrong.json())["errors"]
    headers, body = delivery("Tag Push Hook", payload, WEBHOOK_TOKEN)
    del headers["X-Gitlab-Event"]
    assert (await world.registry.client.post("/gitlab/webhook", data=body, headers=headers)).status == 400
    headers, _ = delivery("Tag Push Hook", payload, WEBHOOK_TOKEN)
    assert (await world.registry.client.post("/gitlab/webhook", data=b"{nope", headers=headers)).status == 400
    too_big = await world.registry.client.post("/gitlab/webhook", data=b" " * (5 * 1024 * 1024 + 1), headers=headers)
    assert too_big.status == 413
    headers["Content-Type"] = "text/plain"
    assert (await world.registry.client.post("/gitlab/webhook", data=b"{}", headers=headers)).status == 415
    ignored = await world.deliver("Push Hook", {"object_kind": "push", "ref": "refs/heads/main"})
    assert ignored.status == 204
    await world.settle()
    assert await world.versions("acme/vpc/aws") == []
    assert await world.registry.app[STORE].list_jobs(None) == []


async def test_tag_deletion_revokes(world: GitLabWorld):
    project = vpc_project(world.fake)
    world.fake.add_tag(project, "v1.1.0", module_files("vpc-1.1.0"))
    for tag in ("v1.0.0", "v1.1.0"):
        assert (await world.deliver("Tag Push Hook", tag_push_payload(world.fake, project, tag))).status == 202
    await world.settle()
    assert await world.versions("acme/vpc/aws") == ["1.1.0", "1.0.0"]

    sha = world.fake.delete_tag(project, "v1.1.0")
    response = await world.deliver("Tag Push Hook", tag_push_payload(world.fake, project, "v1.1.0", deleted_sha=sha))
    assert response.status == 202
    await world.settle()
    assert await world.versions("acme/vpc/aws") == ["1.0.0"]
    revoked = await world.registry.app[STORE].get_version(ModuleAddress("acme", "vpc", "aws"), "1.1.0")
    assert revoked.revoked_at is not None
    assert await world.failed_jobs() == []


async def test_poll_mode_finds_every_project_and_tag(start_world):
    fake = FakeGitLab()
    for number in range(105):  # more than a page of projects: the listing follows X-Next-Page / Link
        fake.add_project("acme", f"website-{number}")
    vpc = vpc_project(fake)
    fake.add_tag(vpc, "v1.1.0", module_files("vpc-1.1.0"))
    fake.add_tag(vpc, "nightly", module_files("nightly"))  # not SemVer: no version
    dns = fake.add_project("acme/platform/net", "terraform-google-dns-zone")
    fake.add_tag(dns, "2.0.0", module_files("dns-2.0.0"))
    fake.add_project("elsewhere", "terraform-aws-other")  # not a watched group
    fake.add_tag(fake.projects[max(fake.projects)], "v1.0.0", module_files("other"))

    world = await start_world(fake, mode="poll", webhook_token=None, poll_interval=3600)
    await eventually(lambda: world.registry.app[STORE].list_jobs(None), what="the first poll, queued at start-up", timeout=10)
    await world.settle()
    assert await world.versions("acme/vpc/aws") == ["1.1.0", "1.0.0"]
    assert await world.versions("acme-platform-net/dns-zone/google") == ["2.0.0"]  # a subgroup's namespace
    assert await world.versions("elsewhere/other/aws") == []
    assert fake.calls["group_projects"] >= 2  # two pages
    assert (await world.registry.client.post("/gitlab/webhook", data=b"{}")).status == 404  # poll mode: no route

    # a later poll: a new tag comes, a deleted tag's version is revoked, a removed project's module goes
    fake.add_tag(dns, "2.1.0", module_files("dns-2.1.0"))
    fake.delete_tag(vpc, "v1.0.0")
    await world.registry.app[JOBS].enqueue(POLL, {})
    await world.settle()
    assert await world.versions("acme-platform-net/dns-zone/google") == ["2.1.0", "2.0.0"]
    assert await world.versions("acme/vpc/aws") == ["1.1.0"]
    fake.remove(dns)
    await world.registry.app[JOBS].enqueue(POLL, {})
    await world.settle()
    assert await world.registry.app[STORE].get_module(ModuleAddress("acme-platform-net", "dns-zone", "google")) is None
    assert await world.failed_jobs() == []


async def test_renamed_transferred_and_deleted_projects_follow(world: GitLabWorld):
    project = vpc_project(world.fake)
    await world.deliver("Tag Push Hook", tag_push_payload(world.fake, project, "v1.0.0"))
    await world.settle()
    store = world.registry.app[STORE]

    old = project.path_with_namespace
    world.fake.rename(project, "terraform-aws-network")
    response = await world.deliver("System Hook", project_event_payload(project, "project_rename", old_path=old))
    assert response.status == 202
    await world.settle()
    assert await store.get_module(ModuleAddress("acme", "vpc", "aws")) is None
    assert await world.versions("acme/network/aws") == ["1.0.0"]  # renamed, versions kept

    old = project.path_with_namespace
    world.fake.transfer(project, "acme/platform")
    await world.deliver("System Hook", project_event_payload(project, "project_transfer", old_path=old))
    await world.settle()
    assert await store.get_module(ModuleAddress("acme", "network", "aws")) is None
    assert await world.versions("acme-platform/network/aws") == ["1.0.0"]  # made anew where it went

    world.fake.remove(project)
    assert (await world.deliver("Project Hook", project_event_payload(project, "project_destroy"))).status == 202
    await world.settle()
    assert await store.get_module(ModuleAddress("acme-platform", "network", "aws")) is None
    assert await world.failed_jobs() == []


async def test_a_module_another_source_owns_is_not_taken_over(world: GitLabWorld, module_archive):
    project = vpc_project(world.fake)
    auth = await world.registry.auth()
    published = await world.registry.publish("acme/vpc/aws", "0.9.0", module_archive("uploaded"), auth)
    assert published.status in (200, 201), await published.text()
    store = world.registry.app[STORE]
    await store.ensure_module(ModuleAddress("acme", "dns", "aws"), owner=Owner.github(42))
    dns = world.fake.add_project("acme", "terraform-aws-dns")
    world.fake.add_tag(dns, "v1.0.0", module_files("dns"))

    await world.deliver("Tag Push Hook", tag_push_payload(world.fake, project, "v1.0.0"))
    await world.deliver("Tag Push Hook", tag_push_payload(world.fake, dns, "v1.0.0"))
    await world.settle()
    assert await world.versions("acme/vpc/aws") == ["0.9.0"]
    assert await world.versions("acme/dns/aws") == []
    failures = await world.failed_jobs()
    assert any("owner source upload" in error for error in failures), failures
    assert any("owner source github:42" in error for error in failures), failures
    assert (await store.get_module(ModuleAddress("acme", "vpc", "aws"))).owner == Owner.upload()
    assert world.fake.calls["archive"] == 0  # refused before anything was fetched


def test_config_problems(tmp_path: Path):
    source = GitLabSource()
    assert source.validate({"token": "t", "groups": ["acme"], "mode": "poll"}) == []
    problems = source.validate({
        "url": "ftp://gitlab", "token": "a", "token_env": "B", "groups": ["acme", {"path": "x y"}, {"path": "a.b", "namespace": "a/b"}],
        "mode": "sometimes", "poll_interval": 5, "webhook_token": "short", "colour": "red", "module_prefix": "",
        "max_projects": 0,
    })
    text = "\n".join(problems)
    for fragment in ("unknown key 'colour'", "url must be the http(s) URL", "set token or token_env, not both",
                     "groups #2: path must be", "groups #3 (a.b): namespace 'a/b'", "mode must be one of",
                     "poll_interval must be", "webhook_token must be a string of 16", "module_prefix must be",
                     "max_projects must be"):
        assert fragment in text, text
    assert all("\n" not in problem for problem in problems)
    assert "webhook_token is required in mode 'webhook'" in "\n".join(source.validate({"token": "t", "groups": ["acme"]}))
    assert "groups is required" in "\n".join(source.validate({"token": "t", "mode": "poll"}))
    missing_env = parse_settings({"token_env": "GL_TOKEN", "groups": ["acme"], "mode": "poll"}, {})[1]
    assert missing_env == ["token_env: the environment variable GL_TOKEN is not set or empty"]
    settings, problems = parse_settings({"token_env": "GL_TOKEN", "groups": ["acme"], "mode": "poll"}, {"GL_TOKEN": "glpat-x"})
    assert problems == [] and settings.token == "glpat-x" and settings.url == "https://gitlab.com"

    # through the config loader: every problem, prefixed with the table
    config_file = write_config(tmp_path / "mirror.toml", {"plugins.gitlab": {"token": "t", "groups": ["acme"], "mode": "x"}})
    with pytest.raises(ConfigError) as caught:
        load_app_config(config_file, environ={})
    assert "[plugins.gitlab] mode must be one of webhook, poll, both, not 'x'" in caught.value.problems


def test_subgroup_namespaces():
    settings, problems = parse_settings(
        {"token": "t", "mode": "poll", "groups": ["acme", {"path": "acme/platform", "namespace": "plat"},
                                                  {"path": "solo", "include_subgroups": False}]}, {})
    assert problems == []
    naming = GitLabNaming(settings.groups)
    assert naming.namespace_for("acme") == "acme"
    assert naming.namespace_for("acme/apps/web") == "acme-apps-web"
    assert naming.namespace_for("acme/platform") == "plat"  # the deepest watched group wins
    assert naming.namespace_for("acme/platform/net") == "plat-net"
    assert naming.namespace_for("solo/sub") is None  # subgroups not included
    assert naming.namespace_for("other") is None
    assert str(naming.module_for("acme/platform", "terraform-aws-vpc")) == "plat/vpc/aws"
    assert naming.skip_reason("acme", "website") == "its path does not start with 'terraform-'"
    assert "provider" in naming.skip_reason("acme", "terraform-provider-foo")
    [release] = naming.releases_for_tag("acme", "terraform-aws-vpc", "v2.0.0-rc.1")
    assert (str(release.address), release.version, release.subdirectory) == ("acme/vpc/aws", "2.0.0-rc.1", "")
    assert naming.releases_for_tag("acme", "terraform-aws-vpc", "latest") == []


async def test_check_lines(start_world, make_config):
    fake = FakeGitLab()
    vpc = vpc_project(fake)
    fake.add_project("acme", "website")
    fake.add_project("acme", "terraform-AWS-bad")
    world = await start_world(fake)
    table = gitlab_table(world.fake.base, fake.token)
    config = make_config(**sections(table))
    lines = await GitLabSource().check(config)
    by_status = {status: [line.text for line in lines if line.status == status] for status in ("ok", "warn", "fail", "import")}
    assert by_status["fail"] == [], lines
    ok = "\n".join(by_status["ok"])
    assert "token 'mirror' accepted" in ok and "read_api, read_repository" in ok
    assert "group acme (id" in ok and "-> namespace acme" in ok
    assert "project acme/terraform-aws-vpc is module acme/vpc/aws" in ok
    assert "project acme/website skipped: its path does not start with 'terraform-'" in ok
    assert any("terraform-AWS-bad skipped" in text for text in by_status["warn"])
    assert any("public_url is unset" in text for text in by_status["warn"])
    assert by_status["import"] == ["acme/vpc/aws 1.0.0 from tag v1.0.0 of acme/terraform-aws-vpc"]

    # once ingested, nothing is new; the check wrote nothing itself
    await world.deliver("Tag Push Hook", tag_push_payload(world.fake, vpc, "v1.0.0"))
    await world.settle()
    lines = await GitLabSource().check(config)
    assert [line for line in lines if line.status == "import"] == []

    bad = make_config(**sections(gitlab_table(world.fake.base, "glpat-wrong")))
    [line] = await GitLabSource().check(bad)
    assert line.status == "fail" and "401" in line.text

    fake.tokens[fake.token] = ("read_api",)
    config = make_config(**{**sections(table), "server": {"public_url": "https://registry.example.com"}})
    lines = await GitLabSource().check(config)
    assert any(line.status == "fail" and "read_repository" in line.text for line in lines)
    assert any(line.status == "ok" and "https://registry.example.com/gitlab/webhook" in line.text for line in lines)

    fake.no_token_self = True
    lines = await GitLabSource().check(config)
    assert any(line.status == "warn" and "did not tell the token's scopes" in line.text for line in lines)

    missing_group = make_config(**sections(gitlab_table(world.fake.base, fake.token, groups=["nosuch"])))
    lines = await GitLabSource().check(missing_group)
    assert any(line.status == "fail" and "group nosuch: not found" in line.text for line in lines)
