"""GitLab projects that release several modules (monorepos), against a stand-in GitLab over real HTTP:
one declared in ``[plugins.gitlab] monorepos`` with its modules, one found by its prefixed tags and
its ``.mirror.toml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirror.config import load_config
from mirror.domain.addresses import ModuleAddress
from mirror.domain.provenance import Owner
from mirror.http.keys import JOBS, STORE
from mirror.integrations.gitlab.naming import GitLabNaming
from mirror.integrations.gitlab.settings import parse_settings
from mirror.integrations.gitlab.sync import POLL
from tests.fake_gitlab import FakeGitLab, FakeProject, project_event_payload, tag_push_payload
from tests.live import toml_value, write_config
from tests.test_github import MAIN_TF
from tests.test_gitlab import GitLabWorld, gitlab_table, sections

CONFIG_MODULES = [
    {"path": "modules/vpc", "name": "vpc", "provider": "aws"},
    {"path": "modules/dns", "name": "dns", "provider": "aws", "tag_prefix": "dns"},
]
MIRROR_TOML = b"""
[[modules]]
path = "stacks/vpc"
name = "vpc"
provider = "aws"

[[modules]]
path = "stacks/dns"
name = "dns"
provider = "aws"
"""


def tree(root: str, marker: str, **extra: bytes) -> dict[str, bytes]:
    """A repository with two modules under ``root`` and files outside them."""
    return {
        "README.md": b"# the whole repository\n",
        "shared/main.tf": b'output "shared" {\n  value = 1\n}\n',
        f"{root}/vpc/main.tf": MAIN_TF % f"vpc-{marker}".encode(),
        f"{root}/vpc/modules/subnets/main.tf": b'output "subnets" {\n  value = 2\n}\n',
        f"{root}/dns/main.tf": MAIN_TF % f"dns-{marker}".encode(),
        **extra,
    }


def projects(fake: FakeGitLab) -> tuple[FakeProject, FakeProject]:
    """``acme/infra`` (declared with its modules) and ``acme/net/stacks`` (a ``.mirror.toml``)."""
    infra = fake.add_project("acme", "infra")
    fake.add_tag(infra, "vpc/v1.0.0", tree("modules", "1"))
    fake.add_tag(infra, "dns-v0.2.0", tree("modules", "2"))
    stacks = fake.add_project("acme/net", "stacks")
    fake.add_tag(stacks, "vpc/v1.0.0", tree("stacks", "1", **{".mirror.toml": MIRROR_TOML}))
    fake.add_tag(stacks, "dns-v0.2.0", tree("stacks", "2", **{".mirror.toml": MIRROR_TOML}))
    return infra, stacks


def monorepos_toml(entries: list[dict[str, Any]]) -> str:
    """``[[plugins.gitlab.monorepos]]`` tables, each module an inline table."""
    lines = []
    for entry in entries:
        lines.append("[[plugins.gitlab.monorepos]]")
        lines.append(f"project = {toml_value(entry['project'])}")
        if "modules" in entry:
            modules = ", ".join(
                "{ " + ", ".join(f"{key} = {toml_value(value)}" for key, value in module.items()) + " }"
                for module in entry["modules"]
            )
            lines.append(f"modules = [{modules}]")
    return "\n".join(lines) + "\n"


@pytest.fixture
async def world(aiohttp_server, start_registry, tmp_path: Path) -> GitLabWorld:
    fake = FakeGitLab()
    server = await aiohttp_server(fake.app)
    fake.base = str(server.make_url("")).rstrip("/")
    data = tmp_path / "data"
    config_file = write_config(tmp_path / "mirror.toml", {
        "server": {"spool_dir": str(data / "spool")},
        "metadata": {"path": str(data / "mirror.db")},
        "blobs": {"path": str(data / "blobs")},
        "events": {"log_path": str(data / "events.jsonl")},
        **sections(gitlab_table(fake.base, fake.token)),
    })
    with config_file.open("a") as out:
        out.write(monorepos_toml([{"project": "acme/infra", "modules": CONFIG_MODULES}]))
    config = load_config(config_file, environ={}, blob_backends=frozenset({"local"}))
    return GitLabWorld(fake, server, await start_registry(config))


async def push_all(world: GitLabWorld, *projects: FakeProject) -> None:
    for project in projects:
        for tag in project.tags:
            response = await world.deliver("Tag Push Hook", tag_push_payload(world.fake, project, tag))
            assert response.status == 202, await response.text()
    await world.settle()


async def test_prefixed_tags_release_each_module_from_its_directory(world: GitLabWorld):
    infra, stacks = projects(world.fake)
    await push_all(world, infra, stacks)
    assert await world.failed_jobs() == []
    for namespace, project in (("acme", infra), ("acme-net", stacks)):
        assert await world.versions(f"{namespace}/vpc/aws") == ["1.0.0"]
        assert await world.versions(f"{namespace}/dns/aws") == ["0.2.0"]
        assert await world.archive_names(f"{namespace}/vpc/aws", "1.0.0") == {"main.tf", "modules", "modules/subnets", "modules/subnets/main.tf"}
        assert await world.archive_names(f"{namespace}/dns/aws", "0.2.0") == {"main.tf"}
        store = world.registry.app[STORE]
        for name, tag, raw in (("vpc", "vpc/v1.0.0", "v1.0.0"), ("dns", "dns-v0.2.0", "v0.2.0")):
            module = await store.get_module(ModuleAddress(namespace, name, "aws"))
            assert module.owner == Owner.gitlab(project.id)
            version = await store.get_version(module.address, raw[1:])
            assert version.commit_sha == project.tags[tag] and version.raw_version == raw
    # the project paths hold no module of their own
    assert await store.get_module(ModuleAddress("acme", "infra", "aws")) is None


async def test_a_reference_outside_the_module_is_refused(world: GitLabWorld):
    infra, _ = projects(world.fake)
    call = b'module "shared" {\n  source = "../shared"\n}\n'
    world.fake.add_tag(infra, "dns-v0.3.0", tree("modules", "3", **{"modules/dns/shared.tf": call}))
    await world.deliver("Tag Push Hook", tag_push_payload(world.fake, infra, "dns-v0.3.0"))
    await world.settle()
    assert await world.versions("acme/dns/aws") == []
    [error] = await world.failed_jobs()
    assert "tag dns-v0.3.0 of acme/infra" in error and "shared.tf" in error and "'../shared'" in error
    assert "reaches outside the module's directory" in error


async def test_poll_keeps_the_modules_and_takes_new_tags(world: GitLabWorld):
    infra, stacks = projects(world.fake)
    await push_all(world, infra, stacks)
    world.fake.add_tag(infra, "vpc/v1.1.0", tree("modules", "3"))
    world.fake.add_tag(stacks, "dns-v0.3.0", tree("stacks", "3", **{".mirror.toml": MIRROR_TOML}))
    for _ in range(2):  # a second poll changes nothing
        await world.registry.app[JOBS].enqueue(POLL, {})
        await world.settle()
        assert await world.versions("acme/vpc/aws") == ["1.1.0", "1.0.0"]
        assert await world.versions("acme/dns/aws") == ["0.2.0"]
        assert await world.versions("acme-net/vpc/aws") == ["1.0.0"]
        assert await world.versions("acme-net/dns/aws") == ["0.3.0", "0.2.0"]
    assert await world.failed_jobs() == []

    # a rename of the project found by its .mirror.toml keeps its modules (their names are the mapping's)
    old = stacks.path_with_namespace
    world.fake.rename(stacks, "platform-stacks")
    await world.deliver("System Hook", project_event_payload(stacks, "project_rename", old_path=old))
    await world.settle()
    await world.registry.app[JOBS].enqueue(POLL, {})
    await world.settle()
    assert await world.versions("acme-net/dns/aws") == ["0.3.0", "0.2.0"]
    # removing it removes its modules
    world.fake.remove(stacks)
    await world.registry.app[JOBS].enqueue(POLL, {})
    await world.settle()
    assert await world.registry.app[STORE].get_module(ModuleAddress("acme-net", "vpc", "aws")) is None
    assert await world.versions("acme/vpc/aws") == ["1.1.0", "1.0.0"]
    assert await world.failed_jobs() == []


async def test_tag_deletion_revokes_that_modules_version(world: GitLabWorld):
    infra, stacks = projects(world.fake)
    await push_all(world, infra, stacks)
    for project in (infra, stacks):
        sha = world.fake.delete_tag(project, "dns-v0.2.0")
        payload = tag_push_payload(world.fake, project, "dns-v0.2.0", deleted_sha=sha)
        assert (await world.deliver("Tag Push Hook", payload)).status == 202
    await world.settle()
    store = world.registry.app[STORE]
    for namespace in ("acme", "acme-net"):
        revoked = await store.get_version(ModuleAddress(namespace, "dns", "aws"), "0.2.0")
        assert revoked.revoked_at is not None
        assert await world.versions(f"{namespace}/vpc/aws") == ["1.0.0"]
    assert await world.failed_jobs() == []


async def test_a_tag_no_module_takes_fails_with_the_reason(world: GitLabWorld):
    infra, _ = projects(world.fake)
    world.fake.add_tag(infra, "storage/v1.0.0", tree("modules", "4"))
    await world.deliver("Tag Push Hook", tag_push_payload(world.fake, infra, "storage/v1.0.0"))
    other = world.fake.add_project("acme", "website")  # prefixed tag, no .mirror.toml: ignored
    world.fake.add_tag(other, "web/v1.0.0", {"index.html": b"<p>hi</p>"})
    await world.deliver("Tag Push Hook", tag_push_payload(world.fake, other, "web/v1.0.0"))
    await world.settle()
    [error] = await world.failed_jobs()
    assert "acme/infra" in error and "storage/v1.0.0" in error and "the tag was skipped" in error


def settings_problems(monorepos: Any) -> list[str]:
    return parse_settings({"token": "t", "mode": "poll", "groups": ["acme"], "monorepos": monorepos}, {})[1]


def test_monorepos_config():
    settings, problems = parse_settings(
        {"token": "t", "mode": "poll", "groups": ["acme"],
         "monorepos": [{"project": "acme/infra", "modules": CONFIG_MODULES}, {"project": "acme/sub/stacks"}]}, {})
    assert problems == []
    naming = GitLabNaming(settings.groups, settings.module_prefix, settings.monorepos)
    [release] = naming.releases_for_tag("acme", "infra", "vpc/v1.2.0")
    assert (str(release.address), release.version, release.subdirectory) == ("acme/vpc/aws", "1.2.0", "modules/vpc")
    assert naming.releases_for_tag("acme/sub", "stacks", "vpc/v1.2.0") == []  # only its tree can tell
    assert naming.skip_reason("acme", "infra") == "a monorepo: its modules come from config"
    assert naming.takes_tag("acme", "website", "web/v1.0.0") and not naming.takes_tag("acme", "website", "v1.0.0")
    assert not naming.takes_tag("elsewhere", "website", "web/v1.0.0")

    assert "monorepos must be an array" in settings_problems({"project": "acme/infra"})[0]
    for entry, fragment in (
        ({"project": "acme/infra", "colour": 1}, "monorepos #1: unknown key 'colour'"),
        ({"project": "infra"}, "monorepos #1: project must be a project's full path"),
        ({"project": "other/infra"}, "monorepos #1 (other/infra): the project is not inside a watched group"),
        ({"project": "acme/infra", "modules": []}, "modules must be a non-empty array"),
        ({"project": "acme/infra", "modules": [{"path": "../x", "name": "x", "provider": "aws"}]}, "must stay inside"),
        ({"project": "acme/infra", "modules": [{"path": "a", "name": "x", "provider": "aws", "extra": 1}]}, "unknown keys extra"),
        ({"project": "acme/infra", "modules": CONFIG_MODULES[:1] * 2}, "module vpc/aws is listed twice"),
    ):
        problems = settings_problems([entry])
        assert len(problems) == 1 and fragment in problems[0], (entry, problems)
    assert "listed twice" in settings_problems([{"project": "acme/infra"}, {"project": "ACME/infra"}])[0]
