#!/usr/bin/env python3
"""Benchmark of the GitHub integration: webhook-to-installable latency and ingest memory.

What it measures
----------------
Both against a real ``mirror serve`` process (SQLite + local disk, downloads.mode = proxy)
started by this script, with GitHub played by ``tests.fake_github.FakeGitHub`` served from
this script's own event loop (aiohttp AppRunner/TCPSite on 127.0.0.1). Deliveries are signed
with the webhook secret exactly as GitHub signs them (``X-Hub-Signature-256``), mirror
authenticates as a GitHub App (RS256 JWT -> installation token), and tarballs come through the
API's 302 redirect to a codeload URL, as on github.com.

1. Webhook-to-installable latency, 1 MiB module (target: p95 <= 1 s).
   One installation (``acme-corp``) with one module repository ``terraform-aws-bench``
   (module ``acme-corp/bench/aws``). Warm-up, not measured: an ``installation`` delivery whose
   backfill ingests a small tag (installation token, module row, worker threads...). Then for
   each of ``--tags`` tags, one after the other: the tag is added to the fake (main.tf,
   README.md and ``files/payload.txt``: 1 MiB of random bytes base64-encoded, so the gzip
   tarball is ~1 MiB), then, timed from just before the POST, a signed ``create`` (ref_type
   tag) delivery is sent and ``GET /v1/modules/acme-corp/bench/aws/<version>/download`` is
   polled every 10 ms with a bearer token until it answers 200. Reported: p50/p95/max of that
   time, the webhook's own response time (p50/p95), and a breakdown read from mirror's JSON log
   (delivery job, wait for the ingest job, ingest job, and publish -> seen by the poller).
   Outside the timed window each version's archive is downloaded through the signed URL and
   its files compared with the tag's.

   Caching: ``[metadata] cache_seconds`` is left at its production default (2 s;
   ``--cache-seconds`` to change it). It cannot distort the figure: the ``download`` answer
   falls through to the store on a cache miss, the catalog holds only what the store already
   has, and the ingest runs in the serving process, which invalidates the module's entry on
   publish. The script checks this rather than assuming it: for every tag the time between
   mirror logging "version published" and the poller's first 200 must stay within one poll
   interval plus one request (reported as "publish -> seen", with a verdict line).

2. Peak memory while ingesting a ``--big-mb`` (200) MiB tarball (target: RSS growth <= 64 MiB).
   A second repository ``terraform-aws-bigmodule`` in the same installation, served by a
   FRESH ``mirror serve`` process on the same data (so the first phase's allocations are not
   in its baseline). Warm-up: a ``create`` delivery of a small tag, ingested end to end. Then
   baseline = the server's VmRSS (``/proc/<pid>/status``) after a 1 s pause; the kernel's peak
   counter is reset (``echo 5 > /proc/<pid>/clear_refs``, so VmHWM is the peak of this ingest
   only); a ``create`` delivery of a tag whose files are main.tf plus ceil(M/50) files of
   random bytes totalling M MiB is sent; VmRSS/VmHWM are sampled every 20 ms (from a thread, so
   a busy event loop cannot delay the samples) until the version's download answers 200.
   Reported: baseline, peak (VmHWM since the reset, or the largest sample if the reset is not
   permitted), growth = peak - baseline, time taken and MiB/s (tarball size / time), the
   codeload download vs. the re-root/check/store/record that follows, and the server's CPU
   time. The archive is then downloaded once from mirror and listed, to prove the version is
   complete (not timed).

   The 200 MiB tarball is NOT built by FakeGitHub (``build_tarball`` works in memory, at gzip
   level 9): this script writes it once, streaming, to a temporary file (git-archive shape:
   pax global header with the commit sha, one ``<owner>-<repo>-<sha7>/`` top directory, gzip
   level 1 since the data is random anyway) and serves it through a subclass of FakeGitHub
   defined here, whose codeload handler streams prebuilt tarballs (the same ticket checks;
   chunked, no Content-Length, like codeload). The 1 MiB tarballs are built with FakeGitHub's
   own ``tarball()`` before each delivery, outside the timed window, and served the same way,
   so the fake's gzip time is not counted as mirror's latency. Only the SCRIPT holds tarballs
   in memory; the measured process is mirror.

MB in this script's output means MiB (2^20 bytes). Mirror logs at ``info`` (as deployed) into
a file in the work directory. The server runs in the work directory, so its spool (the default
``[server] spool_dir``, relative) is there, and TMPDIR is pointed there too: a run leaves nothing
behind.
``[github] reconcile_interval = 0``; other [github]/[jobs] settings are mirror's defaults
(4 workers). Limits are raised to fit the big tarball.

How to run (from the repository root; ~30-60 s at the defaults, ~1 GB of temporary disk)
-----------------------------------------------------------------------------------------
    .venv/bin/python scripts/bench_github.py
    .venv/bin/python scripts/bench_github.py --tags 50 --big-mb 100 --json out.json
    .venv/bin/python scripts/bench_github.py --keep      # keep the work directory (logs, data)
    .venv/bin/python scripts/bench_github.py --check     # exit 1 if a target is missed

Everything listens on 127.0.0.1; every wait has a deadline. The server is stopped with SIGTERM
and the work directory removed at the end, on Ctrl-C and on SIGTERM. Exit status: 0, 1 when a
phase failed (or, with ``--check``, a target was missed), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import io
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from tests.fake_github import (  # noqa: E402
    FakeGitHub,
    create_tag_payload,
    installation_payload,
    webhook_delivery,
)
from tests.live import MirrorServer, free_port, run_cli, write_config  # noqa: E402
from benchlib import OtherLoad, json_safe, percentile

MiB = 1024 * 1024
OWNER, INSTALLATION_ID = "acme-corp", 7
BENCH_REPO, BIG_REPO = "terraform-aws-bench", "terraform-aws-bigmodule"
NAMESPACE, PROVIDER = "acme-corp", "aws"
SECRET = "bench-github-webhook-secret"
MAIN_TF = b'variable "name" {\n  default = "x"\n}\noutput "id" {\n  value = "%s-${var.name}"\n}\n'
PAYLOAD_PATH = "files/payload.txt"

LATENCY_TARGET_MS = 1000.0
MEMORY_TARGET_MB = 64.0
POLL_SECONDS = 0.010  # latency phase
BIG_POLL_SECONDS = 0.020  # memory phase
RSS_SAMPLE_SECONDS = 0.020
TAG_TIMEOUT = 30.0  # seconds one tag may take to become installable
BIG_TIMEOUT = 150.0
BIG_FILE_MB = 50  # the big tag's random data comes in files of at most this size
CODELOAD_CHUNK = 256 * 1024
#: CPU (in cores) used by other processes during a phase above which it is called disturbed
OTHER_LOAD = 0.15


# -- the fake GitHub, with prebuilt tarballs ---------------------------------------------------


@dataclass
class Stream:
    sha: str
    started: float  # wall clock
    ended: float = math.nan
    size: int = 0


class BenchGitHub(FakeGitHub):
    """FakeGitHub whose codeload serves prebuilt tarballs (bytes or a file) for the commits in
    ``prebuilt``, streaming, and records when each was served. Other commits: FakeGitHub's own."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prebuilt: dict[str, bytes | Path] = {}
        self.streams: list[Stream] = []

    async def _codeload(self, request: web.Request) -> web.StreamResponse:
        owner, name = request.match_info["owner"], request.match_info["repo"]
        ticket = self._codeload_tickets.get(request.query.get("token", ""))
        if (
            "Authorization" in request.headers
            or ticket is None
            or ticket[:2] != (owner, name)
            or ticket[3] < time.time()
            or ticket[2] not in self.prebuilt
        ):
            return await super()._codeload(request)  # refuses as FakeGitHub does, or builds in memory
        sha = ticket[2]
        stream = Stream(sha, time.time())
        self.streams.append(stream)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-gzip",
                "Content-Disposition": f"attachment; filename={owner}-{name}-{sha[:7]}.tar.gz",
            }
        )
        response.enable_chunked_encoding()  # as codeload: no Content-Length
        await response.prepare(request)
        body = self.prebuilt[sha]
        if isinstance(body, bytes):
            for start in range(0, len(body), CODELOAD_CHUNK):
                await response.write(body[start : start + CODELOAD_CHUNK])
                stream.size += len(body[start : start + CODELOAD_CHUNK])
        else:
            with body.open("rb") as src:
                while chunk := src.read(CODELOAD_CHUNK):
                    await response.write(chunk)
                    stream.size += len(chunk)
        await response.write_eof()
        stream.ended = time.time()
        return response


class _RandomReader:
    """``size`` pseudo-random (incompressible) bytes, read in pieces, never all in memory."""

    def __init__(self, size: int, seed: int) -> None:
        self._left = size
        self._rng = random.Random(seed)

    def read(self, size: int = -1) -> bytes:
        n = self._left if size < 0 else min(size, self._left)
        self._left -= n
        return self._rng.randbytes(n)


def write_big_tarball(path: Path, top: str, sha: str, total_mb: int) -> dict[str, int]:
    """A git-archive-shaped tar.gz of main.tf plus ``total_mb`` MiB of random data, written
    streaming; returns the files (path -> size) below ``top``."""
    count = max(1, math.ceil(total_mb / BIG_FILE_MB))
    sizes = [total_mb * MiB // count] * count
    sizes[-1] += total_mb * MiB - sum(sizes)
    small = {"main.tf": MAIN_TF % b"big", "README.md": b"# big bench module\n"}
    files: dict[str, int] = {path: len(data) for path, data in small.items()}
    files |= {f"data/blob-{number}.bin": size for number, size in enumerate(sizes)}
    names = sorted([top, f"{top}/data", *(f"{top}/{p}" for p in files)])
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT, pax_headers={"comment": sha}) as tar,
    ):
        tar.copybufsize = MiB
        for name in names:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            rel = name[len(top) + 1 :]
            if rel not in files:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.size, info.mode = files[rel], 0o644
            if rel in small:
                tar.addfile(info, io.BytesIO(small[rel]))
            else:
                tar.addfile(info, _RandomReader(info.size, seed=zlib.crc32(rel.encode())))  # type: ignore[arg-type]
    return files


def small_files(marker: str) -> dict[str, bytes]:
    return {"main.tf": MAIN_TF % marker.encode(), "README.md": f"# bench {marker}\n".encode()}


def megabyte_files(marker: str, rng: random.Random) -> dict[str, bytes]:
    # 1 MiB of random bytes, base64: ~1.33 MiB of text that gzip brings back to ~1 MiB
    return small_files(marker) | {PAYLOAD_PATH: base64.encodebytes(rng.randbytes(MiB))}


# -- the mirror process ------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM, RssAnon...)."""
    values: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            values[key] = int(parts[0])
    return values


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Samples (wall time, VmRSS kB, VmHWM kB, RssAnon kB) of a process from a thread."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + BIG_TIMEOUT + 60  # bounded even if stop() is never called
        while not self._stop.is_set() and time.monotonic() < deadline:
            status = proc_status(self.pid)
            if status:
                self.samples.append(
                    (time.time(), status.get("VmRSS", 0), status.get("VmHWM", 0), status.get("RssAnon", 0))
                )
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def read_log(path: Path | None) -> list[dict[str, Any]]:
    """mirror's JSON log lines, each with ``ts`` (epoch seconds) when it has a timestamp."""
    lines: list[dict[str, Any]] = []
    if path is None or not path.exists():
        return lines
    for raw in path.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict):
            continue
        with contextlib.suppress(KeyError, TypeError, ValueError):
            line["ts"] = datetime.fromisoformat(line["timestamp"]).timestamp()
        lines.append(line)
    return lines


# -- results -----------------------------------------------------------------------------------


@dataclass
class TagSample:
    tag: str
    version: str
    tarball_bytes: int
    webhook_status: int = 0
    webhook_ms: float = math.nan  # POST sent -> answer received (client)
    installable_ms: float = math.nan  # just before the POST -> first 200 of download (client)
    polls: int = 0
    poll_max_ms: float = math.nan  # slowest poll request of this tag
    sent_at: float = math.nan  # wall clock
    acked_at: float = math.nan
    seen_at: float = math.nan
    delivery_job: int | None = None
    # from mirror's log (ms); nan when a line was not found
    delivery_wait_ms: float = math.nan  # 202 received -> delivery job started
    delivery_job_ms: float = math.nan
    ingest_wait_ms: float = math.nan  # delivery job done -> ingest job started
    ingest_job_ms: float = math.nan
    publish_to_seen_ms: float = math.nan  # "version published" logged -> poller's first 200
    archive_ok: bool = False


@dataclass
class LatencyResult:
    tags: int
    cache_seconds: float
    samples: list[TagSample] = field(default_factory=list)
    github_calls_per_tag: dict[str, float] = field(default_factory=dict)  # route -> calls to the fake
    other_cpu: float = math.nan  # cores used by other processes meanwhile
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    max_ms: float = math.nan
    webhook_p50_ms: float = math.nan
    webhook_p95_ms: float = math.nan
    lag_max_ms: float = math.nan
    lag_bound_ms: float = math.nan
    cache_ok: bool = False
    met: bool = False


@dataclass
class MemoryResult:
    big_mb: int
    tarball_bytes: int = 0
    files: str = ""
    baseline_mb: float = math.nan
    hwm_reset: bool = False
    peak_hwm_mb: float = math.nan
    peak_sampled_mb: float = math.nan
    peak_sampled_during_download_mb: float = math.nan
    peak_sampled_after_download_mb: float = math.nan
    peak_rss_anon_mb: float = math.nan
    peak_mb: float = math.nan
    growth_mb: float = math.nan
    samples: int = 0
    seconds: float = math.nan
    mb_per_s: float = math.nan
    webhook_ms: float = math.nan
    before_download_s: float = math.nan  # webhook sent -> codeload started
    download_s: float = math.nan  # codeload streaming
    after_download_s: float = math.nan  # codeload done -> "version published"
    server_cpu_s: float = math.nan
    # the download polls sent meanwhile: how responsive the server stayed during the ingest
    polls: int = 0
    poll_p50_ms: float = math.nan
    poll_max_ms: float = math.nan
    other_cpu: float = math.nan  # cores used by other processes meanwhile
    archive_ok: bool = False
    met: bool = False


# -- the run -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, servers: list[MirrorServer]) -> None:
        self.args = args
        self.work = work
        self.servers = servers
        self.fake = BenchGitHub()
        self.api_url = ""
        self.token = ""
        self.session: aiohttp.ClientSession | None = None
        self.rng = random.Random(20240601)

    # plumbing

    def config(self, port: int, big_bytes: int) -> Path:
        key_file = self.work / "app.pem"
        key_file.write_text(self.fake.private_key_pem)
        sections = {
            "server": {"port": port},
            "metadata": {"path": str(self.work / "data" / "mirror.db"), "cache_seconds": self.args.cache_seconds},
            "blobs": {"path": str(self.work / "data" / "blobs")},
            "downloads": {"mode": "proxy"},
            "limits": {
                "max_archive_bytes": max(100 * MiB, big_bytes + 16 * MiB),
                "max_unpacked_bytes": max(500 * MiB, 2 * big_bytes),
            },
            "github": {
                "app_id": self.fake.app_id,
                "private_key_file": str(key_file),
                "webhook_secret": SECRET,
                "api_url": self.api_url,
                "reconcile_interval": 0,
            },
            "logging": {"level": "info", "format": "json"},
        }
        return write_config(self.work / f"mirror-{port}.toml", sections)

    async def start_server(self, config_file: Path, port: int) -> MirrorServer:
        tmp = self.work / "tmp"
        tmp.mkdir(exist_ok=True)
        server = MirrorServer(config_file, port, self.work, env={"TMPDIR": str(tmp)})
        self.servers.append(server)  # registered before it starts: stopped whatever happens
        await asyncio.to_thread(server.start)
        return server

    async def stop_server(self, server: MirrorServer) -> None:
        await asyncio.to_thread(server.stop)
        if server in self.servers:
            self.servers.remove(server)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def deliver(self, server: MirrorServer, event: str, payload: dict[str, Any]) -> tuple[int, float, dict]:
        """POST a signed delivery; (status, ms, answer)."""
        assert self.session is not None
        headers, body = webhook_delivery(event, payload, SECRET)
        started = time.perf_counter()
        async with self.session.post(f"{server.url}/github/webhook", data=body, headers=headers) as response:
            answer = await response.json() if response.status in (200, 202) else {"text": await response.text()}
            return response.status, (time.perf_counter() - started) * 1000, answer

    async def wait_installable(
        self, server: MirrorServer, module: str, version: str, interval: float, timeout: float
    ) -> tuple[float, int, str, list[float]]:
        """Poll download until 200; (perf_counter when the 200 arrived, polls, location, each
        poll's round trip in ms)."""
        assert self.session is not None
        url = f"{server.url}/v1/modules/{NAMESPACE}/{module}/{PROVIDER}/{version}/download"
        deadline = time.perf_counter() + timeout
        rtts: list[float] = []
        for polls in range(1, int(timeout / interval) + 2):
            began = time.perf_counter()
            async with self.session.get(url, headers=self.auth()) as response:
                await response.read()
                ended = time.perf_counter()
                rtts.append((ended - began) * 1000)
                if response.status == 200:
                    return ended, polls, response.headers.get("X-Terraform-Get", ""), rtts
                if response.status != 404:
                    raise RuntimeError(f"GET {url}: unexpected {response.status}")
            if time.perf_counter() >= deadline or server.process is None or server.process.poll() is not None:
                break
            await asyncio.sleep(max(0.0, began + interval - time.perf_counter()))
        raise RuntimeError(f"{module} {version} was not installable within {timeout:.0f} s (see {server.log_file})")

    async def fetch_archive(self, server: MirrorServer, location: str, into: Path | None = None) -> bytes:
        """The archive behind a download answer's location (bytes, or streamed into a file)."""
        assert self.session is not None
        url = location if location.startswith("http") else server.url + location
        async with self.session.get(url) as response:
            if response.status != 200:
                raise RuntimeError(f"archive {url}: {response.status}")
            if into is None:
                return await response.read()
            with into.open("wb") as out:
                async for chunk in response.content.iter_chunked(MiB):
                    out.write(chunk)
            return b""

    # phases

    async def run(self) -> tuple[LatencyResult, MemoryResult]:
        args = self.args
        big_sha = secrets.token_hex(20)
        big_path = self.work / "github" / "big.tar.gz"
        big_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"[setup] writing the {args.big_mb} MB tag tarball to {big_path} (gzip level 1, streaming)", flush=True)
        began = time.perf_counter()
        big_files = await asyncio.to_thread(
            write_big_tarball, big_path, f"{OWNER}-{BIG_REPO}-{big_sha[:7]}", big_sha, args.big_mb
        )
        big_bytes = big_path.stat().st_size
        print(f"  {big_bytes / MiB:.1f} MB in {time.perf_counter() - began:.1f} s", flush=True)

        runner = web.AppRunner(self.fake.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            self.api_url = f"http://127.0.0.1:{port}"
            print(f"[setup] fake GitHub on {self.api_url}", flush=True)
            timeout = aiohttp.ClientTimeout(total=60, sock_read=30)
            async with aiohttp.ClientSession(timeout=timeout) as self.session:
                latency = await self.latency_phase(big_bytes)
                memory = await self.memory_phase(big_bytes, big_sha, big_path, big_files)
        finally:
            await runner.cleanup()
        return latency, memory

    async def latency_phase(self, big_bytes: int) -> LatencyResult:
        args = self.args
        result = LatencyResult(args.tags, args.cache_seconds)
        port = free_port()
        config_file = self.config(port, big_bytes)
        created = await asyncio.to_thread(
            run_cli, "token", "create", "--namespace", "*", "--scope", "admin", "--description", "bench_github",
            "--config", str(config_file), cwd=self.work,
        )
        if created.returncode != 0:
            raise RuntimeError(f"mirror token create failed:\n{created.stderr}")
        self.token = created.stdout.strip().splitlines()[-1]

        print(f"[latency] mirror serve on 127.0.0.1:{port} (SQLite + local disk, proxy mode, "
              f"cache_seconds = {args.cache_seconds:g})", flush=True)
        server = await self.start_server(config_file, port)
        try:
            repo = self.fake.add_repository(OWNER, BENCH_REPO, installation_id=INSTALLATION_ID, description="bench")
            self.fake.add_tag(OWNER, BENCH_REPO, "v0.0.1", small_files("warm-up"))
            installed = installation_payload(self.fake, "created", INSTALLATION_ID)
            status, _, _ = await self.deliver(server, "installation", installed)
            if status != 202:
                raise RuntimeError(f"installation delivery: {status}")
            await self.wait_installable(server, "bench", "0.0.1", POLL_SECONDS, TAG_TIMEOUT)
            print("  warm-up: installation backfilled, 0.0.1 installable", flush=True)
            calls_before = dict(self.fake.calls)
            assert server.process is not None
            others = OtherLoad(server.process.pid).start()

            for number in range(args.tags):
                tag, version = f"v1.0.{number}", f"1.0.{number}"
                files = megabyte_files(version, self.rng)
                sha = self.fake.add_tag(OWNER, BENCH_REPO, tag, files)
                tarball = self.fake.tarball(OWNER, BENCH_REPO, tag)  # built now: not in the timed window
                self.fake.prebuilt[sha] = tarball
                payload = create_tag_payload(repo, tag)
                sample = TagSample(tag, version, len(tarball))
                await asyncio.sleep(0.05)  # let the previous job's bookkeeping finish
                headers, body = webhook_delivery("create", payload, SECRET)
                assert self.session is not None
                sample.sent_at, started = time.time(), time.perf_counter()
                async with self.session.post(f"{server.url}/github/webhook", data=body, headers=headers) as response:
                    answer = await response.json() if response.status == 202 else {}
                    sample.webhook_status = response.status
                sample.webhook_ms = (time.perf_counter() - started) * 1000
                sample.acked_at = time.time()
                if sample.webhook_status != 202:
                    raise RuntimeError(f"create delivery of {tag}: {sample.webhook_status}")
                sample.delivery_job = answer.get("job")
                seen, sample.polls, location, rtts = await self.wait_installable(
                    server, "bench", version, POLL_SECONDS, TAG_TIMEOUT
                )
                sample.poll_max_ms = max(rtts)
                sample.installable_ms = (seen - started) * 1000
                sample.seen_at = sample.sent_at + (seen - started)
                # not timed: the archive Terraform would fetch holds the tag's files
                data = await self.fetch_archive(server, location)
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                    member = tar.extractfile(PAYLOAD_PATH)
                    sample.archive_ok = member is not None and member.read() == files[PAYLOAD_PATH]
                    sample.archive_ok &= "main.tf" in tar.getnames()
                result.samples.append(sample)
                print(f"  {tag}: {sample.installable_ms:7.1f} ms  (webhook {sample.webhook_ms:5.1f} ms, "
                      f"{sample.polls} polls{'' if sample.archive_ok else ', ARCHIVE MISMATCH'})", flush=True)
                del self.fake.prebuilt[sha]
            result.other_cpu = others.stop()
            result.github_calls_per_tag = {
                route: (count - calls_before.get(route, 0)) / max(1, len(result.samples))
                for route, count in sorted(self.fake.calls.items())
                if count > calls_before.get(route, 0)
            }
        finally:
            await self.stop_server(server)
        self.add_log_breakdown(result, read_log(server.log_file))

        totals = [s.installable_ms for s in result.samples]
        result.p50_ms, result.p95_ms, result.max_ms = percentile(totals, 50), percentile(totals, 95), max(totals)
        hooks = [s.webhook_ms for s in result.samples]
        result.webhook_p50_ms, result.webhook_p95_ms = percentile(hooks, 50), percentile(hooks, 95)
        lags = [s.publish_to_seen_ms for s in result.samples]
        result.lag_max_ms = max((lag for lag in lags if not math.isnan(lag)), default=math.nan)
        # without caching effects, the first 200 comes at most one poll interval plus two polls'
        # round trips (the one in flight at the publish, and the next) after the publish; +10 ms slack
        slowest_poll = max((s.poll_max_ms for s in result.samples), default=math.nan)
        result.lag_bound_ms = max(POLL_SECONDS * 1000, slowest_poll) + slowest_poll + 10
        result.cache_ok = not math.isnan(result.lag_max_ms) and all(
            -5 <= lag <= result.lag_bound_ms for lag in lags if not math.isnan(lag)
        )
        result.met = result.p95_ms <= LATENCY_TARGET_MS and all(s.archive_ok for s in result.samples)
        return result

    @staticmethod
    def add_log_breakdown(result: LatencyResult, log: list[dict[str, Any]]) -> None:
        """Fill the server-side breakdown of each tag from mirror's log lines."""
        done = {(line.get("job_id"), line.get("kind")): line for line in log if line.get("event") == "job done"}
        ingested = {
            line.get("version"): line
            for line in log
            if line.get("event") == "tag ingested" and line.get("module") == f"{NAMESPACE}/bench/{PROVIDER}"
        }
        published = {
            line.get("version"): line
            for line in log
            if line.get("event") == "version published" and line.get("module") == f"{NAMESPACE}/bench/{PROVIDER}"
        }
        for s in result.samples:
            delivery = done.get((s.delivery_job, "github.delivery"))
            if delivery and "ts" in delivery:
                s.delivery_job_ms = float(delivery.get("ms", math.nan))
                s.delivery_wait_ms = (delivery["ts"] - s.delivery_job_ms / 1000 - s.acked_at) * 1000
            line = ingested.get(s.version)
            ingest = done.get((line.get("job_id"), "github.ingest_tag")) if line else None
            if ingest and "ts" in ingest and delivery and "ts" in delivery:
                s.ingest_job_ms = float(ingest.get("ms", math.nan))
                s.ingest_wait_ms = (ingest["ts"] - s.ingest_job_ms / 1000 - delivery["ts"]) * 1000
            pub = published.get(s.version)
            if pub and "ts" in pub:
                s.publish_to_seen_ms = (s.seen_at - pub["ts"]) * 1000

    async def memory_phase(
        self, big_bytes: int, big_sha: str, big_path: Path, big_files: dict[str, int]
    ) -> MemoryResult:
        args = self.args
        blobs = [size for path, size in big_files.items() if path.startswith("data/")]
        result = MemoryResult(
            args.big_mb, tarball_bytes=big_bytes,
            files=f"main.tf, README.md and {len(blobs)} x {blobs[0] / MiB:.0f} MB of random bytes",
        )
        port = free_port()
        config_file = self.config(port, big_bytes)
        print(f"[memory] fresh mirror serve on 127.0.0.1:{port} (same data; limits raised for the big tarball)",
              flush=True)
        server = await self.start_server(config_file, port)
        try:
            assert server.process is not None
            pid = server.process.pid
            repo = self.fake.add_repository(OWNER, BIG_REPO, installation_id=INSTALLATION_ID)
            self.fake.add_tag(OWNER, BIG_REPO, "v0.0.1", small_files("big-warm-up"))
            status, _, _ = await self.deliver(server, "create", create_tag_payload(repo, "v0.0.1"))
            if status != 202:
                raise RuntimeError(f"warm-up delivery: {status}")
            await self.wait_installable(server, "bigmodule", "0.0.1", POLL_SECONDS, TAG_TIMEOUT)
            print("  warm-up: a small tag of the big repository ingested", flush=True)
            await asyncio.sleep(1.0)  # let the warm-up's bookkeeping and log flushes settle

            self.fake.add_tag(OWNER, BIG_REPO, "v1.0.0", {"main.tf": MAIN_TF % b"big"}, commit_sha=big_sha)
            self.fake.prebuilt[big_sha] = big_path
            headers, body = webhook_delivery("create", create_tag_payload(repo, "v1.0.0"), SECRET)

            baseline = []
            for _ in range(5):
                baseline.append(proc_status(pid).get("VmRSS", 0))
                await asyncio.sleep(RSS_SAMPLE_SECONDS)
            result.baseline_mb = statistics.median(baseline) / 1024
            hwm_before = proc_status(pid).get("VmHWM", 0)
            result.hwm_reset = reset_peak_rss(pid)
            print(f"  baseline VmRSS {result.baseline_mb:.1f} MB (VmHWM so far {hwm_before / 1024:.1f} MB; "
                  f"peak counter {'reset' if result.hwm_reset else 'NOT reset: using the largest sample'})",
                  flush=True)

            sampler = RssSampler(pid, RSS_SAMPLE_SECONDS).start()
            others = OtherLoad(pid).start()
            cpu_before = process_cpu_seconds(pid)
            try:
                assert self.session is not None
                sent_at, started = time.time(), time.perf_counter()
                async with self.session.post(f"{server.url}/github/webhook", data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"create delivery of the big tag: {response.status}")
                result.webhook_ms = (time.perf_counter() - started) * 1000
                seen, _, location, rtts = await self.wait_installable(
                    server, "bigmodule", "1.0.0", BIG_POLL_SECONDS, BIG_TIMEOUT
                )
                result.polls = len(rtts)
                result.poll_p50_ms, result.poll_max_ms = percentile(rtts, 50), max(rtts)
            finally:
                sampler.stop()
                result.other_cpu = others.stop()
            end_status = proc_status(pid)
            result.server_cpu_s = process_cpu_seconds(pid) - cpu_before
            result.seconds = seen - started
            result.mb_per_s = big_bytes / MiB / result.seconds

            samples = sampler.samples
            result.samples = len(samples)
            result.peak_sampled_mb = max((s[1] for s in samples), default=0) / 1024
            result.peak_rss_anon_mb = max((s[3] for s in samples), default=0) / 1024
            hwm = max([end_status.get("VmHWM", 0), *(s[2] for s in samples)])
            result.peak_hwm_mb = hwm / 1024 if result.hwm_reset else math.nan
            result.peak_mb = max(result.peak_sampled_mb, result.peak_hwm_mb if result.hwm_reset else 0.0)
            result.growth_mb = result.peak_mb - result.baseline_mb

            stream = next((s for s in self.fake.streams if s.sha == big_sha), None)
            if stream is not None:
                result.before_download_s = stream.started - sent_at
                result.download_s = stream.ended - stream.started
                during = [s[1] for s in samples if stream.started <= s[0] <= stream.ended]
                after = [s[1] for s in samples if s[0] > stream.ended]
                result.peak_sampled_during_download_mb = max(during, default=0) / 1024
                result.peak_sampled_after_download_mb = max(after, default=0) / 1024
            del self.fake.prebuilt[big_sha]
            print(f"  installable after {result.seconds:.2f} s; peak {result.peak_mb:.1f} MB, "
                  f"growth {result.growth_mb:.1f} MB", flush=True)

            # not measured: the stored archive is the whole module, re-rooted
            check = self.work / "github" / "check.tar.gz"
            await self.fetch_archive(server, location, into=check)
            members = await asyncio.to_thread(_list_tar, check)
            check.unlink()
            result.archive_ok = all(members.get(path) == size for path, size in big_files.items())
            if not result.archive_ok:
                print(f"  ARCHIVE MISMATCH: expected {big_files}, found {members}", flush=True)
        finally:
            await self.stop_server(server)
        published = next(
            (line for line in read_log(server.log_file)
             if line.get("event") == "version published" and line.get("version") == "1.0.0"
             and line.get("module") == f"{NAMESPACE}/bigmodule/{PROVIDER}" and "ts" in line),
            None,
        )
        stream = next((s for s in self.fake.streams if s.sha == big_sha), None)
        if published and stream is not None:
            result.after_download_s = published["ts"] - stream.ended
        result.met = result.growth_mb <= MEMORY_TARGET_MB and result.archive_ok
        return result


def _list_tar(path: Path) -> dict[str, int]:
    with tarfile.open(path, mode="r|gz") as tar:
        return {member.name: member.size for member in tar if member.isreg()}


# -- report ------------------------------------------------------------------------------------


def report(latency: LatencyResult, memory: MemoryResult) -> list[dict[str, Any]]:
    def ms(value: float) -> str:
        return f"{value:8.1f}" if not math.isnan(value) else "       -"

    def row(label: str, values: list[float]) -> None:
        values = [v for v in values if not math.isnan(v)]
        print(f"  {label:<42} {len(values):>3} {ms(percentile(values, 50))} {ms(percentile(values, 95))} "
              f"{ms(max(values, default=math.nan))}")

    s = latency.samples
    size = statistics.mean(x.tarball_bytes for x in s) / MiB if s else math.nan
    print()
    print(f"machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    print()
    print(f"1. webhook -> installable, {len(s)} tags of a 1 MB module (tarball {size:.2f} MB), "
          f"polled every {POLL_SECONDS * 1000:.0f} ms, cache_seconds = {latency.cache_seconds:g}")
    print(f"  {'':<42} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    row("webhook sent -> download answers 200", [x.installable_ms for x in s])
    row("webhook response time (202)", [x.webhook_ms for x in s])
    print("  breakdown, from mirror's log:")
    row("  202 -> delivery job starts", [x.delivery_wait_ms for x in s])
    row("  delivery job", [x.delivery_job_ms for x in s])
    row("  delivery job done -> ingest job starts", [x.ingest_wait_ms for x in s])
    row("  ingest job (GitHub API, fetch, store)", [x.ingest_job_ms for x in s])
    row("  version published -> poller sees 200", [x.publish_to_seen_ms for x in s])
    print(f"  polls per tag: median {statistics.median(x.polls for x in s) if s else math.nan:g}; "
          f"archives verified: {sum(x.archive_ok for x in s)}/{len(s)}")
    calls = ", ".join(f"{route} {count:g}" for route, count in latency.github_calls_per_tag.items())
    print(f"  requests to GitHub per tag: {calls or '-'}; other processes' CPU meanwhile: {latency.other_cpu:.0%}")
    print()
    m = memory
    print(f"2. ingest of a {m.big_mb} MB tarball ({m.tarball_bytes / MiB:.1f} MB compressed: {m.files}); "
          f"mirror serve RSS sampled every {RSS_SAMPLE_SECONDS * 1000:.0f} ms ({m.samples} samples)")
    lines = [
        ("baseline VmRSS (after a warm-up ingest)", f"{m.baseline_mb:8.1f} MB"),
        ("peak VmHWM since reset" if m.hwm_reset else "peak VmHWM (not reset: not used)",
         f"{m.peak_hwm_mb:8.1f} MB" if m.hwm_reset else "       -"),
        ("largest sampled VmRSS", f"{m.peak_sampled_mb:8.1f} MB"),
        ("  while GitHub's tarball was downloading", f"{m.peak_sampled_during_download_mb:8.1f} MB"),
        ("  after (re-root, check, store, record)", f"{m.peak_sampled_after_download_mb:8.1f} MB"),
        ("largest sampled RssAnon", f"{m.peak_rss_anon_mb:8.1f} MB"),
        ("RSS growth (peak - baseline)", f"{m.growth_mb:8.1f} MB"),
        ("webhook sent -> download answers 200", f"{m.seconds:8.2f} s  ({m.mb_per_s:.1f} MB/s)"),
        ("  webhook response time", f"{m.webhook_ms:8.1f} ms"),
        ("  webhook sent -> codeload request", f"{m.before_download_s:8.2f} s"),
        ("  codeload download (streamed by the fake)", f"{m.download_s:8.2f} s"),
        ("  download done -> version published", f"{m.after_download_s:8.2f} s"),
        ("mirror CPU time during the ingest", f"{m.server_cpu_s:8.2f} s"),
        (f"download polls meanwhile (every {BIG_POLL_SECONDS * 1000:.0f} ms)",
         f"{m.poll_p50_ms:8.1f} ms p50, {m.poll_max_ms:.1f} ms max ({m.polls} polls)"),
        ("other processes' CPU meanwhile (of one CPU)", f"{m.other_cpu:8.0%}"),
        ("archive verified (all files, sizes)", f"{'yes' if m.archive_ok else 'NO':>8}"),
    ]
    for label, value in lines:
        print(f"  {label:<44} {value}")
    print()
    print(f"cache check: version published -> first 200 at most {latency.lag_max_ms:.1f} ms "
          f"(bound without caching effects: a poll interval + two polls = {latency.lag_bound_ms:.0f} ms): "
          + ("caching did not delay visibility" if latency.cache_ok else "DISTORTED (or log lines missing)"))
    for label, load in (("the latency phase", latency.other_cpu), ("the big ingest", m.other_cpu)):
        if load >= OTHER_LOAD:
            print(f"warning: other processes used {load:.0%} of a CPU during {label}: the machine was not quiet, "
                  "so its figures are disturbed; run again when nothing else is running")
    verdicts = []
    suffix = "" if all(x.archive_ok for x in s) else " (an archive did not match: not valid)"
    if not suffix and latency.other_cpu >= OTHER_LOAD:
        suffix = " (not conclusive: other processes used the CPU)"
    print(f"webhook-to-installable p95: {latency.p95_ms:.0f} ms (target <= {LATENCY_TARGET_MS:.0f} ms) "
          f"{'MET' if latency.met else 'MISSED'}{suffix}")
    verdicts.append({"target": "webhook-to-installable p95", "value_ms": latency.p95_ms,
                     "maximum_ms": LATENCY_TARGET_MS, "met": latency.met})
    suffix = "" if m.archive_ok else " (the archive did not match: not valid)"
    if not suffix and m.other_cpu >= OTHER_LOAD:
        suffix = " (other processes used the CPU: its time figures are disturbed)"
    print(f"ingest of a {m.big_mb} MB tarball: RSS growth {m.growth_mb:.1f} MB (target <= {MEMORY_TARGET_MB:.0f} MB) "
          f"{'MET' if m.met else 'MISSED'}{suffix}")
    verdicts.append({"target": f"ingest of a {m.big_mb} MB tarball: RSS growth", "value_mb": m.growth_mb,
                     "maximum_mb": MEMORY_TARGET_MB, "met": m.met})
    return verdicts


def write_json(path: Path, latency: LatencyResult, memory: MemoryResult, verdicts: list[dict[str, Any]],
               args: argparse.Namespace) -> None:
    document = {
        "settings": {"tags": args.tags, "big_mb": args.big_mb, "cache_seconds": args.cache_seconds,
                     "poll_ms": POLL_SECONDS * 1000, "rss_sample_ms": RSS_SAMPLE_SECONDS * 1000},
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "latency": asdict(latency),
        "memory": asdict(memory),
        "targets": verdicts,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(json_safe(document), indent=2) + "\n")
    print(f"results written to {path}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="GitHub integration: webhook-to-installable latency and ingest memory (see the module docstring)."
    )
    parser.add_argument("--tags", type=int, default=20, help="tags measured for latency (default 20)")
    parser.add_argument("--big-mb", type=int, default=200, help="size of the big tarball in MB (default 200)")
    parser.add_argument("--cache-seconds", type=float, default=2.0,
                        help="[metadata] cache_seconds of the server (default 2, mirror's default)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data, tarball)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.tags <= 500:
        parser.error("--tags must be 1..500")
    if not 1 <= args.big_mb <= 2048:
        parser.error("--big-mb must be 1..2048")
    if not 0 <= args.cache_seconds <= 300:
        parser.error("--cache-seconds must be 0..300")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    servers: list[MirrorServer] = []
    work = Path(tempfile.mkdtemp(prefix="bench-github-"))
    need = 4 * args.big_mb * MiB + 256 * MiB  # tarball, mirror's spool + re-rooted copy, blob, check copy
    free = shutil.disk_usage(work).free
    try:
        if free < need:
            print(f"not enough disk in {work}: {free / MiB:.0f} MB free, ~{need / MiB:.0f} MB needed", file=sys.stderr)
            return 1
        print(f"work directory: {work}", flush=True)
        started = time.perf_counter()
        try:
            latency, memory = asyncio.run(Bench(args, work, servers).run())
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the server", file=sys.stderr)
            return 130
        except (RuntimeError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            print(f"\nbenchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            for server in servers:
                print(f"--- last lines of {server.log_file} ---\n{''.join(server.logs().splitlines(True)[-15:])}",
                      file=sys.stderr)
            if not args.keep:
                print("(run again with --keep to keep the server's logs)", file=sys.stderr)
            return 1
        finally:
            for server in list(servers):
                server.stop()
        verdicts = report(latency, memory)
        print(f"run took {time.perf_counter() - started:.0f} s")
        if args.json:
            write_json(args.json, latency, memory, verdicts, args)
    finally:
        for server in list(servers):  # again: an interrupt may have landed in the loop above
            with contextlib.suppress(Exception):
                server.stop()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not (latency.samples and all(x.archive_ok for x in latency.samples) and memory.archive_ok):
        return 1
    if args.check and not all(v["met"] for v in verdicts):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
