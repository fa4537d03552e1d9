"""``[[github.monorepos]]`` in the registry's config: a running app (``create_app``) maps a declared
repository's tags by the config's modules (not by the repository's ``.mirror.toml``, nor by its
name), backfills it on installation, reads ``.mirror.toml`` for an entry without modules, and a bad
entry is a config problem in one readable line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.config import load_config
from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import ConfigError
from mirror.http.keys import STORE
from tests.fake_github import FakeGitHub, create_tag_payload, delete_tag_payload, installation_payload
from tests.live import write_config
from tests.test_github import GitHubWorld, archive_names, github_sections
from tests.test_monorepo import MAPPING_FILE

#: a name that alone would make the repository the single module acme-corp/platform/aws
PLATFORM = "terraform-aws-platform"
#: the repository's own mapping: never read while the config lists its modules
DECOY_MAPPING = b"""\
[[modules]]
path = "modules/vpc"
name = "decoy"
provider = "aws"
"""
PLATFORM_ENTRY = f"""
[[github.monorepos]]
repository = "Acme-Corp/{PLATFORM.upper()}"  # compared case-insensitively
modules = [
  {{ path = "modules/vpc", name = "vpc", provider = "aws" }},
  {{ path = "modules/dns", name = "dns", provider = "aws", tag_prefix = "dns" }},
  {{ path = "modules/base", name = "base", provider = "aws", tag_prefix = "" }},
]
"""
INFRA_ENTRY = """
[[github.monorepos]]
repository = "acme-corp/infra"
"""


def repository_files(marker: str, mapping: bytes) -> dict[str, bytes]:
    return {
        ".mirror.toml": mapping,
        "main.tf": b'output "root" {\n  value = 1\n}\n',
        "modules/vpc/main.tf": b'output "id" {\n  value = "vpc-%s"\n}\n' % marker.encode(),
        "modules/vpc/README.md": b"# VPC\n",
        "modules/dns/main.tf": b'output "zone" {\n  value = "%s.example"\n}\n' % marker.encode(),
        "modules/base/main.tf": b'output "base" {\n  value = "%s"\n}\n' % marker.encode(),
    }


def config_file(tmp_path: Path, github: dict[str, Any], entries: str) -> Path:
    """A config with ``[github]`` (the stand-in's App) and the ``[[github.monorepos]]`` text ``entries``."""
    data = tmp_path / "data"
    path = write_config(
        tmp_path / "mirror.toml",
        {
            "server": {"spool_dir": str(data / "spool")},
            "metadata": {"path": str(data / "mirror.db")},
            "blobs": {"path": str(data / "blobs")},
            "events": {"log_path": str(data / "events.jsonl")},
            **github,
        },
    )
    with path.open("a") as config:
        config.write(entries)
    return path


@pytest.fixture
async def declared(aiohttp_server, start_registry, tmp_path: Path) -> GitHubWorld:
    """A running app whose config declares two monorepos: one with its modules, one without."""
    fake = FakeGitHub()
    server = await aiohttp_server(fake.app)
    github = github_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))
    config = load_config(config_file(tmp_path, github, PLATFORM_ENTRY + INFRA_ENTRY), environ={})
    assert [entry["repository"] for entry in config.github.monorepos] == [f"Acme-Corp/{PLATFORM.upper()}", "acme-corp/infra"]
    return GitHubWorld(fake, server, await start_registry(config))


async def failed_errors(world: GitHubWorld) -> list[str]:
    return [job.last_error or "" for job in await world.registry.app[STORE].list_jobs(state="failed")]


async def test_a_config_entry_maps_the_tags_of_a_declared_repository(declared: GitHubWorld):
    world, fake = declared, declared.fake
    repo = fake.add_repository("acme-corp", PLATFORM, installation_id=7)
    for tag in ("vpc/v1.0.0", "dns-v0.2.0", "v3.0.0", "nightly"):
        fake.add_tag("acme-corp", PLATFORM, tag, repository_files(tag, DECOY_MAPPING))

    # the installation backfills the declared repository: each tag goes to the module the config names
    assert (await world.deliver("installation", installation_payload(fake, "created", 7))).status == 202
    await world.settle()
    assert await world.versions("acme-corp/vpc/aws") == ["1.0.0"]
    assert await world.versions("acme-corp/dns/aws") == ["0.2.0"]
    assert await world.versions("acme-corp/base/aws") == ["3.0.0"]  # tag_prefix "": plain tags
    assert await world.versions("acme-corp/platform/aws") == []  # declared: its name holds no module
    assert await world.versions("acme-corp/decoy/aws") == []  # the repository's .mirror.toml is not read
    assert archive_names(await world.archive("acme-corp/vpc/aws", "1.0.0")) == {"main.tf", "README.md"}
    assert archive_names(await world.archive("acme-corp/base/aws", "3.0.0")) == {"main.tf"}
    assert await failed_errors(world) == []  # "nightly" names no version: not even a job
    store = world.registry.app[STORE]
    for name in ("vpc", "dns", "base"):
        record = await store.get_module(ModuleAddress("acme-corp", name, "aws"))
        assert record is not None and record.owner.repository_id == repo.id

    # a tag pushed later: its module by the config's prefix
    fake.add_tag("acme-corp", PLATFORM, "vpc-v1.1.0", repository_files("vpc-v1.1.0", DECOY_MAPPING))
    assert (await world.deliver("create", create_tag_payload(repo, "vpc-v1.1.0"))).status == 202
    await world.settle()
    assert await world.versions("acme-corp/vpc/aws") == ["1.1.0", "1.0.0"]

    # a tag that no module of the config takes fails its job with the reason
    fake.add_tag("acme-corp", PLATFORM, "storage/v1.0.0", repository_files("storage", DECOY_MAPPING))
    await world.deliver("create", create_tag_payload(repo, "storage/v1.0.0"))
    await world.settle()
    errors = await failed_errors(world)
    assert any("storage/v1.0.0 matches no module" in error for error in errors), errors
    assert await world.versions("acme-corp/storage/aws") == []

    # a deleted tag revokes the version of its module only
    fake.delete_tag("acme-corp", PLATFORM, "dns-v0.2.0")
    await world.deliver("delete", delete_tag_payload(repo, "dns-v0.2.0"))
    await world.settle()
    assert await world.versions("acme-corp/dns/aws") == []
    assert await world.versions("acme-corp/vpc/aws") == ["1.1.0", "1.0.0"]
    assert await world.versions("acme-corp/base/aws") == ["3.0.0"]


async def test_an_entry_without_modules_reads_the_file_and_is_backfilled(declared: GitHubWorld):
    world, fake = declared, declared.fake
    fake.add_repository("acme-corp", "infra", installation_id=7)
    fake.add_tag("acme-corp", "infra", "vpc/v1.0.0", repository_files("infra", MAPPING_FILE))
    fake.add_tag("acme-corp", "infra", "dns-v0.2.0", repository_files("infra", MAPPING_FILE))
    fake.add_repository("acme-corp", "website", installation_id=7)  # neither declared nor a module's name
    fake.add_tag("acme-corp", "website", "vpc/v9.0.0", repository_files("website", MAPPING_FILE))

    assert (await world.deliver("installation", installation_payload(fake, "created", 7))).status == 202
    await world.settle()
    assert await world.versions("acme-corp/vpc/aws") == ["1.0.0"]
    assert await world.versions("acme-corp/dns/aws") == ["0.2.0"]
    assert archive_names(await world.archive("acme-corp/dns/aws", "0.2.0")) == {"main.tf"}
    assert await failed_errors(world) == []
    # only the declared repository is backfilled: the other one's tags are found when pushed
    assert fake.calls["codeload"] == 2


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ('[[github.monorepos]]\nrepository = "infra"\n', 'monorepos[0]: repository must be "owner/name"'),
        (
            '[[github.monorepos]]\nrepository = "acme/infra"\nmodules = [{ path = "../vpc", name = "vpc", provider = "aws" }]\n',
            "monorepos[0] (acme/infra): modules[0]: path '../vpc' must stay inside the repository",
        ),
        (
            '[[github.monorepos]]\nrepository = "acme/infra"\nmodules = [{ path = "vpc", name = "vpc", provider = "aws" },'
            ' { path = "dns", name = "dns", provider = "aws", tag_prefix = "vpc" }]\n',
            "tag_prefix 'vpc' is used by two modules",
        ),
        ('[[github.monorepos]]\nrepository = "acme/infra"\nmodules = []\n', "modules must be a non-empty array"),
        ('[[github.monorepos]]\nrepository = "acme/infra"\nbranch = "main"\n', "unknown keys branch"),
        (
            '[[github.monorepos]]\nrepository = "acme/infra"\n[[github.monorepos]]\nrepository = "ACME/infra"\n',
            "ACME/infra is listed twice",
        ),
    ],
    ids=["repository", "path", "prefix", "empty", "unknown-key", "twice"],
)
def test_a_bad_entry_is_a_config_problem(tmp_path: Path, entries: str, fragment: str):
    github = {"github": {"token": "ghp_example", "webhook_secret": "s", "reconcile_interval": 0}}
    with pytest.raises(ConfigError) as info:
        load_config(config_file(tmp_path, github, "\n" + entries), environ={})
    assert [problem for problem in info.value.problems if fragment in problem], info.value.problems
    assert all("\n" not in problem and problem.startswith("[github] monorepos") for problem in info.value.problems)


def test_the_cli_reports_a_bad_entry_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    github = {"github": {"token": "ghp_example", "webhook_secret": "s", "reconcile_interval": 0}}
    entry = '\n[[github.monorepos]]\nrepository = "acme/infra"\nmodules = [{ path = "vpc", name = "vpc" }]\n'
    path = config_file(tmp_path, github, entry)
    assert main(["serve", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "mirror: config: [github] monorepos[0] (acme/infra): modules[0]: provider is required (a string)"
    ], captured
    assert not (tmp_path / "data").exists()  # nothing was started
