#!/usr/bin/env python3
"""Benchmark of ``mirror sync`` against a plain copy of the same archives.

What it measures
----------------
An upstream ``mirror serve`` (tests/live.py MirrorServer, its own process, SQLite + local disk,
downloads in ``proxy`` mode) holds ``--modules`` modules (default 50) of one version each, every
archive about ``--size-mib`` MiB (default 1; random bytes, so gzip cannot shrink them). Then, in
this process, with the same ``--jobs`` concurrent copies (default 4) and one keep-alive session:

  plain copy   what any script would do to fetch the archives and nothing else: per module
               GET /versions, GET /:version/download (token sent), GET the location (no token),
               streamed to a file on disk. No checks, no hashing, no store.
  sync         ``Syncer.sync_modules`` (mirror/services/sync.py), the engine behind ``mirror sync``, into
               an empty registry (SQLite + local disk blobs): the same three requests per
               module, the archive streamed to the spool and hashed, then ``Ingestor.publish``:
               archive checks (gzip + tar read to the end), HCL analysis, the blob copied into the
               content-addressed store, the version and its events written in one transaction.
  sync (CLI)   ``mirror sync --upstream URL SPEC ...`` as a subprocess into another empty
               registry: the above plus interpreter start-up and imports (one run).

Each of the first two is run ``--rounds`` times (default 3), alternating, into fresh targets; the
table shows the median round. ``ratio`` is sync's throughput over the plain copy's (1.00 would
mean ingesting costs nothing). After every sync round the downstream is checked: every version
is there with the upstream's sha256.

How to run (from the repository root, ~30 s at the defaults)
------------------------------------------------------------
    .venv/bin/python scripts/bench_sync.py
    .venv/bin/python scripts/bench_sync.py --modules 200 --size-mib 0.25 --jobs 8 --json out.json

Exit status: 0, 1 when a run fails or the downstream does not match, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp
from benchlib import interrupt_on_sigterm, work_directory

MiB = 1024 * 1024
NAMESPACE = "bench"


@dataclass
class Row:
    name: str
    seconds: float
    modules: int
    bytes: int

    @property
    def modules_per_second(self) -> float:
        return self.modules / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.bytes / MiB / self.seconds


def mirror_config(root: Path, port: int) -> Path:
    from tests.live import write_config

    root.mkdir(parents=True, exist_ok=True)
    return write_config(
        root / "mirror.toml",
        {
            "server": {"port": port, "spool_dir": str(root / "spool")},
            "metadata": {"path": str(root / "mirror.db")},
            "blobs": {"path": str(root / "blobs")},
            "events": {"log_path": str(root / "events.jsonl")},
            "logging": {"level": "warning"},
        },
    )


async def admin_token(config_file: Path) -> str:
    from mirror.cli.common import cli_config, with_store
    from mirror.services.tokens import create_token

    _, secret = await with_store(cli_config(config_file), create_token, "*", "admin")
    return secret


def module_archive(work: Path, index: int, size: int) -> bytes:
    from mirror.formats.archive import pack_directory

    root = work / "src" / f"m{index:03d}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.tf").write_text(f'variable "name" {{\n  default = "m{index}"\n}}\noutput "id" {{ value = var.name }}\n')
    (root / "payload.bin").write_bytes(os.urandom(size))
    out = io.BytesIO()
    pack_directory(root, out)
    return out.getvalue()


async def publish_all(url: str, token: str, work: Path, modules: int, size: int) -> dict[str, str]:
    """Publish the modules; {address: sha256}."""
    published: dict[str, str] = {}
    semaphore = asyncio.Semaphore(8)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:

        async def one(index: int) -> None:
            body = await asyncio.to_thread(module_archive, work, index, size)
            address = f"{NAMESPACE}/m{index:03d}/aws"
            async with semaphore, session.put(f"{url}/api/v1/modules/{address}/1.0.0", data=body) as response:
                if response.status != 201:
                    raise RuntimeError(f"publishing {address}: {response.status} {await response.text()}")
                published[address] = (await response.json())["sha256"]

        await asyncio.gather(*(one(i) for i in range(modules)))
    return published


async def plain_copy(url: str, token: str, addresses: list[str], dest: Path, jobs: int) -> Row:
    """The baseline: the protocol's three GETs per module, the archive streamed to disk."""
    dest.mkdir(parents=True)
    semaphore = asyncio.Semaphore(jobs)
    total = 0
    auth = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:

        async def one(address: str) -> None:
            nonlocal total
            async with semaphore:
                base = f"{url}/v1/modules/{address}"
                async with session.get(f"{base}/versions", headers=auth) as response:
                    version = (await response.json())["modules"][0]["versions"][0]["version"]
                async with session.get(f"{base}/{version}/download", headers=auth) as response:
                    location = response.headers["X-Terraform-Get"]
                async with session.get(url + location if location.startswith("/") else location) as response:
                    if response.status != 200:
                        raise RuntimeError(f"GET {address} archive: {response.status}")
                    with (dest / f"{address.replace('/', '-')}.tar.gz").open("wb") as out:
                        async for chunk in response.content.iter_chunked(256 * 1024):
                            out.write(chunk)
                            total += len(chunk)

        await asyncio.gather(*(one(address) for address in addresses))
    return Row("plain copy", time.perf_counter() - started, len(addresses), total)


async def sync_engine(url: str, token: str, addresses: list[str], target: Path, jobs: int, expected: dict[str, str]) -> Row:
    from mirror.cli.common import cli_config, offline_registry
    from mirror.domain.addresses import ModuleAddress
    from mirror.formats.archive import ArchiveLimits
    from mirror.services.sync import Syncer
    from mirror.integrations.upstream.client import RegistryClient
    from mirror.integrations.upstream.fetch import Fetcher
    from mirror.domain.specs import ModuleSpec

    config = cli_config(mirror_config(target, 0))
    specs = [ModuleSpec.parse(address) for address in addresses]
    async with offline_registry(config) as down, aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        fetcher = Fetcher(session, spool_dir=config.server.spool_dir, limits=ArchiveLimits())
        syncer = Syncer(store=down.store, ingestor=down.ingestor, fetcher=fetcher, jobs=jobs, on_line=lambda line: None)
        started = time.perf_counter()
        await syncer.sync_modules(RegistryClient(session, url, token=token), specs)
        seconds = time.perf_counter() - started
        await fetcher.close()
        if not syncer.report.ok or len(syncer.report.results) != len(addresses):
            raise RuntimeError("sync failed:\n" + "\n".join(r.line() for r in syncer.report.results if not r.ok))
        for address, sha256 in expected.items():
            stored = await down.store.get_version(ModuleAddress.parse(address), "1.0.0")
            if stored is None or stored.sha256 != sha256:
                raise RuntimeError(f"{address}: the downstream copy does not match the upstream's sha256")
    return Row("sync", seconds, len(addresses), sum(r.size for r in syncer.report.results))


def sync_cli(url: str, token: str, addresses: list[str], target: Path, jobs: int) -> Row:
    config_file = mirror_config(target, 0)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MIRROR_")}
    env["MIRROR_UPSTREAM_TOKEN"] = token
    command = [sys.executable, "-m", "mirror", "sync", "--config", str(config_file), "--jobs", str(jobs),
               "--upstream", url, *addresses]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"mirror sync exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    copied = sum(1 for line in done.stdout.splitlines() if "] copied " in line)
    if copied != len(addresses):
        raise RuntimeError(f"mirror sync copied {copied} of {len(addresses)} modules")
    size = sum(path.stat().st_size for path in (target / "blobs").rglob("*.tar.gz"))
    return Row("sync (CLI)", seconds, len(addresses), size)


def report(rows: dict[str, Row], args: argparse.Namespace) -> dict[str, Any]:
    plain = rows["plain copy"]
    print()
    print(f"{args.modules} modules x {args.size_mib:g} MiB, {args.jobs} at a time, median of {args.rounds} rounds "
          f"(CLI: one run)")
    print(f"{'':<12} {'seconds':>8} {'modules/s':>10} {'MB/s':>8} {'ratio':>6}")
    for row in rows.values():
        ratio = row.mb_per_second / plain.mb_per_second
        print(f"{row.name:<12} {row.seconds:>8.2f} {row.modules_per_second:>10.1f} {row.mb_per_second:>8.1f} {ratio:>6.2f}")
    return {name: {**asdict(row), "modules_per_second": row.modules_per_second, "mb_per_second": row.mb_per_second}
            for name, row in rows.items()}


async def run(args: argparse.Namespace, work: Path) -> dict[str, Row]:
    from tests.live import MirrorServer, free_port

    port = free_port()
    upstream_config = mirror_config(work / "upstream", port)
    token = await admin_token(upstream_config)
    server = MirrorServer(upstream_config, port, work / "upstream").start()
    try:
        print(f"publishing {args.modules} modules of {args.size_mib:g} MiB to {server.url}", flush=True)
        published = await publish_all(server.url, token, work, args.modules, int(args.size_mib * MiB))
        addresses = sorted(published)
        rounds: dict[str, list[Row]] = {"plain copy": [], "sync": []}
        for number in range(args.rounds):
            print(f"round {number + 1}/{args.rounds}", flush=True)
            rounds["plain copy"].append(await plain_copy(server.url, token, addresses, work / f"plain-{number}", args.jobs))
            rounds["sync"].append(await sync_engine(server.url, token, addresses, work / f"sync-{number}", args.jobs, published))
        rows = {name: sorted(results, key=lambda r: r.seconds)[len(results) // 2] for name, results in rounds.items()}
        rows["sync (CLI)"] = await asyncio.to_thread(sync_cli, server.url, token, addresses, work / "sync-cli", args.jobs)
        return rows
    finally:
        server.stop()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="mirror sync throughput against a plain copy (see the module docstring).")
    parser.add_argument("--modules", type=int, default=50, help="modules published upstream (default 50)")
    parser.add_argument("--size-mib", type=float, default=1.0, help="archive size of each, in MiB (default 1)")
    parser.add_argument("--jobs", type=int, default=4, help="concurrent copies, for both (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, alternating; the median is shown (default 3)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if not 1 <= args.modules <= 10_000 or not 0.001 <= args.size_mib <= 90 or not 1 <= args.jobs <= 64:
        parser.error("--modules must be 1..10000, --size-mib 0.001..90 and --jobs 1..64")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1..20")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from mirror.app.logs import configure_logging

    configure_logging("warning", "console")

    interrupt_on_sigterm()
    with work_directory(args.workdir, "bench-sync-") as work:
        try:
            rows = asyncio.run(run(args, work))
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 1
        results = report(rows, args)
        if args.json:
            args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json), "workdir": str(args.workdir)},
                                             "results": results}, indent=2))
            print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
