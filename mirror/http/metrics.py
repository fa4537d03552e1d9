"""``GET /metrics``: what the server has done, in the Prometheus text format (no token: it names
routes and outcomes, never modules, versions or tokens).

Counting costs plain Python increments, never a prometheus-client call: each wrapped route and
method gets its own ``RouteStats`` when it is registered (``RequestWrapper``), which counts answers
by status and files the time the wrapper measures anyway into a histogram with ``bisect`` (about
0.25 us a request; ``scripts/bench_metrics_overhead.py``). The services count their outcomes in a
``Tally`` through a callback they were given. ``Metrics.collect`` turns those numbers into metric
families only when ``/metrics`` is scraped, on a registry of its own per app (tests build many
apps in one process; the default global registry is never used).

Series:

- ``mirror_http_requests_total{route, method, status}``: ``route`` is the route's template
  (``/v1/modules/{namespace}/{name}/{provider}/versions``), ``unmatched`` for requests no route
  took;
- ``mirror_http_request_duration_seconds{route}``: a histogram from 0.5 ms to 10 s;
- ``mirror_downloads_total{mode}``: download answers (``/download`` 200s) by ``[downloads] mode``;
- ``mirror_jobs_total{kind, outcome}``: ``succeeded``, ``retried`` or ``failed``;
- ``mirror_webhook_deliveries_total{outcome}``: ``delivered``, ``failed`` (an attempt) or
  ``dead_lettered``;
- ``mirror_ingest_total{source, outcome}``: ``upload``, ``github``, ``sync``, ``bundle`` or ``pullthrough``; ``created``, ``unchanged``,
  ``rejected`` (the archive or version was refused) or ``failed`` (storage failed);
- the process (CPU, memory, file descriptors), Python's garbage collector and platform.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from mirror.http.keys import METRICS
from mirror.http.telemetry import LATENCY_BUCKETS, UNMATCHED, HttpMetrics, Metrics

__all__ = ["LATENCY_BUCKETS", "UNMATCHED", "HttpMetrics", "Metrics", "metrics", "routes"]


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: every series above in the Prometheus text format."""
    return web.Response(body=request.app[METRICS].exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/metrics", metrics),
    ]
