"""Module analysis of a pathological .tf file: in process (as before the sandbox) and sandboxed.

    .venv/bin/python scripts/bench_analysis.py

1. python-hcl2 on the file in a fresh process: wall and CPU seconds, peak resident memory.
2. ``/healthz`` latency (p50, p90, max), polled every 10 ms by another process, while the same
   registry process analyses the file: first in a worker thread of the server process (what ingest
   did before), then by publishing it through the API with the default ``[analysis]`` limits.

3. The cost per version of a small one-file module (every version a new file): in process, and
   through the sandbox (one child kept between analyses).

The file is ~1 MiB of small variable blocks (~40 KB gzipped).
"""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from mirror.app.build import create_app
from mirror.config import load_config
from mirror.domain.addresses import ModuleAddress
from mirror.formats.analysis import analyze_archive
from mirror.formats.archive import ArchiveLimits
from mirror.http.keys import STORE
from mirror.services.analysis import Analyzer
from mirror.services.tokens import create_token

POLLER = r"""
import http.client, json, sys, threading, time
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()  # until stdin closes
latencies = []
while not stop.is_set():
    started = time.perf_counter()
    connection.request("GET", "/healthz")
    connection.getresponse().read()
    latencies.append(time.perf_counter() - started)
    time.sleep(0.01)
print(json.dumps(latencies))
"""

IN_PROCESS = r"""
import resource, sys, time
from mirror.formats.analysis import parse_file
text = open(sys.argv[1], encoding="utf-8").read()
started, cpu = time.perf_counter(), time.process_time()
parse_file(text)
print(f"{time.perf_counter() - started:.1f} {time.process_time() - cpu:.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}")
"""


def pathological_tf() -> str:
    return "".join(f'variable "v{i}" {{\n  default = {{ a = [1, 2, {{ b = "x" }}] }}\n}}\n' for i in range(16_000))


def archive(text: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        data = text.encode()
        info = tarfile.TarInfo("main.tf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def summary(latencies: list[float]) -> str:
    deciles = statistics.quantiles(latencies, n=10)
    return (
        f"{len(latencies)} requests, p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p90 {deciles[-1] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


async def poll_while(port: int, work: asyncio.Future[object] | asyncio.Task[object]) -> list[float]:
    poller = await asyncio.create_subprocess_exec(
        sys.executable, "-c", POLLER, str(port), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    await asyncio.sleep(0.5)  # the poller is up
    started = time.perf_counter()
    await work
    took = time.perf_counter() - started
    out, _ = await poller.communicate(b"")  # closes its stdin: it stops and prints
    print(f"  the analysis took {took:.1f} s")
    return json.loads(out) if out else []


async def main() -> None:
    text = pathological_tf()
    body = archive(text)
    print(f"file: {len(text)} bytes, {len(body)} bytes as .tar.gz")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "main.tf").write_text(text)
        (work / "module.tar.gz").write_bytes(body)
        wall, cpu, rss = subprocess.run(
            [sys.executable, "-c", IN_PROCESS, str(work / "main.tf")], check=True, capture_output=True, text=True
        ).stdout.split()
        print(f"in process: {wall} s wall, {cpu} s CPU, {rss} MB peak resident")

        toml = work / "mirror.toml"
        toml.write_text(
            f'[server]\nspool_dir = "{work}/spool"\n[metadata]\npath = "{work}/mirror.db"\n'
            f'[blobs]\npath = "{work}/blobs"\n[events]\nlog_path = ""\n[logging]\nlevel = "warning"\n'
        )
        config = load_config(toml, environ={})
        server = TestServer(create_app(config, access_log=None), port=0)
        await server.start_server()
        try:
            assert server.port is not None
            print("/healthz while a worker thread of the server analyses the file (before):")
            thread = asyncio.ensure_future(asyncio.to_thread(analyze_archive, work / "module.tar.gz", ArchiveLimits()))
            print("  " + summary(await poll_while(server.port, thread)))

            _, token = await create_token(server.app[STORE], "*", "admin")
            async with ClientSession() as client:
                url = server.make_url("/api/v1/modules/acme/big/aws/1.0.0")
                headers = {"Authorization": f"Bearer {token}"}

                async def publish() -> None:
                    async with client.put(url, data=body, headers=headers) as response:
                        address = ModuleAddress.parse("acme/big/aws")
                        analysis = await server.app[STORE].version_analysis(address, "1.0.0")
                        print(f"  publish: {response.status}; analysis stopped: {analysis and analysis.get('stopped')}")

                print("/healthz while the sandbox analyses the file (default [analysis] limits):")
                print("  " + summary(await poll_while(server.port, asyncio.ensure_future(publish()))))
        finally:
            await server.close()

        count = 50
        small = []
        for i in range(count):
            small.append(work / f"small-{i}.tar.gz")
            small[-1].write_bytes(archive(f'variable "name" {{\n  default = "v{i}"\n}}\noutput "id" {{ value = var.name }}\n'))
        started = time.perf_counter()
        for path in small:
            analyze_archive(path, ArchiveLimits())
        in_process = (time.perf_counter() - started) / count
        analyzer = Analyzer(cache_dir=work / "cache")
        started = time.perf_counter()
        for path in small:
            await analyzer.analyze(path, ArchiveLimits())
        sandboxed = (time.perf_counter() - started) / count
        await analyzer.close()
        print(f"a small module, per version: {in_process * 1000:.1f} ms in process, {sandboxed * 1000:.1f} ms sandboxed")


if __name__ == "__main__":
    asyncio.run(main())
