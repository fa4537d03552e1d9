"""End to end: real ``terraform init`` (1.15.5, 1.0.3, and 1.11.4 when that is the ``terraform`` on
PATH) through the network mirror of a live ``mirror serve`` over TLS that pulls public providers
through from a stand-in upstream registry (``[[upstreams]] proxy_providers``): the first install
fetches the zip from the upstream once, later ones (the upstream gone) come from the blob store; a
tampered SHA256SUMS or zip fails ``init`` with nothing stored; and one configuration installs a
provider published to this registry together with a pulled-through one, then again offline."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urljoin
from urllib.request import urlopen

import pytest
import trustme
from aiohttp import web

from mirror.formats.provider_zip import check_provider_zip
from tests.live import MirrorServer, free_port, run_cli, wait_until, write_config
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

pytestmark = pytest.mark.terraform

UPSTREAM = "registry.example.com"  # the hostname in the public providers' addresses
OWN = "mirror.example.com"  # this registry's [server] registry_host
PLATFORM = "linux_amd64"
VERSIONS = (TERRAFORM_1_15, TERRAFORM_1_0, *terraform_on_path("1.11.4"))
#: type -> version of what the upstream serves (hashicorp/TYPE), each signed with an RSA key
PUBLIC = {"aws": ("5.1.0", "5.0.0"), "badsums": ("1.0.0",), "badzip": ("1.0.0",)}


def zip_name(type_: str, version: str) -> str:
    return f"terraform-provider-{type_}_{version}_{PLATFORM}.zip"


def sums_name(type_: str, version: str) -> str:
    return f"terraform-provider-{type_}_{version}_SHA256SUMS"


class UpstreamServer:
    """A ProviderUpstream's app served over HTTP on a fixed 127.0.0.1 port by an event loop of its
    own thread, so a ``mirror serve`` process can reach it while the test blocks on Terraform;
    stopped and started again at will (the same port each time)."""

    def __init__(self, upstream: ProviderUpstream, port: int) -> None:
        self.upstream = upstream
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(self.upstream.app())
            try:
                loop.run_until_complete(runner.setup())
                loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start())
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        thread = threading.Thread(target=serve, name="provider-upstream", daemon=True)
        thread.start()
        ready.wait(10)
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread

    def stop(self) -> None:
        if self._thread is None:
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop, self._thread = None, None
        with pytest.raises(OSError):  # really gone: nothing listens on the port
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()


@dataclass
class Mirror:
    server: MirrorServer
    upstream: UpstreamServer
    workdir: Path
    ca: Path
    releases: dict[str, dict[str, Path]]  # "type version" -> {file name: path}, the upstream's and widget's

    @property
    def upstream_files(self) -> ProviderUpstream:
        return self.upstream.upstream

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def get(self, path: str) -> tuple[int, str, Any]:
        """GET ``path`` (no token: anonymous read): (status, final URL, JSON answer)."""
        try:
            with urlopen(self.server.url + path, context=self.tls(), timeout=30) as response:
                assert response.headers.get_content_type() == "application/json"
                return response.status, response.url, json.loads(response.read())
        except HTTPError as error:
            with error:
                return error.code, error.url, json.loads(error.read())

    def download(self, url: str) -> tuple[int, bytes]:
        try:
            with urlopen(url, context=self.tls(), timeout=30) as response:
                return response.status, response.read()
        except HTTPError as error:
            with error:
                return error.code, error.read()

    def init(self, tf: Terraform, name: str, requirements: dict[str, tuple[str, str]]):
        """``terraform init`` in a fresh working directory with its own HOME and plugin cache,
        installing through this registry's network mirror only."""
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

    def blob_hashes(self) -> set[str]:
        """The sha256 of every file in the blob store."""
        files = (p for p in (self.workdir / "data" / "blobs").rglob("*") if p.is_file())
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Iterator[Mirror]:
    workdir = tmp_path_factory.mktemp("pullthrough")
    stand_in = ProviderUpstream()
    releases: dict[str, dict[str, Path]] = {}
    rsa = generate_key("rsa")
    for type_, versions in PUBLIC.items():
        for version in versions:
            files = build_release(workdir / "upstream" / f"{type_}-{version}", rsa, type_=type_, version=version,
                                  platforms=(PLATFORM, "darwin_arm64"), protocols=None)
            stand_in.add("hashicorp", type_, version, files, rsa)
            releases[f"{type_} {version}"] = files
    upstream = UpstreamServer(stand_in, free_port())
    upstream.start()

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(workdir / "server.pem")
    ca.cert_pem.write_to_path(workdir / "ca.pem")
    port = free_port()
    data = workdir / "data"
    config = write_config(workdir / "mirror.toml", {
        "server": {"port": port, "tls_cert": str(workdir / "server.pem"), "tls_key": str(workdir / "server.pem"),
                   "registry_host": OWN, "spool_dir": str(data / "spool")},
        "metadata": {"path": str(data / "mirror.db")},
        "blobs": {"path": str(data / "blobs")},
        "auth": {"anonymous_read": True},
    })
    with config.open("a") as toml:
        toml.write(
            f'[[upstreams]]\nhost = "{UPSTREAM}"\nurl = "{upstream.url}"\nproxy_providers = ["hashicorp/*"]\n'
            f'platforms = ["{PLATFORM}"]\nproxy_ttl_seconds = 300\n'
        )
    live = MirrorServer(config, port, workdir, scheme="https").start()
    try:
        created = run_cli("token", "create", "--namespace", "acme", "--scope", "admin", "--config", str(config), cwd=workdir)
        assert created.returncode == 0, created.stderr
        admin = {"MIRROR_TOKEN": created.stdout.strip().splitlines()[-1], "SSL_CERT_FILE": str(workdir / "ca.pem")}
        key = generate_key("rsa")
        (workdir / "widget.asc").write_text(public_key(key))
        added = run_cli("provider", "keys", "add", "acme", str(workdir / "widget.asc"), "--registry", live.url,
                        cwd=workdir, env=admin)
        assert added.returncode == 0 and added.stdout.startswith("added: key "), added.stdout + added.stderr
        releases["widget 1.0.0"] = build_release(workdir / "dist", key, type_="widget", platforms=(PLATFORM,),
                                                 protocols=("5.0",))
        published = run_cli("provider", "publish", "acme/widget", "1.0.0", str(workdir / "dist"), "--registry", live.url,
                            cwd=workdir, env=admin)
        assert published.returncode == 0, published.stdout + published.stderr
        yield Mirror(live, upstream, workdir, workdir / "ca.pem", releases)
    finally:
        upstream.stop()
        assert live.stop() == 0, live.logs()
    assert "signature=" not in live.logs()  # no signed links in the logs


def lock_h1(root: Path, address: str) -> str:
    lock = provider_locks(root)[address]
    assert len(lock["hashes"]) == 1, lock  # a network mirror install: one locally computed h1
    return lock["hashes"][0]


def installed(root: Path, address: str, version: str) -> Path:
    directory = root / ".terraform" / "providers" / address / version / PLATFORM
    binary = directory / f"terraform-provider-{address.split('/')[-1]}_v{version}"
    assert binary.is_file() and binary.read_bytes().endswith(PLATFORM.encode()), sorted((root / ".terraform").rglob("*"))
    return binary


def warm(mirror: Mirror, type_: str, version: str) -> None:
    """Make sure the mirror holds TYPE VERSION's linux zip (pulled through now if it is not yet)."""
    mirror.upstream.start()
    status, url, answer = mirror.get(f"/v1/mirror/{UPSTREAM}/hashicorp/{type_}/{version}.json")
    assert status == 200, answer
    status, body = mirror.download(urljoin(url, answer["archives"][PLATFORM]["url"]))
    assert status == 200 and body == mirror.releases[f"{type_} {version}"][zip_name(type_, version)].read_bytes()


AWS = f"{UPSTREAM}/hashicorp/aws"


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_a_public_provider_is_pulled_through_once(mirror: Mirror, tf: Terraform):
    mirror.upstream.start()
    root, init, output = mirror.init(tf, f"pull-{tf.version}", {"aws": (AWS, "5.1.0")})
    assert init.returncode == 0, output
    assert f"Installed {AWS} v5.1.0" in output, output
    zip_path = mirror.releases["aws 5.1.0"][zip_name("aws", "5.1.0")]
    assert lock_h1(root, AWS) == check_provider_zip(zip_path, "aws").h1
    installed(root, AWS, "5.1.0")
    assert provider_locks(root)[AWS]["version"] == "5.1.0"
    assert mirror.upstream_files.served[zip_name("aws", "5.1.0")] == 1  # once, for every Terraform so far


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_a_pulled_through_provider_installs_with_the_upstream_gone(mirror: Mirror, tf: Terraform):
    warm(mirror, "aws", "5.1.0")
    mirror.upstream.stop()
    root, init, output = mirror.init(tf, f"offline-{tf.version}", {"aws": (AWS, "5.1.0")})
    assert init.returncode == 0, output
    zip_path = mirror.releases["aws 5.1.0"][zip_name("aws", "5.1.0")]
    assert lock_h1(root, AWS) == check_provider_zip(zip_path, "aws").h1
    installed(root, AWS, "5.1.0")
    assert mirror.upstream_files.served[zip_name("aws", "5.1.0")] == 1


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_a_tampered_sha256sums_fails_init_and_nothing_is_stored(mirror: Mirror, tf: Terraform):
    mirror.upstream.start()
    sums = mirror.releases["badsums 1.0.0"][sums_name("badsums", "1.0.0")].read_bytes()
    mirror.upstream_files.tampered[sums_name("badsums", "1.0.0")] = sums.replace(b"darwin_arm64", b"darwin_amd64")
    address = f"{UPSTREAM}/hashicorp/badsums"
    root, init, output = mirror.init(tf, f"badsums-{tf.version}", {"badsums": (address, "1.0.0")})
    assert init.returncode != 0, output
    assert "Traceback" not in output
    # Terraform shows the status only; the reason is in the mirror's answer and its log
    assert f"failed to query provider mirror https://127.0.0.1:{mirror.server.port}/v1/mirror/ for {address}" in output
    assert re.search(r"\b502\b", output), output
    wait_until(lambda: "signature does not verify" in mirror.server.logs(), "the refusal logged", timeout=10)
    assert not (root / ".terraform.lock.hcl").exists()
    assert not (root / ".terraform" / "providers" / address).exists()
    # still listed from the upstream, but the version is refused each time: nothing was recorded
    assert mirror.get(f"/v1/mirror/{address}/index.json")[::2] == (200, {"versions": {"1.0.0": {}}})
    status, _, answer = mirror.get(f"/v1/mirror/{address}/1.0.0.json")
    assert status == 502 and "signature does not verify" in " ".join(answer["errors"]), answer
    assert "nothing stored" in " ".join(answer["errors"])
    assert mirror.upstream_files.served[zip_name("badsums", "1.0.0")] == 0


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_a_tampered_zip_fails_init_and_is_not_kept(mirror: Mirror, tf: Terraform):
    mirror.upstream.start()
    name = zip_name("badzip", "1.0.0")
    tampered = b"PK\x03\x04 not the signed zip"
    mirror.upstream_files.tampered[name] = tampered
    address = f"{UPSTREAM}/hashicorp/badzip"
    served = mirror.upstream_files.served[name]
    root, init, output = mirror.init(tf, f"badzip-{tf.version}", {"badzip": (address, "1.0.0")})
    assert init.returncode != 0, output
    assert "Traceback" not in output
    assert f"Error while installing {address} v1.0.0" in output and re.search(r"\b502\b", output), output
    wait_until(lambda: "but the signed SHA256SUMS lists" in mirror.server.logs(), "the refusal logged", timeout=10)
    assert not (root / ".terraform.lock.hcl").exists()
    assert mirror.upstream_files.served[name] > served  # asked the upstream again: nothing kept to serve
    signed = hashlib.sha256(mirror.releases["badzip 1.0.0"][name].read_bytes()).hexdigest()
    assert not {signed, hashlib.sha256(tampered).hexdigest()} & mirror.blob_hashes()
    # the version is recorded (its signed SHA256SUMS verified) but its zip is not: no h1 yet
    status, url, answer = mirror.get(f"/v1/mirror/{address}/1.0.0.json")
    assert status == 200 and answer["archives"][PLATFORM]["hashes"] == [f"zh:{signed}"], answer
    status, body = mirror.download(urljoin(url, answer["archives"][PLATFORM]["url"]))
    assert status == 502 and "sha256" in " ".join(json.loads(body)["errors"])


WIDGET = f"{OWN}/acme/widget"


@pytest.mark.parametrize("tf", VERSIONS, ids=lambda tf: tf.version)
def test_a_private_and_a_public_provider_install_through_one_mirror_then_offline(mirror: Mirror, tf: Terraform):
    """The issue's "done when": this registry's own provider and a pulled-through public one in one
    configuration, through the single network mirror; then again with the upstream gone."""
    requirements = {"widget": (WIDGET, "1.0.0"), "aws": (AWS, "5.0.0")}
    mirror.upstream.start()
    root, init, output = mirror.init(tf, f"both-{tf.version}", requirements)
    assert init.returncode == 0, output
    assert f"Installed {WIDGET} v1.0.0" in output and f"Installed {AWS} v5.0.0" in output, output
    assert sorted(provider_locks(root)) == sorted([AWS, WIDGET])
    aws_zip = mirror.releases["aws 5.0.0"][zip_name("aws", "5.0.0")]
    widget_zip = mirror.releases["widget 1.0.0"][f"terraform-provider-widget_1.0.0_{PLATFORM}.zip"]
    hashes = {AWS: check_provider_zip(aws_zip, "aws").h1, WIDGET: check_provider_zip(widget_zip, "widget").h1}
    assert {address: lock_h1(root, address) for address in hashes} == hashes
    assert mirror.upstream_files.served[zip_name("aws", "5.0.0")] == 1

    mirror.upstream.stop()
    offline, init, output = mirror.init(tf, f"both-offline-{tf.version}", requirements)
    assert init.returncode == 0, output
    assert {address: lock_h1(offline, address) for address in hashes} == hashes
    installed(offline, AWS, "5.0.0")
    installed(offline, WIDGET, "1.0.0")
    assert mirror.upstream_files.served[zip_name("aws", "5.0.0")] == 1
