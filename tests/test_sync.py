"""``mirror sync`` end to end: an aiohttp server standing in for a public registry (download
answers pointing at http archives, a local bare git repository, moto S3, a ``//subdir``, a zip),
real ``mirror serve`` upstreams on loopback (mirror to mirror, and ``--from-mirror`` following
an event feed along a chain), an upstream killed mid-sync, a sync killed mid-download, and a
real ``terraform init`` on the downstream side installing a synced module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mirror.cli.common import offline_registry, with_store
from mirror.config import Config, load_config
from mirror.domain.addresses import ModuleAddress
from mirror.formats.archive import ArchiveLimits
from mirror.domain.models import ModuleVersion
from mirror.services.tokens import create_token
from mirror.services.sync import Syncer, human_size
from mirror.integrations.upstream.client import RegistryClient
from mirror.integrations.upstream.fetch import Fetcher
from mirror.domain.sources import SourcePolicy
from mirror.domain.specs import ModuleSpec
from tests.live import MirrorServer, eventually, free_port, write_config
from tests.modules import write_module, write_root_config
from tests.moto_server import TEST_ENVIRONMENT
from tests.terraform import TERRAFORM_1_15, base_env, cli_config, installed_modules
from tests.test_upstream import (
    TOKEN,
    ArchiveHost,
    FakeRegistry,
    bare_repository,
    files_of,
    packed,
    serve,
    tree_archive,
)

HOST = "registry.example.test"


# Helpers ----------------------------------------------------------------------------------------


def mirror_config(root: Path, port: int | None = None, upstreams: list[dict[str, Any]] | None = None) -> Path:
    """A config keeping everything under ``root``; ``[[upstreams]]`` tables appended as given."""
    root.mkdir(parents=True, exist_ok=True)
    path = write_config(
        root / "mirror.toml",
        {
            "server": {"port": port or free_port(), "spool_dir": str(root / "spool")},
            "metadata": {"path": str(root / "mirror.db")},
            "blobs": {"path": str(root / "blobs")},
            "events": {"log_path": str(root / "events.jsonl")},
        },
    )
    for upstream in upstreams or []:
        lines = ["", "[[upstreams]]"] + [f"{key} = {json.dumps(value)}" for key, value in upstream.items()]
        path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def config_of(path: Path) -> Config:
    return load_config(path, environ={})


async def token_for(config_file: Path, scope: str = "admin") -> str:
    # before the server's first start, as the server would: the store is created here
    _, secret = await with_store(config_of(config_file), create_token, "*", scope, create=True)
    return secret


async def version_of(config_file: Path, address: str, version: str) -> ModuleVersion | None:
    return await with_store(config_of(config_file), lambda store: store.get_version(ModuleAddress.parse(address), version))


async def run_mirror(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m mirror ARGS`` without blocking the event loop (in-process servers keep answering)."""
    full_env = {key: value for key, value in os.environ.items() if not key.startswith(("MIRROR_", "AWS_"))}
    full_env.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mirror", *args, cwd=cwd, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, stdout.decode(), stderr.decode()


def statuses(stdout: str) -> dict[str, str]:
    """{"SOURCE VERSION": status} from the per-version lines (``[i/n] status source version ...``)."""
    found = {}
    for line in stdout.splitlines():
        if line.startswith("["):
            status, source, version = line.split("] ", 1)[1].split()[:3]
            found[f"{source} {version}"] = status
    return found


@dataclass
class LiveMirror:
    """A ``mirror serve`` process on loopback and an admin token for it."""

    config_file: Path
    server: MirrorServer
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    async def publish(self, address: str, version: str, marker: str) -> dict[str, Any]:
        body = packed(write_module(self.config_file.parent / "src" / f"{address.replace('/', '-')}-{version}", marker=marker))
        async with aiohttp.ClientSession() as session, session.put(
            f"{self.url}/api/v1/modules/{address}/{version}", data=body, headers={"Authorization": f"Bearer {self.token}"}
        ) as response:
            assert response.status == 201, await response.text()
            return await response.json()

    def restart(self) -> None:
        self.server = MirrorServer(self.config_file, self.server.port, self.config_file.parent).start()


@pytest.fixture
async def start_mirror(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[LiveMirror] = []

    async def start(name: str) -> LiveMirror:
        config_file = mirror_config(tmp_path / name)
        token = await token_for(config_file)
        port = config_of(config_file).server.port
        mirror = LiveMirror(config_file, MirrorServer(config_file, port, config_file.parent).start(), token)
        started.append(mirror)
        return mirror

    yield start
    for mirror in started:
        mirror.server.stop()


# A public-style registry -------------------------------------------------------------------------


async def test_sync_from_a_registry_whose_locations_point_at_http_git_and_s3(
    aiohttp_server, moto, bucket, tmp_path
):
    archives = ArchiveHost()
    archives.url = await serve(aiohttp_server, archives.app())
    registry = FakeRegistry()
    registry.url = await serve(aiohttp_server, registry.app())

    def module(name: str, marker: str) -> Path:
        return write_module(tmp_path / "src" / name, marker=marker)

    for version in ("0.9.0", "1.0.0", "1.1.0", "2.0.0-beta.1"):
        url = archives.add(f"/files/network-{version}.tar.gz", packed(module(f"network-{version}", f"http-{version}")))
        registry.add("hashicorp/network/aws", version, url)
    bare, commits = bare_repository(tmp_path)
    registry.add("hashicorp/gitmod/aws", "1.0.0", f"git::file://{bare}?ref=v1.0.0")
    registry.add("hashicorp/gitmod/aws", "1.1.0", f"git::file://{bare}?ref=v1.1.0")
    s3_body = packed(module("s3mod", "s3"))
    async with moto.client("s3") as s3:
        await s3.put_object(Bucket=bucket, Key="registry/s3mod.tar.gz", Body=s3_body)
    registry.add("hashicorp/s3mod/aws", "1.0.0", f"s3::{moto.endpoint_url}/{bucket}/registry/s3mod.tar.gz?region={moto.region}")
    sub = module("pkg/modules/sub", "sub")
    archives.add("/files/pkg.tar.gz", tree_archive(tmp_path / "src" / "pkg", "tar.gz"))
    registry.add("hashicorp/submod/aws", "1.0.0", archives.url + "/files/pkg.tar.gz//modules/sub")
    zipped = module("zipmod", "zip")
    archives.add("/download/zipped", tree_archive(zipped, "zip"))
    registry.add("hashicorp/zipmod/aws", "1.0.0", archives.url + "/download/zipped?archive=zip")

    config_file = mirror_config(
        tmp_path / "down",
        upstreams=[{
            "host": registry.url,
            "token_env": "PUBLIC_TOKEN",
            "namespace": "mirrored",
            # its locations are on loopback servers, a local repository and moto
            "allow_private": True,
            "allow_file_sources": True,
            "s3_endpoints": [moto.endpoint_url],
            "modules": [
                "hashicorp/network/aws >= 1.0",
                "hashicorp/gitmod/aws ~> 1.0.0",
                "hashicorp/s3mod/aws",
                "hashicorp/submod/aws = 1.0.0",
                "hashicorp/zipmod/aws",
            ],
        }],
    )
    env = {**TEST_ENVIRONMENT, "PUBLIC_TOKEN": TOKEN}

    async def sync(*extra: str) -> tuple[int, str, str]:
        return await run_mirror("sync", "--config", str(config_file), *extra, cwd=tmp_path, env=env)

    code, out, err = await sync()
    assert code == 0, out + err
    assert statuses(out) == {
        "hashicorp/network/aws 1.0.0": "copied",
        "hashicorp/network/aws 1.1.0": "copied",  # not 0.9.0, and no prerelease
        "hashicorp/gitmod/aws 1.0.0": "copied",
        "hashicorp/s3mod/aws 1.0.0": "copied",
        "hashicorp/submod/aws 1.0.0": "copied",
        "hashicorp/zipmod/aws 1.0.0": "copied",
    }
    assert "hashicorp/network/aws -> mirrored/network/aws: 2 copied" in out
    assert "total: 6 copied" in out

    network = await version_of(config_file, "mirrored/network/aws", "1.1.0")
    assert network is not None and network.sha256 == hashlib.sha256(
        archives.files["/files/network-1.1.0.tar.gz"][0]
    ).hexdigest()  # a .tar.gz is stored byte for byte
    assert network.source == f"{registry.url.split('://')[1]}/hashicorp/network/aws"
    assert await version_of(config_file, "mirrored/network/aws", "0.9.0") is None
    gitmod = await version_of(config_file, "mirrored/gitmod/aws", "1.0.0")
    assert gitmod is not None and gitmod.commit_sha == commits["v1.0.0"]
    s3mod = await version_of(config_file, "mirrored/s3mod/aws", "1.0.0")
    assert s3mod is not None and s3mod.sha256 == hashlib.sha256(s3_body).hexdigest()
    async with offline_registry(config_of(config_file)) as down:
        async def files(address: str) -> dict[str, bytes]:
            record = await down.store.get_version(ModuleAddress.parse(address), "1.0.0")
            return files_of(b"".join([chunk async for chunk in down.blobs.open(record.blob_key)]))

        assert await files("mirrored/submod/aws") == files_of(packed(sub))  # the subdirectory alone
        assert await files("mirrored/zipmod/aws") == files_of(packed(zipped))
        analysis = await down.store.version_analysis(ModuleAddress.parse("mirrored/zipmod/aws"), "1.0.0")
        assert [i["name"] for i in analysis["root"]["inputs"]] == ["name"]  # the same analysis as a publish
    assert set(registry.seen_tokens) == {f"Bearer {TOKEN}"}
    assert all("Authorization" not in headers for _, headers in archives.requests)  # never to a location

    # again: everything is there with the same sha256 (the git checkout packs to the same bytes)
    code, out, err = await sync()
    assert code == 0, out + err
    assert set(statuses(out).values()) == {"skipped"} and "same sha256" in out

    # upstream publishes 1.2.0, and changes the bytes of the released 1.1.0
    registry.add("hashicorp/network/aws", "1.2.0", archives.add("/files/network-1.2.0.tar.gz", packed(module("n12", "1.2.0"))))
    archives.add("/files/network-1.1.0.tar.gz", packed(module("changed", "changed")))
    code, out, err = await sync("--dry-run", "--no-verify")
    assert code == 0, out + err
    assert statuses(out)["hashicorp/network/aws 1.2.0"] == "planned"
    assert await version_of(config_file, "mirrored/network/aws", "1.2.0") is None
    code, out, err = await sync("--upstream", registry.url)
    assert code == 1
    found = statuses(out)
    assert found["hashicorp/network/aws 1.2.0"] == "copied"
    assert found["hashicorp/network/aws 1.1.0"] == "conflict"
    assert "already exists with other content" in out and "1 conflict" in out
    assert (await version_of(config_file, "mirrored/network/aws", "1.1.0")).sha256 == network.sha256  # never overwritten


# Mirror to mirror ---------------------------------------------------------------------------------


async def test_mirror_to_mirror_sync_installs_with_terraform(start_mirror, tmp_path):
    upstream = await start_mirror("upstream")
    published = {v: await upstream.publish("acme/network/aws", v, marker=f"up-{v}") for v in ("1.0.0", "1.1.0", "2.0.0")}
    read_token = await token_for(upstream.config_file, "read")
    down_file = mirror_config(tmp_path / "down")
    spec = "acme/network/aws ~> 1.0"
    env = {"MIRROR_UPSTREAM_TOKEN": read_token}
    args = ("sync", "--config", str(down_file), "--upstream", upstream.url, spec, "--namespace", "mirrored")
    code, out, err = await run_mirror(*args, cwd=tmp_path, env=env)
    assert code == 0, out + err
    assert statuses(out) == {"acme/network/aws 1.0.0": "copied", "acme/network/aws 1.1.0": "copied"}
    for version in ("1.0.0", "1.1.0"):  # the same bytes, so the same content address on both sides
        assert (await version_of(down_file, "mirrored/network/aws", version)).sha256 == published[version]["sha256"]
    code, out, err = await run_mirror(*args, cwd=tmp_path, env=env)
    assert code == 0 and set(statuses(out).values()) == {"skipped"}
    assert "fetching" not in out  # the location names its sha256: nothing is downloaded to compare

    downstream = MirrorServer(down_file, config_of(down_file).server.port, tmp_path / "down").start()
    try:
        rc = cli_config(tmp_path / "terraform.rc", host=HOST, port=downstream.port, token=await token_for(down_file, "read"))
        root = write_root_config(tmp_path / "root", f"{HOST}/mirrored/network/aws", "~> 1.0")
        init = TERRAFORM_1_15.run(root, "init", "-no-color", env=base_env(rc, tmp_path))
        assert init.returncode == 0, init.stdout + init.stderr
        assert installed_modules(root)["net"]["Version"] == "1.1.0"
        assert (root / ".terraform/modules/net/modules/subnets/main.tf").is_file()
        assert 'value = "up-1.1.0-${var.name}"' in (root / ".terraform/modules/net/main.tf").read_text()
    finally:
        assert downstream.stop() == 0, downstream.logs()


@pytest.mark.slow
async def test_from_mirror_follows_the_event_feed_along_a_chain(start_mirror, tmp_path):
    """connected -> DMZ -> air gap: each hop follows the previous one's feed from its own cursor."""
    connected = await start_mirror("connected")
    await connected.publish("acme/a/aws", "1.0.0", "a1")
    await connected.publish("acme/b/aws", "1.0.0", "b1")
    dmz_file = mirror_config(tmp_path / "dmz")
    gap_file = mirror_config(tmp_path / "gap")

    async def follow(config_file: Path, upstream: str, token: str) -> tuple[int, str, str]:
        env = {"MIRROR_UPSTREAM_TOKEN": token}
        return await run_mirror("sync", "--config", str(config_file), "--from-mirror", upstream, cwd=tmp_path, env=env)

    code, out, err = await follow(dmz_file, connected.url, connected.token)
    assert code == 0, out + err
    assert statuses(out) == {"acme/a/aws 1.0.0": "copied", "acme/b/aws 1.0.0": "copied"}
    dmz = MirrorServer(dmz_file, config_of(dmz_file).server.port, tmp_path / "dmz").start()
    try:
        dmz_token = await token_for(dmz_file, "read")
        code, out, err = await follow(gap_file, dmz.url, dmz_token)
        assert code == 0, out + err
        assert set(statuses(out)) == {"acme/a/aws 1.0.0", "acme/b/aws 1.0.0"}
        original = await version_of(connected.config_file, "acme/a/aws", "1.0.0")
        assert (await version_of(gap_file, "acme/a/aws", "1.0.0")).sha256 == original.sha256

        # upstream moves on: a new version, and a revocation
        await connected.publish("acme/a/aws", "1.1.0", "a2")
        assert await with_store(
            config_of(connected.config_file), lambda s: s.revoke_version(ModuleAddress.parse("acme/b/aws"), "1.0.0")
        )
        for config_file, upstream, token in ((dmz_file, connected.url, connected.token), (gap_file, dmz.url, dmz_token)):
            code, out, err = await follow(config_file, upstream, token)
            assert code == 0, out + err
            assert statuses(out) == {"acme/a/aws 1.1.0": "copied", "acme/b/aws 1.0.0": "revoked"}  # only what is new
            assert (await version_of(config_file, "acme/b/aws", "1.0.0")).revoked_at is not None
        code, out, err = await follow(gap_file, dmz.url, dmz_token)
        assert code == 0 and statuses(out) == {} and "caught up" in out
        consumers = await with_store(config_of(gap_file), lambda s: s.list_consumers())
        assert [c.name for c in consumers if c.name.startswith("sync:")] == [f"sync:{dmz.url}"]
    finally:
        assert dmz.stop() == 0, dmz.logs()


# Failures and resuming ----------------------------------------------------------------------------


async def test_upstream_killed_mid_sync_fails_the_rest_and_a_rerun_completes(start_mirror, tmp_path):
    upstream = await start_mirror("upstream")
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
        await upstream.publish("acme/network/aws", version, marker=version)
    config = config_of(mirror_config(tmp_path / "down"))
    spec = ModuleSpec.parse("acme/network/aws >= 1.0")

    async def run(on_line: Callable[[str], None]) -> Syncer:
        # the engine's own API, as a server would use it: one session, one fetcher, the stores
        async with offline_registry(config, create=True) as down, aiohttp.ClientSession() as session:
            # the upstream's own locations (its URLs on loopback) are allowed, as for a configured upstream
            fetcher = Fetcher(
                session, spool_dir=config.server.spool_dir, limits=ArchiveLimits(),
                policies=[SourcePolicy.for_upstream(upstream.url)],
            )
            syncer = Syncer(store=down.store, ingestor=down.ingestor, fetcher=fetcher, jobs=1, on_line=on_line)
            try:
                await syncer.sync_modules(RegistryClient(session, upstream.url, token=upstream.token, timeout=5), [spec])
            finally:
                await fetcher.close()
            return syncer

    def kill_after_first_copy(line: str) -> None:
        if "] copied" in line:
            upstream.server.process.kill()  # the upstream goes down for good, mid-sync

    first = await run(kill_after_first_copy)
    upstream.server.process.wait()
    assert not first.report.ok
    assert [r.status for r in first.report.results] == ["copied", "failed", "failed", "failed"]
    assert "cannot reach" in first.report.results[1].detail or "Server disconnected" in first.report.results[1].detail
    assert first.report.results[2].detail.startswith("not tried: ")
    assert [line for line in first.report.summary() if "acme/network/aws" in line] == [
        f"  {upstream.url} acme/network/aws: 1 copied ({human_size(first.report.results[0].size)}), 3 failed"
    ]

    upstream.restart()
    lines: list[str] = []
    second = await run(lines.append)
    assert second.report.ok
    assert [r.status for r in second.report.results] == ["skipped", "copied", "copied", "copied"]
    assert not list(config.server.spool_dir.iterdir())


async def test_a_sync_killed_mid_download_ingests_nothing_partial_and_resumes(aiohttp_server, tmp_path):
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        write_module(tmp_path / "src" / version, marker=version)
        (tmp_path / "src" / version / "data.bin").write_bytes(os.urandom(512 * 1024))  # larger than any buffer
    bodies = {v: packed(tmp_path / "src" / v) for v in ("1.0.0", "1.1.0", "1.2.0")}
    entered, release = asyncio.Event(), asyncio.Event()

    async def archive(request: web.Request) -> web.StreamResponse:
        body = bodies[request.match_info["version"]]
        if request.match_info["version"] != "1.1.0" or release.is_set():
            return web.Response(body=body)
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        entered.set()
        await release.wait()  # hangs until the test lets go
        await response.write(body[len(body) // 2 :])
        return response

    files = web.Application()
    files.router.add_get("/archives/{version}.tar.gz", archive)
    files_url = await serve(aiohttp_server, files)
    registry = FakeRegistry()
    registry.url = await serve(aiohttp_server, registry.app())
    for version in bodies:
        registry.add("acme/network/aws", version, f"{files_url}/archives/{version}.tar.gz")
    # the archives are on another loopback server
    config_file = mirror_config(tmp_path / "down", upstreams=[{"host": registry.url, "allow_private": True}])
    args = [sys.executable, "-m", "mirror", "sync", "--config", str(config_file), "--jobs", "1",
            "--upstream", registry.url, "acme/network/aws"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MIRROR_")}, "MIRROR_UPSTREAM_TOKEN": TOKEN}
    process = await asyncio.create_subprocess_exec(*args, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE)
    await asyncio.wait_for(entered.wait(), timeout=60)
    spool = tmp_path / "down" / "spool"

    def half_spooled() -> list[Path] | None:
        partial = list(spool.glob("sync-*/download.tar.gz"))
        return partial if partial and partial[0].stat().st_size > 0 else None

    partial = await eventually(half_spooled, "the first half to reach the spool file", timeout=5)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    assert partial and 0 < partial[0].stat().st_size < len(bodies["1.1.0"])
    assert (await version_of(config_file, "acme/network/aws", "1.0.0")) is not None
    assert (await version_of(config_file, "acme/network/aws", "1.1.0")) is None  # the half download is not a version

    release.set()
    code, out, err = await run_mirror(*args[3:], cwd=tmp_path, env={"MIRROR_UPSTREAM_TOKEN": TOKEN})
    assert code == 0, out + err
    assert statuses(out) == {
        "acme/network/aws 1.0.0": "skipped",
        "acme/network/aws 1.1.0": "copied",
        "acme/network/aws 1.2.0": "copied",
    }
    resumed = await version_of(config_file, "acme/network/aws", "1.1.0")
    assert resumed.sha256 == hashlib.sha256(bodies["1.1.0"]).hexdigest()
