#!/usr/bin/env python3
"""Benchmark of the registry protocol against a bare aiohttp JSON handler, in one run.

What it measures
----------------
Requests per second and p50/p99 latency at 64 concurrent keep-alive connections (``-c``) of
the two calls ``terraform init`` makes per module, each against a real ``mirror serve``
process started by this script, and of a bare aiohttp handler in the same run:

  bare                a minimal aiohttp app in its own process: one GET route returning
                      ``web.json_response({"modules": [{"versions": [{"version": "1.0.0"}]}]})``,
                      access_log=None. Measured first and again last; the mean is the reference
                      (only the undisturbed one if the other was disturbed, see "other"), and the
                      two rows show how much the machine drifted during the run.
  versions            GET /v1/modules/acme/network/aws/versions          (10 versions published)
  download proxy      GET /v1/modules/acme/network/aws/1.5.0/download    SQLite + local disk
  download presigned  the same, blobs in S3 (moto, in this process), downloads.mode = presigned
  download s3         the same, downloads.mode = s3

Every request carries ``Authorization: Bearer <read token>``, as Terraform sends one. Mirror
keeps its default ``info`` log level (one JSON line per request is part of the real cost); its
stderr goes to a file in the work directory, not the terminal. Only one server runs at a time,
and everything listens on 127.0.0.1.

Targets (from the issue): versions >= 60% of the bare handler's requests per second,
download (presigned) >= 40%.

How to run (from the repository root, ~1 minute at the defaults)
-----------------------------------------------------------------
    .venv/bin/python scripts/bench_protocol.py                 # wrk if on PATH, else Python
    .venv/bin/python scripts/bench_protocol.py --loadgen python --duration 10 --json out.json
    .venv/bin/python scripts/bench_protocol.py --check         # exit 1 if a target is missed

Load generator: ``wrk`` (much cheaper per request than any Python client, so the figures are
the server's) when it is on PATH; install it with ``apt-get install wrk`` (Debian/Ubuntu) or
``brew install wrk``. Otherwise a Python client: aiohttp with 64 worker coroutines on a
64-connection TCPConnector, in a separate process (uvloop only if already installed). A Python
client costs about as much CPU per request as the bare server, so with it the bare handler's
figures are bounded by the client and the ratios come out flattered; the table flags a
saturated load generator. The load generator never runs in a server's process. Each
measurement is a warm-up (``--warmup`` s, discarded except for its errors) and then
``--duration`` s that are recorded.

With two or more CPUs the server is pinned to one CPU and the load generator to the others
(``--no-pin`` to leave placement to the kernel), so "requests per second" means "per server
core", which is how a single-process aiohttp server scales anyway.

What the numbers mean
---------------------
  rps          responses completed per second in the measured window (all statuses)
  p50/p99 ms   response time percentiles at 64 connections; with a saturated server these
               are mostly queueing (Little's law: ~64 / rps), so p99 shows the tail on top
  errors       non-200 responses, timeouts and socket errors (warm-up included); a row with
               errors is flagged and its figures are not valid
  srv cpu      server process CPU (all threads) over the window, as a share of one core;
               ~100% means the server was the bottleneck, as it should be
  us/req       server CPU microseconds per request: the cost ratio that holds whatever the
               load generator, since rps ~ 1e6 / us/req when the server is saturated
  lg cpu       load generator CPU as a share of the CPUs it was given; >= 90% means the
               client, not the server, set the pace (flagged under the table)
  other        CPU used by every other process on the machine during the window, in % of one
               CPU (hypervisor steal included); >= 15% is flagged: the machine was not quiet
               (another test run, a build...), so the figures are disturbed
  rps % bare   rps relative to the bare handler (the targets are stated in this)
  p99 x bare   p99 relative to the bare handler's p99 (lower is better, 1.0 = as fast)

``--json FILE`` writes everything in the table, plus the settings, for comparison across runs.
All servers are stopped with SIGTERM at the end, on Ctrl-C, and on SIGTERM. Exit status: 0, or
1 when a row had errors, a server failed, or (with ``--check``) a target was missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen
from benchlib import OtherLoad, interrupt_on_sigterm, json_safe, percentile, work_directory

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NAMESPACE, NAME, PROVIDER = "acme", "network", "aws"
VERSIONS = [f"1.{minor}.0" for minor in range(10)]
DOWNLOAD_VERSION = "1.5.0"
VERSIONS_PATH = f"/v1/modules/{NAMESPACE}/{NAME}/{PROVIDER}/versions"
DOWNLOAD_PATH = f"/v1/modules/{NAMESPACE}/{NAME}/{PROVIDER}/{DOWNLOAD_VERSION}/download"
BARE_PATH = "/v1/bare"
BARE_BODY = {"modules": [{"versions": [{"version": "1.0.0"}]}]}

#: (label, row key, minimum share of the bare handler's rps)
TARGETS = [("versions", "versions", 0.60), ("download presigned", "download presigned", 0.40)]
#: a load generator above this share of its CPUs was probably the bottleneck
SATURATED = 0.90
#: CPU (in cores) used by other processes during a measurement above which it is called disturbed
OTHER_LOAD = 0.15


# -- the bare server and the Python load generator (each run as a subprocess of this script) ---


def bare_server_main(port: int) -> None:
    """The reference: as little as aiohttp can do to answer a JSON GET."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(BARE_BODY)

    app = web.Application()
    app.router.add_get(BARE_PATH, handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)  # SIGTERM stops it


def client_main(spec: dict[str, Any]) -> None:
    """64 coroutines in a loop of GETs; prints ``phase`` lines, then one ``result`` JSON line."""
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    result = asyncio.run(_client(spec))
    result["loop"] = loop_name
    print("result " + json.dumps(result), flush=True)


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    url, headers = spec["url"], spec["headers"]
    connections, warmup, duration = spec["connections"], spec["warmup"], spec["duration"]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    window = {"cpu_start": 0.0, "cpu_end": 0.0}
    start = time.perf_counter()
    measure_start, measure_end = start + warmup, start + warmup + duration

    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=spec["timeout"])
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while (began := time.perf_counter()) < measure_end:
                problem = None
                try:
                    async with session.get(url, headers=headers, allow_redirects=False) as response:
                        await response.read()
                        if response.status != 200:
                            problem = f"status {response.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    problem = type(exc).__name__
                ended = time.perf_counter()
                if problem is not None:
                    errors[problem] = errors.get(problem, 0) + 1
                    await asyncio.sleep(0.01)  # no hot loop against a server that is down
                if measure_start <= ended < measure_end:
                    latencies.append(ended - began)

        async def phases() -> None:
            await asyncio.sleep(max(0.0, measure_start - time.perf_counter()))
            window["cpu_start"] = time.process_time()
            print("phase measure", flush=True)
            await asyncio.sleep(max(0.0, measure_end - time.perf_counter()))
            window["cpu_end"] = time.process_time()
            print("phase done", flush=True)

        await asyncio.gather(phases(), *(worker() for _ in range(connections)))

    latencies.sort()
    return {
        "requests": len(latencies),
        "duration_s": duration,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
        "loadgen_cpu": (window["cpu_end"] - window["cpu_start"]) / duration,
    }


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Measurement:
    scenario: str
    endpoint: str
    path: str
    requests: int = 0
    duration_s: float = 0.0
    rps: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    errors: int = 0
    error_detail: dict[str, int] = field(default_factory=dict)
    server_cpu: float = math.nan  # share of one core
    server_us_per_request: float = math.nan
    loadgen_cpu: float = math.nan  # share of the CPUs it was given
    other_cpu: float = math.nan  # CPU used by anything else on the machine, in cores
    rps_vs_bare: float = math.nan
    p99_vs_bare: float = math.nan


@dataclass
class Settings:
    connections: int
    duration: int
    warmup: int
    timeout: float
    server_cpus: set[int] | None
    loadgen_cpus: set[int] | None
    workdir: Path


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU of a process (all its threads) so far."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pin_process(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid``; threads it starts later inherit the mask."""
    if not cpus:
        return
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)


def _preexec(cpus: set[int] | None) -> Callable[[], None] | None:
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


class LoadGenerator:
    name = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current: subprocess.Popen | None = None

    def measure(self, m: Measurement, url: str, headers: dict[str, str], server_pid: int) -> Measurement:
        raise NotImplementedError

    def kill(self) -> None:
        proc = self.current
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


class WrkLoadGenerator(LoadGenerator):
    LUA = r"""
-- bench_protocol.py: count non-200 responses per thread, print a summary in done().
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non200 = 0 end
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + (thread:get("non200") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non200": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""

    def __init__(self, settings: Settings, wrk: str) -> None:
        super().__init__(settings)
        self.wrk = wrk
        self.script = settings.workdir / "bench.lua"
        self.script.write_text(self.LUA)
        # one thread per CPU it was given (wrk is cheap: 1 keeps up with any Python server)
        self.threads = max(1, min(len(settings.loadgen_cpus or ()), 4, settings.connections))
        version = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
        first = (version.stdout + version.stderr).strip().splitlines()
        release = first[0].split("[")[0].strip() if first else "unknown version"
        self.name = f"wrk ({release}, {self.threads} thread{'s' if self.threads > 1 else ''})"

    def _run(self, url: str, headers: dict[str, str], seconds: int) -> dict[str, Any]:
        command = [
            self.wrk, f"-t{self.threads}", f"-c{self.settings.connections}", f"-d{seconds}s",
            f"--timeout={max(1, math.ceil(self.settings.timeout))}s", "-s", str(self.script),
        ]
        for key, value in headers.items():
            command += ["-H", f"{key}: {value}"]
        command.append(url)
        self.current = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_preexec(self.settings.loadgen_cpus),
        )
        try:
            out, err = self.current.communicate(timeout=seconds + self.settings.timeout + 30)
        finally:
            self.kill()
        for line in out.splitlines():
            if line.startswith("BENCH "):
                return json.loads(line[len("BENCH "):])
        raise RuntimeError(f"wrk printed no summary (exit {self.current.returncode}):\n{out}\n{err}")

    def measure(self, m: Measurement, url: str, headers: dict[str, str], server_pid: int) -> Measurement:
        errors: dict[str, int] = {}

        def add_errors(summary: dict[str, Any]) -> None:
            # wrk's "status" error counts >= 400 responses, which non200 counts too
            for key in ("non200", "connect", "read", "write", "timeout"):
                if summary[key]:
                    errors[key] = errors.get(key, 0) + summary[key]

        if self.settings.warmup > 0:
            add_errors(self._run(url, headers, self.settings.warmup))
        others = OtherLoad(server_pid)
        others.start()
        server_before, children_before = process_cpu_seconds(server_pid), children_cpu_seconds()
        wall_before = time.perf_counter()
        summary = self._run(url, headers, self.settings.duration)
        wall = time.perf_counter() - wall_before
        server_after, children_after = process_cpu_seconds(server_pid), children_cpu_seconds()
        m.other_cpu = others.stop()
        add_errors(summary)
        m.requests = summary["requests"]
        m.duration_s = summary["duration_us"] / 1e6
        m.rps = m.requests / m.duration_s if m.duration_s else 0.0
        m.p50_ms, m.p99_ms = summary["p50_us"] / 1000, summary["p99_us"] / 1000
        m.error_detail, m.errors = errors, sum(errors.values())
        m.server_cpu = (server_after - server_before) / wall
        m.loadgen_cpu = (children_after - children_before) / wall / self.threads
        return m


class PythonLoadGenerator(LoadGenerator):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        try:
            import uvloop  # type: ignore[import-not-found]  # noqa: F401

            loop = "uvloop"
        except ImportError:
            loop = "asyncio"
        self.name = f"python (aiohttp client, {loop}, 1 process, {settings.connections} coroutines)"

    def measure(self, m: Measurement, url: str, headers: dict[str, str], server_pid: int) -> Measurement:
        s = self.settings
        spec = {"url": url, "headers": headers, "connections": s.connections, "warmup": s.warmup,
                "duration": s.duration, "timeout": s.timeout}
        self.current = proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "_client", json.dumps(spec)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_preexec(s.loadgen_cpus),
        )
        watchdog = threading.Timer(s.warmup + s.duration + s.timeout + 30, proc.kill)
        watchdog.start()
        result: dict[str, Any] | None = None
        server_before = server_after = wall_before = wall = math.nan
        others = OtherLoad(server_pid, proc.pid)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("phase measure"):
                    others.start()
                    server_before = process_cpu_seconds(server_pid)
                    wall_before = time.perf_counter()
                elif line.startswith("phase done"):
                    wall = time.perf_counter() - wall_before
                    server_after = process_cpu_seconds(server_pid)
                    m.other_cpu = others.stop()
                elif line.startswith("result "):
                    result = json.loads(line[len("result "):])
            stderr = proc.stderr.read() if proc.stderr else ""
            proc.wait()
        finally:
            watchdog.cancel()
            self.kill()
        if result is None:
            raise RuntimeError(f"the Python load generator failed (exit {proc.returncode}):\n{stderr}")
        m.requests, m.duration_s = result["requests"], result["duration_s"]
        m.rps = m.requests / m.duration_s if m.duration_s else 0.0
        m.p50_ms, m.p99_ms = result["p50_ms"], result["p99_ms"]
        m.error_detail = result["errors"]
        m.errors = sum(m.error_detail.values())
        m.server_cpu = (server_after - server_before) / wall if wall else math.nan
        m.loadgen_cpu = result["loadgen_cpu"]
        return m


# -- servers -----------------------------------------------------------------------------------


class BareServer:
    def __init__(self, workdir: Path, cpus: set[int] | None) -> None:
        from tests.live import free_port

        self.port = free_port()
        self.log_file = workdir / f"bare-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.cpus = cpus

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> BareServer:
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "_bare-server", str(self.port)],
                stdout=subprocess.DEVNULL, stderr=log, preexec_fn=_preexec(self.cpus),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_file.read_text(errors="replace")
                raise RuntimeError(f"the bare server exited with {self.process.returncode}:\n{log}")
            with contextlib.suppress(OSError), urlopen(self.url + BARE_PATH, timeout=1) as response:
                if response.status == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("the bare server did not start")

    def stop(self) -> int | None:
        from tests.live import stop_process

        return stop_process(self.process)


class Servers:
    """Every server started, so that all of them are stopped whatever happens."""

    def __init__(self) -> None:
        self.running: list[Any] = []

    @contextlib.contextmanager
    def run(self, server: Any) -> Iterator[Any]:
        self.running.append(server)
        try:
            yield server.start()
        finally:
            self.stop(server)

    def stop(self, server: Any) -> None:
        if server in self.running:
            self.running.remove(server)
            server.stop()

    def stop_all(self) -> None:
        for server in list(self.running):
            self.stop(server)


def mint_token(config_file: Path, workdir: Path, namespace: str, scope: str) -> str:
    from tests.live import run_cli

    created = run_cli("token", "create", "--namespace", namespace, "--scope", scope,
                      "--description", "bench_protocol", "--config", str(config_file), cwd=workdir)
    if created.returncode != 0:
        raise RuntimeError(f"mirror token create failed:\n{created.stderr}")
    return created.stdout.strip().splitlines()[-1]


def publish_versions(url: str, token: str, workdir: Path) -> None:
    """PUT each version's archive, as ``mirror publish`` does (without a process per version)."""
    from mirror.formats.archive import pack_directory
    from tests.modules import write_module

    for version in VERSIONS:
        source = write_module(workdir / "modules" / version, marker=version)
        archive = io.BytesIO()
        pack_directory(source, archive)
        request = Request(
            f"{url}/api/v1/modules/{NAMESPACE}/{NAME}/{PROVIDER}/{version}", data=archive.getvalue(), method="PUT",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/gzip"},
        )
        with urlopen(request, timeout=30) as response:
            if response.status not in (200, 201):
                raise RuntimeError(f"publishing {version} answered {response.status}")


def check_endpoint(url: str, headers: dict[str, str], expect: Callable[[Any], bool]) -> Any:
    """One request before the load: a wrong answer would make the figures meaningless."""
    with urlopen(Request(url, headers=headers), timeout=10) as response:
        body = json.loads(response.read())
        if response.status != 200 or not expect(body):
            raise RuntimeError(f"unexpected answer from {url}: {response.status} {body}")
    return body


def versions_ok(body: Any) -> bool:
    return sorted(v["version"] for v in body["modules"][0]["versions"]) == sorted(VERSIONS)


def download_ok(body: Any) -> bool:
    return bool(body.get("location"))


# -- the run -----------------------------------------------------------------------------------


def run(settings: Settings, loadgen: LoadGenerator, servers: Servers) -> list[Measurement]:
    from tests.live import MirrorServer, free_port, write_config
    from tests.moto_server import TEST_ENVIRONMENT, run_moto_server

    work = settings.workdir
    results: list[Measurement] = []

    def measure(scenario: str, endpoint: str, base_url: str, path: str, headers: dict[str, str], pid: int) -> None:
        pin_process(pid, settings.server_cpus)  # again, for threads started since
        print(f"  measuring {endpoint:<19} {path}", flush=True)
        m = loadgen.measure(Measurement(scenario, endpoint, path), base_url + path, headers, pid)
        results.append(m)
        flag = f"  ERRORS {m.errors}: {m.error_detail}" if m.errors else ""
        print(f"    {m.rps:9.0f} rps  p50 {m.p50_ms:6.2f} ms  p99 {m.p99_ms:6.2f} ms{flag}", flush=True)

    def mirror_server(name: str, sections: dict[str, dict[str, Any]], env: dict[str, str]) -> MirrorServer:
        port = free_port()
        config = {
            "server": {"port": port},
            "metadata": {"path": str(work / name / "mirror.db")},
            "blobs": {"path": str(work / name / "blobs")},
        }
        for section, values in sections.items():
            config.setdefault(section, {}).update(values)
        config_file = write_config(work / f"{name}-{sections.get('downloads', {}).get('mode', 'proxy')}.toml", config)
        return MirrorServer(config_file, port, work, env=env)

    def prepare(server: MirrorServer, data: str, publish: bool) -> dict[str, str]:
        pin_process(server.process.pid, settings.server_cpus)
        if publish:
            admin = mint_token(server.config_file, work, "*", "admin")
            publish_versions(server.url, admin, work / data)
        read = mint_token(server.config_file, work, NAMESPACE, "read")  # what Terraform would hold
        return {"Authorization": f"Bearer {read}"}

    def bare(label: str) -> None:
        print(f"[{label}] bare aiohttp handler", flush=True)
        with servers.run(BareServer(work, settings.server_cpus)) as server:
            headers = {"Authorization": "Bearer mirror_not-checked-by-the-bare-handler"}
            check_endpoint(server.url + BARE_PATH, headers, lambda body: body == BARE_BODY)
            measure(label, "bare", server.url, BARE_PATH, headers, server.process.pid)

    bare("bare (first)")

    print("[mirror proxy] SQLite + local disk, downloads.mode = proxy", flush=True)
    with servers.run(mirror_server("local", {"downloads": {"mode": "proxy"}}, {})) as server:
        headers = prepare(server, "local", publish=True)
        check_endpoint(server.url + VERSIONS_PATH, headers, versions_ok)
        check_endpoint(server.url + DOWNLOAD_PATH, headers, download_ok)
        measure("mirror proxy", "versions", server.url, VERSIONS_PATH, headers, server.process.pid)
        measure("mirror proxy", "download proxy", server.url, DOWNLOAD_PATH, headers, server.process.pid)

    print("[mirror s3] starting moto (S3) on 127.0.0.1 in this process", flush=True)
    with run_moto_server() as moto:
        bucket = asyncio.run(moto.create_bucket("mirror-bench"))
        s3 = {"bucket": bucket, "prefix": "registry/", "endpoint_url": moto.endpoint_url, "region": moto.region}
        headers = {}
        for mode in ("presigned", "s3"):
            print(f"[mirror {mode}] SQLite + S3 (moto), downloads.mode = {mode}", flush=True)
            sections = {"blobs": {"backend": "s3"}, "s3": s3, "downloads": {"mode": mode}}
            # both modes share one database and bucket: publish once, with the first server
            with servers.run(mirror_server("s3", sections, TEST_ENVIRONMENT)) as server:
                if mode == "presigned":
                    headers = prepare(server, "s3", publish=True)
                else:
                    pin_process(server.process.pid, settings.server_cpus)
                location = check_endpoint(server.url + DOWNLOAD_PATH, headers, download_ok)["location"]
                expected = {"presigned": "X-Amz-Signature=", "s3": "s3::"}[mode]
                if expected not in location:
                    raise RuntimeError(f"mode {mode}: unexpected download location {location}")
                measure(f"mirror {mode}", f"download {mode}", server.url, DOWNLOAD_PATH, headers, server.process.pid)

    bare("bare (last)")
    return results


def add_ratios(results: list[Measurement]) -> tuple[float, float]:
    bares = [m for m in results if m.endpoint == "bare" and m.requests]
    quiet = [m for m in bares if not m.other_cpu >= OTHER_LOAD]
    bares = quiet or bares  # a disturbed bare run is no reference when a quiet one exists
    bare_rps = sum(m.rps for m in bares) / len(bares) if bares else math.nan
    bare_p99 = sum(m.p99_ms for m in bares) / len(bares) if bares else math.nan
    for m in results:
        m.rps_vs_bare = m.rps / bare_rps if bare_rps else math.nan
        m.p99_vs_bare = m.p99_ms / bare_p99 if bare_p99 else math.nan
        m.server_us_per_request = m.server_cpu * 1e6 / m.rps if m.rps else math.nan
    return bare_rps, bare_p99


def report(results: list[Measurement], loadgen: LoadGenerator, settings: Settings) -> list[dict[str, Any]]:
    header = (f"{'scenario':<16} {'endpoint':<19} {'rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
              f"{'srv cpu':>7} {'us/req':>7} {'lg cpu':>6} {'other':>6} {'rps % bare':>10} {'p99 x bare':>10}")
    print()
    print(f"load generator: {loadgen.name}; {settings.connections} connections, "
          f"{settings.warmup} s warm-up + {settings.duration} s measured per row")
    pinned = (f"server on CPU {sorted(settings.server_cpus)}, load generator on CPU {sorted(settings.loadgen_cpus)}"
              if settings.server_cpus else "not pinned")
    print(f"machine: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; {pinned}")
    print()
    print(header)
    print("-" * len(header))
    for m in results:
        flag = " !" if m.errors else ""
        print(f"{m.scenario:<16} {m.endpoint:<19} {m.rps:>8.0f} {m.p50_ms:>7.2f} {m.p99_ms:>7.2f} {m.errors:>6} "
              f"{m.server_cpu:>7.0%} {m.server_us_per_request:>7.0f} {m.loadgen_cpu:>6.0%} {m.other_cpu:>6.0%} "
              f"{m.rps_vs_bare:>10.0%} {m.p99_vs_bare:>10.2f}{flag}")
    print()
    for m in results:
        if m.errors:
            print(f"! {m.scenario} / {m.endpoint}: {m.errors} errors {m.error_detail}: its figures are not valid")
    saturated = [m for m in results if m.loadgen_cpu >= SATURATED]
    if saturated:
        names = ", ".join(f"{m.scenario}/{m.endpoint}" for m in saturated)
        print(f"note: the load generator used >= {SATURATED:.0%} of its CPU in: {names}. There the client, not "
              "the server, limited rps, so ratios against bare are flattered; compare us/req "
              "(server CPU per request) instead, or install wrk.")
    disturbed = [m for m in results if m.other_cpu >= OTHER_LOAD]
    if disturbed:
        names = ", ".join(f"{m.scenario}/{m.endpoint} ({m.other_cpu:.0%})" for m in disturbed)
        print(f"warning: other processes used CPU during: {names} (in % of one CPU). The machine was not quiet, "
              "so those figures are disturbed; run again when nothing else is running.")
    bare_cost = [m.server_us_per_request for m in results if m.endpoint == "bare" and m.rps]
    bare_saturated = any(m.endpoint == "bare" for m in saturated)
    bare_disturbed = all(m.other_cpu >= OTHER_LOAD for m in results if m.endpoint == "bare")
    verdicts = []
    for label, endpoint, target in TARGETS:
        m = next((r for r in results if r.endpoint == endpoint), None)
        if m is None:
            continue
        met = m.rps_vs_bare >= target and not m.errors
        cost = math.nan
        if bare_cost and m.server_us_per_request:
            cost = (sum(bare_cost) / len(bare_cost)) / m.server_us_per_request
        suffix = f" ({m.errors} errors: not valid)" if m.errors else ""
        if not m.errors and (bare_saturated or m in saturated):
            suffix = " (not conclusive: the load generator was saturated)"
        elif not m.errors and (bare_disturbed or m in disturbed):
            suffix = " (not conclusive: other processes used the CPU)"
        print(f"{label}: {m.rps_vs_bare:.0%} of bare (target >= {target:.0%}) {'MET' if met else 'MISSED'}"
              f"{suffix}; by server CPU per request: {cost:.0%}")
        verdicts.append({"target": label, "endpoint": endpoint, "ratio": m.rps_vs_bare, "minimum": target,
                         "met": met, "conclusive": not suffix, "cpu_ratio": cost})
    return verdicts


def write_json(path: Path, results: list[Measurement], verdicts: list[dict[str, Any]], loadgen: LoadGenerator,
               settings: Settings, bare_rps: float, bare_p99: float) -> None:
    document = {
        "loadgen": loadgen.name,
        "connections": settings.connections,
        "duration_s": settings.duration,
        "warmup_s": settings.warmup,
        "server_cpus": sorted(settings.server_cpus) if settings.server_cpus else None,
        "loadgen_cpus": sorted(settings.loadgen_cpus) if settings.loadgen_cpus else None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "bare_rps": bare_rps,
        "bare_p99_ms": bare_p99,
        "results": [asdict(m) for m in results],
        "targets": verdicts,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(json_safe(document), indent=2) + "\n")
    print(f"results written to {path}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Registry protocol throughput and latency against a bare aiohttp handler "
        "(see the module docstring).",
    )
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per row (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each row (default 1)")
    parser.add_argument("--connections", "-c", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request timeout in seconds (default 5)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="auto: wrk when on PATH, else the Python client")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and the load generator to CPUs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--workdir", type=Path,
                        help="keep databases and server logs here (default: a temporary directory)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be 1..300 and --warmup 0..60")
    if not 1 <= args.connections <= 1024:
        parser.error("--connections must be 1..1024")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = loadgen_cpus = None
    if not args.no_pin and len(cpus) >= 2:
        server_cpus, loadgen_cpus = {cpus[0]}, set(cpus[1:])

    interrupt_on_sigterm()
    servers = Servers()
    with work_directory(args.workdir, "bench-protocol-") as workdir:
        settings = Settings(
            args.connections, args.duration, args.warmup, args.timeout, server_cpus, loadgen_cpus, workdir)
        wrk = shutil.which("wrk")
        if args.loadgen == "wrk" and not wrk:
            print("wrk is not on PATH; install it (apt-get install wrk) or use --loadgen python", file=sys.stderr)
            return 2
        loadgen = WrkLoadGenerator(settings, wrk) if wrk and args.loadgen != "python" else PythonLoadGenerator(settings)
        print(f"load generator: {loadgen.name}", flush=True)
        if isinstance(loadgen, PythonLoadGenerator) and args.loadgen == "auto":
            print("  (wrk is not on PATH: install it with `apt-get install wrk` for figures that are the server's)")
        try:
            results = run(settings, loadgen, servers)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the servers", file=sys.stderr)
            return 130
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            if not args.workdir:
                print("(run again with --workdir DIR to keep the servers' logs)", file=sys.stderr)
            return 1
        finally:
            loadgen.kill()
            servers.stop_all()
        bare_rps, bare_p99 = add_ratios(results)
        verdicts = report(results, loadgen, settings)
        if args.json:
            write_json(args.json, results, verdicts, loadgen, settings, bare_rps, bare_p99)
        if args.workdir:
            print(f"server logs and data kept in {workdir}")
    if any(m.errors for m in results):
        return 1
    if args.check and not all(v["met"] for v in verdicts):
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_bare-server"]:
        bare_server_main(int(sys.argv[2]))
    elif sys.argv[1:2] == ["_client"]:
        client_main(json.loads(sys.argv[2]))
    else:
        sys.exit(main(sys.argv[1:]))
