"""A monorepo's modules, released by prefixed tags, installed by real ``terraform init`` from a live
``mirror serve`` fed by the stand-in GitHub over HTTP.

Two repositories of ``acme-corp`` hold the same layout (``modules/vpc``, ``modules/dns``, a shared
directory beside them) and the same tags (``vpc/v1.0.0``, ``dns-v0.2.0``):

- ``infra`` maps its modules with ``.mirror.toml`` at its root; nothing in the config names it, so
  its tags are found as a monorepo's when they are pushed (``acme-corp/vpc/aws``, ``acme-corp/dns/aws``);
- ``platform`` is declared by ``[[github.monorepos]]`` in the server's config, with its modules
  (``acme-corp/vpc/google``, ``acme-corp/dns/google``), and backfilled when the App is installed; its
  own ``.mirror.toml`` names other modules and is not read (the config wins).

One server serves the whole file; each Terraform version installs the four modules into a root of
its own, and each installed module directory holds that module's files only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from tests.fake_github import FakeGitHub, create_tag_payload, installation_payload, webhook_delivery
from tests.live import MirrorServer, free_port, run_cli, serve_in_thread, write_config
from tests.terraform import TERRAFORM_1_0, TERRAFORM_1_15, Terraform, base_env, cli_config, installed_modules

pytestmark = pytest.mark.terraform

HOST = "registry.example.test"
SECRET = "monorepo-webhook-secret"
INSTALLATION = 7
TAGS = ("vpc/v1.0.0", "dns-v0.2.0")
#: the modules the two repositories release: (root config label, address, version, marker)
MODULES = (
    ("infra_vpc", "acme-corp/vpc/aws", "1.0.0", "infra"),
    ("infra_dns", "acme-corp/dns/aws", "0.2.0", "infra"),
    ("platform_vpc", "acme-corp/vpc/google", "1.0.0", "platform"),
    ("platform_dns", "acme-corp/dns/google", "0.2.0", "platform"),
)
#: what each installed module directory holds, exactly
VPC_FILES = {"main.tf", "variables.tf", "README.md"}
DNS_FILES = {"main.tf", "records/main.tf"}

INFRA_MAPPING = b"""\
[[modules]]
path = "modules/vpc"
name = "vpc"
provider = "aws"

[[modules]]
path = "modules/dns/"
name = "dns"
provider = "aws"
"""
#: in ``platform``: names modules the config does not, so that reading it would show
DECOY_MAPPING = b"""\
[[modules]]
path = "modules/vpc"
name = "decoy-vpc"
provider = "aws"
tag_prefix = "vpc"

[[modules]]
path = "modules/dns"
name = "decoy-dns"
provider = "aws"
tag_prefix = "dns"
"""
#: ``[[github.monorepos]]`` in the server's config (appended to the file)
PLATFORM_ENTRY = """
[[github.monorepos]]
repository = "acme-corp/platform"
modules = [
  { path = "modules/vpc", name = "vpc", provider = "google" },
  { path = "./modules/dns", name = "dns", provider = "google", tag_prefix = "dns" },
]
"""


def repository_files(marker: str, mapping: bytes) -> dict[str, bytes]:
    """A monorepo: two modules, a shared module beside them, and files at the root."""
    return {
        ".mirror.toml": mapping,
        "README.md": b"# Infrastructure\n",
        "main.tf": b'output "root" {\n  value = "not a module"\n}\n',
        "modules/vpc/main.tf": b'output "id" {\n  value = "vpc-%s-${var.name}"\n}\n' % marker.encode(),
        "modules/vpc/variables.tf": b'variable "name" {\n  type    = string\n  default = "main"\n}\n',
        "modules/vpc/README.md": b"# VPC\n",
        "modules/dns/main.tf": (
            b'module "records" {\n  source = "./records"\n  zone   = "%s.example"\n}\n\n'
            b'output "records" {\n  value = module.records.names\n}\n'
        )
        % marker.encode(),
        "modules/dns/records/main.tf": (
            b'variable "zone" {\n  type = string\n}\n\noutput "names" {\n  value = ["a.${var.zone}", "b.${var.zone}"]\n}\n'
        ),
        "modules/shared/main.tf": b'output "shared" {\n  value = 1\n}\n',
        "modules/shared/.mirror.toml": b"# not a mapping: only the root's is read\n",
    }


@dataclass
class Live:
    server: MirrorServer
    token: str
    tmp: Path

    def get(self, path: str) -> tuple[int, Any]:
        request = Request(f"{self.server.url}{path}", headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def versions(self, address: str) -> list[str]:
        status, body = self.get(f"/v1/modules/{address}/versions")
        if status == 404:
            return []
        assert status == 200, body
        return [v["version"] for v in body["modules"][0]["versions"]]

    def deliver(self, event: str, payload: dict[str, Any]) -> int:
        headers, body = webhook_delivery(event, payload, SECRET)
        request = Request(f"{self.server.url}/github/webhook", data=body, headers=headers, method="POST")
        with urlopen(request, timeout=10) as response:
            return response.status

    def wait_for_versions(self, wanted: dict[str, list[str]], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (found := {address: self.versions(address) for address in wanted}) != wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"{found} after {timeout} s, wanted {wanted}\n{self.server.logs()}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("monorepo")
    fake = FakeGitHub()
    infra = fake.add_repository("acme-corp", "infra", installation_id=INSTALLATION)
    fake.add_repository("acme-corp", "platform", installation_id=INSTALLATION)
    for tag in TAGS:
        fake.add_tag("acme-corp", "infra", tag, repository_files("infra", INFRA_MAPPING))
        fake.add_tag("acme-corp", "platform", tag, repository_files("platform", DECOY_MAPPING))
    key_file = tmp / "app.pem"
    key_file.write_text(fake.private_key_pem)

    with serve_in_thread(fake.app, "the stand-in GitHub") as api_url:
        port = free_port()
        data = tmp / "data"
        config_file = write_config(
            tmp / "mirror.toml",
            {
                "server": {"port": port, "spool_dir": str(data / "spool")},
                "metadata": {"path": str(data / "mirror.db")},
                "blobs": {"path": str(data / "blobs")},
                "github": {
                    "app_id": fake.app_id,
                    "private_key_file": str(key_file),
                    "webhook_secret": SECRET,
                    "api_url": api_url,
                    "workers": 2,
                    "reconcile_interval": 0,
                },
                "jobs": {"lease_seconds": 5, "max_attempts": 2, "backoff_base": 0.05, "backoff_max": 0.2},
            },
        )
        with config_file.open("a") as config:
            config.write(PLATFORM_ENTRY)
        server = MirrorServer(config_file, port, tmp).start()
        try:
            created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config_file), cwd=tmp)
            assert created.returncode == 0, created.stderr
            live = Live(server, created.stdout.strip().splitlines()[-1], tmp)

            # the installation backfills the declared repository; the other one is found by its tags
            assert live.deliver("installation", installation_payload(fake, "created", INSTALLATION)) == 202
            for tag in TAGS:
                assert live.deliver("create", create_tag_payload(infra, tag)) == 202
            live.wait_for_versions({address: [version] for _, address, version, _ in MODULES})
            yield live
        finally:
            assert server.stop() == 0, server.logs()


def write_root(workdir: Path) -> Path:
    """A root configuration calling the four modules, with their outputs."""
    workdir.mkdir(parents=True, exist_ok=True)
    blocks = []
    for label, address, version, _ in MODULES:
        blocks.append(f'module "{label}" {{\n  source  = "{HOST}/{address}"\n  version = "{version}"\n}}\n')
        output = "id" if "vpc" in label else "records"
        blocks.append(f'output "{label}" {{\n  value = module.{label}.{output}\n}}\n')
    (workdir / "main.tf").write_text("\n".join(blocks))
    return workdir


def files_under(directory: Path) -> set[str]:
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if not path.is_dir()}


def test_each_module_of_a_mapping_is_a_module_of_the_registry(live: Live):
    status, body = live.get("/v1/modules/acme-corp?limit=50")
    assert status == 200, body
    listed = sorted(f"{m['namespace']}/{m['name']}/{m['provider']}" for m in body["modules"])
    assert listed == sorted(address for _, address, _, _ in MODULES)  # no decoy: platform's .mirror.toml is not read
    owners: dict[str, set[str]] = {}
    for _, address, _, marker in MODULES:
        status, body = live.get(f"/api/v1/modules/{address}")
        assert status == 200, body
        record = body["module"]
        assert record["source_url"].endswith(f"/acme-corp/{marker}"), record
        owners.setdefault(marker, set()).add(record["owner_source"])
    # each repository owns both of its modules; the two repositories are two owners
    assert {len(found) for found in owners.values()} == {1}
    assert owners["infra"] != owners["platform"] and all(o.startswith("github:") for (o,) in owners.values())
    status, body = live.get("/api/v1/jobs?state=failed&limit=100")
    assert status == 200 and body["jobs"] == [], body


@pytest.mark.parametrize("tf", [TERRAFORM_1_15, TERRAFORM_1_0], ids=lambda tf: tf.version)
def test_terraform_installs_each_module_of_both_monorepos_alone(live: Live, tf: Terraform, tmp_path: Path):
    root = write_root(tmp_path / "root")
    rc = cli_config(tmp_path / "terraform.rc", host=HOST, port=live.server.port, token=live.token)
    env = base_env(rc, tmp_path)

    init = tf.run(root, "init", "-no-color", env=env, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr + live.server.logs()
    installed = installed_modules(root)
    for label, address, version, _ in MODULES:
        record = installed[label]
        assert (record["Source"], record["Version"]) == (f"{HOST}/{address}", version)
        directory = root / record["Dir"]
        expected = VPC_FILES if "vpc" in label else DNS_FILES
        assert files_under(directory) == expected, (label, sorted(files_under(directory)))
    # the nested call of a dns module is its own ./records, installed inside it
    assert installed["infra_dns.records"]["Dir"] == f"{installed['infra_dns']['Dir']}/records"

    apply = tf.run(root, "apply", "-auto-approve", "-no-color", env=env, timeout=120)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    output = tf.run(root, "output", "-json", env=env, timeout=60)
    assert output.returncode == 0, output.stderr
    assert {name: value["value"] for name, value in json.loads(output.stdout).items()} == {
        "infra_vpc": "vpc-infra-main",
        "infra_dns": ["a.infra.example", "b.infra.example"],
        "platform_vpc": "vpc-platform-main",
        "platform_dns": ["a.platform.example", "b.platform.example"],
    }
