"""The GitHub integration end to end against a LIVE ``mirror serve`` subprocess.

The fake GitHub runs in the test's own event loop (``aiohttp_server``) and the live server's
``[github] api_url`` points at it. So nothing here may block the loop: every blocking call
(starting/stopping the server, the CLI, Terraform, SQLite reads) goes through
``asyncio.to_thread``, and HTTP calls to the live server use an aiohttp ClientSession.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from yarl import URL

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import Event, Job
from mirror.storage.sqlite import SqliteMetadataStore
from tests.fake_github import (
    FakeGitHub,
    FakeRepo,
    create_tag_payload,
    delete_tag_payload,
    installation_payload,
    webhook_delivery,
)
from tests.live import MirrorServer, eventually, free_port, run_cli, write_config
from tests.modules import ROOT_MAIN, SUBNETS_MAIN, write_root_config
from tests.terraform import TERRAFORM_1_0, TERRAFORM_1_15, Terraform, base_env, cli_config, installed_modules

SECRET = "live-webhook-secret"
HOST = "registry.example.test"
ADDRESS = "acme-corp/network/aws"
REPO = "terraform-aws-network"
INSTALLATION = 7
#: short, so that a job whose server was killed runs again soon after a restart
LEASE_SECONDS = 2
#: every wait in this file is bounded by this
WAIT_SECONDS = 30

T = TypeVar("T")


def tag_files(tag: str) -> dict[str, bytes]:
    """A module whose ``id`` output names the tag it was built from, calling a nested submodule."""
    return {
        "main.tf": (ROOT_MAIN % {"marker": tag, "default": "main"}).encode(),
        "modules/subnets/main.tf": SUBNETS_MAIN.encode(),
        "README.md": f"# Network module\n\nBuilt from tag {tag}.\n".encode(),
    }


@dataclass
class LiveGitHub:
    """A live ``mirror serve`` wired to a fake GitHub served by this test's event loop."""

    fake: FakeGitHub
    server: MirrorServer
    token: str
    data: Path
    server_tmp: Path
    session: aiohttp.ClientSession
    log_files: list[Path] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.data / "mirror.db"

    @property
    def blobs(self) -> Path:
        return self.data / "blobs"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)
        assert self.server.log_file is not None
        self.log_files.append(self.server.log_file)

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')}" for path in self.log_files if path.exists())

    async def deliver(self, event: str, payload: dict[str, Any]) -> tuple[int, Any]:
        headers, body = webhook_delivery(event, payload, SECRET)
        async with self.session.post(f"{self.server.url}/github/webhook", data=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def versions(self, address: str = ADDRESS) -> list[str]:
        async with self.session.get(f"{self.server.url}/v1/modules/{address}/versions", headers=self.auth) as response:
            if response.status == 404:
                return []
            assert response.status == 200, await response.text()
            return [v["version"] for v in (await response.json())["modules"][0]["versions"]]

    async def jobs(self, state: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": "1000", **({"state": state} if state else {})}
        async with self.session.get(f"{self.server.url}/api/v1/jobs", params=params, headers=self.auth) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["jobs"]

    @asynccontextmanager
    async def store(self) -> AsyncIterator[SqliteMetadataStore]:
        """The server's metadata store, opened beside it through the store's own API (works while
        the server is down, too)."""
        store = SqliteMetadataStore(self.db, create=False)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    async def events(self, *types: str) -> list[Event]:
        async with self.store() as store:
            return await store.events_after(0, 10_000, types)

    async def released_events(self, version: str, name: str = "network") -> list[dict[str, Any]]:
        events = [event.data for event in await self.events("module.version_released")]
        return [e for e in events if e["name"] == name and e["version"] == version]

    async def stored_versions(self, name: str = "network") -> list[tuple[str, str, str | None]]:
        async with self.store() as store:
            versions = await store.all_versions(ModuleAddress.parse(f"acme-corp/{name}/aws"))
        return [(v.version, v.sha256, v.revoked_at) for v in versions]

    async def job(self, job_id: int) -> Job | None:
        async with self.store() as store:
            return await store.get_job(job_id)

    async def eventually(self, check: Callable[[], Awaitable[T]], what: str, timeout: float = WAIT_SECONDS) -> T:
        """Poll ``check`` until it returns something truthy; fail with the server's logs after ``timeout``."""
        return await eventually(check, what, timeout=timeout, logs=self.logs)

    def terraform(self, tf: Terraform, root: Path, *args: str) -> Any:
        """Blocking: run it with ``asyncio.to_thread``."""
        rc = cli_config(self.data.parent / "terraform.rc", host=HOST, port=self.server.port, token=self.token)
        return tf.run(root, *args, env=base_env(rc, self.data.parent), timeout=120)


@pytest.fixture
async def live_github(aiohttp_server, tmp_path: Path) -> AsyncIterator[LiveGitHub]:
    fake = FakeGitHub()
    fake_server = await aiohttp_server(fake.app)
    key_file = tmp_path / "app.pem"
    key_file.write_text(fake.private_key_pem)
    port = free_port()
    data = tmp_path / "data"
    config_file = write_config(
        tmp_path / "mirror.toml",
        {
            "server": {"port": port, "spool_dir": str(data / "spool")},
            "metadata": {"path": str(data / "mirror.db")},
            "blobs": {"path": str(data / "blobs")},
            "github": {
                "app_id": fake.app_id,
                "private_key_file": str(key_file),
                "webhook_secret": SECRET,
                "api_url": str(fake_server.make_url("")).rstrip("/"),
                "workers": 2,
                "reconcile_interval": 0,
            },
            "jobs": {"lease_seconds": LEASE_SECONDS, "max_attempts": 4, "backoff_base": 0.05, "backoff_max": 0.2},
        },
    )
    server_tmp = tmp_path / "server-tmp"  # the server's TMPDIR, to see what a crash leaves behind
    server_tmp.mkdir()
    server = MirrorServer(config_file, port, tmp_path, env={"TMPDIR": str(server_tmp)})
    connector = aiohttp.TCPConnector(force_close=True)  # no pooled connection outlives a killed server
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20)) as session:
        live = LiveGitHub(fake, server, "", data, server_tmp, session)
        await live.start()
        try:
            created = await asyncio.to_thread(
                run_cli, "token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config_file), cwd=tmp_path
            )
            assert created.returncode == 0, created.stderr
            live.token = created.stdout.strip().splitlines()[-1]
            yield live
        finally:
            code = await asyncio.to_thread(server.stop)  # while the fake still answers
    assert code == 0, live.logs()
    logs = live.logs()
    assert "mirror_" not in logs and "signature=" not in logs  # no tokens or signed links in logs
    assert "ghs_" not in logs and "BEGIN PRIVATE KEY" not in logs  # nor GitHub tokens or the App's key


def network_repo(fake: FakeGitHub, *tags: str) -> FakeRepo:
    repo = fake.add_repository("acme-corp", REPO, installation_id=INSTALLATION, description="VPCs")
    for tag in tags:
        fake.add_tag("acme-corp", REPO, tag, tag_files(tag))
    return repo


async def init_and_apply(live: LiveGitHub, tf: Terraform, root: Path, *flags: str) -> dict[str, Any]:
    init = await asyncio.to_thread(live.terraform, tf, root, "init", "-no-color", *flags)
    assert init.returncode == 0, init.stdout + init.stderr + live.logs()
    apply = await asyncio.to_thread(live.terraform, tf, root, "apply", "-auto-approve", "-no-color")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    output = await asyncio.to_thread(live.terraform, tf, root, "output", "-json")
    assert output.returncode == 0, output.stdout + output.stderr
    return {name: value["value"] for name, value in json.loads(output.stdout).items()}


@pytest.mark.terraform
@pytest.mark.parametrize("tf", [TERRAFORM_1_15, TERRAFORM_1_0], ids=lambda tf: tf.version)
async def test_installation_webhook_makes_modules_terraform_installs(live_github: LiveGitHub, tf: Terraform):
    live, fake = live_github, live_github.fake
    repo = network_repo(fake, "v1.0.0", "v1.1.0", "nightly")  # nightly is not SemVer: ignored
    fake.add_repository("acme-corp", "website", installation_id=INSTALLATION)  # not a module
    fake.add_tag("acme-corp", "website", "v9.0.0", tag_files("website"))

    status, answer = await live.deliver("installation", installation_payload(fake, "created", INSTALLATION))
    assert status == 202 and answer["status"] == "queued", answer
    await live.eventually(lambda: _equals(live.versions(), ["1.1.0", "1.0.0"]), "the backfilled versions")
    assert fake.calls["codeload"] == 2  # one archive a SemVer tag, nothing for nightly or the website

    root = write_root_config(live.data.parent / "root", f"{HOST}/{ADDRESS}", "~> 1.0")
    outputs = await init_and_apply(live, tf, root)
    modules = installed_modules(root)
    assert modules["net"]["Source"] == f"{HOST}/{ADDRESS}"
    assert modules["net"]["Version"] == "1.1.0"
    assert (root / ".terraform/modules/net/modules/subnets/main.tf").is_file()  # the nested submodule
    assert not list((root / ".terraform/modules/net").glob("acme-corp-*"))  # GitHub's top directory is gone
    assert outputs == {"id": "v1.1.0-main", "subnets": ["main-a", "main-b"]}  # built from tag v1.1.0

    # The tag is deleted on GitHub: the version is revoked, and Terraform can no longer pick it.
    fake.delete_tag("acme-corp", REPO, "v1.1.0")
    status, answer = await live.deliver("delete", delete_tag_payload(repo, "v1.1.0"))
    assert status == 202, answer
    await live.eventually(lambda: _equals(live.versions(), ["1.0.0"]), "the revoked version to go")
    async with live.session.get(f"{live.server.url}/v1/modules/{ADDRESS}/1.1.0/download", headers=live.auth) as gone:
        assert gone.status == 404

    write_root_config(root, f"{HOST}/{ADDRESS}", "1.1.0")  # exactly the revoked version
    refused = await asyncio.to_thread(live.terraform, tf, root, "init", "-upgrade", "-no-color")
    assert refused.returncode != 0, refused.stdout
    said = " ".join((refused.stderr + refused.stdout).split())
    assert "Unresolvable module version constraint" in said, said
    assert "The newest available version is 1.0.0" in said, said  # 1.1.0 is not offered at all

    write_root_config(root, f"{HOST}/{ADDRESS}", "~> 1.0")  # the same constraint now falls back to 1.0.0
    outputs = await init_and_apply(live, tf, root, "-upgrade")
    assert installed_modules(root)["net"]["Version"] == "1.0.0"
    assert outputs["id"] == "v1.0.0-main"


@pytest.mark.slow
async def test_killed_mid_ingest_leaves_no_half_version_and_finishes_after_restart(live_github: LiveGitHub):
    live, fake = live_github, live_github.fake
    repo = network_repo(fake, "v1.0.0")
    fake.delay["codeload"] = WAIT_SECONDS  # the tarball's body hangs: the ingest stays in flight

    status, answer = await live.deliver("create", create_tag_payload(repo, "v1.0.0"))
    assert status == 202, answer

    async def ingest_in_flight() -> list[dict[str, Any]]:
        if fake.calls["codeload"] < 1:
            return []
        return [job for job in await live.jobs("running") if job["kind"] == "github.ingest_tag"]

    (running,) = await live.eventually(ingest_in_flight, "a running github.ingest_tag job downloading its tarball")
    assert running["attempts"] == 1 and running["payload"]["tag"] == "v1.0.0"

    # SIGKILL mid-download: no shutdown handler runs, the job's lease is left to lapse.
    live.server.process.kill()
    await asyncio.to_thread(live.server.process.wait, 10)

    # With the server down nothing can change: no version, no event, no archive, no partial blob.
    assert await live.stored_versions() == []
    assert await live.released_events("1.0.0") == []
    job = await live.job(running["id"])
    assert job is not None and (job.state, job.attempts) == ("running", 1)
    assert _files(live.blobs) == []
    # The partial download is in the spool, inside the data directory, never in the blob store;
    # a start-up clears spool entries older than an hour.
    assert list((live.data / "spool").glob("github-*/github.tar.gz"))
    assert not list(live.server_tmp.iterdir())

    # Restart. The download still takes a moment, so the re-run cannot have published anything by
    # the time the first checks below are done: they see what a restarted server serves before it.
    fake.delay["codeload"] = 1.0
    codeload_calls = fake.calls["codeload"]
    await live.start()
    assert await live.versions() == []
    assert await live.stored_versions() == []
    assert await live.released_events("1.0.0") == []
    assert not [path for path in _files(live.blobs) if path.name.endswith(".tar.gz")]
    async with live.session.get(f"{live.server.url}/v1/modules/{ADDRESS}/1.0.0/download", headers=live.auth) as absent:
        assert absent.status == 404

    # After the lease lapses the job runs again (a second attempt) and the version appears once.
    await live.eventually(lambda: _equals(live.versions(), ["1.0.0"]), "the version after the re-run")
    assert fake.calls["codeload"] == codeload_calls + 1

    async def done() -> list[dict[str, Any]]:
        return [job for job in await live.jobs("done") if job["id"] == running["id"]]

    (finished,) = await live.eventually(done, "the ingest job to be done")
    assert finished["attempts"] == 2
    assert await live.jobs("failed") == []
    assert await live.jobs("running") == []

    ((version, sha256, revoked_at),) = await live.stored_versions()
    assert (version, revoked_at) == ("1.0.0", None)
    (event,) = await live.released_events("1.0.0")
    assert (event["namespace"], event["name"], event["provider"]) == ("acme-corp", "network", "aws")
    types = [event.type for event in await live.events()]
    assert types == ["module.created", "module.version_released"]  # the re-run created nothing twice

    blob_files = _files(live.blobs)
    assert [path.relative_to(live.blobs).as_posix() for path in blob_files] == [f"modules/{sha256[:2]}/{sha256}.tar.gz"]
    assert hashlib.sha256(blob_files[0].read_bytes()).hexdigest() == sha256
    assert not [path for path in live.blobs.rglob(".incoming-*")]

    # What the registry serves is that archive.
    async with live.session.get(f"{live.server.url}/v1/modules/{ADDRESS}/1.0.0/download", headers=live.auth) as answer:
        assert answer.status == 200
        location = answer.headers["X-Terraform-Get"]
    async with live.session.get(URL(live.server.url).join(URL(location))) as archive:
        assert archive.status == 200
        assert hashlib.sha256(await archive.read()).hexdigest() == sha256


async def _equals(value: Awaitable[T], expected: T) -> bool:
    return await value == expected


def _files(root: Path) -> list[Path]:
    """Every file under ``root`` (hidden ones too), sorted."""
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []
