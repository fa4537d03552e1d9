"""End to end: a live ``mirror serve``, modules published with ``mirror publish``, and real
``terraform init`` (1.15.5 and 1.0.3) installing them in every download mode."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
import trustme

from tests.live import MirrorServer, free_port, run_cli, write_config
from tests.modules import write_module, write_root_config
from tests.moto_server import TEST_ENVIRONMENT, MotoServer
from tests.terraform import TERRAFORM_1_0, TERRAFORM_1_15, Terraform, base_env, cli_config, installed_modules

pytestmark = pytest.mark.terraform

HOST = "registry.example.test"
ADDRESS = "acme/network/aws"
AWS_CLIENT_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@dataclass
class Live:
    server: MirrorServer
    token: str
    workdir: Path

    def publish(self, version: str, marker: str | None = None, address: str = ADDRESS) -> subprocess.CompletedProcess:
        source = write_module(self.workdir / f"src-{address.replace('/', '-')}-{version}", marker=marker or version)
        result = run_cli(
            "publish", address, version, str(source), "--registry", self.server.url,
            cwd=self.workdir, env={"MIRROR_TOKEN": self.token},
        )
        assert result.returncode == 0, result.stderr
        return result

    def terraform(self, tf: Terraform, root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
        rc = cli_config(self.workdir / "terraform.rc", host=HOST, port=self.server.port, token=self.token)
        return tf.run(root, *args, env=base_env(rc, self.workdir, **env))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    """Start ``mirror serve`` with extra config sections, and mint an admin token with the CLI."""
    servers: list[MirrorServer] = []

    def start(sections: dict[str, dict[str, Any]] | None = None, env: dict[str, str] | None = None) -> Live:
        port = free_port()
        config = {
            "server": {"port": port},
            "metadata": {"path": str(tmp_path / "data" / "mirror.db")},
            "blobs": {"path": str(tmp_path / "data" / "blobs")},
        }
        for name, values in (sections or {}).items():
            config.setdefault(name, {}).update(values)
        config_file = write_config(tmp_path / "mirror.toml", config)
        server = MirrorServer(config_file, port, tmp_path, env=env or {}).start()
        servers.append(server)
        created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config_file), cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        return Live(server, created.stdout.strip().splitlines()[-1], tmp_path)

    yield start
    for server in servers:
        assert server.stop() == 0, server.logs()
        logs = server.logs()
        lines = [json.loads(line) for line in logs.splitlines()]
        assert any(line["event"] == "request" and line["request_id"] for line in lines)  # one line a request
        published = [line for line in lines if line["event"] == "version published"]
        assert all(line.get("request_id") for line in published)  # lines logged inside a request carry its id
        assert "mirror_" not in logs and "signature=" not in logs  # no tokens or signed links in logs


def s3_sections(moto: MotoServer, bucket: str, mode: str) -> dict[str, dict[str, Any]]:
    return {
        "blobs": {"backend": "s3"},
        "s3": {"bucket": bucket, "prefix": "registry/", "endpoint_url": moto.endpoint_url, "region": moto.region},
        "downloads": {"mode": mode},
    }


def assert_installed(live: Live, tf: Terraform, root: Path, marker: str, **env: str) -> None:
    init = live.terraform(tf, root, "init", "-no-color", **env)
    assert init.returncode == 0, init.stdout + init.stderr
    modules = installed_modules(root)
    assert modules["net"]["Source"] == f"{HOST}/{ADDRESS}"
    assert (root / ".terraform/modules/net/modules/subnets/main.tf").is_file()  # nested submodule
    apply = live.terraform(tf, root, "apply", "-auto-approve", "-no-color", **env)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    outputs = json.loads(live.terraform(tf, root, "output", "-json", **env).stdout)
    assert outputs["id"]["value"] == f"{marker}-main"
    assert outputs["subnets"]["value"] == ["main-a", "main-b"]


@pytest.mark.parametrize("tf", [TERRAFORM_1_15, TERRAFORM_1_0], ids=lambda tf: tf.version)
def test_proxy_mode_installs_from_local_disk(live, tf: Terraform):
    registry = live()
    registry.publish("1.0.0", marker="proxied")
    root = write_root_config(registry.workdir / "root", f"{HOST}/{ADDRESS}", "1.0.0")
    assert_installed(registry, tf, root, "proxied")


@pytest.mark.parametrize("tf", [TERRAFORM_1_15, TERRAFORM_1_0], ids=lambda tf: tf.version)
def test_proxy_mode_streams_from_s3(live, moto, bucket, tf: Terraform):
    registry = live(s3_sections(moto, bucket, "proxy"), env=TEST_ENVIRONMENT)
    registry.publish("1.0.0", marker="s3proxy")
    root = write_root_config(registry.workdir / "root", f"{HOST}/{ADDRESS}", "1.0.0")
    assert_installed(registry, tf, root, "s3proxy")


@pytest.mark.parametrize("tf", [TERRAFORM_1_15, TERRAFORM_1_0], ids=lambda tf: tf.version)
def test_presigned_mode(live, moto, bucket, tf: Terraform):
    registry = live(s3_sections(moto, bucket, "presigned"), env=TEST_ENVIRONMENT)
    registry.publish("1.0.0", marker="presigned")
    root = write_root_config(registry.workdir / "root", f"{HOST}/{ADDRESS}", "1.0.0")
    assert_installed(registry, tf, root, "presigned")


def test_s3_mode_terraform_1_15_uses_the_custom_endpoint_with_its_own_credentials(live, moto, bucket):
    registry = live(s3_sections(moto, bucket, "s3"), env=TEST_ENVIRONMENT)
    registry.publish("1.0.0", marker="s3mode")
    root = write_root_config(registry.workdir / "root", f"{HOST}/{ADDRESS}", "1.0.0")
    assert_installed(registry, TERRAFORM_1_15, root, "s3mode", **AWS_CLIENT_ENV)


def test_s3_mode_terraform_1_0_3_ignores_custom_endpoints_unless_aws_metadata_url_is_set(live, moto, bucket):
    """go-getter 1.x (Terraform <= 1.13) sends s3:: requests to AWS itself unless the URL has
    credentials or AWS_METADATA_URL is set; with it set (and env credentials) the endpoint is used."""
    registry = live(s3_sections(moto, bucket, "s3"), env=TEST_ENVIRONMENT)
    registry.publish("1.0.0", marker="s3old")
    root = write_root_config(registry.workdir / "root", f"{HOST}/{ADDRESS}", "1.0.0")
    assert_installed(registry, TERRAFORM_1_0, root, "s3old", AWS_METADATA_URL="http://127.0.0.1:1", **AWS_CLIENT_ENV)


CONSTRAINTS_ROOT = """
module "pessimistic" {
  source  = "%(src)s"
  version = "~> 1.0"
}
module "exact_prerelease" {
  source  = "%(src)s"
  version = "1.3.0-beta.1"
}
module "range" {
  source  = "%(src)s"
  version = ">= 1.0, < 2.0"
}
module "tagged_with_v" {
  source  = "%(src)s"
  version = "1.2.0"
}
module "newest" {
  source = "%(src)s"
}
module "subdir" {
  source  = "%(src)s//modules/subnets"
  version = "2.0.0"
  prefix  = "direct"
}
output "pessimistic" { value = module.pessimistic.id }
output "exact_prerelease" { value = module.exact_prerelease.id }
output "newest" { value = module.newest.id }
output "subdir" { value = module.subdir.names }
"""


@pytest.mark.parametrize("tf", [TERRAFORM_1_15, TERRAFORM_1_0], ids=lambda tf: tf.version)
def test_constraint_selection_with_v_prefixes_and_prereleases(live, tf: Terraform):
    registry = live()
    for version in ("1.0.0", "v1.2.0", "1.3.0-beta.1", "v2.0.0"):
        registry.publish(version)
    root = registry.workdir / "constraints"
    root.mkdir()
    (root / "main.tf").write_text(CONSTRAINTS_ROOT % {"src": f"{HOST}/{ADDRESS}"})
    init = registry.terraform(tf, root, "init", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    chosen = {key: rec.get("Version") for key, rec in installed_modules(root).items() if key and "." not in key}
    assert chosen == {
        "pessimistic": "1.2.0",  # not the 1.3.0 prerelease
        "exact_prerelease": "1.3.0-beta.1",
        "range": "1.2.0",
        "tagged_with_v": "1.2.0",  # published as v1.2.0
        "newest": "2.0.0",
        "subdir": "2.0.0",
    }
    apply = registry.terraform(tf, root, "apply", "-auto-approve", "-no-color")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    outputs = json.loads(registry.terraform(tf, root, "output", "-json").stdout)
    assert outputs["pessimistic"]["value"] == "v1.2.0-main"
    assert outputs["exact_prerelease"]["value"] == "1.3.0-beta.1-main"
    assert outputs["newest"]["value"] == "v2.0.0-main"
    assert outputs["subdir"]["value"] == ["direct-a", "direct-b"]


def test_terraform_without_a_token_is_refused(live):
    registry = live()
    registry.publish("1.0.0")
    root = write_root_config(registry.workdir / "root", f"{HOST}/{ADDRESS}", "1.0.0")
    rc = cli_config(registry.workdir / "anonymous.rc", host=HOST, port=registry.server.port, token=None)
    init = TERRAFORM_1_15.run(root, "init", "-no-color", env=base_env(rc, registry.workdir))
    assert init.returncode != 0
    assert "401" in init.stdout + init.stderr or "Unauthorized" in init.stdout + init.stderr


def test_restart_keeps_versions_tokens_and_signed_links(live):
    registry = live()
    registry.publish("1.0.0", marker="kept")
    auth = {"Authorization": f"Bearer {registry.token}"}
    with urlopen(Request(f"{registry.server.url}/v1/modules/{ADDRESS}/1.0.0/download", headers=auth)) as response:
        location = json.loads(response.read())["location"]

    assert registry.server.stop() == 0
    registry.server.start()

    with urlopen(f"{registry.server.url}{location}") as response:  # signed before the restart
        assert response.status == 200
    root = write_root_config(registry.workdir / "root", f"{HOST}/{ADDRESS}", "1.0.0")
    assert_installed(registry, TERRAFORM_1_15, root, "kept")


def test_discovery_over_tls(tmp_path: Path, live):
    """No host block: Terraform discovers the registry over https itself (SSL_CERT_FILE trusts our CA)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    tls = {"server": {"tls_cert": str(tmp_path / "server.pem"), "tls_key": str(tmp_path / "server.pem")}}
    port = free_port()
    config_file = write_config(
        tmp_path / "tls.toml",
        {
            "server": {"port": port, **tls["server"]},
            "metadata": {"path": str(tmp_path / "tls" / "mirror.db")},
            "blobs": {"path": str(tmp_path / "tls" / "blobs")},
        },
    )
    server = MirrorServer(config_file, port, tmp_path, scheme="https").start()
    try:
        token = run_cli(
            "token", "create", "--namespace", "acme", "--scope", "publish", "--config", str(config_file), cwd=tmp_path
        ).stdout.strip().splitlines()[-1]
        source = write_module(tmp_path / "src", marker="tls")
        published = run_cli(
            "publish", ADDRESS, "1.0.0", str(source), "--registry", server.url,
            cwd=tmp_path, env={"MIRROR_TOKEN": token, "SSL_CERT_FILE": str(tmp_path / "ca.pem")},
        )
        assert published.returncode == 0, published.stderr
        host = f"127.0.0.1:{port}"
        rc = tmp_path / "tls.rc"
        rc.write_text(f'credentials "{host}" {{\n  token = "{token}"\n}}\n')
        root = write_root_config(tmp_path / "root", f"{host}/{ADDRESS}", "1.0.0")
        env = base_env(rc, tmp_path, SSL_CERT_FILE=str(tmp_path / "ca.pem"))
        init = TERRAFORM_1_15.run(root, "init", "-no-color", env=env)
        assert init.returncode == 0, init.stdout + init.stderr
        assert installed_modules(root)["net"]["Version"] == "1.0.0"
    finally:
        assert server.stop() == 0
