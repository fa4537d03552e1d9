"""End to end, air-gapped: registry A copies ``registry.example.com/hashicorp/aws`` 5.0.0 from a
stand-in upstream with ``mirror sync`` and has its own ``acme/widget`` published (``mirror provider
keys add`` and ``mirror provider publish`` to a live ``mirror serve``); ``mirror export`` writes a
bundle; with the upstream gone, registry B (its own data, no upstreams, the same ``registry_host``)
runs ``mirror import`` of it and then ``mirror serve`` over TLS; real ``terraform init`` (1.15.5,
1.0.3, and 1.11.4 when that is the ``terraform`` on PATH) installs both providers through B's
network mirror, locking the zips' own h1."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from urllib.request import urlopen

import pytest
import trustme

from mirror.formats.provider_zip import check_provider_zip
from tests.live import MirrorServer, free_port, run_cli, write_config
from tests.provider_upstream import ProviderUpstream
from tests.providers import build_release, generate_key, public_key
from tests.terraform import (
    TERRAFORM_1_0,
    TERRAFORM_1_15,
    Terraform,
    base_env,
    provider_locks,
    terraform_on_path,
)
from tests.test_terraform_pullthrough import UpstreamServer

pytestmark = pytest.mark.terraform

UPSTREAM = "registry.example.com"  # the hostname in the public provider's address
OWN = "mirror.example.com"  # [server] registry_host of both A and B
PLATFORM = "linux_amd64"
VERSIONS = (TERRAFORM_1_15, TERRAFORM_1_0, *terraform_on_path("1.11.4"))
AWS = f"{UPSTREAM}/hashicorp/aws"
WIDGET = f"{OWN}/acme/widget"


def zip_name(type_: str, version: str) -> str:
    return f"terraform-provider-{type_}_{version}_{PLATFORM}.zip"


def registry_config(root: Path, port: int, **server: Any) -> Path:
    """A config keeping everything under ``root``; ``registry_host`` is OWN."""
    root.mkdir(parents=True, exist_ok=True)
    return write_config(root / "mirror.toml", {
        "server": {"port": port, "registry_host": OWN, "spool_dir": str(root / "spool"), **server},
        "metadata": {"path": str(root / "mirror.db")},
        "blobs": {"path": str(root / "blobs")},
        "events": {"log_path": ""},
        "auth": {"anonymous_read": True},
    })


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = run_cli(*args, cwd=cwd, env=env, timeout=120)
    assert result.returncode == 0, f"mirror {' '.join(args)}:\n{result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


@dataclass
class AirGapped:
    """Registry B, filled only from the bundle, serving over TLS."""

    server: MirrorServer
    workdir: Path
    ca: Path
    zips: dict[str, Path]  # provider address -> the linux zip that was released
    upstream: ProviderUpstream
    exported: str  # `mirror export`'s output
    imported: str  # `mirror import`'s output

    def get(self, path: str) -> tuple[str, Any]:
        """GET ``path`` anonymously: (the final URL, the JSON answer)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        with urlopen(self.server.url + path, context=context, timeout=30) as response:
            return response.url, json.loads(response.read())

    def download(self, url: str) -> bytes:
        with urlopen(url, context=ssl.create_default_context(cafile=str(self.ca)), timeout=30) as response:
            return response.read()

    def init(self, tf: Terraform, name: str, requirements: dict[str, tuple[str, str]]):
        """``terraform init`` in a fresh directory with its own HOME and plugin cache, installing
        through B's network mirror only."""
        root = self.workdir / name
        root.mkdir()
        lines = [f'    {local} = {{\n      source  = "{source}"\n      version = "{version}"\n    }}'
                 for local, (source, version) in requirements.items()]
        (root / "main.tf").write_text("terraform {\n  required_providers {\n" + "\n".join(lines) + "\n  }\n}\n")
        rc = root / "terraform.rc"
        rc.write_text(
            f'provider_installation {{\n  network_mirror {{\n'
            f'    url = "https://127.0.0.1:{self.server.port}/v1/mirror/"\n  }}\n}}\n'
        )
        (root / "home").mkdir()
        (root / "plugin-cache").mkdir()
        env = base_env(rc, root / "home", SSL_CERT_FILE=str(self.ca), TF_PLUGIN_CACHE_DIR=str(root / "plugin-cache"))
        result = tf.run(root, "init", "-no-color", env=env, timeout=120)
        return root, result, " ".join((result.stdout + result.stderr).split())


def fill_registry_a(workdir: Path, upstream: UpstreamServer, releases: dict[str, dict[str, Path]]) -> Path:
    """Registry A: hashicorp/aws ~> 5.0 synced, acme/widget 1.0.0 published through a live server;
    the server stopped again. Returns A's config."""
    root = workdir / "a"
    port = free_port()
    config = registry_config(root, port)
    with config.open("a") as toml:
        toml.write(
            f'\n[[upstreams]]\nhost = "{UPSTREAM}"\nurl = "{upstream.url}"\n'
            f'providers = ["hashicorp/aws ~> 5.0"]\nplatforms = ["{PLATFORM}"]\n'
        )
    synced = cli("sync", "--config", str(config), cwd=workdir)
    assert "copied    hashicorp/aws 5.0.0" in synced and "4.9.0" not in synced, synced

    live = MirrorServer(config, port, workdir).start()
    try:
        token = cli("token", "create", "--namespace", "acme", "--scope", "admin", "--config", str(config), cwd=workdir)
        admin = {"MIRROR_TOKEN": token.strip().splitlines()[-1]}
        key = generate_key("ecdsa")
        (workdir / "widget.asc").write_text(public_key(key))
        added = cli("provider", "keys", "add", "acme", str(workdir / "widget.asc"), "--registry", live.url,
                    cwd=workdir, env=admin)
        assert added.startswith("added: key "), added
        releases["widget 1.0.0"] = build_release(workdir / "dist", key, type_="widget", platforms=(PLATFORM,),
                                                 protocols=("5.0",))
        published = cli("provider", "publish", "acme/widget", "1.0.0", str(workdir / "dist"), "--registry", live.url,
                        cwd=workdir, env=admin)
        assert published.startswith(f"created: acme/widget/1.0.0 platforms={PLATFORM} "), published
    finally:
        assert live.stop() == 0, live.logs()
    return config


@pytest.fixture(scope="module")
def air_gapped(tmp_path_factory) -> Iterator[AirGapped]:
    workdir = tmp_path_factory.mktemp("bundle-providers")
    stand_in = ProviderUpstream()
    releases: dict[str, dict[str, Path]] = {}
    rsa = generate_key("rsa")
    for version in ("4.9.0", "5.0.0"):
        files = build_release(workdir / "upstream" / f"aws-{version}", rsa, type_="aws", version=version,
                              platforms=(PLATFORM, "darwin_arm64"), protocols=None)
        stand_in.add("hashicorp", "aws", version, files, rsa)
        releases[f"aws {version}"] = files
    upstream = UpstreamServer(stand_in, free_port())
    upstream.start()
    try:
        config_a = fill_registry_a(workdir, upstream, releases)
    finally:
        upstream.stop()  # never reachable from B: gone before the bundle is even written
    assert stand_in.served[zip_name("aws", "5.0.0")] == 1
    assert stand_in.served[zip_name("aws", "4.9.0")] == 0 and stand_in.served["terraform-provider-aws_5.0.0_darwin_arm64.zip"] == 0

    bundle = workdir / "out.tar"
    exported = cli("export", str(bundle), "--config", str(config_a), cwd=workdir)

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(workdir / "server.pem")
    ca.cert_pem.write_to_path(workdir / "ca.pem")
    port = free_port()
    config_b = registry_config(workdir / "b", port, tls_cert=str(workdir / "server.pem"),
                               tls_key=str(workdir / "server.pem"))
    assert "[[upstreams]]" not in config_b.read_text()
    imported = cli("import", str(bundle), "--config", str(config_b), cwd=workdir)
    live = MirrorServer(config_b, port, workdir, scheme="https").start()
    try:
        zips = {AWS: releases["aws 5.0.0"][zip_name("aws", "5.0.0")],
                WIDGET: releases["widget 1.0.0"][zip_name("widget", "1.0.0")]}
        yield AirGapped(live, workdir, workdir / "ca.pem", zips, stand_in, exported, imported)
    finally:
        assert live.stop() == 0, live.logs()
    assert "signature=" not in live.logs()  # no signed links in the logs
    with pytest.raises(OSError):  # the upstream stayed gone throughout
        socket.create_connection(("127.0.0.1", upstream.port), timeout=1).close()


def installed(root: Path, address: str, version: str) -> Path:
    directory = root / ".terraform" / "providers" / address / version / PLATFORM
    binary = directory / f"terraform-provider-{address.split('/')[-1]}_v{version}"
    assert binary.is_file() and binary.read_bytes().endswith(PLATFORM.encode()), sorted((root / ".terraform").rglob("*"))
    return binary


def test_the_bundle_carries_both_providers_and_b_serves_them(air_gapped: AirGapped):
    assert "with 2 provider versions (2 zips" in air_gapped.exported, air_gapped.exported
    assert f"imported {AWS} 5.0.0" in air_gapped.imported, air_gapped.imported
    assert "imported acme/widget 1.0.0" in air_gapped.imported, air_gapped.imported
    for address, version in ((AWS, "5.0.0"), (WIDGET, "1.0.0")):
        assert air_gapped.get(f"/v1/mirror/{address}/index.json")[1] == {"versions": {version: {}}}
        url, answer = air_gapped.get(f"/v1/mirror/{address}/{version}.json")
        assert list(answer["archives"]) == [PLATFORM]  # only what A copied: not darwin_arm64
        archive = answer["archives"][PLATFORM]
        released = air_gapped.zips[address].read_bytes()
        assert archive["hashes"][0] == check_provider_zip(air_gapped.zips[address], address.split("/")[-1]).h1
        assert f"zh:{hashlib.sha256(released).hexdigest()}" in archive["hashes"]
        assert air_gapped.download(urljoin(url, archive["url"])) == released


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_terraform_installs_both_providers_from_the_imported_bundle(air_gapped: AirGapped, tf: Terraform):
    requirements = {"aws": (AWS, "~> 5.0"), "widget": (WIDGET, "1.0.0")}
    root, init, output = air_gapped.init(tf, f"init-{tf.version}", requirements)
    assert init.returncode == 0, output
    assert f"Installed {AWS} v5.0.0" in output and f"Installed {WIDGET} v1.0.0" in output, output
    locks = provider_locks(root)
    assert sorted(locks) == sorted([AWS, WIDGET])
    for address, version in ((AWS, "5.0.0"), (WIDGET, "1.0.0")):
        expected = check_provider_zip(air_gapped.zips[address], address.split("/")[-1]).h1
        assert locks[address]["version"] == version
        assert locks[address]["hashes"] == [expected], locks[address]  # a network mirror install: its own h1
        installed(root, address, version)
    assert air_gapped.upstream.served[zip_name("aws", "5.0.0")] == 1  # only A's sync ever fetched it
