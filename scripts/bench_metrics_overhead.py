#!/usr/bin/env python3
"""What counting a request for ``/metrics`` adds to ``RequestWrapper``'s per-request cost.

In process, no server and no event loop: one handler that returns a prepared response is called
through the wrapper with a mocked ``GET /v1/modules/acme/net/aws/versions`` request, each call's
coroutine driven to completion with ``.send(None)``. Variants, interleaved in every round:

- ``bare``        the handler alone;
- ``no metrics``  the wrapper without metrics (``[metrics] enabled = false``);
- ``metrics``     the wrapper counting into a ``RouteStats``;
- ``baseline``    with ``--baseline FILE``: the wrapper of another ``middleware.py`` (for instance
                  ``git show HEAD:mirror/http/middleware.py > /tmp/middleware_before.py``);

each wrapper once without a request line and once (``+ line``) with one that does nothing (as
``mirror serve`` logs every request, the wrapper reads the clock a second time there anyway).

Each figure is the best of ``--rounds`` rounds of ``--calls`` calls (the least disturbed one), in
nanoseconds per request.

    .venv/bin/python scripts/bench_metrics_overhead.py [--calls 200000] [--rounds 9] [--baseline FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from mirror.http.metrics import HttpMetrics
from mirror.http.middleware import RequestWrapper

ROUTE = "/v1/modules/{namespace}/{name}/{provider}/versions"
PATH = "/v1/modules/acme/net/aws/versions"


def load_baseline(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("middleware_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_call_ns(wrapped: Callable[[web.Request], Any], request: web.Request, calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        coroutine = wrapped(request)
        try:
            coroutine.send(None)
        except StopIteration:
            pass
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--baseline", type=Path, help="another middleware.py to compare with")
    args = parser.parse_args()

    response = web.Response(body=b'{"modules": []}', content_type="application/json")

    async def handler(request: web.Request) -> web.StreamResponse:
        return response

    def request_line(**fields: Any) -> None:
        pass

    request = make_mocked_request("GET", PATH, headers={"Authorization": "Bearer x"})
    metrics = HttpMetrics()
    variants: dict[str, Callable[[web.Request], Any]] = {"bare": handler}
    for suffix, access_log in (("", None), (" + line", request_line)):
        variants["no metrics" + suffix] = RequestWrapper(access_log).wrap(handler, ROUTE, "GET")
        variants["metrics" + suffix] = RequestWrapper(access_log, metrics).wrap(handler, ROUTE, "GET")
        if args.baseline:
            variants["baseline" + suffix] = load_baseline(args.baseline).RequestWrapper(access_log).wrap(handler)

    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, wrapped in variants.items():
            best[name] = min(best[name], per_call_ns(wrapped, request, args.calls))

    [requests, _] = metrics.collect()
    counted = sum(sample.value for sample in requests.samples)
    assert counted == 2 * args.calls * args.rounds, counted  # every call through a counting wrapper

    print(f"{'variant':<18} {'ns/request':>11} {'vs bare':>9}")
    for name, ns in best.items():
        print(f"{name:<18} {ns:>11.0f} {ns - best['bare']:>+9.0f}")
    for suffix in ("", " + line"):
        against = ["no metrics"] + (["baseline"] if args.baseline else [])
        added = ", ".join(f"{best['metrics' + suffix] - best[name + suffix]:+.0f} ns vs {name}{suffix}" for name in against)
        print(f"metrics{suffix}: {added}")


if __name__ == "__main__":
    main()
