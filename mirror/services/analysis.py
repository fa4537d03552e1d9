"""Module analysis, sandboxed and cached: the configuration files (.tf, .tf.json, .tofu, .tofu.json)
are parsed in child processes under limits, and each file's result is kept by the sha256 of its
bytes (and of its syntax, for the JSON ones).

A file over a limit does not stop the publish: its result is ``{"stopped": reason}`` and the
version's analysis says ``"complete": false`` and why (``mirror.formats.analysis.assemble``).

- A child (``mirror.services.analysis_worker``) gets ``cpu_seconds`` of CPU time per file and
  ``memory_mb`` of address space; a file that passes either is stopped, that child ends, and a
  new one goes on with the next file. A child starts in a new session with an empty environment
  (no credentials), in Python's isolated mode, with no core dumps and no file writes. A healthy
  child waits for the next analysis (start-up costs more than parsing a small module), and
  retires after ``CHILD_CPU_SECONDS`` of CPU.
- One analysis (one version) has ``timeout_seconds`` of wall-clock time across its children; the
  file then being parsed and those after it are reported as not analysed.
- At most ``workers`` children run at once; more analyses wait for a slot.
- Results, including stops at the CPU or memory limit, are cached as JSON files under
  ``cache_dir``: an unchanged file is never parsed again, and a file that was stopped is not
  retried while the limits are no larger than the ones that stopped it. A stop at the wall-clock
  limit (which depends on the machine's load) is not cached. The cache is only a cache: removing
  it costs a new parse of each file on the next publish that contains it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from mirror.formats.analysis import RESULT_FORMAT, ModuleFiles, TfFile, assemble, read_module_files
from mirror.formats.archive import ArchiveLimits

if TYPE_CHECKING:
    from mirror.config import Config

log = structlog.get_logger("mirror.analysis")

WORKER_MODULE = "mirror.services.analysis_worker"
_MiB = 1024 * 1024
#: the longest result line read from a child (one file's declarations, as JSON)
MAX_RESULT_BYTES = 16 * _MiB
#: CPU time after which a child retires (it finishes the file at hand first); the kernel kills it
#: past this plus a file's ``cpu_seconds``, should a parse never return to Python
CHILD_CPU_SECONDS = 600
_STDERR_TAIL = 2048
_NOT_TEXT = {"default": object, "required": bool, "sensitive": bool, "nullable": bool, "set": list}
_FACT_KEYS = {
    "inputs": ("name", "type", "description", "default", "required", "sensitive", "nullable", "set"),
    "outputs": ("name", "description"),
    "dependencies": ("name", "source", "version", "set"),
    "resources": ("name", "type"),
    "providers": ("name", "source", "version"),
}


@dataclass(slots=True, eq=False)  # hashed by identity: kept in a set
class _Child:
    """A parsing process, kept for the next analysis while it is healthy."""

    process: asyncio.subprocess.Process
    stderr: asyncio.Task[bytes]
    files: int = 0  # results it has given

    async def stop(self) -> None:
        _kill(self.process)
        await self.process.wait()
        self.stderr.cancel()
        await asyncio.gather(self.stderr, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class AnalysisLimits:
    #: CPU time for one file's parse
    cpu_seconds: int = 10
    #: address space of a child process
    memory_mb: int = 512
    #: wall-clock time for the analysis of one module version
    timeout_seconds: float = 60.0


@dataclass(slots=True)
class AnalyzerCounters:
    """What the analyzer did since it started (read by tests and operators)."""

    cache_hits: int = 0  # files whose result came from the cache
    parsed: int = 0  # files sent to a child
    stopped: int = 0  # files stopped at a limit
    children: int = 0  # child processes started


def analyzer_for(config: Config) -> Analyzer:
    """The analyzer ``[analysis]`` describes; its cache defaults to ``analysis-cache`` beside the
    spool directory."""
    settings = config.analysis
    return Analyzer(
        AnalysisLimits(settings.cpu_seconds, settings.memory_mb, settings.timeout_seconds),
        workers=settings.workers,
        cache_dir=settings.cache_dir or config.server.spool_dir.parent / "analysis-cache",
    )


class Analyzer:
    def __init__(
        self, limits: AnalysisLimits = AnalysisLimits(), *, workers: int = 2, cache_dir: Path | None = None
    ) -> None:
        self.limits = limits
        self.counters = AnalyzerCounters()
        self._slots = asyncio.Semaphore(workers)
        self._cache = cache_dir / f"v{RESULT_FORMAT}" if cache_dir is not None else None
        self._workers = workers
        self._children: set[_Child] = set()
        self._idle: list[_Child] = []  # children waiting for the next analysis (at most ``workers``)
        self._closed = False

    async def analyze(self, path: Path, archive_limits: ArchiveLimits) -> dict[str, Any]:
        """The analysis of the module archive at ``path`` (already accepted by ``check_archive``)."""
        files = await asyncio.to_thread(read_module_files, path, archive_limits)
        texts = {tf.sha256: tf for tf in files.tf_files}  # identical files are parsed once
        results = await asyncio.to_thread(self._cached, list(texts))
        self.counters.cache_hits += sum(1 for tf in files.tf_files if tf.sha256 in results)
        missing = [sha for sha in texts if sha not in results]
        self.counters.parsed += len(missing)
        if missing:
            async with self._slots:
                fresh, keep = await self._parse(missing, texts, files)
            results.update(fresh)
            if keep and self._cache is not None:
                await asyncio.to_thread(self._store, {sha: fresh[sha] for sha in keep})
        return assemble(files, results)

    async def close(self) -> None:
        """End the idle children and kill the busy ones (their analyses end with files not reached)."""
        self._closed = True
        self._idle.clear()
        await asyncio.gather(*(child.stop() for child in list(self._children)))
        self._children.clear()

    # Children --------------------------------------------------------------------------------

    async def _parse(
        self, shas: list[str], texts: dict[str, TfFile], files: ModuleFiles
    ) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Results for ``shas``, and which of them may be cached."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.timeout_seconds
        names = {tf.sha256: tf.display for tf in files.tf_files}
        results: dict[str, dict[str, Any]] = {}
        keep: list[str] = []
        pending = list(shas)
        while pending:
            if loop.time() >= deadline:
                done, failure, reused = [], (self._timed_out(), False), False
            else:
                done, failure, reused = await self._run(pending, texts, deadline)
            for sha, result in zip(pending, done):
                results[sha] = result
                keep.append(sha)
                if "stopped" in result:
                    self.counters.stopped += 1
                    log.warning("analysis stopped", file=names[sha], sha256=sha, reason=result["stopped"])
            pending = pending[len(done) :]
            if failure is None or (reused and not done and failure[1]):
                continue  # all done; or the rest go to a fresh child (a reused one may have died idle)
            reason, cacheable = failure
            culprit, pending = pending[0], pending[1:]
            results[culprit] = {"stopped": reason}
            self.counters.stopped += 1
            log.warning("analysis stopped", file=names[culprit], sha256=culprit, reason=reason)
            if cacheable:
                keep.append(culprit)
            elif pending:  # the time is up, or the child failed for no reason the file explains
                rest = "not reached: " + reason
                results.update({sha: {"stopped": rest} for sha in pending})
                self.counters.stopped += len(pending)
                pending = []
        return results, keep

    async def _run(
        self, shas: list[str], texts: dict[str, TfFile], deadline: float
    ) -> tuple[list[dict[str, Any]], tuple[str, bool] | None, bool]:
        """Give ``shas`` to a child (an idle one, or a new one) until it answers them all or ends:
        the results it gave, in order; when it ended before the last, why (and whether that
        reason belongs to the next file), or None when it left the rest to another child; and
        whether the child was reused."""
        loop = asyncio.get_running_loop()
        while self._idle and self._idle[-1].process.returncode is not None:  # ended while idle
            ended = self._idle.pop()
            await ended.stop()
            self._children.discard(ended)
        child = self._idle.pop() if self._idle else await self._spawn()
        reused = child.files > 0
        feeder = asyncio.create_task(_feed(child.process, (texts[sha] for sha in shas)))
        results: list[dict[str, Any]] = []
        healthy = False
        try:
            stdout = child.process.stdout
            assert stdout is not None
            while len(results) < len(shas):
                try:
                    line = await asyncio.wait_for(stdout.readline(), max(deadline - loop.time(), 0))
                except TimeoutError:
                    return results, (self._timed_out(), False), reused
                except ValueError:  # longer than MAX_RESULT_BYTES
                    return results, (f"its result is larger than {MAX_RESULT_BYTES // _MiB} MiB", True), reused
                if not line:  # the child ended
                    try:
                        status = await asyncio.wait_for(child.process.wait(), max(deadline - loop.time(), 0))
                    except TimeoutError:
                        return results, (self._timed_out(), False), reused
                    if status == 0 and child.files + len(results) > 0:
                        return results, None, reused  # after a stop, or retired: the rest go to another
                    return results, self._ended(status, await child.stderr), reused
                result = _well_formed(_loads(line))
                if result is None:
                    return results, ("the analysis process gave a malformed result", False), reused
                results.append(result)
            healthy = True
            return results, None, reused
        finally:
            child.files += len(results)
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            if healthy and child.process.returncode is None and len(self._idle) < self._workers and not self._closed:
                self._idle.append(child)
            else:
                await child.stop()
                self._children.discard(child)

    async def _spawn(self) -> _Child:
        limits = self.limits
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-m",
            WORKER_MODULE,
            str(limits.cpu_seconds),
            str(limits.memory_mb),
            str(CHILD_CPU_SECONDS),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd="/",
            start_new_session=True,  # a Ctrl-C at the terminal is the server's to handle
            limit=MAX_RESULT_BYTES,
        )
        self.counters.children += 1
        child = _Child(process, asyncio.create_task(_tail(process.stderr)))
        self._children.add(child)
        return child

    def _timed_out(self) -> str:
        return f"the module's analysis passed its time limit of {self.limits.timeout_seconds:g} s"

    def _ended(self, status: int, stderr: bytes) -> tuple[str, bool]:
        if status in (-signal.SIGXCPU, -signal.SIGKILL):  # the kernel, at the CPU ceiling
            return f"cpu time limit of {self.limits.cpu_seconds} s exceeded", True
        if status < 0:
            return f"the parser crashed ({signal.Signals(-status).name})", True
        log.error("analysis process failed", status=status, stderr=stderr.decode("utf-8", "replace"))
        return f"the analysis process failed (exit status {status})", False

    # Cache -----------------------------------------------------------------------------------

    def _path(self, sha: str) -> Path:
        assert self._cache is not None
        return self._cache / sha[:2] / f"{sha}.json"

    def _cached(self, shas: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if self._cache is None:
            return found
        for sha in shas:
            try:
                entry = json.loads(self._path(sha).read_bytes())
            except (OSError, ValueError):  # absent, unreadable or damaged: parse it again
                continue
            result = _well_formed(entry.get("result") if isinstance(entry, dict) else None)
            if result is None:
                continue
            if "stopped" in result and not (
                self.limits.cpu_seconds <= _number(entry.get("cpu_seconds"))
                and self.limits.memory_mb <= _number(entry.get("memory_mb"))
            ):
                continue  # stopped under smaller limits than today's: try again
            found[sha] = result
        return found

    def _store(self, results: dict[str, dict[str, Any]]) -> None:
        for sha, result in results.items():
            entry = {"result": result, "cpu_seconds": self.limits.cpu_seconds, "memory_mb": self.limits.memory_mb}
            path = self._path(sha)
            temporary: str | None = None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                with os.fdopen(descriptor, "wb") as out:
                    out.write(json.dumps(entry).encode())
                os.replace(temporary, path)
            except OSError as exc:  # a cache: the next publish parses the file again
                log.warning("analysis cache not written", path=str(path), error=str(exc))
                if temporary is not None:
                    Path(temporary).unlink(missing_ok=True)


async def _feed(process: asyncio.subprocess.Process, files: Iterable[TfFile]) -> None:
    assert process.stdin is not None
    try:
        for tf in files:
            process.stdin.write(json.dumps({"text": tf.text, "syntax": tf.syntax}).encode() + b"\n")
            await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):  # the child ended; its exit says why
        pass


async def _tail(stream: asyncio.StreamReader | None) -> bytes:
    """The last bytes of a child's stderr, read as it comes so the child never blocks on it."""
    kept = b""
    while stream is not None:
        try:
            chunk = await stream.read(65536)
        except ValueError:
            break
        if not chunk:
            break
        kept = (kept + chunk)[-_STDERR_TAIL:]
    return kept


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass


def _loads(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _number(value: Any) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _well_formed(result: Any) -> dict[str, Any] | None:
    """``result`` when it has the shape ``parse_file`` gives (or a stop), else None."""
    if not isinstance(result, dict) or len(result) != 1:
        return None
    if isinstance(result.get("stopped"), str) or isinstance(result.get("error"), str):
        return result
    facts = result.get("facts")
    if not isinstance(facts, dict) or set(facts) != set(_FACT_KEYS):
        return None
    for key, fields in _FACT_KEYS.items():
        items = facts[key]
        if not isinstance(items, list):
            return None
        for item in items:
            if not isinstance(item, dict) or set(item) != set(fields):
                return None
            if not all(isinstance(item[f], _NOT_TEXT.get(f, str)) for f in fields):
                return None
            if not all(isinstance(key, str) for key in item.get("set", ())):
                return None
    return result
