#!/usr/bin/env python3
"""Benchmark of the event log's two consumers: the JSONL file log and the webhook fan-out.

What it measures
----------------
(a) log append   how fast ``EventLogWriter.catch_up()`` (mirror/services/eventlog.py) appends
                 events that are already in the events table to a fresh JSONL file: batches of
                 1000 events, each written, flushed and fsynced, the store's "log" cursor advanced
                 after each batch. The events (``--events``, 20,000 by default) are inserted first
                 with ONE direct sqlite3 transaction (``INSERT INTO events``) into a database
                 created by ``SqliteMetadataStore.open()`` (so the schema is the real one); the
                 publish path is not used because it would also write versions and blobs and only
                 the log is measured. Each event is a realistic ``module.version_released``
                 envelope of ~330 bytes. Two rows: no rotation (``log_max_bytes`` 1 GiB) and
                 rotation every ``--rotate-mib`` MiB (default 1), which adds a close + rename +
                 directory fsync per rotated file.
(b) fan-out      a live ``mirror serve`` (tests/live.py MirrorServer, its own process) configured
                 with 10 ``[[webhooks.subscriptions]]`` (``--subscribers``) pointing at 10 aiohttp
                 receiver apps on 127.0.0.1 that run in this script's event loop, answer 204 and
                 count. Each delivery is a POST with X-Mirror-Event, X-Mirror-Delivery and
                 X-Mirror-Signature-256 (``sha256=`` HMAC-SHA256 of the body with the
                 subscription's secret); the receivers check the signature and record the body's
                 ``serial``. After a probe event shows that deliveries arrive,
                 ``--fanout-events`` (2,000 by default) events are inserted into the server's
                 database in one sqlite3 transaction (as in (a); the server's dispatcher sees
                 them through its polling, as it would see events written by another replica or
                 by the CLI), and the clock runs from just before that insert until every
                 receiver holds every serial. If mirror serve has no dispatcher (no delivery of
                 the probe within ``--probe-timeout`` s) the row says "dispatcher not available".

Everything runs on 127.0.0.1; the server is stopped with SIGTERM at the end and on Ctrl-C.

How to run (from the repository root, ~30 s at the defaults)
------------------------------------------------------------
    .venv/bin/python scripts/bench_events.py
    .venv/bin/python scripts/bench_events.py --events 100000 --fanout-events 5000 --json out.json
    .venv/bin/python scripts/bench_events.py --skip-fanout          # part (a) only

What the numbers mean
---------------------
  events/s     events written to the log (a), or events delivered to EVERY subscriber (b), per
               second of wall-clock time; deliveries/s in (b) is that times the subscribers
  MB/s         bytes of JSONL written per second (a); bytes of request bodies received by all
               subscribers together per second (b)
  fsyncs       file fsyncs in (a): one per batch of at most 1000 events, plus one per rotation
  files        files of the log at the end (current + rotated) in (a)
  bad sig      deliveries whose signature did not verify (b); anything but 0 makes the row invalid
  dup          deliveries of a serial a receiver already had (b; at-least-once allows some)

``--json FILE`` writes every row plus the settings. Exit status: 0, 1 when a run fails (or a row
is invalid), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import platform
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from benchlib import interrupt_on_sigterm, json_safe, work_directory

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
BATCH = 1000  # EventLogWriter's events per fsync (mirror.services.eventlog.BATCH_SIZE)
PROBE_TYPE = "bench.probe"


@dataclass
class Row:
    part: str
    scenario: str
    events: int
    seconds: float = math.nan
    events_per_s: float = math.nan
    mb_per_s: float = math.nan
    detail: str = ""
    available: bool = True
    valid: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


# -- events straight into the table ----------------------------------------------------------------


def event_rows(count: int, start: int = 0, kind: str = "module.version_released") -> list[tuple[str, str, str]]:
    """``count`` realistic version_released events (type, occurred_at, data JSON)."""
    rows = []
    for n in range(start, start + count):
        version = f"{n // 10000}.{n // 100 % 100}.{n % 100}"
        data = {
            "namespace": "acme",
            "name": f"network{n % 50}",
            "provider": "aws",
            "version": version,
            "raw_version": f"v{version}",
            "sha256": hashlib.sha256(str(n).encode()).hexdigest(),
            "size": 4096 + n % 1000,
            "blob_key": f"acme/network{n % 50}/aws/{hashlib.sha256(str(n).encode()).hexdigest()}.tar.gz",
            "source": "upload",
        }
        rows.append((kind, "2024-01-01T00:00:00Z", json.dumps(data, separators=(",", ":"), sort_keys=True)))
    return rows


def insert_events(db: Path, rows: list[tuple[str, str, str]]) -> None:
    """One transaction of direct inserts (a reader sees all of them at once)."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        with conn:
            conn.executemany("INSERT INTO events (type, occurred_at, data) VALUES (?, ?, ?)", rows)


# -- (a) the log's append rate ---------------------------------------------------------------------


async def bench_log(work: Path, events: int, rotate_mib: float) -> list[Row]:
    from mirror.services.eventlog import EventLogWriter, log_files
    from mirror.storage.sqlite import SqliteMetadataStore

    db = work / "log-bench" / "mirror.db"
    store = SqliteMetadataStore(db)
    await store.open()
    rows: list[Row] = []
    try:
        await asyncio.to_thread(insert_events, db, event_rows(events))
        for label, max_bytes in (("log append", 1024 * MiB), (f"log append, rotate {rotate_mib:g} MiB", int(rotate_mib * MiB))):
            path = work / "log-bench" / label.replace(" ", "-").replace(",", "") / "events.jsonl"
            writer = EventLogWriter(store, path, max_bytes=max_bytes)
            await store.delete_consumer("log")  # each run starts its cursor afresh (the file is new)
            await writer.start()
            started = time.perf_counter()
            last = await writer.catch_up()
            seconds = time.perf_counter() - started
            await writer.stop()
            files = log_files(path)
            size = sum(f.stat().st_size for f in files)
            lines = sum(f.read_bytes().count(b"\n") for f in files)
            valid = last == events and lines == events
            fsyncs = math.ceil(events / BATCH) + len(files) - 1
            print(f"  {label:<28} {events} events in {seconds:.3f} s", flush=True)
            rows.append(Row("a", label, events, seconds, events / seconds, size / MiB / seconds,
                            f"{fsyncs} fsyncs, {len(files)} file(s), {size / MiB:.1f} MiB",
                            valid=valid, extra={"bytes": size, "files": len(files), "fsyncs": fsyncs}))
    finally:
        await store.close()
    return rows


# -- (b) webhook fan-out ---------------------------------------------------------------------------


class Receiver:
    """An aiohttp app on 127.0.0.1 that answers 204, checks signatures and records serials."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.serials: set[int] = set()
        self.deliveries = 0
        self.duplicates = 0
        self.bad_signatures = 0
        self.missing_headers = 0
        self.bytes = 0
        self.changed = asyncio.Event()
        self.runner = None
        self.port = 0

    async def handle(self, request):
        from aiohttp import web

        body = await request.read()
        self.deliveries += 1
        self.bytes += len(body)
        if not request.headers.get("X-Mirror-Event") or not request.headers.get("X-Mirror-Delivery"):
            self.missing_headers += 1
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Mirror-Signature-256", ""), expected):
            self.bad_signatures += 1
        try:
            serial = int(json.loads(body)["serial"])
        except (ValueError, KeyError, TypeError):
            serial = None
        if serial is not None:
            if serial in self.serials:
                self.duplicates += 1
            self.serials.add(serial)
        self.changed.set()
        return web.Response(status=204)

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def fanout_config(path: Path, port: int, work: Path, receivers: list[Receiver], secrets_: list[str]) -> Path:
    """The server's TOML, with ``[[webhooks.subscriptions]]`` (tests/live.py's writer has no arrays
    of tables)."""
    from tests.live import toml_value

    lines = [
        "[server]", f"port = {port}", f"spool_dir = {toml_value(str(work / 'spool'))}", "",
        "[metadata]", f"path = {toml_value(str(work / 'mirror.db'))}", "",
        "[blobs]", f"path = {toml_value(str(work / 'blobs'))}", "",
        "[events]", f"log_path = {toml_value(str(work / 'events.jsonl'))}", "",
        "[logging]", 'level = "warning"', "",
        "[webhooks]", "allow_private = true", "",
    ]
    for receiver, secret in zip(receivers, secrets_):
        lines += ["[[webhooks.subscriptions]]", f"url = {toml_value(receiver.url)}", f"secret = {toml_value(secret)}", ""]
    path.write_text("\n".join(lines))
    return path


async def wait_for(receivers: list[Receiver], serials: set[int], timeout: float) -> bool:
    """Until every receiver holds every serial in ``serials``; False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        pending = [r for r in receivers if not serials <= r.serials]
        if not pending:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        for r in pending:
            r.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.wait([asyncio.create_task(r.changed.wait()) for r in pending],
                                                return_when=asyncio.FIRST_COMPLETED), min(remaining, 0.5))


async def bench_fanout(work: Path, subscribers: int, events: int, probe_timeout: float, timeout: float) -> Row:
    from tests.live import MirrorServer, free_port

    work = work / "fanout"
    work.mkdir(parents=True, exist_ok=True)
    label = f"fan-out x{subscribers}"
    secrets_ = [f"bench-secret-{n:04d}-0123456789" for n in range(subscribers)]
    receivers = [Receiver(secret) for secret in secrets_]
    for receiver in receivers:
        await receiver.start()
    port = free_port()
    server = MirrorServer(fanout_config(work / "mirror.toml", port, work, receivers, secrets_), port, work)
    try:
        try:
            await asyncio.to_thread(server.start)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()
            return Row("b", label, events, detail="dispatcher not available: mirror serve did not start ("
                       + (reason[-1] if reason else "no output") + ")", available=False)
        db = work / "mirror.db"
        print(f"  probe: one event, waiting up to {probe_timeout:g} s for {subscribers} deliveries", flush=True)
        probe_serial = await asyncio.to_thread(_insert_and_latest, db, event_rows(1, kind=PROBE_TYPE))
        if not await wait_for(receivers, {probe_serial}, probe_timeout):
            got = sum(1 for r in receivers if r.deliveries)
            return Row("b", label, events, available=False,
                       detail=f"dispatcher not available (the probe reached {got}/{subscribers} subscribers in "
                              f"{probe_timeout:g} s: no outbound webhooks in mirror serve yet?)")
        before = [(r.deliveries, r.bytes) for r in receivers]
        print(f"  inserting {events} events, waiting for every subscriber to have all", flush=True)
        started = time.perf_counter()
        last = await asyncio.to_thread(_insert_and_latest, db, event_rows(events, start=1))
        wanted = set(range(last - events + 1, last + 1))
        done = await wait_for(receivers, wanted, timeout)
        seconds = time.perf_counter() - started
        delivered = sum(r.deliveries - d for r, (d, _) in zip(receivers, before))
        body_bytes = sum(r.bytes - b for r, (_, b) in zip(receivers, before))
        bad = sum(r.bad_signatures for r in receivers)
        missing = sum(r.missing_headers for r in receivers)
        dups = sum(r.duplicates for r in receivers)
        if not done:
            have = min(len(wanted & r.serials) for r in receivers)
            return Row("b", label, events, seconds, valid=False,
                       detail=f"timed out after {timeout:g} s: the slowest subscriber had {have}/{events}")
        detail = (f"{delivered / seconds:,.0f} deliveries/s in all; bad sig {bad}, missing headers {missing}, "
                  f"dup {dups}")
        return Row("b", label, events, seconds, events / seconds, body_bytes / MiB / seconds, detail,
                   valid=bad == 0 and missing == 0,
                   extra={"subscribers": subscribers, "deliveries": delivered, "deliveries_per_s": delivered / seconds,
                          "bad_signatures": bad, "missing_headers": missing, "duplicates": dups})
    finally:
        await asyncio.to_thread(server.stop)
        for receiver in receivers:
            await receiver.stop()


def _insert_and_latest(db: Path, rows: list[tuple[str, str, str]]) -> int:
    insert_events(db, rows)
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        return conn.execute("SELECT MAX(serial) FROM events").fetchone()[0]


# -- report ----------------------------------------------------------------------------------------


def report(rows: list[Row]) -> None:
    header = f"{'part':<4} {'scenario':<30} {'events':>7} {'seconds':>8} {'events/s':>10} {'MB/s':>7}  detail"
    print()
    print(f"machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        if not r.available:
            print(f"{r.part:<4} {r.scenario:<30} {r.events:>7} {'-':>8} {'-':>10} {'-':>7}  {r.detail}")
            continue
        flag = " !" if not r.valid else ""
        print(f"{r.part:<4} {r.scenario:<30} {r.events:>7} {r.seconds:>8.3f} {r.events_per_s:>10,.0f} "
              f"{r.mb_per_s:>7.1f}  {r.detail}{flag}")
    invalid = [r for r in rows if r.available and not r.valid]
    for r in invalid:
        print(f"! {r.scenario}: not valid ({r.detail})")


def write_json(path: Path, rows: list[Row], args: argparse.Namespace) -> None:
    document = {
        "events": args.events,
        "rotate_mib": args.rotate_mib,
        "subscribers": args.subscribers,
        "fanout_events": args.fanout_events,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "results": [asdict(r) for r in rows],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.write_text(json.dumps(json_safe(document), indent=2) + "\n")
    print(f"results written to {path}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Event log append rate and webhook fan-out throughput "
                                                 "(see the module docstring).")
    parser.add_argument("--events", type=int, default=20_000, help="events appended to the log in (a) (default 20000)")
    parser.add_argument("--rotate-mib", type=float, default=1.0, help="rotation size of the second (a) row (default 1)")
    parser.add_argument("--subscribers", type=int, default=10, help="webhook receivers in (b) (default 10)")
    parser.add_argument("--fanout-events", type=int, default=2000, help="events fanned out in (b) (default 2000)")
    parser.add_argument("--probe-timeout", type=float, default=15.0,
                        help="seconds to wait for the probe delivery before calling the dispatcher missing (default 15)")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for the fan-out in (b) (default 300)")
    parser.add_argument("--skip-fanout", action="store_true", help="run part (a) only")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--workdir", type=Path, help="keep databases, logs and the server's stderr here "
                                                     "(default: a temporary directory)")
    args = parser.parse_args(argv)
    if not 1 <= args.events <= 10_000_000 or not 1 <= args.fanout_events <= 1_000_000:
        parser.error("--events must be 1..10000000 and --fanout-events 1..1000000")
    if not 1 <= args.subscribers <= 100 or not 0.01 <= args.rotate_mib <= 1024:
        parser.error("--subscribers must be 1..100 and --rotate-mib 0.01..1024")
    return args


async def run(args: argparse.Namespace, work: Path) -> list[Row]:
    print(f"[a] log append: {args.events} events into a fresh JSONL file", flush=True)
    rows = await bench_log(work, args.events, args.rotate_mib)
    if not args.skip_fanout:
        print(f"[b] fan-out: {args.fanout_events} events to {args.subscribers} webhook subscribers", flush=True)
        rows.append(await bench_fanout(work, args.subscribers, args.fanout_events, args.probe_timeout, args.timeout))
    return rows


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from mirror.app.logs import configure_logging

    configure_logging("warning", "console")  # this process's own writers log at info: keep the table readable

    interrupt_on_sigterm()
    with work_directory(args.workdir, "bench-events-") as work:
        try:
            rows = asyncio.run(run(args, work))
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        except (RuntimeError, OSError, sqlite3.Error) as exc:
            print(f"\nbenchmark failed: {exc}", file=sys.stderr)
            return 1
        report(rows)
        if args.json:
            write_json(args.json, rows, args)
        if args.workdir:
            print(f"databases, logs and server output kept in {work}")
    return 0 if all(r.valid for r in rows if r.available) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
