"""The child process in which ``mirror.services.analysis`` parses configuration files, under limits.

Run as ``python -I -m mirror.services.analysis_worker CPU_SECONDS MEMORY_MB LIFETIME_CPU``. It limits
itself before it imports the parser: its address space to MEMORY_MB MiB; each file's parse to
CPU_SECONDS of CPU time (a SIGXCPU at the soft limit, moved before each file); no core dumps and no
files written. It reads one JSON line per file on stdin, ``{"text": ..., "syntax": "hcl" | "json"}``,
and writes one JSON line per file on stdout, in the same order: ``parse_file``'s result, or
``{"stopped": reason}`` when that file's parse passed a limit, after which it exits with status 0 (a process that ran out
of memory is not trusted further; the parent starts another for the rest). It serves file after
file until stdin closes, and retires (exit status 0) once it has used LIFETIME_CPU seconds of CPU;
the kernel kills it at LIFETIME_CPU + CPU_SECONDS + 2, should a parse never return to Python.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import sys
from typing import Any

_MiB = 1024 * 1024


class _CpuTimeExceeded(BaseException):
    """Raised from the SIGXCPU handler; a BaseException, so no ``except Exception`` in the parser
    takes it for a parse error."""


def main(argv: list[str]) -> int:
    cpu_seconds, memory_mb, lifetime = (int(arg) for arg in argv)
    cpu_ceiling = lifetime + cpu_seconds + 2
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # pipes are not files: stdout still works
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * _MiB, memory_mb * _MiB))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_ceiling, cpu_ceiling))
    parsing = [False]

    def on_cpu_limit(signum: int, frame: Any) -> None:
        if parsing[0]:
            parsing[0] = False  # the kernel repeats SIGXCPU every second: raise once per file
            raise _CpuTimeExceeded

    signal.signal(signal.SIGXCPU, on_cpu_limit)
    sys.unraisablehook = lambda unraisable: None  # printing one may need memory there is none of
    cpu_stop = _line({"stopped": f"cpu time limit of {cpu_seconds} s exceeded"})
    memory_stop = _line({"stopped": f"memory limit of {memory_mb} MiB exceeded"})
    from mirror.formats.analysis import parse_file

    for line in sys.stdin.buffer:
        request = json.loads(line)
        text, syntax = request["text"], request.get("syntax", "hcl")
        _cpu_budget(cpu_seconds, cpu_ceiling)
        stop = None
        try:
            parsing[0] = True
            result = parse_file(text, syntax)
            parsing[0] = False
            encoded = _line(result)
        except _CpuTimeExceeded:
            stop = cpu_stop
        except MemoryError:
            stop = memory_stop
        finally:
            parsing[0] = False
        if stop is not None:  # say so and end: the parent starts a fresh child for the next file
            _write(stop)
            os._exit(0)
        _write(encoded)
        if _cpu_used() >= lifetime:
            os._exit(0)  # retire: the parent gives the next file to a new process
    return 0


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _line(result: dict[str, Any]) -> bytes:
    return json.dumps(result).encode() + b"\n"


def _write(data: bytes) -> None:
    """Write to stdout unbuffered: nothing is left to flush (and fail) at exit."""
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _cpu_budget(cpu_seconds: int, ceiling: int) -> None:
    """Move the soft CPU limit to ``cpu_seconds`` past the time used so far."""
    soft = min(math.ceil(_cpu_used()) + cpu_seconds, ceiling)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, ceiling))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
