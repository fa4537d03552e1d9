"""End to end: providers published with ``mirror provider keys add`` and ``mirror provider publish``
to a live ``mirror serve``, then installed by real ``terraform init`` (1.15.5, 1.0.3, and 1.11.4 when
that is the ``terraform`` on PATH) over ``providers.v1`` and over the network mirror (https)."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from urllib.request import Request, urlopen

import pytest
import trustme

from mirror.domain.providers import parse_shasums
from tests.live import MirrorServer, free_port, run_cli, write_config
from tests.providers import build_release, generate_key, public_key
from tests.terraform import (
    TERRAFORM_1_0,
    TERRAFORM_1_15,
    Terraform,
    base_env,
    provider_locks,
    terraform_on_path,
)

pytestmark = pytest.mark.terraform

HOST = "registry.example.com"
PLATFORM = "linux_amd64"  # what `terraform version` reports for all three here
VERSIONS = (TERRAFORM_1_15, TERRAFORM_1_0, *terraform_on_path("1.11.4"))
#: type -> (the suite of the key that signs it, the plugin protocols it declares)
PROVIDERS = {"widget": ("rsa", ("6.0",)), "gadget": ("ecdsa", ("5.0",))}


@dataclass
class Registry:
    server: MirrorServer
    workdir: Path
    read_token: str
    key_ids: dict[str, str]  # type -> the ID of the key that signed it
    release: dict[str, dict[str, Path]]  # type -> {file name: path}
    ca: Path | None = None

    def get(self, path: str) -> tuple[str, Any]:
        """GET ``path`` with the read token: (the final URL, the JSON answer)."""
        request = Request(self.server.url + path, headers={"Authorization": f"Bearer {self.read_token}"})
        with urlopen(request, context=self.tls(), timeout=10) as response:
            assert response.headers.get_content_type() == "application/json"
            return response.url, json.loads(response.read())

    def tls(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca)) if self.ca else None

    def terraform(self, tf: Terraform, root: Path, rc_text: str, **env: str):
        rc = root / "terraform.rc"
        rc.write_text(rc_text)
        home = root / "home"
        home.mkdir(exist_ok=True)
        if self.ca:
            env["SSL_CERT_FILE"] = str(self.ca)
        return tf.run(root, "init", "-no-color", env=base_env(rc, home, **env), timeout=120)


def start_registry(workdir: Path, server: dict[str, Any], *, ca: Path | None = None) -> Iterator[Registry]:
    """A live server; two signing keys added and two providers published, all through the CLI."""
    port = free_port()
    config = write_config(
        workdir / "mirror.toml",
        {
            "server": {"port": port, **server},
            "metadata": {"path": str(workdir / "data" / "mirror.db")},
            "blobs": {"path": str(workdir / "data" / "blobs")},
        },
    )
    live = MirrorServer(config, port, workdir, scheme="https" if ca else "http").start()
    try:
        def token(namespace: str, scope: str) -> str:
            created = run_cli("token", "create", "--namespace", namespace, "--scope", scope, "--config", str(config), cwd=workdir)
            assert created.returncode == 0, created.stderr
            return created.stdout.strip().splitlines()[-1]

        admin = {"MIRROR_TOKEN": token("acme", "admin"), **({"SSL_CERT_FILE": str(ca)} if ca else {})}
        dist = workdir / "dist"  # one GoReleaser dist for both: publish takes only its release's files
        key_ids, release = {}, {}
        for type_, (suite, protocols) in PROVIDERS.items():
            key = generate_key(suite)
            keyfile = workdir / f"{type_}.asc"
            keyfile.write_text(public_key(key))
            added = run_cli("provider", "keys", "add", "acme", str(keyfile), "--registry", live.url, cwd=workdir, env=admin)
            assert added.returncode == 0 and added.stdout.startswith("added: key "), added.stdout + added.stderr
            key_ids[type_] = added.stdout.split()[2]
            release[type_] = build_release(dist, key, type_=type_, platforms=(PLATFORM, "darwin_arm64"), protocols=protocols)
        for type_ in PROVIDERS:
            published = run_cli(
                "provider", "publish", f"acme/{type_}", "1.0.0", str(dist), "--registry", live.url, cwd=workdir, env=admin
            )
            assert published.returncode == 0, published.stderr
            assert published.stdout.strip() == (
                f"created: acme/{type_}/1.0.0 platforms=darwin_arm64,{PLATFORM} key={key_ids[type_]}"
            ), published.stdout
        yield Registry(live, workdir, token("acme", "read"), key_ids, release, ca)
    finally:
        assert live.stop() == 0, live.logs()
    logs = live.logs()
    assert "mirror_" not in logs and "signature=" not in logs  # no tokens or signed links in logs


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[Registry]:
    yield from start_registry(tmp_path_factory.mktemp("providers-v1"), {})


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp("network-mirror")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(workdir / "server.pem")
    ca.cert_pem.write_to_path(workdir / "ca.pem")
    server = {"tls_cert": str(workdir / "server.pem"), "tls_key": str(workdir / "server.pem"), "registry_host": HOST}
    yield from start_registry(workdir, server, ca=workdir / "ca.pem")


def providers_v1_rc(registry: Registry) -> str:
    return (
        f'host "{HOST}" {{\n  services = {{\n'
        f'    "providers.v1" = "http://127.0.0.1:{registry.server.port}/v1/providers/"\n  }}\n}}\n'
        f'credentials "{HOST}" {{\n  token = "{registry.read_token}"\n}}\n'
    )


def root_module(directory: Path, requirements: dict[str, tuple[str, str]]) -> Path:
    """A root module that requires {local name: (source, version constraint)}."""
    directory.mkdir(parents=True)
    lines = [f'    {name} = {{\n      source  = "{source}"\n      version = "{version}"\n    }}'
             for name, (source, version) in requirements.items()]
    (directory / "main.tf").write_text("terraform {\n  required_providers {\n" + "\n".join(lines) + "\n  }\n}\n")
    return directory


def h1(directory: Path) -> str:
    """golang.org/x/mod dirhash Hash1 of the files under ``directory`` (Terraform's ``h1:``)."""
    names = sorted((p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()), key=str.encode)
    summary = "".join(f"{hashlib.sha256((directory / name).read_bytes()).hexdigest()}  {name}\n" for name in names)
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def unpacked(root: Path, type_: str) -> Path:
    directory = root / ".terraform" / "providers" / HOST / "acme" / type_ / "1.0.0" / PLATFORM
    binary = directory / f"terraform-provider-{type_}_v1.0.0"
    assert binary.is_file() and binary.stat().st_mode & 0o111, sorted(directory.parent.rglob("*"))
    assert binary.read_bytes().endswith(PLATFORM.encode())  # the linux build, not another platform's
    return directory


def mirror_archive(registry: Registry, hostname: str, type_: str) -> dict[str, Any]:
    """The network mirror's linux_amd64 archive of acme/TYPE 1.0.0 under ``hostname``."""
    assert registry.get(f"/v1/mirror/{hostname}/acme/{type_}/index.json")[1] == {"versions": {"1.0.0": {}}}
    url, answer = registry.get(f"/v1/mirror/{hostname}/acme/{type_}/1.0.0.json")
    archive = answer["archives"][PLATFORM]
    with urlopen(urljoin(url, archive["url"]), context=registry.tls(), timeout=10) as response:  # no token: the URL signs itself
        archive["sha256"] = hashlib.sha256(response.read()).hexdigest()
    return archive


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_providers_v1_install_records_the_signed_hashes(registry: Registry, tf: Terraform):
    root = root_module(
        registry.workdir / f"v1-{tf.version}", {t: (f"{HOST}/acme/{t}", "1.0.0") for t in PROVIDERS}
    )
    init = registry.terraform(tf, root, providers_v1_rc(registry))
    output = init.stdout + init.stderr
    assert init.returncode == 0, output
    locks = provider_locks(root)
    assert sorted(locks) == [f"{HOST}/acme/{t}" for t in sorted(PROVIDERS)]
    for type_ in PROVIDERS:
        assert f"Installed {HOST}/acme/{type_} v1.0.0 (self-signed, key ID {registry.key_ids[type_]})" in output
        files = registry.release[type_]
        sums = parse_shasums(files[f"terraform-provider-{type_}_1.0.0_SHA256SUMS"].read_bytes())
        assert len(sums) == 3  # two zips and the manifest
        lock = locks[f"{HOST}/acme/{type_}"]
        assert (lock["version"], lock["constraints"]) == ("1.0.0", "1.0.0")
        local = h1(unpacked(root, type_))
        # a zh: for every line of the signed SHA256SUMS, the manifest's too, every platform's
        assert sorted(lock["hashes"]) == sorted([local] + [f"zh:{sha}" for sha in sums.values()])

        _, download = registry.get(f"/v1/providers/acme/{type_}/1.0.0/download/linux/amd64")
        assert download["shasum"] == sums[download["filename"]]
        [key] = download["signing_keys"]["gpg_public_keys"]
        assert key["key_id"] == registry.key_ids[type_]
        archive = mirror_archive(registry, f"127.0.0.1:{registry.server.port}", type_)  # no registry_host: Host
        assert archive["hashes"] == [local, f"zh:{download['shasum']}"]
        assert archive["sha256"] == download["shasum"]


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_network_mirror_over_tls_installs_with_the_mirrors_h1(tls_registry: Registry, tf: Terraform):
    port = tls_registry.server.port
    rc = (
        f'provider_installation {{\n  network_mirror {{\n    url = "https://127.0.0.1:{port}/v1/mirror/"\n  }}\n}}\n'
        f'credentials "127.0.0.1:{port}" {{\n  token = "{tls_registry.read_token}"\n}}\n'
    )
    root = root_module(tls_registry.workdir / f"mirror-{tf.version}", {"widget": (f"{HOST}/acme/widget", "1.0.0")})
    init = tls_registry.terraform(tf, root, rc)
    assert init.returncode == 0, init.stdout + init.stderr
    lock = provider_locks(root)[f"{HOST}/acme/widget"]
    archive = mirror_archive(tls_registry, HOST, "widget")
    assert lock["version"] == "1.0.0" and lock["hashes"] == [archive["hashes"][0]]
    assert lock["hashes"] == [h1(unpacked(root, "widget"))]


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_a_missing_version_and_an_unknown_provider_are_terraform_errors(registry: Registry, tf: Terraform):
    root = root_module(
        registry.workdir / f"refused-{tf.version}",
        {"widget": (f"{HOST}/acme/widget", "2.0.0"), "nothing": (f"{HOST}/acme/nothing", "1.0.0")},
    )
    init = registry.terraform(tf, root, providers_v1_rc(registry))
    output = " ".join((init.stdout + init.stderr).split())
    assert init.returncode != 0
    assert "Traceback" not in output
    assert "no available releases match the given constraints 2.0.0" in output, output
    assert f"does not have a provider named {HOST}/acme/nothing" in output, output
    assert not (root / ".terraform.lock.hcl").exists()
