"""What the benchmark scripts share: the "was the machine quiet?" sampler and JSON cleaning.

The scripts are run as ``python scripts/<name>.py``, so this directory is on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OtherLoad:
    """CPU used by every other process on the machine between ``start()`` and ``stop()``.

    Per-process counters (own and reaped children's time) of every process but this one and the
    excluded ones (server, load generator), plus the hypervisor's steal; kernel threads are left
    out (ksoftirqd carries the benchmark's own loopback traffic). A process that starts and ends
    inside the window with a parent that ends too is missed: this is a warning, not an audit.
    """

    def __init__(self, *exclude: int | None) -> None:
        self.exclude = {os.getpid(), *(pid for pid in exclude if pid)}
        self.before: dict[tuple[int, int], int] = {}
        self.steal_before = 0
        self.wall_before = 0.0

    def _snapshot(self) -> dict[tuple[int, int], int]:
        ticks: dict[tuple[int, int], int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) in self.exclude:
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if entry.name == "2" or fields[1] == "2":  # kthreadd and kernel threads
                continue
            # utime, stime, cutime, cstime; keyed with the start time, in case a pid is reused
            ticks[(int(entry.name), int(fields[19]))] = sum(int(v) for v in fields[11:15])
        return ticks

    @staticmethod
    def _steal() -> int:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) if len(fields) > 8 else 0

    def start(self) -> OtherLoad:
        self.before, self.steal_before, self.wall_before = self._snapshot(), self._steal(), time.perf_counter()
        return self

    def stop(self) -> float:
        """Cores used by others on average over the window."""
        wall = time.perf_counter() - self.wall_before
        after = self._snapshot()
        ticks = sum(value - self.before.get(key, 0) for key, value in after.items())
        ticks += self._steal() - self.steal_before
        if wall <= 0:
            return math.nan
        # a reaped child's whole life lands in its parent's counters: never more than the machine
        return min(max(0, ticks) / os.sysconf("SC_CLK_TCK") / wall, float(os.cpu_count() or 1))


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile, NaNs ignored (nan when nothing is left)."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def json_safe(value: Any) -> Any:
    """NaN and infinities become null, recursively, so the results are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def interrupt_on_sigterm() -> None:
    """SIGTERM ends a benchmark as Ctrl-C does (KeyboardInterrupt), so its servers are stopped."""

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)


@contextlib.contextmanager
def work_directory(given: Path | None, prefix: str) -> Iterator[Path]:
    """``given`` (created if missing, kept afterwards), else a temporary directory removed at the end."""
    if given:
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        yield Path(temporary)
