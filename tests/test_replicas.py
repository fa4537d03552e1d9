"""The fault suite: live ``mirror serve`` replicas sharing one DynamoDB table and one S3 bucket.

Two or three replicas (subprocesses) run on moto's DynamoDB and S3 over real HTTP, each reached
through a ``TcpProxy`` so that it can become unreachable or slow. A fake GitHub and the webhook receivers
are aiohttp servers in this test's event loop, so nothing here blocks the loop: starting, killing
and stopping replicas go through ``asyncio.to_thread``.

Every test ends with ``Cluster.assert_consistent``: nothing lost, nothing doubled. Each expected
version is served by every replica and released exactly once in the events feed, serials run
from 1 without a gap, each module was created once, S3 holds exactly one archive per version and
no unfinished upload, no job failed, and every replica's own JSONL log holds every event once, in
order.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from tests.fake_github import (
    FakeGitHub,
    FakeRepo,
    create_tag_payload,
    push_tag_payload,
    release_payload,
    webhook_delivery,
)
from tests.live import (
    MirrorServer,
    eventually,
    free_port,
    run_cli,
    stop_process,
    write_config,
)
from tests.moto_server import MotoServer
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.replicas

SECRET = "replica-webhook-secret"
OWNER = "acme-corp"
REPO = "terraform-aws-network"
ADDRESS = "acme-corp/network/aws"
INSTALLATION = 7
#: a job whose replica was killed runs again this soon; short so the suite stays quick
LEASE_SECONDS = 2
#: every wait in this file is bounded by this
WAIT_SECONDS = 60

T = TypeVar("T")


def tag_files(tag: str) -> dict[str, bytes]:
    """A small module whose content names its tag, so each tag is a distinct archive."""
    return {
        "main.tf": f'variable "name" {{\n  type    = string\n  default = "{tag}"\n}}\n\noutput "tag" {{\n  value = var.name\n}}\n'.encode(),
        "README.md": f"# Network\n\nBuilt from {tag}.\n".encode(),
    }


@dataclass
class Replica:
    server: MirrorServer
    data: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    @property
    def name(self) -> str:
        """How this replica names itself in a job's ``claimed_by``."""
        return f"{socket.gethostname()}:{self.pid}"

    @property
    def alive(self) -> bool:
        return self.server.process is not None and self.server.process.poll() is None

    def logged_serials(self) -> list[int]:
        """Serials in this replica's own JSONL event log."""
        path = self.data / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["serial"] for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Cluster:
    fake: FakeGitHub
    moto: MotoServer
    bucket: str
    s3: TcpProxy
    dynamodb: TcpProxy
    session: aiohttp.ClientSession
    replicas: list[Replica] = field(default_factory=list)
    token: str = ""
    log_files: list[Path] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-20000:]}" for path in self.log_files)

    async def eventually(self, check: Callable[[], Awaitable[T]], what: str, timeout: float = WAIT_SECONDS) -> T:
        return await eventually(check, what, timeout=timeout, logs=self.logs)

    # -- replicas -----------------------------------------------------------------------------

    async def start(self, index: int) -> None:
        server = self.replicas[index].server
        await asyncio.to_thread(server.start)
        assert server.log_file is not None
        self.log_files.append(server.log_file)

    async def kill(self, index: int) -> None:
        """SIGKILL: no shutdown handler runs, leases are left to lapse."""
        process = self.replicas[index].server.process
        assert process is not None
        process.kill()
        await asyncio.to_thread(process.wait, 10)

    async def restart(self, index: int) -> None:
        """SIGTERM (a graceful stop: leases are handed back), then start again."""
        code = await asyncio.to_thread(self.replicas[index].server.stop)
        assert code == 0, self.logs()
        await self.start(index)

    def holder(self, job: dict[str, Any]) -> int | None:
        """The index of the live replica running ``job``."""
        for index, replica in enumerate(self.replicas):
            if replica.alive and job.get("claimed_by") == replica.name:
                return index
        return None

    # -- requests -----------------------------------------------------------------------------

    async def get(self, index: int, path: str, **params: str) -> Any:
        async with self.session.get(self.replicas[index].url + path, params=params, headers=self.auth) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def deliver(
        self, index: int, event: str, payload: dict[str, Any], *, sent: tuple[dict[str, str], bytes] | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers, body = sent or webhook_delivery(event, payload, SECRET)
        async with self.session.post(self.replicas[index].url + "/github/webhook", data=body, headers=headers) as answer:
            return answer.status, await answer.json(content_type=None)

    async def versions(self, index: int) -> list[str]:
        async with self.session.get(
            f"{self.replicas[index].url}/v1/modules/{ADDRESS}/versions", headers=self.auth
        ) as response:
            if response.status == 404:
                return []
            assert response.status == 200, await response.text()
            return sorted(v["version"] for v in (await response.json())["modules"][0]["versions"])

    async def jobs(self, index: int, state: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": "1000", **({"state": state} if state else {})}
        return (await self.get(index, "/api/v1/jobs", **params))["jobs"]

    async def events(self, index: int = 0) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = await self.get(index, "/api/v1/events", after=str(found[-1]["serial"] if found else 0), limit="1000")
            found += page["events"]
            if not page["events"]:
                return found

    async def live_index(self) -> int:
        """A replica that is up (waiting while all are restarting)."""

        async def first_alive() -> list[int]:
            return [index for index, replica in enumerate(self.replicas) if replica.alive]

        return (await self.eventually(first_alive, "a live replica"))[0]

    async def settled(self, index: int) -> bool:
        """No job queued or running (backoffs included)."""
        return not await self.jobs(index, "queued") and not await self.jobs(index, "running")

    # -- S3 -----------------------------------------------------------------------------------

    async def objects(self) -> list[str]:
        async with self.moto.client("s3") as s3:
            listed = await s3.list_objects_v2(Bucket=self.bucket)
            return sorted(item["Key"] for item in listed.get("Contents", []))

    async def unfinished_uploads(self) -> list[str]:
        async with self.moto.client("s3") as s3:
            listed = await s3.list_multipart_uploads(Bucket=self.bucket)
            return [upload["Key"] for upload in listed.get("Uploads", [])]

    # -- the verdict --------------------------------------------------------------------------

    async def assert_consistent(self, expected: set[str], *, modules: int = 1) -> list[dict[str, Any]]:
        """Nothing lost, nothing doubled (see the module's docstring); the events, for more checks."""
        index = await self.live_index()
        await self.eventually(lambda: self.settled(index), "every job to finish")
        for replica_index, replica in enumerate(self.replicas):
            if replica.alive:
                assert await self.versions(replica_index) == sorted(expected), replica_index
        events = await self.events(index)
        serials = [event["serial"] for event in events]
        assert serials == list(range(1, len(events) + 1)), serials  # gap-free, each once
        released = collections.Counter(e["data"]["version"] for e in events if e["type"] == "module.version_released")
        assert released == collections.Counter(expected), released  # each version released once
        assert [e["type"] for e in events].count("module.created") == modules
        assert await self.jobs(index, "failed") == []
        archives = [key for key in await self.objects() if key.endswith(".tar.gz")]
        assert len(archives) == len(expected), archives  # one archive per version, nothing stray
        assert await self.objects() == archives
        assert await self.unfinished_uploads() == []
        for replica in self.replicas:
            if replica.alive:
                await self.eventually(
                    lambda replica=replica: _equal(replica.logged_serials(), serials), "every replica's JSONL log"
                )
        return events


async def _equal(value: T, expected: T) -> bool:
    return value == expected


@pytest.fixture
async def start_cluster(
    aiohttp_server, tmp_path: Path, moto: MotoServer, aws_env: None
) -> AsyncIterator[Callable[[int], Awaitable[Cluster]]]:
    """``await start_cluster(n)``: n replicas on one fresh DynamoDB table and S3 bucket, with an admin token."""
    clusters: list[Cluster] = []
    connector = aiohttp.TCPConnector(force_close=True)  # no pooled connection outlives a killed replica
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20))

    async def start(count: int) -> Cluster:
        fake = FakeGitHub()
        fake_server = await aiohttp_server(fake.app)
        key_file = tmp_path / "app.pem"
        key_file.write_text(fake.private_key_pem)
        host, port = moto.endpoint_url.removeprefix("http://").split(":")
        s3, dynamodb = TcpProxy(host, int(port)), TcpProxy(host, int(port))
        await s3.up()
        await dynamodb.up()
        bucket = await moto.create_bucket("mirror-replicas")
        table = f"mirror-replicas-{os.urandom(4).hex()}"
        config_file = write_config(
            tmp_path / "mirror.toml",
            {
                "metadata": {"backend": "dynamodb", "table": table, "region": moto.region, "endpoint_url": dynamodb.url},
                "blobs": {"backend": "s3"},
                "s3": {"bucket": bucket, "region": moto.region, "endpoint_url": s3.url},
                "github": {
                    "app_id": fake.app_id,
                    "private_key_file": str(key_file),
                    "webhook_secret": SECRET,
                    "api_url": str(fake_server.make_url("")).rstrip("/"),
                    "workers": 2,
                    "reconcile_interval": 0,
                },
                "jobs": {"lease_seconds": LEASE_SECONDS, "max_attempts": 30, "backoff_base": 0.25, "backoff_max": 3.0},
                "webhooks": {
                    "allow_private": True,
                    "lease_seconds": LEASE_SECONDS,
                    "timeout_seconds": 1,
                    "backoff_base": 0.1,
                    "backoff_max": 1.0,
                    "max_attempts": 1000,
                },
            },
        )
        created = await asyncio.to_thread(run_cli, "dynamodb", "create-table", "--config", str(config_file), cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        cluster = Cluster(fake, moto, bucket, s3, dynamodb, session)
        clusters.append(cluster)
        for number in range(count):
            data = tmp_path / f"replica-{number}"
            port = free_port()
            env = {
                "MIRROR_SERVER_PORT": str(port),
                "MIRROR_SERVER_SPOOL_DIR": str(data / "spool"),
                "MIRROR_EVENTS_LOG_PATH": str(data / "events.jsonl"),
            }
            cluster.replicas.append(Replica(MirrorServer(config_file, port, tmp_path, env=env), data))
        await asyncio.gather(*(cluster.start(number) for number in range(count)))
        token = await asyncio.to_thread(
            run_cli, "token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config_file), cwd=tmp_path
        )
        assert token.returncode == 0, token.stderr
        cluster.token = token.stdout.strip().splitlines()[-1]
        return cluster

    try:
        yield start
    finally:
        for cluster in clusters:
            await cluster.s3.up()  # a replica shutting down may still write
            cluster.dynamodb.latency = cluster.s3.latency = 0.0
            codes = await asyncio.gather(
                *(asyncio.to_thread(stop_process, replica.server.process) for replica in cluster.replicas)
            )
            await cluster.s3.down()
            await cluster.dynamodb.down()
            assert all(code in (0, None) for code in codes), cluster.logs()
            logs = cluster.logs()
            assert "Traceback" not in logs, logs
            assert "mirror_" not in logs and "ghs_" not in logs  # no tokens in logs
        await session.close()


def network_repo(fake: FakeGitHub) -> FakeRepo:
    return fake.add_repository(OWNER, REPO, installation_id=INSTALLATION, description="VPCs")


def add_tag(fake: FakeGitHub, tag: str) -> None:
    fake.add_tag(OWNER, REPO, tag, tag_files(tag))


async def test_the_same_delivery_to_every_replica_makes_one_version(start_cluster):
    cluster = await start_cluster(3)
    fake = cluster.fake
    repo = network_repo(fake)
    add_tag(fake, "v1.0.0")
    fake.delay["codeload"] = 0.5  # ingests stay in flight long enough to overlap

    # GitHub retries a delivery with the same id; a load balancer may spread the copies.
    sent = webhook_delivery("create", create_tag_payload(repo, "v1.0.0"), SECRET)
    answers = await asyncio.gather(*(cluster.deliver(index, "", {}, sent=sent) for index in range(3)))
    assert sorted(status for status, _ in answers) == [200, 200, 202], answers
    assert sorted(body["status"] for _, body in answers) == ["duplicate", "duplicate", "queued"]

    # One tag through three different deliveries (create, push, release) at once, one per
    # replica: three ingest jobs of the same tag race each other. Their tarball downloads are
    # answered together and DynamoDB is slow, so their reads and writes of the version interleave:
    # the conditional transactions (on the version and on the event counter) decide.
    add_tag(fake, "v1.1.0")
    fake.delay.pop("codeload")
    fake.together["codeload"] = 3
    cluster.dynamodb.latency = 0.2
    sha = repo.tags["v1.1.0"]
    answers = await asyncio.gather(
        cluster.deliver(0, "create", create_tag_payload(repo, "v1.1.0")),
        cluster.deliver(1, "push", push_tag_payload(repo, "v1.1.0", before=None, after=sha)),
        cluster.deliver(2, "release", release_payload(repo, "v1.1.0")),
    )
    assert [status for status, _ in answers] == [202, 202, 202], answers

    await cluster.eventually(lambda: _versions_everywhere(cluster, ["1.0.0", "1.1.0"]), "both versions on every replica")
    await cluster.assert_consistent({"1.0.0", "1.1.0"})
    ingests = [job for job in await cluster.jobs(0) if job["kind"] == "github.ingest_tag"]
    assert sorted(job["payload"]["tag"] for job in ingests) == ["v1.0.0", "v1.1.0", "v1.1.0", "v1.1.0"]
    assert {job["state"] for job in ingests} == {"done"}


async def _versions_everywhere(cluster: Cluster, expected: list[str]) -> bool:
    for index, replica in enumerate(cluster.replicas):
        if replica.alive and await cluster.versions(index) != expected:
            return False
    return True


async def test_replicas_killed_mid_ingest_twenty_times_lose_and_double_nothing(start_cluster):
    cluster = await start_cluster(2)
    fake = cluster.fake
    repo = network_repo(fake)
    rng = random.Random(20261125)
    tags = [f"v1.{number}.0" for number in range(20)]
    killed_mid_ingest = 0
    for number, tag in enumerate(tags):
        add_tag(fake, tag)
        # Even rounds: a slow tarball, the kill lands mid-download. Odd rounds: a slow link to S3,
        # the kill lands mid-upload or after it, before or while the version is written.
        fake.delay["codeload"], cluster.s3.latency = (0.8, 0.0) if number % 2 == 0 else (0.0, 0.4)
        entry = await cluster.live_index()
        status, answer = await cluster.deliver(entry, "create", create_tag_payload(repo, tag))
        assert status == 202, answer

        async def running(tag: str = tag) -> list[tuple[int, dict[str, Any]]]:
            jobs = await cluster.jobs(await cluster.live_index(), "running")
            found = [job for job in jobs if job["kind"] == "github.ingest_tag" and job["payload"]["tag"] == tag]
            return [(holder, job) for job in found if (holder := cluster.holder(job)) is not None]

        ((victim, job),) = await cluster.eventually(running, f"the ingest of {tag} to run")
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        await cluster.kill(victim)
        survivor = 1 - victim
        (after,) = [j for j in await cluster.jobs(survivor) if j["id"] == job["id"]]
        if after["state"] == "running" and after["claimed_by"] == job["claimed_by"]:
            killed_mid_ingest += 1  # still held by the dead replica's claim: killed mid-ingest
        await cluster.start(victim)
    cluster.s3.latency = 0.0
    assert killed_mid_ingest >= 14, killed_mid_ingest  # most kills hit an ingest in flight

    await cluster.eventually(lambda: _versions_everywhere(cluster, sorted(tag[1:] for tag in tags)), "all twenty versions")
    await cluster.assert_consistent({tag[1:] for tag in tags})
    assert fake.calls["codeload"] >= 20 + killed_mid_ingest - 5  # killed downloads were made again


async def test_s3_unreachable_for_30_seconds_while_50_tags_arrive(start_cluster):
    cluster = await start_cluster(2)
    fake = cluster.fake
    repo = network_repo(fake)
    tags = [f"v2.{number}.0" for number in range(50)]
    loop = asyncio.get_running_loop()
    await cluster.s3.down()
    outage_started = loop.time()
    for number, tag in enumerate(tags):
        add_tag(fake, tag)
        status, answer = await cluster.deliver(number % 2, "create", create_tag_payload(repo, tag))
        assert status == 202, answer  # GitHub is answered at once: the work is a durable job

    # While S3 is away nothing can be published, and nothing gives up.
    await asyncio.sleep(max(0.0, outage_started + 30 - loop.time()))
    assert await cluster.versions(0) == [] and await cluster.versions(1) == []
    assert await cluster.jobs(0, "failed") == []
    ingests = [job for job in await cluster.jobs(0) if job["kind"] == "github.ingest_tag"]
    assert len(ingests) == 50 and any(job["attempts"] > 1 for job in ingests)
    assert any("StorageUnavailable" in (job["last_error"] or "") for job in ingests)

    await cluster.s3.up()
    expected = sorted(tag[1:] for tag in tags)
    await cluster.eventually(lambda: _versions_everywhere(cluster, expected), "all fifty versions after the outage")
    # Bounded by the wait above: about 15 s here, most of it moto serving the job queue's queries
    # one at a time for 50 jobs across two replicas.
    await cluster.assert_consistent(set(expected))


class Receiver:
    """A webhook subscriber that records each delivery (by ``X-Mirror-Delivery``)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, int, str]] = []  # (delivery id, serial, type)
        self.app = web.Application()
        self.app.router.add_post("/hook", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.deliveries.append((request.headers["X-Mirror-Delivery"], body["serial"], body["type"]))
        return web.Response(status=204)


async def test_a_subscriber_down_while_replicas_restart_gets_every_event_once(start_cluster, aiohttp_server, module_archive):
    cluster = await start_cluster(2)
    receiver = Receiver()
    receiver_server = await aiohttp_server(receiver.app)
    subscriber = TcpProxy("127.0.0.1", receiver_server.port)  # "down" refuses connections
    await subscriber.up()
    try:
        async with cluster.session.post(
            cluster.replicas[0].url + "/api/v1/webhooks",
            json={"url": subscriber.url + "/hook", "secret": "receiver-secret-0123456789"},
            headers=cluster.auth,
        ) as created:
            assert created.status == 201, await created.text()
            subscription = (await created.json())["webhook"]["id"]

        async def publish(index: int, version: str) -> None:
            async with cluster.session.put(
                f"{cluster.replicas[index].url}/api/v1/modules/{ADDRESS}/{version}",
                data=module_archive(version),
                headers=cluster.auth,
            ) as response:
                assert response.status == 201, await response.text()

        await publish(0, "1.0.0")
        await cluster.eventually(lambda: _at_least(receiver.deliveries, 2), "the first events delivered")

        async def failed_attempts() -> int:
            row = await cluster.get(await cluster.live_index(), f"/api/v1/webhooks/{subscription}")
            return row["webhook"]["attempts"]

        async def more_failed_attempts(than: int) -> int | None:
            attempts = await failed_attempts()
            return attempts if attempts > than else None

        await subscriber.down()
        await publish(1, "1.1.0")
        await publish(0, "1.2.0")
        await cluster.eventually(lambda: more_failed_attempts(1), "attempts to fail and back off")
        await cluster.restart(0)  # graceful: the lease is handed back
        await publish(0, "1.3.0")
        await cluster.kill(1)  # the lease, if it was here, lapses
        await cluster.start(1)
        await publish(1, "1.4.0")
        before = await failed_attempts()
        await cluster.eventually(lambda: more_failed_attempts(before), "attempts to fail after the restarts")
        await subscriber.up()

        events = await cluster.assert_consistent({"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"})
        wanted = [(event["serial"], event["type"]) for event in events]
        await cluster.eventually(
            lambda: _equal([(serial, kind) for _, serial, kind in receiver.deliveries], wanted), "every event delivered"
        )
        # a later event arrives right after them: no stray second delivery came meanwhile
        await publish(0, "1.5.0")
        later = [(event["serial"], event["type"]) for event in (await cluster.events(0))[len(wanted) :]]
        assert later and all(kind == "module.version_released" for _, kind in later)
        await cluster.eventually(
            lambda: _at_least([serial for _, serial, _ in receiver.deliveries if serial == later[-1][0]], 1),
            "the later event delivered",
        )
        wanted += later
        got = [(serial, kind) for _, serial, kind in receiver.deliveries]
        assert got == wanted  # each event once, in order
        assert len({delivery for delivery, _, _ in receiver.deliveries}) == len(wanted)
        failures = await cluster.get(0, f"/api/v1/webhooks/{subscription}/failures")
        assert failures["failures"] == []
    finally:
        await subscriber.down()


async def _at_least(items: list[Any], count: int) -> bool:
    return len(items) >= count


async def test_dynamodb_unreachable_answers_503_and_writes_nothing(start_cluster, module_archive):
    cluster = await start_cluster(2)
    cluster.fake.add_repository(OWNER, REPO, installation_id=INSTALLATION)
    repo = cluster.fake.repos[(OWNER, REPO)]
    add_tag(cluster.fake, "v1.0.0")

    async def upload(index: int, version: str) -> tuple[int, Any]:
        async with cluster.session.put(
            f"{cluster.replicas[index].url}/api/v1/modules/{ADDRESS}/{version}",
            data=module_archive(version),
            headers=cluster.auth,
        ) as response:
            return response.status, await response.json()

    assert (await upload(0, "1.0.0"))[0] == 201
    await cluster.dynamodb.down()
    await asyncio.sleep(2.5)  # past [metadata] cache_seconds: answers must come from the table
    for index in range(2):
        status, answer = await upload(index, "1.1.0")
        assert status == 503 and answer["errors"], answer
        async with cluster.session.get(
            f"{cluster.replicas[index].url}/v1/modules/{ADDRESS}/versions", headers=cluster.auth
        ) as versions:
            assert versions.status == 503 and (await versions.json())["errors"]
        status, answer = await cluster.deliver(index, "create", create_tag_payload(repo, "v1.0.0"))
        assert status == 503 and answer["errors"], answer  # GitHub sees the failure; reconcile catches up
    await cluster.dynamodb.up()

    assert (await upload(1, "1.1.0"))[0] == 201
    await cluster.assert_consistent({"1.0.0", "1.1.0"})
