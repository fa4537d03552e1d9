#!/usr/bin/env python3
"""Benchmark of the browse and search API at scale: 10 modules against 10,000.

What it measures
----------------
Round-trip latency (not throughput) of the browse API against a real ``mirror serve`` process
(SQLite + local disk) started by this script, on two data sets built by this script:

  small   10 modules                     x 10 versions each (1.0.0 ... 1.8.0 and 2.0.0-rc.1)
  large   10,000 modules (``--modules``) x 10 versions each

Modules are spread over 50 namespaces and 3 providers (aws, google, azurerm). Each README has
a heading, a badge, a first paragraph (the ``description`` lists and search show) and a usage
section. The first paragraph names the module's component (network, storage, ...: ~10% each)
and carries marker words at known rates, so every search has a known answer:

  zephyr      rare    in ~1% of the descriptions
  encrypted   common  in ~10% of the descriptions
  network     common  a component: in ~10% of the names and descriptions
  quokka      absent  in none (the store has to look at every module to say so)

Each data set is written through the project's own store, as a real publish writes it:
``SqliteMetadataStore.publish_version`` with a ``NewVersion`` (the ``ModuleVersion`` with its
README and source, a ``module.version_released`` event, and an HCL analysis), one version at a
time in release rounds (every module's 1.0.0, then every 1.1.0...), then one read token
(``mirror.services.tokens.create_token``, namespace ``*``), and the JSONL event log is brought
up to date (``EventLogWriter.catch_up``), as the server that took those publishes would have
done. Archives are not written: no measured endpoint reads them. Building the large set takes
about a minute (timed and printed: ~0.7 ms per publish, one after the other; publishing
concurrently through ``asyncio.gather`` is 3x slower, as the store serializes its writes under
a lock). ``--workdir DIR --reuse`` keeps the databases in DIR and reuses them on the next run
when they were built for the same parameters.

Scenarios, each on both data sets (``/v1/modules`` prefix left out; ``ns`` a namespace):

  search              /search?q=WORD, cycling over the four words above (default limit, 15);
                      a quarter of the requests are the absent word, so p95 is a full scan
  search+filter       /search?q=WORD&provider=aws&namespace=ns
  list first page     ''  (the first 15 modules in address order)
  list deep page      ?offset=COUNT-5  (the last page: the store skips every module before it)
  list namespace      /ns
  versions            /ns/name/provider/versions of random modules, default cache
                      (``[metadata] cache_seconds`` = 2)
  versions, no cache  the same on a server with ``cache_seconds = 0``: every request is a store
                      query
  detail              /ns/name/provider (the latest version in detail) of random modules

One server runs at a time: the small set's, then the large set's, each first with the default
configuration, then with ``cache_seconds = 0`` for the "no cache" row. Mirror logs at ``info``
(as deployed: one line per request) into a file in the work directory. With two or more CPUs
the server is pinned to one CPU and this script, the client, to the others (``--no-pin``).
Before measuring, the script waits until the server is idle.

The client is one aiohttp session with one keep-alive connection: requests go one after the
other (concurrency 1). Each row is ``--warmup`` requests (not recorded) and then
``--requests`` recorded ones, each timed from just before the request is sent until its body
has been read. Every request carries ``Authorization: Bearer <read token>``. Every answer is
checked: status 200 and the number of modules (or versions) the data set says it must hold;
anything else counts as an error, and a row with errors is not valid.

Targets (from the issues): search p95 at 10,000 modules <= 20 ms; versions p99 at 10,000
modules <= 1.2 x its p99 at 10 modules, judged on both versions rows.

How to run (from the repository root; 2-3 minutes at the defaults: ~1 to build, 1-2 to measure)
------------------------------------------------------------------------------------------------
    .venv/bin/python scripts/bench_browse.py
    .venv/bin/python scripts/bench_browse.py --requests 1000 --json out.json
    .venv/bin/python scripts/bench_browse.py --workdir /tmp/bb --reuse  # build once, reuse after
    .venv/bin/python scripts/bench_browse.py --check    # exit 1 if a target is missed

What the numbers mean
---------------------
  p50/p95/p99 ms   client-side round trip of one request on an idle keep-alive connection
                   (loopback), nearest-rank percentiles over the recorded requests
  x p95, x p99     large / small at that percentile (1.00: the size costs nothing)
  hits             share of the row's requests the server answered from its per-module cache,
                   replayed on the client side from the request times and the cache's lifetime
                   (an entry lives ``cache_seconds`` from the miss that filled it). Random
                   modules out of 10 are all hits; out of 10,000, next to none are
  disk KB          what the server read from storage (``/proc/PID/io`` read_bytes) during the
                   row: 0 when the database was served from memory. The database file is read
                   into the OS page cache before each row
  other            CPU used by every other process during the row, in cores (hypervisor steal
                   included). A row where it reaches 0.15 is disturbed: it is measured again
                   after a 2 s pause, ``--retries`` (2) times at most, and the least disturbed
                   attempt is kept. A row still disturbed is flagged "!": the machine was not
                   quiet (a test suite, a build...), and a verdict on it is not conclusive

``--json FILE`` writes every row (per-word figures of the search rows included), the data
sets and the verdicts. The server is stopped with SIGTERM at the end, on Ctrl-C and on SIGTERM.
Exit status: 0, 1 when a row had errors or a server failed (or, with ``--check``, a target was
missed), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import math
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import structlog  # noqa: E402
from benchlib import OtherLoad, interrupt_on_sigterm, json_safe, percentile, work_directory  # noqa: E402

from mirror.domain.addresses import ModuleAddress  # noqa: E402
from mirror.domain.blobs import archive_key  # noqa: E402
from mirror.domain.models import ModuleVersion, NewVersion  # noqa: E402
from mirror.domain.readme import first_paragraph  # noqa: E402
from mirror.services.eventlog import EventLogWriter  # noqa: E402
from mirror.services.tokens import create_token  # noqa: E402
from mirror.storage.local import LocalBlobStore  # noqa: E402
from mirror.storage.sqlite import SqliteMetadataStore  # noqa: E402
from tests.live import MirrorServer, free_port, write_config  # noqa: E402

#: bump when the generated data changes, so ``--reuse`` rebuilds
GENERATOR = 1
SMALL_COUNT = 10
VERSIONS = (*(f"1.{minor}.0" for minor in range(9)), "2.0.0-rc.1")
LATEST = "1.8.0"  # the highest release (a prerelease is never the latest when a release exists)
NAMESPACES = tuple(
    f"{team}-{unit}"
    for team in ("platform", "payments", "identity", "data", "search", "retail", "mobile", "infra", "security", "ml")
    for unit in ("core", "shared", "prod", "labs", "edge")
)
PROVIDERS = ("aws", "google", "azurerm")
PROVIDER_LABELS = {"aws": "AWS", "google": "Google Cloud", "azurerm": "Azure"}
COMPONENTS = ("network", "storage", "cluster", "dns", "iam", "queue", "cache", "database", "gateway", "monitoring")
FILLER = (
    "managed", "scalable", "private", "subnets", "logging", "tags", "policies", "replication", "backup",
    "regional", "zones", "routing", "alerts", "metrics", "access", "roles", "lifecycle", "rules", "defaults",
    "custom", "account", "peering", "endpoints", "firewall", "keys", "rotation", "cross-region", "highly",
    "available", "secure", "compliant", "baseline", "optional", "outputs", "inputs", "variables", "examples",
)
#: (word, kind, share of the modules whose description gets it as a marker; None: a component)
WORDS = (
    ("zephyr", "rare", 0.01),
    ("encrypted", "common", 0.10),
    ("network", "common", None),
    ("quokka", "absent", 0.0),
)
DEFAULT_LIMIT = 15  # the API's default page size
DEEP_PAGE = 5  # modules on the deep page: it starts this many before the end
CACHE_SECONDS = 2.0  # [metadata] cache_seconds by default
EVENT_LOG_MAX_BYTES = 100 * 1024 * 1024  # [events] log_max_bytes by default
RELEASED_AT = datetime(2024, 1, 1, tzinfo=UTC)

SEARCH_P95_TARGET_MS = 20.0
VERSIONS_P99_RATIO_TARGET = 1.2
#: CPU (in cores) used by other processes during a row above which it is called disturbed
OTHER_LOAD = 0.15
IDLE_CPU = 0.05  # the server counts as idle below this share of one core ...
IDLE_WINDOW = 0.25  # ... over this many seconds
IDLE_TIMEOUT = 60.0
RETRY_PAUSE = 2.0  # seconds between the attempts at a disturbed row


# -- the data sets -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Module:
    address: ModuleAddress
    component: str
    readme: str
    description: str  # what the store keeps: the README's first paragraph
    repository: str | None  # a GitHub URL, or None for a module published by upload

    def matches(self, word: str) -> bool:
        """What search matches: the word in namespace, name, provider or description, any case."""
        a = self.address
        return any(word in text.lower() for text in (a.namespace, a.name, a.provider, self.description))


def make_module(index: int) -> Module:
    """The ``index``-th module of every data set (the same seed gives the same module)."""
    rng = random.Random(index)
    provider = PROVIDERS[(index // len(NAMESPACES)) % len(PROVIDERS)]
    component = rng.choice(COMPONENTS)
    address = ModuleAddress(NAMESPACES[index % len(NAMESPACES)], f"{component}-{index:05d}", provider)
    words = rng.sample(FILLER, rng.randint(10, 22))
    for word, _, share in WORDS:
        if share and rng.random() < share:
            words.insert(rng.randrange(len(words) + 1), word)
    paragraph = (
        f"Terraform module which creates {component} resources on {PROVIDER_LABELS[provider]},\n"
        f"with {' '.join(words)}."
    )
    source = f"{address.namespace}/{address.name}/{provider}"
    readme = (
        f"# {address.name}\n\n"
        f"[![CI](https://ci.example.com/{source}/badge.svg)](https://ci.example.com/{source})\n\n"
        f"{paragraph}\n\n"
        "## Usage\n\n"
        f'```hcl\nmodule "{component}" {{\n  source  = "registry.example.com/{source}"\n'
        '  version = "~> 1.0"\n}\n```\n'
    )
    repository = f"https://github.com/{address.namespace}/terraform-{provider}-{address.name}" if index % 2 else None
    return Module(address, component, readme, first_paragraph(readme), repository)


def analysis_of(module: Module) -> dict[str, Any]:
    """A small analysis in the shape ``mirror.formats.analysis.analyze_archive`` gives."""
    provider = module.address.provider
    root = {
        "path": "", "name": "", "readme": "", "empty": False,
        "inputs": [
            {"name": "name", "type": "string", "description": "Name prefix", "default": None, "required": True},
            {"name": "tags", "type": "map(string)", "description": "Tags", "default": {}, "required": False},
        ],
        "outputs": [{"name": "id", "description": f"ID of the {module.component}"}],
        "dependencies": [],
        "provider_dependencies": [
            {"name": provider, "namespace": "hashicorp", "source": f"hashicorp/{provider}", "version": ">= 5.0"}
        ],
        "resources": [{"name": "this", "type": f"{provider}_{module.component}"}],
    }
    return {"root": root, "submodules": [], "errors": []}


def new_version(module: Module, version: str, serial: int, blobs: LocalBlobStore) -> NewVersion:
    """What ``IngestService`` records for a publish: the version row and its release event."""
    sha256 = hashlib.sha256(f"{module.address}/{version}".encode()).hexdigest()
    key = archive_key(sha256)
    published_at = (RELEASED_AT + timedelta(minutes=serial)).isoformat(timespec="seconds").replace("+00:00", "Z")
    record = ModuleVersion(
        address=module.address,
        version=version,
        raw_version=f"v{version}" if module.repository else version,
        sha256=sha256,
        size=4_000 + int(sha256[:4], 16),
        blob_key=key,
        published_at=published_at,
        readme=module.readme,
        source=module.repository or "upload",
        commit_sha=hashlib.sha1(sha256.encode()).hexdigest() if module.repository else None,
    )
    released = {**_address_fields(module.address), "version": version, "url": blobs.url(key)}
    return NewVersion(record, [("module.version_released", released)], analysis=analysis_of(module))


def _address_fields(address: ModuleAddress) -> dict[str, str]:
    return {"namespace": address.namespace, "name": address.name, "provider": address.provider}


@dataclass
class Dataset:
    label: str
    directory: Path
    modules: list[Module]
    token: str = ""
    build_seconds: float = math.nan
    reused: bool = False
    _matches: dict[tuple[str, str | None, str | None], int] = field(default_factory=dict, repr=False)

    @property
    def db(self) -> Path:
        return self.directory / "mirror.db"

    @property
    def blobs(self) -> Path:
        return self.directory / "blobs"

    @property
    def event_log(self) -> Path:
        return self.directory / "events.jsonl"

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.json"

    def parameters(self) -> dict[str, Any]:
        return {"generator": GENERATOR, "modules": len(self.modules), "versions": list(VERSIONS)}

    def matches(self, word: str, namespace: str | None = None, provider: str | None = None) -> int:
        """How many modules a search finds (before paging), counted once per question."""
        key = (word, namespace, provider)
        if key not in self._matches:
            self._matches[key] = sum(
                1
                for m in self.modules
                if m.matches(word)
                and (namespace is None or m.address.namespace == namespace)
                and (provider is None or m.address.provider == provider)
            )
        return self._matches[key]


def load_manifest(dataset: Dataset) -> bool:
    """Take the token and build time of a data set built before for the same parameters."""
    try:
        manifest = json.loads(dataset.manifest.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("parameters") != dataset.parameters() or not dataset.db.exists():
        return False
    dataset.token, dataset.build_seconds, dataset.reused = manifest["token"], manifest["build_seconds"], True
    return True


async def build(dataset: Dataset) -> None:
    """Publish every version through the store, mint the read token, write the event log."""
    shutil.rmtree(dataset.directory, ignore_errors=True)
    dataset.blobs.mkdir(parents=True)
    blobs = LocalBlobStore(dataset.blobs)
    total = len(dataset.modules) * len(VERSIONS)
    started = time.perf_counter()
    store = SqliteMetadataStore(dataset.db)
    await store.open()
    try:
        serial = 0
        for version in VERSIONS:  # release rounds: every module's 1.0.0, then every 1.1.0...
            for module in dataset.modules:
                outcome = await store.publish_version(new_version(module, version, serial, blobs))
                if outcome.status != "created":
                    raise RuntimeError(f"publishing {module.address} {version}: {outcome.status}")
                serial += 1
            if total >= 10_000:
                print(f"    {serial:,} of {total:,} versions ({time.perf_counter() - started:.0f} s)", flush=True)
        _, dataset.token = await create_token(store, "*", "read", "bench_browse")
        writer = EventLogWriter(store, dataset.event_log, max_bytes=EVENT_LOG_MAX_BYTES)
        await writer.catch_up()
        await writer.stop()
    finally:
        await store.close()
    dataset.build_seconds = time.perf_counter() - started
    manifest = {"parameters": dataset.parameters(), "token": dataset.token, "build_seconds": dataset.build_seconds}
    dataset.manifest.write_text(json.dumps(manifest) + "\n")


def quiet_mirror_logs() -> None:
    """Mirror's own log lines while this process builds (the event log's "open") stay out of the
    report; warnings still show."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def prepare(dataset: Dataset, reuse: bool) -> None:
    total = len(dataset.modules) * len(VERSIONS)
    if reuse and load_manifest(dataset):
        print(f"[{dataset.label}] reusing {dataset.db} ({total:,} versions, built in "
              f"{dataset.build_seconds:.1f} s)", flush=True)
        return
    print(f"[{dataset.label}] building {len(dataset.modules):,} modules x {len(VERSIONS)} versions", flush=True)
    asyncio.run(build(dataset))
    size = dataset.db.stat().st_size / 2**20
    print(f"[{dataset.label}] built in {dataset.build_seconds:.1f} s "
          f"({dataset.build_seconds / total * 1e3:.2f} ms per publish, database {size:.0f} MB)", flush=True)


# -- requests and the checks of their answers --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    path: str
    check: Callable[[Any], bool]
    label: str = ""  # the search word, for the per-word figures
    module: ModuleAddress | None = None  # the catalog entry it reads, for the hit replay


def module_count(expected: int) -> Callable[[Any], bool]:
    return lambda body: len(body["modules"]) == expected


def versions_ok(body: Any) -> bool:
    return [v["version"] for v in body["modules"][0]["versions"]][:2] == ["2.0.0-rc.1", LATEST] and len(
        body["modules"][0]["versions"]
    ) == len(VERSIONS)


def detail_ok(body: Any) -> bool:
    return body["version"] == LATEST and len(body["versions"]) == len(VERSIONS) and bool(body["description"])


def module_path(address: ModuleAddress) -> str:
    return f"/v1/modules/{address.namespace}/{address.name}/{address.provider}"


def search_probes(dataset: Dataset, count: int, rng: random.Random) -> list[Probe]:
    words = [word for word, _, _ in WORDS]
    return [
        Probe(f"/v1/modules/search?q={word}", module_count(min(DEFAULT_LIMIT, dataset.matches(word))), word)
        for word in (words[k % len(words)] for k in range(count))
    ]


def search_filter_probes(dataset: Dataset, count: int, rng: random.Random) -> list[Probe]:
    words = [word for word, _, _ in WORDS]
    namespaces = sorted({m.address.namespace for m in dataset.modules if m.address.provider == "aws"})
    probes = []
    for k in range(count):
        word, namespace = words[k % len(words)], rng.choice(namespaces)
        expected = min(DEFAULT_LIMIT, dataset.matches(word, namespace, "aws"))
        path = f"/v1/modules/search?q={word}&provider=aws&namespace={namespace}"
        probes.append(Probe(path, module_count(expected), word))
    return probes


def list_first_probes(dataset: Dataset, count: int, rng: random.Random) -> list[Probe]:
    return [Probe("/v1/modules", module_count(min(DEFAULT_LIMIT, len(dataset.modules))))] * count


def list_deep_probes(dataset: Dataset, count: int, rng: random.Random) -> list[Probe]:
    offset = max(0, len(dataset.modules) - DEEP_PAGE)
    return [Probe(f"/v1/modules?offset={offset}", module_count(len(dataset.modules) - offset))] * count


def list_namespace_probes(dataset: Dataset, count: int, rng: random.Random) -> list[Probe]:
    sizes: dict[str, int] = {}
    for m in dataset.modules:
        sizes[m.address.namespace] = sizes.get(m.address.namespace, 0) + 1
    namespaces = sorted(sizes)
    return [
        Probe(f"/v1/modules/{namespace}", module_count(min(DEFAULT_LIMIT, sizes[namespace])))
        for namespace in (rng.choice(namespaces) for _ in range(count))
    ]


def versions_probes(dataset: Dataset, count: int, rng: random.Random) -> list[Probe]:
    return [
        Probe(module_path(m.address) + "/versions", versions_ok, module=m.address)
        for m in (rng.choice(dataset.modules) for _ in range(count))
    ]


def detail_probes(dataset: Dataset, count: int, rng: random.Random) -> list[Probe]:
    return [
        Probe(module_path(m.address), detail_ok, module=m.address)
        for m in (rng.choice(dataset.modules) for _ in range(count))
    ]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    probes: Callable[[Dataset, int, random.Random], list[Probe]]
    cache_seconds: float = CACHE_SECONDS
    uses_catalog: bool = False


SCENARIOS = (
    Scenario("search", search_probes),
    Scenario("search+filter", search_filter_probes),
    Scenario("list first page", list_first_probes),
    Scenario("list deep page", list_deep_probes),
    Scenario("list namespace", list_namespace_probes),
    Scenario("versions", versions_probes, uses_catalog=True),
    Scenario("versions, no cache", versions_probes, cache_seconds=0.0, uses_catalog=True),
    Scenario("detail", detail_probes, uses_catalog=True),
)


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Settings:
    requests: int
    warmup: int
    modules: int
    workdir: Path
    reuse: bool
    retries: int
    server_cpus: set[int] | None


@dataclass
class Row:
    scenario: str
    dataset: str
    modules: int
    cache_seconds: float
    attempts: int = 1  # measurements made to find a quiet window (the row is the least disturbed)
    requests: int = 0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    errors: int = 0
    error_detail: dict[str, int] = field(default_factory=dict)
    cache_hits: float | None = None  # share of recorded requests answered from the catalog
    other_cpu: float = math.nan
    disk_read_kb: float = math.nan  # read from storage by the server during the recorded requests
    by_word: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def disturbed(self) -> bool:
        return self.other_cpu >= OTHER_LOAD


def warm_page_cache(db: Path) -> None:
    """Read the database into the OS page cache, as on a host whose memory holds it. (Some
    kernels page out file pages idle for a few seconds, DAMON_RECLAIM for one: rows would then
    time disk reads of whatever the previous rows did not touch.)"""
    for path in (db, db.with_name(db.name + "-wal")):
        with contextlib.suppress(FileNotFoundError), path.open("rb") as file:
            while file.read(2**20):
                pass


def storage_read_bytes(pid: int) -> float:
    """Bytes a process (all its threads) has had fetched from storage: page cache misses."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return math.nan
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return float(fields.get("read_bytes", "nan"))


class CacheReplay:
    """The server's per-module catalog replayed from the client's request times: an entry lives
    ``ttl`` seconds from the miss that filled it."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.expires: dict[tuple[str, str, str], float] = {}

    def hit(self, address: ModuleAddress, at: float) -> bool:
        key = (address.namespace.lower(), address.name.lower(), address.provider)
        if self.expires.get(key, -math.inf) > at:
            return True
        self.expires[key] = at + self.ttl
        return False


async def fetch(session: aiohttp.ClientSession, url: str, headers: dict[str, str], probe: Probe) -> tuple[float, str]:
    """One request: its round trip in seconds and "" or what was wrong with the answer."""
    began = time.perf_counter()
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return time.perf_counter() - began, type(exc).__name__
    elapsed = time.perf_counter() - began
    if status != 200:
        return elapsed, f"status {status}"
    try:
        return elapsed, "" if probe.check(json.loads(body)) else "wrong answer"
    except (ValueError, KeyError, IndexError, TypeError):
        return elapsed, "wrong answer"


async def measure(server: MirrorServer, dataset: Dataset, scenario: Scenario, settings: Settings, attempt: int) -> Row:
    rng = random.Random(f"{scenario.name}/{dataset.label}/{attempt}")
    probes = scenario.probes(dataset, settings.warmup + settings.requests, rng)
    headers = {"Authorization": f"Bearer {dataset.token}"}
    replay = CacheReplay(scenario.cache_seconds)
    row = Row(scenario.name, dataset.label, len(dataset.modules), scenario.cache_seconds)
    latencies: dict[str, list[float]] = {}
    hits = 0
    assert server.process is not None
    pid, read_before = server.process.pid, math.nan
    warm_page_cache(dataset.db)
    gc.collect()
    gc.freeze()  # the data sets are long-lived: no collection pass over them inside a timed request
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        others = OtherLoad(pid)
        for number, probe in enumerate(probes):
            if number == settings.warmup:
                others.start()
                read_before = storage_read_bytes(pid)
            hit = probe.module is not None and replay.hit(probe.module, time.monotonic())
            elapsed, problem = await fetch(session, server.url + probe.path, headers, probe)
            if problem:
                row.error_detail[problem] = row.error_detail.get(problem, 0) + 1
            if number >= settings.warmup:
                latencies.setdefault(probe.label, []).append(elapsed * 1000)
                hits += hit
        row.other_cpu = others.stop()
        row.disk_read_kb = (storage_read_bytes(pid) - read_before) / 1024
    every = [ms for values in latencies.values() for ms in values]
    row.requests, row.errors = len(every), sum(row.error_detail.values())
    row.p50_ms, row.p95_ms, row.p99_ms = (percentile(every, pct) for pct in (50, 95, 99))
    row.max_ms = max(every, default=math.nan)
    if scenario.uses_catalog:
        row.cache_hits = hits / len(every) if every else math.nan
    if len(latencies) > 1:
        row.by_word = {
            word: {"requests": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
                   "p99_ms": percentile(values, 99), "matches": dataset.matches(word)}
            for word, values in latencies.items()
        }
    return row


# -- servers -----------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin_process(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid``; threads it starts later inherit the mask."""
    if not cpus:
        return
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)


def wait_idle(pid: int) -> None:
    """Until the server uses under IDLE_CPU of a core over IDLE_WINDOW (start-up work done)."""
    deadline = time.monotonic() + IDLE_TIMEOUT
    while time.monotonic() < deadline:
        before = process_cpu_seconds(pid)
        time.sleep(IDLE_WINDOW)
        if (process_cpu_seconds(pid) - before) / IDLE_WINDOW < IDLE_CPU:
            return
    raise RuntimeError(f"the server was still busy {IDLE_TIMEOUT:.0f} s after it started")


@contextlib.contextmanager
def running_server(dataset: Dataset, cache_seconds: float, settings: Settings) -> Iterator[MirrorServer]:
    port = free_port()
    config = {
        "server": {"port": port},
        "metadata": {"path": str(dataset.db), "cache_seconds": cache_seconds},
        "blobs": {"path": str(dataset.blobs)},
        "events": {"log_path": str(dataset.event_log)},
        "logging": {"level": "info"},
    }
    config_file = write_config(settings.workdir / f"{dataset.label}-cache{cache_seconds:g}.toml", config)
    server = MirrorServer(config_file, port, settings.workdir)
    try:
        server.start()
        assert server.process is not None
        pin_process(server.process.pid, settings.server_cpus)
        wait_idle(server.process.pid)
        yield server
    finally:
        server.stop()


def run(settings: Settings) -> tuple[list[Dataset], list[Row]]:
    datasets = [
        Dataset("small", settings.workdir / "small", [make_module(i) for i in range(SMALL_COUNT)]),
        Dataset("large", settings.workdir / "large", [make_module(i) for i in range(settings.modules)]),
    ]
    quiet_mirror_logs()
    for dataset in datasets:
        prepare(dataset, settings.reuse)
    rows: list[Row] = []
    for dataset in datasets:
        for cache_seconds in sorted({s.cache_seconds for s in SCENARIOS}, reverse=True):
            print(f"[{dataset.label}] mirror serve, {len(dataset.modules):,} modules, "
                  f"cache_seconds = {cache_seconds:g}", flush=True)
            with running_server(dataset, cache_seconds, settings) as server:
                rows += [
                    measure_quietest(server, dataset, scenario, settings)
                    for scenario in SCENARIOS
                    if scenario.cache_seconds == cache_seconds
                ]
    return datasets, rows


def measure_quietest(server: MirrorServer, dataset: Dataset, scenario: Scenario, settings: Settings) -> Row:
    """The row, measured again (``--retries`` times at most) while other processes disturb it;
    the least disturbed attempt is kept. An attempt with errors ends the search: it is the row."""
    best: Row | None = None
    for attempt in range(settings.retries + 1):
        if attempt:
            time.sleep(RETRY_PAUSE)
        row = asyncio.run(measure(server, dataset, scenario, settings, attempt))
        row.attempts = attempt + 1
        flags = f"  ERRORS {row.error_detail}" if row.errors else ""
        print(f"  {scenario.name:<19} p50 {row.p50_ms:6.2f}  p95 {row.p95_ms:6.2f}  p99 {row.p99_ms:6.2f} ms  "
              f"disk {row.disk_read_kb:.0f} KB  other {row.other_cpu:.2f}{' (disturbed)' if row.disturbed else ''}"
              f"{flags}", flush=True)
        if row.errors:
            return row
        if best is None or not row.other_cpu >= best.other_cpu:
            best = row
        if not row.disturbed:
            break
    assert best is not None
    best.attempts = row.attempts
    return best


# -- the report --------------------------------------------------------------------------------


def find(rows: list[Row], scenario: str, dataset: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.dataset == dataset), None)


def ratio(large: float, small: float) -> float:
    return large / small if small else math.nan


def print_table(rows: list[Row], settings: Settings, large_count: int) -> None:
    print()
    print(f"latency in ms, 1 connection, {settings.warmup} warm-up + {settings.requests} recorded requests per row; "
          f"small = {SMALL_COUNT} modules, large = {large_count:,} modules, {len(VERSIONS)} versions each")
    header = (f"{'scenario':<19} | {'small p50':>9} {'p95':>6} {'p99':>6} | {'large p50':>9} {'p95':>6} {'p99':>6} "
              f"| {'x p95':>5} {'x p99':>5} | {'hits s/l':>9} | {'disk KB s/l':>11} | {'other s/l':>9}")
    print(header)
    print("-" * len(header))
    for scenario in SCENARIOS:
        small, large = find(rows, scenario.name, "small"), find(rows, scenario.name, "large")
        if small is None or large is None:
            continue
        hits = (f"{small.cache_hits:.0%}/{large.cache_hits:.0%}"
                if small.cache_hits is not None and large.cache_hits is not None else "")
        flags = " !" if small.disturbed or large.disturbed else ""
        flags += " ERRORS" if small.errors or large.errors else ""
        print(f"{scenario.name:<19} | {small.p50_ms:>9.2f} {small.p95_ms:>6.2f} {small.p99_ms:>6.2f} | "
              f"{large.p50_ms:>9.2f} {large.p95_ms:>6.2f} {large.p99_ms:>6.2f} | "
              f"{ratio(large.p95_ms, small.p95_ms):>5.2f} {ratio(large.p99_ms, small.p99_ms):>5.2f} | "
              f"{hits:>9} | {f'{small.disk_read_kb:.0f}/{large.disk_read_kb:.0f}':>11} | "
              f"{small.other_cpu:>4.2f}/{large.other_cpu:<4.2f}{flags}")
    print()


def print_words(rows: list[Row]) -> None:
    for row in rows:
        if not row.by_word:
            continue
        parts = [f"{word} ({figures['matches']:,} matches) p50 {figures['p50_ms']:.2f} p95 {figures['p95_ms']:.2f}"
                 for word, figures in row.by_word.items()]
        print(f"{row.scenario}, {row.dataset}, by word: " + "; ".join(parts))
    print()


def print_notes(rows: list[Row], large_count: int) -> None:
    print(f"hits: versions and detail answered from the per-module catalog (cache_seconds = {CACHE_SECONDS:g}, "
          f"replayed): random modules out of {SMALL_COUNT} are")
    print(f"  nearly all hits, out of {large_count:,} nearly all misses; 'no cache' is the store's query at both "
          "sizes. detail reads the")
    print("  store for the analysis and the download count on every request, hit or miss.")
    for row in rows:
        if row.errors:
            print(f"! {row.scenario} / {row.dataset}: {row.errors} errors {row.error_detail}: not valid")
    disturbed = [r for r in rows if r.disturbed]
    if disturbed:
        names = ", ".join(f"{r.scenario}/{r.dataset} ({r.other_cpu:.2f}, {r.attempts} attempts)" for r in disturbed)
        print(f"warning: other processes used CPU during: {names} (in cores). The machine was not quiet, so those "
              "rows are disturbed; run again when nothing else is running.")


def verdict(label: str, value: float, target: float, unit: str, rows: list[Row]) -> dict[str, Any]:
    met = value <= target and not any(r.errors for r in rows)
    suffix = ""
    if any(r.errors for r in rows):
        suffix = " (errors: not valid)"
    elif any(r.disturbed for r in rows):
        suffix = " (not conclusive: other processes used the CPU)"
    print(f"{label}: {value:.2f}{unit} (target <= {target:g}{unit}) {'MET' if met else 'MISSED'}{suffix}")
    return {"target": label, "value": value, "maximum": target, "met": met, "conclusive": not suffix}


def verdicts(rows: list[Row], large_count: int) -> list[dict[str, Any]]:
    results = []
    search = find(rows, "search", "large")
    if search is not None:
        results.append(verdict(f"search p95 at {large_count:,} modules", search.p95_ms, SEARCH_P95_TARGET_MS,
                               " ms", [search]))
    for scenario in ("versions", "versions, no cache"):
        small, large = find(rows, scenario, "small"), find(rows, scenario, "large")
        if small is not None and large is not None:
            hits = f" (hits {small.cache_hits:.0%} / {large.cache_hits:.0%})" if scenario == "versions" else ""
            results.append(verdict(f"{scenario}{hits}: p99 at {large_count:,} / at {SMALL_COUNT} modules",
                                   ratio(large.p99_ms, small.p99_ms), VERSIONS_P99_RATIO_TARGET, "x", [small, large]))
    return results


def write_json(path: Path, datasets: list[Dataset], rows: list[Row], results: list[dict[str, Any]],
               settings: Settings) -> None:
    document = {
        "requests": settings.requests,
        "warmup": settings.warmup,
        "server_cpus": sorted(settings.server_cpus) if settings.server_cpus else None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "datasets": [
            {"label": d.label, "modules": len(d.modules), "versions": len(d.modules) * len(VERSIONS),
             "build_seconds": d.build_seconds, "reused": d.reused,
             "matches": {word: d.matches(word) for word, _, _ in WORDS}}
            for d in datasets
        ],
        "results": [{**asdict(r), "disturbed": r.disturbed} for r in rows],
        "targets": results,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(json_safe(document), indent=2) + "\n")
    print(f"results written to {path}")


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Browse and search API latency at 10 and 10,000 modules "
                                     "(see the module docstring).")
    parser.add_argument("--requests", type=int, default=500, help="recorded requests per row (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up requests per row (default 50)")
    parser.add_argument("--modules", type=int, default=10_000, help="modules in the large set (default 10,000)")
    parser.add_argument("--workdir", type=Path, help="keep databases and server logs here (default: a temporary "
                        "directory, removed at the end)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the data sets in --workdir when they were built for the same parameters")
    parser.add_argument("--retries", type=int, default=2,
                        help="measure a disturbed row again up to this many times, keeping the least disturbed "
                        "attempt (default 2)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and the client to CPUs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if not 10 <= args.requests <= 100_000 or not 0 <= args.warmup <= 10_000:
        parser.error("--requests must be 10..100000 and --warmup 0..10000")
    if not SMALL_COUNT < args.modules <= 1_000_000:
        parser.error(f"--modules must be {SMALL_COUNT + 1}..1000000")
    if not 0 <= args.retries <= 20:
        parser.error("--retries must be 0..20")
    if args.reuse and not args.workdir:
        parser.error("--reuse needs --workdir (a temporary directory is gone after the run)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    interrupt_on_sigterm()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = None
    if not args.no_pin and len(cpus) >= 2:
        server_cpus = {cpus[0]}
        os.sched_setaffinity(0, set(cpus[1:]))  # the client; the servers are pinned when started
    with work_directory(args.workdir, "bench-browse-") as workdir:
        settings = Settings(args.requests, args.warmup, args.modules, workdir, args.reuse, args.retries, server_cpus)
        pinned = f"server on CPU {cpus[0]}, client on CPU {cpus[1:]}" if server_cpus else "not pinned"
        print(f"machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; "
              f"{pinned}", flush=True)
        try:
            datasets, rows = run(settings)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the server", file=sys.stderr)
            return 130
        except (RuntimeError, OSError) as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            if not args.workdir:
                print("(run again with --workdir DIR to keep the server's logs)", file=sys.stderr)
            return 1
        for dataset in datasets:
            how = "reused, built" if dataset.reused else "built"
            print(f"{dataset.label}: {len(dataset.modules):,} modules, {len(dataset.modules) * len(VERSIONS):,} "
                  f"versions, {how} in {dataset.build_seconds:.1f} s; search matches: "
                  + ", ".join(f"{word} {dataset.matches(word):,} ({kind})" for word, kind, _ in WORDS))
        print_table(rows, settings, args.modules)
        print_words(rows)
        print_notes(rows, args.modules)
        print()
        results = verdicts(rows, args.modules)
        if args.json:
            write_json(args.json, datasets, rows, results, settings)
        if args.workdir:
            print(f"data sets and server logs kept in {workdir}")
    if any(r.errors for r in rows):
        return 1
    if args.check and not all(v["met"] for v in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
