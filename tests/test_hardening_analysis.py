"""Module analysis in a sandbox: .tf files are parsed in child processes under CPU, memory and
wall-clock limits, and each file's result is cached by its content.

The pathological file is 1 MiB of small blocks (40 KB gzipped): python-hcl2 takes about 20 s and
500 MB for it in process. Every test runs real child processes through a real Analyzer, most of
them through the real app and its HTTP API.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import statistics
import tarfile
import time
from pathlib import Path

import pytest

from mirror.config import load_config
from mirror.formats.analysis import analyze_archive
from mirror.formats.archive import ArchiveLimits
from mirror.domain.errors import ConfigError
from mirror.http.keys import ANALYZER, STORE
from mirror.domain.addresses import ModuleAddress
from mirror.services.analysis import AnalysisLimits, Analyzer
from tests.live import write_config
from tests.test_analysis import MAIN_TF, VARIABLES_TF

ADDR = "acme/big/aws"


def pathological_tf() -> str:
    """~1 MiB of variable blocks: the file of the report (seconds of CPU per 50 KB)."""
    return "".join(f'variable "v{i}" {{\n  default = {{ a = [1, 2, {{ b = "x" }}] }}\n}}\n' for i in range(16_000))


def tar_gz(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def write_archive(tmp_path: Path, files: dict[str, str], name: str = "module.tar.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(tar_gz(files))
    return path


@pytest.mark.slow
async def test_pathological_file_is_stopped_the_version_installs_and_healthz_stays_fast(start_registry, make_config):
    registry = await start_registry(make_config(analysis={"cpu_seconds": 1, "timeout_seconds": 30}))
    admin = await registry.auth()
    body = tar_gz({"main.tf": pathological_tf(), "variables.tf": 'variable "ok" {}\n', "README.md": "# big\n"})
    assert len(body) < 64 * 1024

    publish = asyncio.create_task(registry.publish(ADDR, "1.0.0", body, admin))
    latencies = []
    while not publish.done():
        started = time.perf_counter()
        response = await registry.client.get("/healthz")
        latencies.append(time.perf_counter() - started)
        assert response.status == 200
        await asyncio.sleep(0.01)
    response = await publish
    assert response.status == 201, await response.text()
    assert len(latencies) >= 20  # the analysis ran for a while (a second of CPU in the child)
    p90 = statistics.quantiles(latencies, n=10)[-1]
    assert p90 < 0.25, f"/healthz p90 {p90:.3f} s during the analysis"
    # in a thread of this process, the parse stalled the event loop for seconds at a time
    assert max(latencies) < 1.5, f"/healthz took {max(latencies):.3f} s during the analysis"

    # installable: the download answers and the archive is the one published
    response = await registry.client.get(f"/v1/modules/{ADDR}/1.0.0/download", headers=admin)
    assert response.status == 200
    archive = await registry.client.get((await response.json())["location"])
    assert await archive.read() == body

    analysis = await registry.app[STORE].version_analysis(ModuleAddress.parse(ADDR), "1.0.0")
    assert analysis["complete"] is False
    assert analysis["stopped"] == "cpu time limit of 1 s exceeded in main.tf"
    assert [i["name"] for i in analysis["root"]["inputs"]] == ["ok"]  # the other file still counts

    detail = await registry.client.get(f"/v1/modules/{ADDR}/1.0.0", headers=admin)
    assert detail.status == 200
    shown = await detail.json()
    assert shown["analysis_errors"] == ["main.tf: analysis stopped: cpu time limit of 1 s exceeded"]
    assert [i["name"] for i in shown["root"]["inputs"]] == ["ok"]


@pytest.mark.slow
async def test_a_file_seen_before_is_not_parsed_again(start_registry, make_config, tmp_path: Path):
    registry = await start_registry(make_config(analysis={"cpu_seconds": 1}))
    analyzer = registry.app[ANALYZER]
    admin = await registry.auth()
    big = pathological_tf()

    first = tar_gz({"main.tf": big, "variables.tf": 'variable "one" {}\n'})
    assert (await registry.publish(ADDR, "1.0.0", first, admin)).status == 201
    assert (analyzer.counters.parsed, analyzer.counters.cache_hits, analyzer.counters.stopped) == (2, 0, 1)
    children = analyzer.counters.children
    cached = list((tmp_path / "data" / "analysis-cache").rglob("*.json"))  # beside the spool by default
    assert len(cached) == 2

    # the same main.tf, another variables.tf: only the new file goes to a child (the idle one)
    second = tar_gz({"main.tf": big, "variables.tf": 'variable "two" {}\n'})
    started = time.perf_counter()
    assert (await registry.publish(ADDR, "1.1.0", second, admin)).status == 201
    assert (analyzer.counters.parsed, analyzer.counters.cache_hits, analyzer.counters.stopped) == (3, 1, 1)
    assert analyzer.counters.children == children
    assert time.perf_counter() - started < 5

    analysis = await registry.app[STORE].version_analysis(ModuleAddress.parse(ADDR), "1.1.0")
    assert analysis["stopped"] == "cpu time limit of 1 s exceeded in main.tf"  # the cached stop
    assert [i["name"] for i in analysis["root"]["inputs"]] == ["two"]

    # nothing new at all: nothing is parsed
    third = tar_gz({"variables.tf": 'variable "two" {}\n', "main.tf": big})
    assert (await registry.publish(ADDR, "1.2.0", third, admin)).status == 201
    assert (analyzer.counters.parsed, analyzer.counters.cache_hits) == (3, 3)


async def test_sandboxed_analysis_equals_the_in_process_one_and_its_cached_copy(tmp_path: Path):
    files = {
        "variables.tf": VARIABLES_TF,
        "main.tf": MAIN_TF,
        "broken.tf": "resource {{{",
        "modules/one/main.tf": MAIN_TF,  # the same bytes as main.tf: parsed once
        "modules/one/README.md": "# one\n",
    }
    path = write_archive(tmp_path, files)
    expected = analyze_archive(path, ArchiveLimits())
    analyzer = Analyzer(cache_dir=tmp_path / "cache")

    fresh = await analyzer.analyze(path, ArchiveLimits())
    assert fresh == expected
    assert fresh["complete"] is True and fresh["stopped"] is None
    assert fresh["errors"][0].startswith("broken.tf: ")
    assert (analyzer.counters.parsed, analyzer.counters.children) == (3, 1)

    again = await analyzer.analyze(path, ArchiveLimits())
    assert json.dumps(again, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert (analyzer.counters.parsed, analyzer.counters.children, analyzer.counters.cache_hits) == (3, 1, 4)


async def test_children_are_reused_across_analyses_and_ended_by_close(tmp_path: Path):
    analyzer = Analyzer(workers=2, cache_dir=tmp_path / "cache")
    for i in range(5):
        path = write_archive(tmp_path, {"main.tf": f'variable "v{i}" {{}}\n'}, f"m{i}.tar.gz")
        assert [v["name"] for v in (await analyzer.analyze(path, ArchiveLimits()))["root"]["inputs"]] == [f"v{i}"]
    assert (analyzer.counters.parsed, analyzer.counters.children) == (5, 1)
    (child,) = analyzer._children  # the one idle child

    # an idle child that died is not blamed on the next file: a new child parses it
    os.kill(child.process.pid, signal.SIGKILL)
    path = write_archive(tmp_path, {"main.tf": 'variable "after" {}\n'}, "after.tar.gz")
    analysis = await analyzer.analyze(path, ArchiveLimits())
    assert analysis["complete"] is True and [v["name"] for v in analysis["root"]["inputs"]] == ["after"]
    assert analyzer.counters.children == 2

    (child,) = analyzer._children
    await analyzer.close()
    assert child.process.returncode is not None and not analyzer._children


async def test_memory_limit_stops_the_file_and_a_fresh_process_parses_the_rest(tmp_path: Path):
    path = write_archive(tmp_path, {"main.tf": pathological_tf(), "variables.tf": 'variable "ok" {}\n'})
    analyzer = Analyzer(AnalysisLimits(cpu_seconds=120, memory_mb=80, timeout_seconds=120), cache_dir=tmp_path / "cache")
    started = time.perf_counter()
    analysis = await analyzer.analyze(path, ArchiveLimits())
    assert time.perf_counter() - started < 60
    assert analysis["complete"] is False
    assert analysis["stopped"] == "memory limit of 80 MiB exceeded in main.tf"
    assert [i["name"] for i in analysis["root"]["inputs"]] == ["ok"]
    assert analyzer.counters.children == 2


@pytest.mark.slow
async def test_wall_clock_limit_reports_the_files_not_reached_and_is_not_cached(tmp_path: Path):
    path = write_archive(tmp_path, {"main.tf": pathological_tf(), "variables.tf": 'variable "ok" {}\n'})
    analyzer = Analyzer(AnalysisLimits(cpu_seconds=120, timeout_seconds=1), cache_dir=tmp_path / "cache")
    started = time.perf_counter()
    analysis = await analyzer.analyze(path, ArchiveLimits())
    assert time.perf_counter() - started < 5
    limit = "the module's analysis passed its time limit of 1 s"
    assert analysis["complete"] is False
    assert analysis["errors"] == [
        f"main.tf: analysis stopped: {limit}",
        f"variables.tf: analysis stopped: not reached: {limit}",
    ]
    assert analysis["root"]["inputs"] == []

    # a stop at the wall clock depends on the machine's load: the next analysis tries again
    await analyzer.analyze(path, ArchiveLimits())
    assert (analyzer.counters.parsed, analyzer.counters.children) == (4, 2)


@pytest.mark.slow
async def test_cached_stop_is_retried_under_larger_limits_and_damaged_entries_are_ignored(tmp_path: Path):
    path = write_archive(tmp_path, {"main.tf": pathological_tf()})
    cache = tmp_path / "cache"
    small = Analyzer(AnalysisLimits(cpu_seconds=1), cache_dir=cache)
    assert (await small.analyze(path, ArchiveLimits()))["stopped"] == "cpu time limit of 1 s exceeded in main.tf"
    assert (await small.analyze(path, ArchiveLimits()))["stopped"] == "cpu time limit of 1 s exceeded in main.tf"
    assert (small.counters.parsed, small.counters.cache_hits) == (1, 1)

    larger = Analyzer(AnalysisLimits(cpu_seconds=2), cache_dir=cache)
    assert (await larger.analyze(path, ArchiveLimits()))["stopped"] == "cpu time limit of 2 s exceeded in main.tf"
    assert (larger.counters.parsed, larger.counters.cache_hits) == (1, 0)

    # a damaged entry is a miss: the file is parsed again and the entry rewritten
    small = write_archive(tmp_path, {"main.tf": 'variable "x" {}\n'}, "small.tar.gz")
    analyzer = Analyzer(cache_dir=cache)
    await analyzer.analyze(small, ArchiveLimits())
    (entry,) = (e for e in cache.rglob("*.json") if b'"x"' in e.read_bytes())
    for damaged in (b"{not json", b'{"result": {"facts": {"inputs": 1}}}', b"[]", b'{"result": {"stopped": 3}}'):
        entry.write_bytes(damaged)
        parsed = analyzer.counters.parsed
        assert [i["name"] for i in (await analyzer.analyze(small, ArchiveLimits()))["root"]["inputs"]] == ["x"]
        assert analyzer.counters.parsed == parsed + 1
        assert b'"x"' in entry.read_bytes()


async def test_a_process_that_cannot_start_fails_the_analysis_without_caching_it(tmp_path: Path):
    """Too little memory for the interpreter itself: every file is reported, nothing is kept."""
    path = write_archive(tmp_path, {"a.tf": 'variable "a" {}\n', "b.tf": 'variable "b" {}\n'})
    analyzer = Analyzer(AnalysisLimits(memory_mb=16), cache_dir=tmp_path / "cache")
    for attempt in (1, 2):
        analysis = await analyzer.analyze(path, ArchiveLimits())
        failed = "the analysis process failed (exit status 1)"
        assert analysis["errors"] == [f"a.tf: analysis stopped: {failed}", f"b.tf: analysis stopped: not reached: {failed}"]
        assert analysis["complete"] is False and analysis["root"]["inputs"] == []
        assert analyzer.counters.children == attempt  # not cached: the next analysis tries again
    assert not list((tmp_path / "cache").rglob("*.json"))


async def test_without_a_cache_directory_every_analysis_parses(tmp_path: Path):
    path = write_archive(tmp_path, {"main.tf": 'variable "a" {}\n'})
    analyzer = Analyzer()
    for _ in range(2):
        assert [v["name"] for v in (await analyzer.analyze(path, ArchiveLimits()))["root"]["inputs"]] == ["a"]
    assert (analyzer.counters.parsed, analyzer.counters.cache_hits, analyzer.counters.children) == (2, 0, 1)
    await analyzer.close()


def test_analysis_config_keys_are_validated(tmp_path: Path):
    path = write_config(
        tmp_path / "mirror.toml",
        {"analysis": {"cpu_seconds": 0, "memory_mb": 16, "timeout_seconds": 0.5, "workers": 0}},
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert [p for p in raised.value.problems if p.startswith("[analysis]")] == [
        "[analysis] cpu_seconds must be between 1 and 3600",
        "[analysis] memory_mb must be between 64 and 65536",
        "[analysis] timeout_seconds must be between 1 and 3600",
        "[analysis] workers must be between 1 and 64",
    ]
    config = load_config(None, environ={"MIRROR_ANALYSIS_CPU_SECONDS": "3", "MIRROR_ANALYSIS_CACHE_DIR": "/var/cache/x"})
    assert config.analysis.cpu_seconds == 3 and config.analysis.cache_dir == Path("/var/cache/x")
