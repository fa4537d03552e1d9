#!/usr/bin/env python3
"""Benchmark of one against two ``mirror serve`` replicas on SQLite and on DynamoDB, in one run.

What it measures
----------------
Part 1, throughput. Requests per second and p50/p99 latency of the two calls ``terraform init``
makes per module, each carrying ``Authorization: Bearer <read token>`` as Terraform sends one:

  versions   GET /v1/modules/acme/network/aws/versions          (10 versions published)
  download   GET /v1/modules/acme/network/aws/1.5.0/download    (downloads.mode = proxy)

on 1 replica and on 2 replicas of each of these deployments:

  bare                   the bare aiohttp handler of ``bench_protocol.py`` (one JSON GET route,
                         no store), as 1 and as 2 processes: the reference. Measured first and
                         again last (the rows show the drift; a quiet one is the reference)
  sqlite, cache 2 s      ``mirror serve`` on one SQLite file, default ``[metadata] cache_seconds``
                         (versions and download answered from each process's memory)
  sqlite, cache 0 s      the same with ``cache_seconds = 0``: every request reads the store
  dynamodb, cache 2 s    ``[metadata] backend = "dynamodb"`` on one table of a moto server
  dynamodb, cache 0 s    the same with ``cache_seconds = 0``: every request queries moto

Blobs stay on local disk (one directory, shared by the replicas) for both backends, so that only
the metadata store differs between them: a download in proxy mode answers a signed URL to the
registry's own archive route, computed without reading the blob. (The cost of S3 presigning is
``bench_protocol.py``'s subject.) The 10 versions are published over HTTP through the first
replica, and the read token is minted with ``mirror token create``.

Replicas of one deployment share one config file; what differs per replica is set in its
environment: ``MIRROR_SERVER_PORT``, ``MIRROR_METADATA_CACHE_SECONDS`` and
``MIRROR_EVENTS_LOG_PATH`` (the local event log is locked by the process that writes it, so
replicas on one host each keep their own). There is no load balancer: with 2 replicas, one wrk
process per replica runs at the same time with half the connections each, and the figures are
summed (rps) or merged (latency percentiles, from 1,000 quantiles printed by each wrk).

CPU placement (``--no-pin`` leaves it to the kernel): with 1 replica, the replica is pinned to
the first CPU and wrk to the others, as in ``bench_protocol.py``. With 2 replicas, each replica
is pinned to a CPU of its own and wrk gets the CPUs left over, or, on a 2-core machine, all of
them: there the two replicas, the two wrk processes (and, for DynamoDB, moto) share the two
cores. The 2-replica figure on a 2-core machine therefore shows contention, not how replicas on
hosts of their own scale: whatever "x2/x1" comes out, it is bounded by two cores shared with the
load generator. The bare handler in 2 processes, measured the same way, is the yardstick for it
(on a 2-CPU VM its x2/x1 can even pass 2: see us/req below).

DynamoDB is moto (``tests/moto_server.py``'s server, DynamoDB requests made atomic) in a process
of its own, unpinned, on 127.0.0.1. It stands in for DynamoDB's API, not its speed: moto is a
Python process on the same two cores, so the "cache 0 s" DynamoDB rows measure moto more than
mirror. The "ddb/req" column (DynamoDB requests moto served during the window beyond the
replicas' idle background rate, measured beforehand, per HTTP request answered) shows what mirror
asks of the store, whatever the store's speed: about 1 Query per request without the cache, next
to none with it. The per-process caches (module catalog, token lookups) merge concurrent misses,
so when an entry lapses under load one request refills it and the others wait for that answer.

Part 2, versions latency at scale. p50 and p99 of ``versions`` on one replica with
``cache_seconds = 0`` (every request is a store query), on a small registry (10 modules x 10
versions) against a large one (``--modules``, 10,000 x 10 = 100,000 versions), with
``bench_browse.py``'s client: one keep-alive connection, requests one after the other, each of a
random module, each answer checked. Latencies of sub-millisecond requests are noisy, so small
and large are measured in turns (small-large, then large-small, ...) for ``--rounds`` rounds of
``--requests`` requests, and the figure of each is the median over the rounds of its p50 and of
its p99. Target: median p99 large / small <= 1.2, judged on SQLite (``--check``).

  SQLite    the data sets are ``bench_browse.py``'s, built by its code: every version published
            through ``SqliteMetadataStore.publish_version`` (about a minute for the large set;
            ``--workdir DIR --reuse`` builds once and reuses it afterwards). The small and the
            large server run side by side for the whole comparison.
  DynamoDB  the same modules, READMEs, analyses and version records, written by batch writes
            (25 items a request, 8 in flight) as the items ``DynamoMetadataStore`` writes for a
            publish (its own item builders: the module with its latest-version summary and index
            keys, the versions, the namespaces). Events and archive reference counts are left
            out: they live in partitions the read path never touches. Loading 100,000 versions
            (110,050 items) into moto takes about a minute, within the 3 minutes allowed, but
            measuring on them is out of reach: moto 5.2.5 answers every Query by sorting every
            item of the table (``Table.all_items``): 1.8 s a Query at that size (a GetItem:
            7 ms), where DynamoDB reads one partition's key range, and a replica on that table
            does not even finish starting within 30 s. Worse, an idle replica's pollers (event
            log, job queue, webhook dispatcher: ~14 DynamoDB requests/s, ~10 of them Queries)
            saturate moto from ~1,000 modules on, since the test server runs DynamoDB requests
            one at a time. So the large DynamoDB set defaults to ``--dynamodb-modules`` 200
            (2,000 versions, 2,250 items), each server
            runs only for its own turns (restarted every round), and a round is
            ``--dynamodb-requests``. Its ratio measures moto's sort and is reported, not judged;
            "ddb/req" shows that mirror asks the same of the store at both sizes (one Query of
            the module's 10 version items per versions call).

How to run (from the repository root; ~4-5 minutes at the defaults: ~2.5 for part 1, ~1 to
build the 10,000-module SQLite set, which ``--workdir DIR --reuse`` keeps for the next run)
--------------------------------------------------------------------------------------------
    .venv/bin/python scripts/bench_replicas.py
    .venv/bin/python scripts/bench_replicas.py --duration 10 --json out.json
    .venv/bin/python scripts/bench_replicas.py --workdir /tmp/br --reuse   # build once, reuse
    .venv/bin/python scripts/bench_replicas.py --only scale --check        # exit 1 if missed
    .venv/bin/python scripts/bench_replicas.py --only throughput --no-pin

wrk must be on PATH (``apt-get install wrk``): a Python load generator would cost as much CPU
as the servers it loads, on the same two cores.

What the numbers mean
---------------------
  rps          responses in the measured window per second, summed over the replicas
  p50/p99 ms   response time percentiles over every request of the window (all replicas)
  errors       non-200 answers, timeouts and socket errors (warm-up included): not valid
  srv cpu      CPU of the replicas over the window, summed, in % of one core
  us/req       replicas' CPU microseconds per request (srv cpu / rps): the cost, whatever the
               load generator. On a 2-CPU VM it is lower with 2 processes, the bare handler's
               included (likely bigger batches per event-loop turn when wrk shares the core, and
               no cross-CPU wake-ups), so "x2/x1" can pass 2.00 there
  store cpu    CPU of the moto process (DynamoDB rows), in % of one core
  lg cpu       CPU of the wrk processes, in % of one core
  other        CPU of every other process (hypervisor steal included), in % of one core;
               >= 15% is flagged "!": the machine was not quiet
  ddb/req      DynamoDB requests moto served in the window, less the replicas' idle background
               rate (measured beforehand), per HTTP request answered. In the rows moto bounds
               (~1 s a request), the up to 64 requests in flight at the window's edges blur it;
               part 2's sequential client gives the exact figure
  % bare       rps against the bare handler with as many processes
  x2/x1        rps of 2 replicas against 1 (2.00 would be linear scaling)

``--json FILE`` writes every row, round and verdict. Every process started is stopped with
SIGTERM at the end, on Ctrl-C and on SIGTERM. Exit status: 0; 1 when a row had errors or a
server failed, or (with ``--check``) when the SQLite latency target is missed; 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench_browse as browse  # noqa: E402
from bench_protocol import (  # noqa: E402
    BARE_BODY,
    BARE_PATH,
    DOWNLOAD_PATH,
    NAMESPACE,
    VERSIONS_PATH,
    BareServer,
    Servers,
    check_endpoint,
    children_cpu_seconds,
    download_ok,
    mint_token,
    pin_process,
    process_cpu_seconds,
    publish_versions,
    versions_ok,
)
from benchlib import OtherLoad, interrupt_on_sigterm, json_safe, work_directory  # noqa: E402

from mirror.services.tokens import create_token  # noqa: E402
from mirror.storage.dynamodb import (  # noqa: E402
    # the store's own item builders: the large table holds exactly what publishes would write
    _BRIEF_FIELDS,
    DynamoMetadataStore,
    _latest_fields,
    _namespace_key,
    _new_module_item,
    _pick_latest,
    _to_item,
    _version_item,
)
from mirror.storage.local import LocalBlobStore  # noqa: E402
from tests.live import MirrorServer, free_port, run_cli, stop_process, write_config  # noqa: E402
from tests.moto_server import TEST_ENVIRONMENT, MotoServer  # noqa: E402

CACHES = (2.0, 0.0)  # [metadata] cache_seconds: the default, then none
ENDPOINTS = (("versions", VERSIONS_PATH), ("download", DOWNLOAD_PATH))
#: latency quantiles each wrk prints (0.1% apart), merged across the replicas' wrk processes
QUANTILES = 1000
#: CPU (in cores) used by other processes during a measurement above which it is called disturbed
OTHER_LOAD = 0.15
VERSIONS_P99_RATIO_TARGET = browse.VERSIONS_P99_RATIO_TARGET
NO_CACHE = next(s for s in browse.SCENARIOS if s.name == "versions, no cache")
BATCH_ITEMS = 25  # DynamoDB's most per BatchWriteItem
BATCHES_IN_FLIGHT = 8


# -- moto in a process of its own, counting DynamoDB requests ----------------------------------


def moto_server_main() -> None:
    """``tests/moto_server.py``'s server, with a count of DynamoDB requests by operation.

    Prints ``{"endpoint_url": ..., "region": ...}`` once listening; then each line read from
    stdin is answered with the counts so far as one JSON line; end of input stops it."""
    from tests import moto_server

    counts: Counter[str] = Counter()
    lock = threading.Lock()
    passthrough = moto_server.AtomicDynamoDB.__call__

    def counting(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            with lock:
                counts[target.rsplit(".", 1)[-1]] += 1
        return passthrough(self, environ, start_response)

    moto_server.AtomicDynamoDB.__call__ = counting  # type: ignore[method-assign]
    with moto_server.run_moto_server() as moto:
        print(json.dumps({"endpoint_url": moto.endpoint_url, "region": moto.region}), flush=True)
        for _ in sys.stdin:
            with lock:
                snapshot = dict(counts)
            print(json.dumps(snapshot), flush=True)


class MotoProcess:
    """``moto_server_main`` in a subprocess (its CPU is then measurable apart from this script's)."""

    def __init__(self, workdir: Path, cpus: set[int] | None) -> None:
        self.log_file = workdir / "moto.log"
        self.cpus = cpus
        self.process: subprocess.Popen[str] | None = None
        self.server: MotoServer | None = None
        self._lock = threading.Lock()

    def start(self, timeout: float = 60) -> MotoProcess:
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "_moto-server"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=preexec(self.cpus),
            )
        line = self._read_line(timeout)
        started = json.loads(line)
        self.server = MotoServer(endpoint_url=started["endpoint_url"], region=started["region"])
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        timer = threading.Timer(timeout, self.process.kill)
        timer.start()
        try:
            line = self.process.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            raise RuntimeError(f"moto did not start:\n{self.log_file.read_text(errors='replace')}")
        return line

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def counts(self) -> Counter[str]:
        """DynamoDB requests served so far, by operation."""
        assert self.process is not None and self.process.stdin is not None
        with self._lock:
            self.process.stdin.write("counts\n")
            self.process.stdin.flush()
            return Counter(json.loads(self._read_line(10)))

    def idle_rate(self, replicas: int, seconds: float = 2.0) -> float:
        """DynamoDB requests per second per replica while ``replicas`` replicas take no requests:
        their background pollers (event log, job queue, webhook dispatcher)."""
        before = self.counts()
        time.sleep(seconds)
        return sum((self.counts() - before).values()) / seconds / replicas

    def stop(self) -> None:
        """SIGTERM (moto keeps nothing worth a graceful exit; requests queued in it are dropped)."""
        stop_process(self.process, timeout=10)


def calls_per_request(calls: Counter[str], idle_rate: float, replicas: int, seconds: float, requests: int) -> float:
    """DynamoDB requests per HTTP request answered, the replicas' background requests taken out."""
    if not requests:
        return math.nan
    return max(0.0, sum(calls.values()) - idle_rate * replicas * seconds) / requests


def preexec(cpus: set[int] | None) -> Callable[[], None] | None:
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


# -- wrk, one process per replica --------------------------------------------------------------

WRK_LUA = r"""
-- bench_replicas.py: count non-200 answers; done() prints the summary and QUANTILES latency
-- quantiles (the k-th at k/QUANTILES of the distribution), so that processes can be merged.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non200 = 0 end
function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + (thread:get("non200") or 0) end
  local quantiles = {}
  for k = 1, QUANTILES do quantiles[k] = string.format("%d", latency:percentile(k * 100 / QUANTILES)) end
  local e = summary.errors
  io.write(string.format(
    'REPLICAS {"requests": %d, "duration_us": %d, "non200": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "quantiles_us": [%s]}\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
    table.concat(quantiles, ", ")))
end
""".replace("QUANTILES", str(QUANTILES))


@dataclass(frozen=True, slots=True)
class Target:
    """One wrk process: where it sends its requests, with how many connections, from which CPUs."""

    url: str
    connections: int
    cpus: set[int] | None


@dataclass
class WrkSummary:
    requests: int
    duration_s: float
    quantiles_ms: list[float]
    errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


class Wrk:
    def __init__(self, binary: str, workdir: Path, timeout: float) -> None:
        self.binary = binary
        self.timeout = timeout
        self.script = workdir / "bench_replicas.lua"
        self.script.write_text(WRK_LUA)
        self.running: list[subprocess.Popen[str]] = []
        version = subprocess.run([binary, "--version"], check=False, capture_output=True, text=True, timeout=10)
        first = (version.stdout + version.stderr).strip().splitlines()
        self.name = "wrk " + (first[0].split("[")[0].strip() if first else "(unknown version)")

    def run(self, targets: list[Target], headers: dict[str, str], seconds: int) -> list[WrkSummary]:
        """One wrk per target, all at once (1 thread each); their summaries, in order."""
        for target in targets:
            command = [
                self.binary, "-t1", f"-c{target.connections}", f"-d{seconds}s",
                f"--timeout={max(1, math.ceil(self.timeout))}s", "-s", str(self.script),
            ]
            for key, value in headers.items():
                command += ["-H", f"{key}: {value}"]
            command.append(target.url)
            self.running.append(subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec(target.cpus),
            ))
        try:
            return [self._summary(process, seconds) for process in self.running]
        finally:
            self.kill()

    def _summary(self, process: subprocess.Popen[str], seconds: int) -> WrkSummary:
        out, err = process.communicate(timeout=seconds + self.timeout + 30)
        for line in out.splitlines():
            if line.startswith("REPLICAS "):
                raw = json.loads(line[len("REPLICAS "):])
                errors = {key: raw[key] for key in ("non200", "connect", "read", "write", "timeout") if raw[key]}
                return WrkSummary(raw["requests"], raw["duration_us"] / 1e6,
                                  [us / 1000 for us in raw["quantiles_us"]], errors)
        raise RuntimeError(f"wrk printed no summary (exit {process.returncode}):\n{out}\n{err}")

    def kill(self) -> None:
        """Stop every wrk still running (after an error or an interrupt) and reap them all."""
        for process in self.running:
            if process.poll() is None:
                process.kill()
            process.wait()
        self.running = []


def merged_percentile(summaries: list[WrkSummary], pct: float) -> float:
    """A percentile of every request of several wrk processes: each quantile weighs its process's
    requests / QUANTILES (exact for one process, within 0.1% of rank for several)."""
    weighted = sorted(
        (value, s.requests / len(s.quantiles_ms)) for s in summaries if s.requests for value in s.quantiles_ms
    )
    total = sum(weight for _, weight in weighted)
    if not total:
        return math.nan
    seen = 0.0
    for value, weight in weighted:
        seen += weight
        if seen >= pct / 100 * total * (1 - 1e-9):
            return value
    return weighted[-1][0]


# -- deployments and their replicas ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    """Which CPUs a replica and the load generator get (None: not pinned)."""

    cpus: tuple[int, ...]
    pin: bool

    def replica(self, index: int) -> set[int] | None:
        return {self.cpus[index % len(self.cpus)]} if self.pin else None

    def loadgen(self, replicas: int) -> set[int] | None:
        """The CPUs no replica has, or every CPU when the replicas have them all."""
        if not self.pin:
            return None
        return set(self.cpus[replicas:]) or set(self.cpus)

    def describe(self) -> str:
        if not self.pin:
            return "not pinned"

        def cpus(chosen: set[int] | None) -> str:
            return ",".join(str(cpu) for cpu in sorted(chosen or ()))

        return (f"1 replica: replica on CPU {cpus(self.replica(0))}, wrk on {cpus(self.loadgen(1))}; "
                f"2 replicas: on CPU {cpus(self.replica(0))} and {cpus(self.replica(1))}, "
                f"wrk on {cpus(self.loadgen(2))}")


@dataclass
class Deployment:
    """One config file for every replica of one store; replicas differ by their environment."""

    backend: str  # "sqlite" or "dynamodb"
    config_file: Path
    data_dir: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, backend: str, name: str, workdir: Path, metadata: dict[str, Any], env: dict[str, str],
               data_dir: Path | None = None, event_log: Path | None = None) -> Deployment:
        data = data_dir or workdir / name
        data.mkdir(parents=True, exist_ok=True)
        config = {
            "server": {"spool_dir": str(data / "spool")},
            "metadata": metadata,
            "blobs": {"path": str(data / "blobs")},
            "events": {"log_path": str(event_log or data / "events.jsonl")},
            "logging": {"level": "info"},
        }
        return cls(backend, write_config(workdir / f"{name}.toml", config), data, workdir, env)

    def replica(self, index: int, cache_seconds: float) -> MirrorServer:
        port = free_port()
        env = {**self.env, "MIRROR_SERVER_PORT": str(port), "MIRROR_METADATA_CACHE_SECONDS": f"{cache_seconds:g}"}
        if index:  # the first replica keeps the config's event log
            env["MIRROR_EVENTS_LOG_PATH"] = str(self.data_dir / f"events-replica{index}.jsonl")
        return MirrorServer(self.config_file, port, self.workdir, env=env)


@contextlib.contextmanager
def started(servers: Servers, server: Any, cpus: set[int] | None) -> Iterator[Any]:
    """A server (mirror or bare), pinned, and idle after its start-up work; stopped at the end."""
    with servers.run(server):
        assert server.process is not None
        pin_process(server.process.pid, cpus)
        browse.wait_idle(server.process.pid)
        yield server


# -- part 1: throughput ------------------------------------------------------------------------


@dataclass
class Throughput:
    deployment: str  # "bare", "sqlite, cache 2 s", ...
    backend: str
    cache_seconds: float | None
    endpoint: str
    replicas: int
    when: str = ""  # "first" or "last" for the bare handler
    requests: int = 0
    rps: float = 0.0
    replica_rps: list[float] = field(default_factory=list)
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    errors: int = 0
    error_detail: dict[str, int] = field(default_factory=dict)
    server_cpu: float = math.nan  # cores, summed over the replicas
    store_cpu: float = math.nan  # cores used by moto
    loadgen_cpu: float = math.nan  # cores used by wrk
    other_cpu: float = math.nan
    store_calls: dict[str, int] = field(default_factory=dict)  # DynamoDB requests by operation, all of them
    store_idle_rate: float = math.nan  # DynamoDB requests per second of one idle replica
    store_calls_per_request: float = math.nan  # the idle replicas' share taken out
    rps_vs_bare: float = math.nan

    @property
    def disturbed(self) -> bool:
        return self.other_cpu >= OTHER_LOAD

    @property
    def server_us_per_request(self) -> float:
        """CPU microseconds the replicas spent per request: the cost whatever the load generator."""
        return self.server_cpu * 1e6 / self.rps if self.rps else math.nan


@dataclass
class Settings:
    connections: int
    duration: int
    warmup: int
    timeout: float
    rounds: int
    requests: int
    dynamodb_requests: int
    scale_warmup: int
    modules: int
    dynamodb_modules: int
    workdir: Path
    reuse: bool
    placement: Placement


class Bench:
    """Everything one run starts and keeps: the servers, wrk, moto, and the rows measured."""

    def __init__(self, settings: Settings, wrk: Wrk) -> None:
        self.settings = settings
        self.wrk = wrk
        self.servers = Servers()
        self.moto: MotoProcess | None = None
        self.throughput: list[Throughput] = []

    def moto_server(self) -> MotoServer:
        if self.moto is None:
            print("[moto] starting moto (DynamoDB) in a process of its own, unpinned", flush=True)
            moto = MotoProcess(self.settings.workdir, set(self.settings.placement.cpus))
            self.servers.running.append(moto)  # stopped with the rest
            self.moto = moto.start()
        assert self.moto.server is not None
        return self.moto.server

    def measure(self, row: Throughput, servers: list[Any], path: str, headers: dict[str, str]) -> None:
        s, placement = self.settings, self.settings.placement
        pids = [server.process.pid for server in servers]
        share, extra = divmod(s.connections, len(servers))
        targets = [
            Target(server.url + path, share + (index < extra), placement.loadgen(len(servers)))
            for index, server in enumerate(servers)
        ]
        for index, pid in enumerate(pids):
            pin_process(pid, placement.replica(index))  # again, for threads started since
        errors: Counter[str] = Counter()
        if s.warmup:
            for summary in self.wrk.run(targets, headers, s.warmup):
                errors.update(summary.errors)
        moto = self.moto if row.backend == "dynamodb" else None  # the store, when it is moto
        others = OtherLoad(*pids, self.moto.pid if self.moto else None).start()
        calls_before = moto.counts() if moto else Counter()
        cpu_before = [process_cpu_seconds(pid) for pid in pids]
        store_before = process_cpu_seconds(moto.pid) if moto else math.nan
        children_before, wall_before = children_cpu_seconds(), time.perf_counter()
        summaries = self.wrk.run(targets, headers, s.duration)
        wall = time.perf_counter() - wall_before
        cpu_after = [process_cpu_seconds(pid) for pid in pids]
        row.loadgen_cpu = (children_cpu_seconds() - children_before) / wall
        row.store_cpu = (process_cpu_seconds(moto.pid) - store_before) / wall if moto else math.nan
        calls = moto.counts() - calls_before if moto else Counter()
        row.other_cpu = others.stop()
        for summary in summaries:
            errors.update(summary.errors)
        row.requests = sum(summary.requests for summary in summaries)
        row.replica_rps = [summary.rps for summary in summaries]
        row.rps = sum(row.replica_rps)
        row.p50_ms, row.p99_ms = merged_percentile(summaries, 50), merged_percentile(summaries, 99)
        row.error_detail, row.errors = dict(errors), sum(errors.values())
        row.server_cpu = sum(after - before for before, after in zip(cpu_before, cpu_after)) / wall
        if moto:
            row.store_calls = dict(calls)
            row.store_calls_per_request = calls_per_request(calls, row.store_idle_rate, len(pids), wall, row.requests)
        self.throughput.append(row)
        flags = f"  ERRORS {row.error_detail}" if row.errors else ""
        calls_note = f"  ddb/req {row.store_calls_per_request:.2f}" if moto else ""
        print(f"    {row.endpoint:<9} x{row.replicas}: {row.rps:8.0f} rps  p50 {row.p50_ms:6.2f} ms  "
              f"p99 {row.p99_ms:6.2f} ms  srv cpu {row.server_cpu:.0%}{calls_note}{flags}", flush=True)

    # -- the deployments measured

    def bare(self, when: str) -> None:
        print(f"[bare ({when})] bare aiohttp handler, 1 then 2 processes", flush=True)
        headers = {"Authorization": "Bearer mirror_not-checked-by-the-bare-handler"}
        for count in (1, 2):
            with contextlib.ExitStack() as stack:
                servers = [
                    stack.enter_context(started(self.servers, BareServer(self.settings.workdir, cpus), cpus))
                    for cpus in (self.settings.placement.replica(index) for index in range(count))
                ]
                for server in servers:
                    check_endpoint(server.url + BARE_PATH, headers, lambda body: body == BARE_BODY)
                self.measure(Throughput("bare", "bare", None, "bare", count, when), servers, BARE_PATH, headers)

    def mirror(self, deployment: Deployment) -> None:
        headers: dict[str, str] = {}
        idle_rate = math.nan
        for cache_seconds in CACHES:
            name = f"{deployment.backend}, cache {cache_seconds:g} s"
            print(f"[{name}] {deployment.config_file.name}", flush=True)
            with contextlib.ExitStack() as stack:
                replicas: list[MirrorServer] = []
                for count in (1, 2):
                    index = count - 1
                    cpus = self.settings.placement.replica(index)
                    replicas.append(stack.enter_context(
                        started(self.servers, deployment.replica(index, cache_seconds), cpus)))
                    if not headers:
                        headers = publish(deployment, replicas[0])
                        if deployment.backend == "dynamodb" and self.moto:
                            idle_rate = self.moto.idle_rate(1)
                            print(f"  an idle replica makes {idle_rate:.1f} DynamoDB requests/s", flush=True)
                    for replica in replicas:
                        check_endpoint(replica.url + VERSIONS_PATH, headers, versions_ok)
                        check_endpoint(replica.url + DOWNLOAD_PATH, headers, download_ok)
                    for endpoint, path in ENDPOINTS:
                        row = Throughput(name, deployment.backend, cache_seconds, endpoint, count)
                        row.store_idle_rate = idle_rate
                        self.measure(row, replicas, path, headers)

    def run_throughput(self) -> None:
        work = self.settings.workdir
        self.bare("first")
        sqlite = Deployment.create("sqlite", "sqlite", work, {"path": str(work / "sqlite" / "mirror.db")}, {})
        self.mirror(sqlite)
        moto = self.moto_server()
        table = f"mirror-bench-{uuid.uuid4().hex[:8]}"
        dynamodb = Deployment.create("dynamodb", "dynamodb", work, dynamodb_metadata(moto, table), TEST_ENVIRONMENT)
        created = run_cli("dynamodb", "create-table", "--config", str(dynamodb.config_file), cwd=work,
                          env=TEST_ENVIRONMENT)
        if created.returncode != 0:
            raise RuntimeError(f"mirror dynamodb create-table failed:\n{created.stderr}")
        print(f"  {created.stdout.strip()}", flush=True)
        self.mirror(dynamodb)
        self.bare("last")


def dynamodb_metadata(moto: MotoServer, table: str) -> dict[str, Any]:
    return {"backend": "dynamodb", "table": table, "region": moto.region, "endpoint_url": moto.endpoint_url}


def publish(deployment: Deployment, server: MirrorServer) -> dict[str, str]:
    """Publish the 10 versions through ``server``; the headers of a read token on the namespace."""
    admin = mint_token(deployment.config_file, deployment.workdir, "*", "admin")
    publish_versions(server.url, admin, deployment.data_dir)
    read = mint_token(deployment.config_file, deployment.workdir, NAMESPACE, "read")
    return {"Authorization": f"Bearer {read}"}


def add_ratios(rows: list[Throughput]) -> dict[int, float]:
    """Each row's rps against the bare handler's with as many processes (a quiet one if any)."""
    reference: dict[int, float] = {}
    for count in (1, 2):
        bares = [r for r in rows if r.backend == "bare" and r.replicas == count and r.requests and not r.errors]
        bares = [r for r in bares if not r.disturbed] or bares
        reference[count] = statistics.fmean(r.rps for r in bares) if bares else math.nan
    for row in rows:
        row.rps_vs_bare = row.rps / reference[row.replicas] if reference[row.replicas] else math.nan
    return reference


# -- part 2: versions latency at scale ---------------------------------------------------------


def dynamodb_items(modules: list[browse.Module], blobs: LocalBlobStore) -> Iterator[dict[str, Any]]:
    """What ``DynamoMetadataStore.publish_version`` leaves in the table after every module's
    versions were published in release rounds (bench_browse's order and serials), events and
    archive reference counts aside."""
    namespaces: dict[str, str] = {}
    for index, module in enumerate(modules):
        records = [
            browse.new_version(module, version, number * len(modules) + index, blobs)
            for number, version in enumerate(browse.VERSIONS)
        ]
        items = [_version_item(module.address, new.version, new.analysis) for new in records]
        briefs = [{name: item.get(name) for name in _BRIEF_FIELDS} for item in items]
        created = records[0].version.published_at
        summary = _latest_fields(module.address, _pick_latest(briefs), put=True)
        # every publish after the module's first moved its version revision by one
        yield {**_new_module_item(module.address, created), **summary, "vrev": len(records) - 1}
        yield from items
        namespaces.setdefault(module.address.namespace, created)
    for namespace, created in namespaces.items():
        pk, sk = _namespace_key(namespace)
        yield {"PK": pk, "SK": sk, "kind": "namespace", "name": namespace, "created_at": created}


async def load_dynamodb(dataset: browse.Dataset, moto: MotoServer, table: str) -> int:
    """Create ``table``, batch-write the data set, mint its read token; the items written."""
    store = DynamoMetadataStore(table=table, region=moto.region, endpoint_url=moto.endpoint_url)
    await store.create_table()
    dataset.blobs.mkdir(parents=True, exist_ok=True)
    items = [_to_item(item) for item in dynamodb_items(dataset.modules, LocalBlobStore(dataset.blobs))]
    gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)
    async with moto.client("dynamodb") as client:

        async def write(batch: list[dict[str, Any]]) -> None:
            pending: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in batch]}
            async with gate:
                while pending:
                    answer = await client.batch_write_item(RequestItems=pending)
                    pending = answer.get("UnprocessedItems") or {}

        await asyncio.gather(*(write(items[k:k + BATCH_ITEMS]) for k in range(0, len(items), BATCH_ITEMS)))
    await store.open()
    try:
        _, dataset.token = await create_token(store, "*", "read", "bench_replicas")
    finally:
        await store.close()
    return len(items)


@dataclass
class ScaleRound:
    backend: str
    dataset: str
    modules: int
    round: int
    requests: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    errors: int = 0
    error_detail: dict[str, int] = field(default_factory=dict)
    other_cpu: float = math.nan
    store_calls_per_request: float = math.nan

    @property
    def disturbed(self) -> bool:
        return self.other_cpu >= OTHER_LOAD


@dataclass
class ScaleResult:
    backend: str
    dataset: str
    modules: int
    build_seconds: float
    reused: bool
    items: int | None  # DynamoDB items written
    rounds: list[ScaleRound] = field(default_factory=list)

    @property
    def p50_ms(self) -> float:
        return median([r.p50_ms for r in self.rounds])

    @property
    def p99_ms(self) -> float:
        return median([r.p99_ms for r in self.rounds])

    @property
    def store_calls_per_request(self) -> float:
        return median([r.store_calls_per_request for r in self.rounds])


def median(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan


class Scale:
    """Part 2: a small and a large data set per backend, measured in turns."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.settings = bench.settings
        self.results: list[ScaleResult] = []

    def browse_settings(self, requests: int) -> browse.Settings:
        s = self.settings
        return browse.Settings(requests, s.scale_warmup, s.modules, s.workdir, s.reuse, 0, s.placement.replica(0))

    def run(self) -> None:
        browse.quiet_mirror_logs()
        work = self.settings.workdir
        small = [browse.make_module(i) for i in range(browse.SMALL_COUNT)]
        large = [browse.make_module(i) for i in range(self.settings.modules)]
        sqlite = [browse.Dataset("small", work / "sqlite-small", small),
                  browse.Dataset("large", work / "sqlite-large", large)]
        for dataset in sqlite:
            browse.prepare(dataset, self.settings.reuse)
        deployments = [
            Deployment.create("sqlite", f"sqlite-{d.label}", work, {"path": str(d.db)}, {}, d.directory, d.event_log)
            for d in sqlite
        ]
        self.compare("sqlite", sqlite, deployments, self.settings.requests)

        moto = self.bench.moto_server()
        dynamodb = [browse.Dataset("small", work / "dynamodb-small", small),
                    browse.Dataset("large", work / "dynamodb-large", large[: self.settings.dynamodb_modules])]
        deployments, items = [], []
        for dataset in dynamodb:
            table = f"mirror-{dataset.label}-{uuid.uuid4().hex[:8]}"
            total = len(dataset.modules) * len(browse.VERSIONS)
            print(f"[dynamodb {dataset.label}] loading {len(dataset.modules):,} modules x {len(browse.VERSIONS)} "
                  f"versions into moto by batch writes", flush=True)
            began = time.perf_counter()
            items.append(asyncio.run(load_dynamodb(dataset, moto, table)))
            dataset.build_seconds = time.perf_counter() - began
            print(f"[dynamodb {dataset.label}] {total:,} versions ({items[-1]:,} items) loaded in "
                  f"{dataset.build_seconds:.1f} s", flush=True)
            deployments.append(Deployment.create(
                "dynamodb", f"dynamodb-{dataset.label}", work, dynamodb_metadata(moto, table), TEST_ENVIRONMENT,
                dataset.directory, dataset.event_log))
        self.compare("dynamodb", dynamodb, deployments, self.settings.dynamodb_requests, items)

    def compare(self, backend: str, datasets: list[browse.Dataset], deployments: list[Deployment], requests: int,
                items: list[int] | None = None) -> None:
        """Small and large measured in turns (cache_seconds = 0), the order flipped every round.

        On SQLite both servers stay up side by side (an idle one costs nothing). On moto an idle
        replica does not cost nothing: its pollers' Queries each sort the whole table, in turn with
        every other request, so each server runs only for its own turn, restarted every round."""
        results = [
            ScaleResult(backend, d.label, len(d.modules), d.build_seconds, d.reused, items[k] if items else None)
            for k, d in enumerate(datasets)
        ]
        self.results += results
        settings = self.browse_settings(requests)
        moto = self.bench.moto if backend == "dynamodb" else None
        how = "one server at a time" if moto else "both servers up"
        print(f"[{backend}] versions at scale: {self.settings.rounds} rounds of {settings.warmup} + {requests} "
              f"requests on each data set, cache_seconds = 0, {how}", flush=True)
        idle_rates: dict[int, float] = {}
        with contextlib.ExitStack() as stack:
            running: list[MirrorServer] = [] if moto else [
                stack.enter_context(started(self.bench.servers, d.replica(0, 0.0), settings.server_cpus))
                for d in deployments
            ]
            for number in range(self.settings.rounds):
                order = range(len(datasets)) if number % 2 == 0 else reversed(range(len(datasets)))
                for k in order:
                    with contextlib.ExitStack() as turn:
                        server = running[k] if running else turn.enter_context(
                            started(self.bench.servers, deployments[k].replica(0, 0.0), settings.server_cpus))
                        if moto and k not in idle_rates:
                            idle_rates[k] = moto.idle_rate(1)
                        up = [s.process.pid for s in running] or [server.process.pid]
                        result = self.turn(backend, server, datasets[k], settings, number, up, moto,
                                           idle_rates.get(k, math.nan))
                    results[k].rounds.append(result)

    @staticmethod
    def turn(backend: str, server: MirrorServer, dataset: browse.Dataset, settings: browse.Settings, number: int,
             up: list[int], moto: MotoProcess | None, idle_rate: float) -> ScaleRound:
        """One round on one data set with bench_browse's versions client; ``up``: the pids of the
        servers running, left out of "other" as moto is; with moto, its calls are counted."""
        assert server.process is not None
        pin_process(server.process.pid, settings.server_cpus)
        others = OtherLoad(*up, moto.pid if moto else None).start()
        calls_before = moto.counts() if moto else Counter()
        began = time.perf_counter()
        row = asyncio.run(browse.measure(server, dataset, NO_CACHE, settings, number))
        wall = time.perf_counter() - began
        calls = moto.counts() - calls_before if moto else Counter()
        result = ScaleRound(backend, dataset.label, len(dataset.modules), number + 1, row.requests,
                            row.p50_ms, row.p99_ms, row.errors, row.error_detail, others.stop())
        if moto:
            result.store_calls_per_request = calls_per_request(
                calls, idle_rate, len(up), wall, settings.warmup + settings.requests)
        flags = f"  ERRORS {row.error_detail}" if row.errors else ""
        print(f"  round {number + 1} {dataset.label:<5} p50 {row.p50_ms:7.2f} ms  p99 {row.p99_ms:7.2f} ms  "
              f"other {result.other_cpu:.2f}{flags}", flush=True)
        return result


def scale_verdicts(results: list[ScaleResult]) -> list[dict[str, Any]]:
    verdicts = []
    for backend in dict.fromkeys(r.backend for r in results):
        small = next(r for r in results if r.backend == backend and r.dataset == "small")
        large = next(r for r in results if r.backend == backend and r.dataset == "large")
        ratio = large.p99_ms / small.p99_ms if small.p99_ms else math.nan
        rounds = small.rounds + large.rounds
        judged = backend == "sqlite"
        met = ratio <= VERSIONS_P99_RATIO_TARGET and not any(r.errors for r in rounds)
        suffix = ""
        if any(r.errors for r in rounds):
            suffix = " (errors: not valid)"
        elif sum(r.disturbed for r in rounds) > len(rounds) // 2:
            suffix = " (not conclusive: other processes used the CPU in most rounds)"
        if not judged:
            suffix += (" (moto sorts the whole table on every Query; DynamoDB requests per versions call "
                       f"{small.store_calls_per_request:.2f} small / {large.store_calls_per_request:.2f} large)")
        status = ("MET" if met else "MISSED") if judged else "not judged"
        print(f"{backend} versions p99 at {large.modules:,} / at {small.modules} modules (median of "
              f"{len(large.rounds)} rounds): {ratio:.2f}x (target <= {VERSIONS_P99_RATIO_TARGET:g}x) {status}{suffix}")
        verdicts.append({"backend": backend, "target": "versions p99 large / small", "ratio": ratio,
                         "maximum": VERSIONS_P99_RATIO_TARGET, "met": met, "judged": judged,
                         "conclusive": judged and not suffix, "small_modules": small.modules,
                         "large_modules": large.modules})
    return verdicts


# -- the report --------------------------------------------------------------------------------


def percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"


def print_throughput(rows: list[Throughput], reference: dict[int, float], settings: Settings, wrk: Wrk) -> None:
    print()
    print(f"Part 1, throughput: {wrk.name}, {settings.connections} connections in all (split over the replicas), "
          f"{settings.warmup} s warm-up + {settings.duration} s measured per row")
    print(f"CPUs: {settings.placement.describe()}")
    header = (f"{'deployment':<21} {'endpoint':<9} {'x':>1} {'rps':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
              f"{'srv cpu':>7} {'us/req':>6} {'store cpu':>9} {'lg cpu':>6} {'other':>5} {'ddb/req':>7} {'% bare':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        label = f"{r.deployment} ({r.when})" if r.when else r.deployment
        calls = "-" if math.isnan(r.store_calls_per_request) else f"{r.store_calls_per_request:.2f}"
        flags = (" !" if r.disturbed else "") + (" ERRORS" if r.errors else "")
        print(f"{label:<21} {r.endpoint:<9} {r.replicas:>1} {r.rps:>7.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
              f"{r.errors:>6} {percent(r.server_cpu):>7} {r.server_us_per_request:>6.0f} {percent(r.store_cpu):>9} "
              f"{percent(r.loadgen_cpu):>6} "
              f"{percent(r.other_cpu):>5} {calls:>7} {percent(r.rps_vs_bare):>6}{flags}")
    print()
    print(f"reference: bare handler {reference[1]:.0f} rps as 1 process, {reference[2]:.0f} rps as 2 "
          f"(x2/x1 {reference[2] / reference[1]:.2f})")
    header = (f"{'deployment':<21} {'endpoint':<9} | {'x1 rps':>7} {'% bare':>6} {'p99':>6} | "
              f"{'x2 rps':>7} {'% bare':>6} {'p99':>6} | {'x2/x1':>5}")
    print(header)
    print("-" * len(header))
    keys = dict.fromkeys((r.deployment, r.endpoint) for r in rows if r.backend != "bare")
    for deployment, endpoint in [("bare", "bare"), *keys]:
        one, two = (
            [r for r in rows if r.deployment == deployment and r.endpoint == endpoint and r.replicas == count]
            for count in (1, 2)
        )
        if not one or not two:
            continue
        rps1, rps2 = statistics.fmean(r.rps for r in one), statistics.fmean(r.rps for r in two)
        p99_1, p99_2 = statistics.fmean(r.p99_ms for r in one), statistics.fmean(r.p99_ms for r in two)
        scaling = rps2 / rps1 if rps1 else math.nan
        print(f"{deployment:<21} {endpoint:<9} | {rps1:>7.0f} {percent(rps1 / reference[1]):>6} {p99_1:>6.2f} | "
              f"{rps2:>7.0f} {percent(rps2 / reference[2]):>6} {p99_2:>6.2f} | {scaling:>5.2f}")
    print()
    if len(settings.placement.cpus) <= 2:
        print(f"note: {len(settings.placement.cpus)} CPUs: with 2 replicas, the replicas, both wrk processes (and "
              "moto) share them, so x2/x1 shows contention, not how replicas scale on machines of their own.")
    for r in rows:
        if r.errors:
            print(f"! {r.deployment} / {r.endpoint} x{r.replicas}: {r.errors} errors {r.error_detail}: not valid")
    disturbed = [r for r in rows if r.disturbed]
    if disturbed:
        names = ", ".join(f"{r.deployment}/{r.endpoint} x{r.replicas} ({r.other_cpu:.0%})" for r in disturbed)
        print(f"warning: other processes used CPU during: {names}; those figures are disturbed.")


def print_scale(results: list[ScaleResult], settings: Settings) -> list[dict[str, Any]]:
    print()
    print(f"Part 2, versions latency at scale: cache_seconds = 0, 1 connection, {settings.rounds} rounds "
          f"(small and large in turns); median over the rounds of each round's p50 and p99")
    header = (f"{'backend':<8} {'data set':<8} {'modules':>7} {'versions':>8} {'built s':>7} | {'p50 ms':>7} "
              f"{'p99 ms':>7} | {'p99 of each round (ms)':<40} | {'ddb/req':>7} {'other max':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        each = " ".join(f"{x.p99_ms:.2f}" for x in r.rounds)
        calls = "-" if math.isnan(r.store_calls_per_request) else f"{r.store_calls_per_request:.2f}"
        other = max((x.other_cpu for x in r.rounds), default=math.nan)
        built = f"{r.build_seconds:.1f}" + ("r" if r.reused else "")
        flags = " ERRORS" if any(x.errors for x in r.rounds) else ""
        print(f"{r.backend:<8} {r.dataset:<8} {r.modules:>7,} {r.modules * len(browse.VERSIONS):>8,} {built:>7} | "
              f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f} | {each:<40} | {calls:>7} {other:>9.2f}{flags}")
    print("(built s: seconds to build the data set, r = reused from --workdir; ddb/req: DynamoDB requests "
          "per versions call)")
    print()
    return scale_verdicts(results)


def write_json(path: Path, bench: Bench, scale: Scale | None, reference: dict[int, float],
               verdicts: list[dict[str, Any]]) -> None:
    s = bench.settings
    document = {
        "loadgen": bench.wrk.name,
        "connections": s.connections,
        "duration_s": s.duration,
        "warmup_s": s.warmup,
        "placement": s.placement.describe(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "bare_rps": {str(k): v for k, v in reference.items()},
        "throughput": [
            {**asdict(r), "disturbed": r.disturbed, "server_us_per_request": r.server_us_per_request}
            for r in bench.throughput
        ],
        "scale": [
            {**{k: v for k, v in asdict(r).items() if k != "rounds"}, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
             "store_calls_per_request": r.store_calls_per_request,
             "rounds": [{**asdict(x), "disturbed": x.disturbed} for x in r.rounds]}
            for r in (scale.results if scale else [])
        ],
        "targets": verdicts,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(json_safe(document), indent=2) + "\n")
    print(f"results written to {path}")


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="1 against 2 mirror replicas on SQLite and DynamoDB, and versions "
                                     "latency at scale (see the module docstring).")
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per throughput row (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each row (default 1)")
    parser.add_argument("--connections", "-c", type=int, default=64,
                        help="concurrent connections in all, split over the replicas (default 64)")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request timeout in seconds (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds per data set (default 5)")
    parser.add_argument("--requests", type=int, default=400,
                        help="recorded requests per latency round on SQLite (default 400)")
    parser.add_argument("--dynamodb-requests", type=int, default=100,
                        help="recorded requests per latency round on DynamoDB (default 100)")
    parser.add_argument("--scale-warmup", type=int, default=20, help="warm-up requests per latency round (default 20)")
    parser.add_argument("--modules", type=int, default=10_000, help="modules in the large SQLite set (default 10,000)")
    parser.add_argument("--dynamodb-modules", type=int, default=200,
                        help="modules in the large DynamoDB set (default 200: see the docstring)")
    parser.add_argument("--only", choices=("throughput", "scale"), help="run one part only")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generators to CPUs")
    parser.add_argument("--workdir", type=Path, help="keep data sets, configs and server logs here (default: a "
                        "temporary directory, removed at the end)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the SQLite data sets in --workdir when built for the same parameters")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--check", action="store_true", help="exit 1 when the SQLite latency target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be 1..300 and --warmup 0..60")
    if not 2 <= args.connections <= 1024:
        parser.error("--connections must be 2..1024")
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be 1..50")
    if not 10 <= args.requests <= 100_000 or not 10 <= args.dynamodb_requests <= 100_000:
        parser.error("--requests and --dynamodb-requests must be 10..100000")
    if not 0 <= args.scale_warmup <= 10_000:
        parser.error("--scale-warmup must be 0..10000")
    if not browse.SMALL_COUNT < args.modules <= 1_000_000:
        parser.error(f"--modules must be {browse.SMALL_COUNT + 1}..1000000")
    if not browse.SMALL_COUNT < args.dynamodb_modules <= args.modules:
        parser.error(f"--dynamodb-modules must be {browse.SMALL_COUNT + 1}..--modules")
    if args.reuse and not args.workdir:
        parser.error("--reuse needs --workdir (a temporary directory is gone after the run)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    wrk_binary = shutil.which("wrk")
    if not wrk_binary:
        print("wrk is not on PATH; install it (apt-get install wrk)", file=sys.stderr)
        return 2
    interrupt_on_sigterm()
    # dummy credentials for moto, inherited by every process started from here: moto, the
    # replicas and the CLI (token create, dynamodb create-table); no real AWS setting leaks in
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(TEST_ENVIRONMENT)
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    placement = Placement(cpus, pin=not args.no_pin and len(cpus) >= 2)
    if placement.pin:
        os.sched_setaffinity(0, set(cpus[1:]))  # this script, the client of part 2; children are placed each
    began = time.perf_counter()
    with work_directory(args.workdir, "bench-replicas-") as workdir:
        settings = Settings(args.connections, args.duration, args.warmup, args.timeout, args.rounds, args.requests,
                            args.dynamodb_requests, args.scale_warmup, args.modules, args.dynamodb_modules, workdir,
                            args.reuse, placement)
        print(f"machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; "
              f"{placement.describe()}", flush=True)
        bench = Bench(settings, Wrk(wrk_binary, workdir, args.timeout))
        scale = Scale(bench) if args.only != "throughput" else None
        try:
            if args.only != "scale":
                bench.run_throughput()
            if scale is not None:
                scale.run()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the servers", file=sys.stderr)
            return 130
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            if not args.workdir:
                print("(run again with --workdir DIR to keep the servers' logs)", file=sys.stderr)
            return 1
        finally:
            bench.wrk.kill()
            bench.servers.stop_all()
        reference = add_ratios(bench.throughput)
        if bench.throughput:
            print_throughput(bench.throughput, reference, settings, bench.wrk)
        verdicts = print_scale(scale.results, settings) if scale else []
        print(f"run time: {time.perf_counter() - began:.0f} s")
        if args.json:
            write_json(args.json, bench, scale, reference, verdicts)
        if args.workdir:
            print(f"data sets, configs and server logs kept in {workdir}")
    errors = any(r.errors for r in bench.throughput) or any(
        x.errors for r in (scale.results if scale else []) for x in r.rounds)
    if errors:
        return 1
    if args.check and not all(v["met"] for v in verdicts if v["judged"]):
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_moto-server"]:
        moto_server_main()
    else:
        sys.exit(main(sys.argv[1:]))
