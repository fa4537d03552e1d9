"""GitLab projects and tags become modules and versions that real ``terraform init`` installs: a
live ``mirror serve`` with ``[plugins.gitlab]`` in poll mode against the stand-in GitLab."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from tests.fake_gitlab import FakeGitLab, run_in_thread
from tests.live import MirrorServer, free_port, run_cli, write_config
from tests.modules import ROOT_MAIN, SUBNETS_MAIN, write_root_config
from tests.terraform import TERRAFORM_1_0, TERRAFORM_1_15, Terraform, base_env, cli_config, installed_modules

pytestmark = pytest.mark.terraform

HOST = "registry.example.test"


def tag_files(tag: str) -> dict[str, bytes]:
    return {
        "main.tf": (ROOT_MAIN % {"marker": tag, "default": "main"}).encode(),
        "modules/subnets/main.tf": SUBNETS_MAIN.encode(),
        "README.md": f"# Network module\n\nBuilt from tag {tag}.\n".encode(),
    }


def versions(server: MirrorServer, token: str, address: str) -> list[str]:
    request = Request(f"{server.url}/v1/modules/{address}/versions", headers={"Authorization": f"Bearer {token}"})
    try:
        with urlopen(request, timeout=5) as response:
            return [v["version"] for v in json.load(response)["modules"][0]["versions"]]
    except HTTPError as exc:
        if exc.code == 404:
            return []
        raise


def wait_for(server: MirrorServer, token: str, address: str, wanted: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (found := versions(server, token, address)) != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"{address}: {found} after {timeout} s, wanted {wanted}\n{server.logs()}")
        time.sleep(0.2)


@pytest.mark.parametrize("tf", [TERRAFORM_1_15, TERRAFORM_1_0], ids=lambda tf: tf.version)
def test_gitlab_projects_and_tags_install_with_terraform(tmp_path: Path, tf: Terraform):
    fake = FakeGitLab()
    network = fake.add_project("acme", "terraform-aws-network")
    fake.add_tag(network, "v1.0.0", tag_files("v1.0.0"))
    fake.add_tag(network, "v1.1.0", tag_files("v1.1.0"))
    dns = fake.add_project("acme/platform", "terraform-aws-dns")  # a subgroup: namespace acme-platform
    fake.add_tag(dns, "0.3.0", tag_files("dns-0.3.0"))
    fake.add_project("acme", "website")  # not a module

    with run_in_thread(fake) as url:
        port = free_port()
        config_file = write_config(tmp_path / "mirror.toml", {
            "server": {"port": port},
            "metadata": {"path": str(tmp_path / "data" / "mirror.db")},
            "blobs": {"path": str(tmp_path / "data" / "blobs")},
            "plugins.gitlab": {"url": url, "token": fake.token, "groups": ["acme"], "mode": "poll", "poll_interval": 10},
        })
        server = MirrorServer(config_file, port, tmp_path).start()
        try:
            created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config_file), cwd=tmp_path)
            assert created.returncode == 0, created.stderr
            token = created.stdout.strip().splitlines()[-1]
            wait_for(server, token, "acme/network/aws", ["1.1.0", "1.0.0"])  # the first poll, at start-up
            wait_for(server, token, "acme-platform/dns/aws", ["0.3.0"])

            rc = cli_config(tmp_path / "terraform.rc", host=HOST, port=port, token=token)
            for address, version, marker in (("acme/network/aws", "1.0.0", "v1.0.0"), ("acme-platform/dns/aws", "0.3.0", "dns-0.3.0")):
                root = write_root_config(tmp_path / f"root-{address.replace('/', '-')}", f"{HOST}/{address}", version)
                init = tf.run(root, "init", "-no-color", env=base_env(rc, tmp_path))
                assert init.returncode == 0, init.stdout + init.stderr + server.logs()
                assert installed_modules(root)["net"]["Source"] == f"{HOST}/{address}"
                assert (root / ".terraform/modules/net/modules/subnets/main.tf").is_file()  # GitLab's top directory gone
                apply = tf.run(root, "apply", "-auto-approve", "-no-color", env=base_env(rc, tmp_path))
                assert apply.returncode == 0, apply.stdout + apply.stderr
                outputs = json.loads(tf.run(root, "output", "-json", env=base_env(rc, tmp_path)).stdout)
                assert outputs["id"]["value"] == f"{marker}-main"
        finally:
            assert server.stop() == 0, server.logs()
