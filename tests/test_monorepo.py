"""Monorepos: the mapping and tag rules (pure), a subdirectory re-rooted with its local sources
checked, and a GitHub repository releasing two modules by prefixed tags, against the fake GitHub."""

from __future__ import annotations

import io
import json

import pytest

from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import InvalidArchive
from mirror.domain.monorepo import MappingError, parse_file, parse_modules, parse_monorepos
from mirror.formats.archive import ArchiveLimits
from mirror.formats.local_sources import escapes, module_sources
from mirror.formats.subtree import extract_subtree
from mirror.http.keys import JOBS, STORE
from mirror.integrations.github.naming import Naming
from mirror.integrations.github.sync import RECONCILE
from tests.fake_github import build_tarball, create_tag_payload, installation_payload, push_tag_payload
from tests.test_github import GitHubWorld, archive_names, world  # noqa: F401 - the fixture

VPC = {"path": "modules/vpc", "name": "vpc", "provider": "aws"}
DNS = {"path": "modules/dns", "name": "dns", "provider": "aws"}
MAPPING_FILE = b"""
[[modules]]
path = "modules/vpc"
name = "vpc"
provider = "aws"

[[modules]]
path = "modules/dns"
name = "dns"
provider = "aws"
"""


def monorepo_files(marker: str, *, dns_source: str = "./records") -> dict[str, bytes]:
    return {
        ".mirror.toml": MAPPING_FILE,
        "README.md": b"# Infra\n",
        "modules/vpc/main.tf": b'output "id" {\n  value = "vpc-%s"\n}\n' % marker.encode(),
        "modules/vpc/README.md": b"# VPC\n",
        "modules/dns/main.tf": b'module "records" {\n  source = "%s"\n}\n' % dns_source.encode(),
        "modules/dns/records/main.tf": b'output "n" {\n  value = 1\n}\n',
        "modules/shared/main.tf": b'output "shared" {\n  value = 1\n}\n',
    }


# -- the rules ----------------------------------------------------------------------------------


def test_tags_match_their_module_by_prefix():
    mapping = parse_modules([VPC, DNS, {**DNS, "name": "dns-private", "path": "modules/p"}], "test")
    assert mapping.match("vpc/v1.2.0").module.name == "vpc"
    assert mapping.match("vpc/v1.2.0").version == "1.2.0"
    assert mapping.match("vpc-1.2.0").raw_version == "1.2.0"
    assert mapping.match("dns-v0.2.0").module.name == "dns"
    assert mapping.match("dns-private-v1.0.0").module.name == "dns-private"  # the longest prefix wins
    assert mapping.match("v1.0.0") is None  # plain tags: several modules, none takes them
    assert mapping.match("VPC/v1.0.0") is None  # prefixes are compared exactly
    assert mapping.match("vpc/nightly") is None
    assert mapping.match("other/v1.0.0") is None


def test_plain_tags_for_one_module_or_an_empty_prefix():
    assert parse_modules([VPC], "t").match("v1.0.0").module.name == "vpc"
    mapping = parse_modules([{**VPC, "tag_prefix": ""}, DNS], "t")
    assert mapping.match("v2.0.0").module.name == "vpc"
    assert mapping.match("dns/v2.0.0").module.name == "dns"
    assert parse_modules([{**VPC, "tag_prefix": "net/vpc"}], "t").match("net/vpc/v1.0.0").module.name == "vpc"


@pytest.mark.parametrize(
    ("modules", "fragment"),
    [
        ([], "non-empty array"),
        ([{**VPC, "path": "../x"}], "stay inside"),
        ([{**VPC, "path": "/abs"}], "relative"),
        ([{**VPC, "provider": "AWS"}], "provider"),
        ([{**VPC, "tag_prefix": "bad prefix"}], "tag_prefix"),
        ([VPC, {**VPC, "path": "other"}], "listed twice"),
        ([VPC, {**DNS, "tag_prefix": "vpc"}], "used by two modules"),
        ([{**VPC, "colour": "red"}], "unknown keys colour"),
        ([{"path": "x", "name": "vpc"}], "provider is required"),
    ],
)
def test_bad_mappings_are_refused_with_the_reason(modules, fragment):
    with pytest.raises(MappingError, match=fragment):
        parse_modules(modules, "test")


def test_the_file_and_the_config_share_one_shape():
    assert [m.name for m in parse_file(MAPPING_FILE).modules] == ["vpc", "dns"]
    with pytest.raises(MappingError, match="not valid TOML"):
        parse_file(b"[[modules]\n")
    (declared,) = parse_monorepos([{"repository": "acme/infra", "modules": [VPC]}])
    assert declared.mapping is not None and declared.is_for("ACME", "Infra")
    (from_file,) = parse_monorepos([{"repository": "acme/infra"}])
    assert from_file.mapping is None
    with pytest.raises(MappingError, match="owner/name"):
        parse_monorepos([{"repository": "infra"}])
    naming = Naming(monorepos=(declared,))
    assert naming.module_for("acme", "infra") is None and naming.monorepo_for("acme", "infra") is declared


def test_module_sources_are_read_lexically():
    text = """
# module "c" { source = "../comment" }
module "a" {
  source = "../shared"
  x      = "${format("}")}"
  nested { source = "../../inner" }
}
module b { source = "./modules/subnets"
  doc = <<EOT
module "z" { source = "../heredoc" }
EOT
}
module "e" { source = "\\u002e\\u002e/escaped" }
locals { source = "../not-a-module" }
"""
    assert module_sources("main.tf", text) == [("a", "../shared"), ("b", "./modules/subnets"), ("e", "../escaped")]
    assert module_sources("x.tf.json", json.dumps({"module": {"j": {"source": "../json"}}})) == [("j", "../json")]
    assert escapes("", "../shared") and escapes("examples/a", "../../../x") and escapes("", "..\\win")
    assert not escapes("", "./modules/x") and not escapes("examples/a", "../..") and not escapes("", "acme/x/aws")


def test_the_subtree_is_re_rooted_and_must_stay_inside():
    tarball = build_tarball("acme-infra-abc1234", "a" * 40, monorepo_files("1"))
    out = io.BytesIO()
    extract_subtree(io.BytesIO(tarball), out, "modules/dns", ArchiveLimits())
    assert archive_names(out.getvalue()) == {"main.tf", "records", "records/main.tf"}
    escaping = build_tarball("acme-infra-abc1234", "a" * 40, monorepo_files("1", dns_source="../shared"))
    with pytest.raises(InvalidArchive, match="main.tf: module 'records' has source '../shared'"):
        extract_subtree(io.BytesIO(escaping), io.BytesIO(), "modules/dns", ArchiveLimits())
    with pytest.raises(InvalidArchive, match="no directory 'modules/nope'"):
        extract_subtree(io.BytesIO(tarball), io.BytesIO(), "modules/nope", ArchiveLimits())


# -- GitHub ---------------------------------------------------------------------------------------


async def failed_errors(world: GitHubWorld) -> list[str]:
    return [job.last_error or "" for job in await world.registry.app[STORE].list_jobs(state="failed")]


async def test_a_monorepo_releases_two_modules_by_prefixed_tags(world: GitHubWorld):
    repo = world.fake.add_repository("acme-corp", "infra", installation_id=7)
    world.fake.add_tag("acme-corp", "infra", "vpc/v1.0.0", monorepo_files("1"))
    world.fake.add_tag("acme-corp", "infra", "dns-v0.2.0", monorepo_files("1"))
    assert (await world.deliver("installation", installation_payload(world.fake, "created", 7))).status == 202
    for tag in ("vpc/v1.0.0", "dns-v0.2.0"):
        await world.deliver("create", create_tag_payload(repo, tag))
    await world.settle()
    assert await world.versions("acme-corp/vpc/aws") == ["1.0.0"]
    assert await world.versions("acme-corp/dns/aws") == ["0.2.0"]
    assert archive_names(await world.archive("acme-corp/vpc/aws", "1.0.0")) == {"main.tf", "README.md"}
    assert archive_names(await world.archive("acme-corp/dns/aws", "0.2.0")) == {"main.tf", "records", "records/main.tf"}
    store = world.registry.app[STORE]
    vpc = await store.get_module(ModuleAddress.parse("acme-corp/vpc/aws"))
    assert vpc is not None and vpc.owner.repository_id == repo.id
    assert (await world.event_types()).count("module.version_released") == 2

    # a tag matching no module of the mapping is skipped, with the reason in the job
    sha = world.fake.add_tag("acme-corp", "infra", "storage/v1.0.0", monorepo_files("1"))
    await world.deliver("push", push_tag_payload(repo, "storage/v1.0.0", before=None, after=sha))
    await world.settle()
    assert any("storage/v1.0.0 matches no module" in error for error in await failed_errors(world))

    # a deleted tag revokes its version (the repository is synced)
    world.fake.delete_tag("acme-corp", "infra", "dns-v0.2.0")
    await world.deliver("push", push_tag_payload(repo, "dns-v0.2.0", before=sha, after=None))
    await world.settle()
    assert await world.versions("acme-corp/dns/aws") == []
    assert await world.versions("acme-corp/vpc/aws") == ["1.0.0"]


async def test_a_module_reaching_outside_its_directory_is_refused(world: GitHubWorld):
    repo = world.fake.add_repository("acme-corp", "infra", installation_id=7)
    world.fake.add_tag("acme-corp", "infra", "dns/v1.0.0", monorepo_files("1", dns_source="../shared"))
    await world.deliver("create", create_tag_payload(repo, "dns/v1.0.0"))
    await world.settle()
    assert await world.versions("acme-corp/dns/aws") == []
    errors = await failed_errors(world)
    assert any(
        "acme-corp/infra tag dns/v1.0.0" in e and "main.tf: module 'records' has source '../shared'" in e for e in errors
    ), errors


async def test_a_repository_without_a_mapping_is_not_a_monorepo(world: GitHubWorld):
    repo = world.fake.add_repository("acme-corp", "website", installation_id=7)
    world.fake.add_tag("acme-corp", "website", "release-1.0.0", {"index.html": b"<p>hi</p>\n"})
    await world.deliver("create", create_tag_payload(repo, "release-1.0.0"))
    await world.settle()
    assert await failed_errors(world) == []
    assert await world.registry.app[STORE].list_modules("acme-corp") == []


async def test_reconcile_keeps_a_discovered_monorepo(world: GitHubWorld):
    """A repository mapped by its .mirror.toml is no rename to the reconcile, which keeps its modules."""
    repo = world.fake.add_repository("acme-corp", "infra", installation_id=7)
    world.fake.add_tag("acme-corp", "infra", "vpc/v1.0.0", monorepo_files("1"))
    world.fake.add_tag("acme-corp", "infra", "dns-v0.2.0", monorepo_files("1"))
    await world.deliver("installation", installation_payload(world.fake, "created", 7))
    for tag in ("vpc/v1.0.0", "dns-v0.2.0"):
        await world.deliver("create", create_tag_payload(repo, tag))
    await world.settle()
    assert await world.versions("acme-corp/vpc/aws") == ["1.0.0"]
    assert await world.versions("acme-corp/dns/aws") == ["0.2.0"]
    await world.registry.app[JOBS].enqueue(RECONCILE, {})
    await world.settle()
    assert await world.versions("acme-corp/vpc/aws") == ["1.0.0"]
    assert await world.versions("acme-corp/dns/aws") == ["0.2.0"]
