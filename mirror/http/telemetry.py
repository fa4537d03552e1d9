"""The counters behind ``GET /metrics`` (see ``mirror.http.metrics`` for the series): per-route
statistics, tallies the services count into, and their collection on a registry per app."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

#: upper bounds (seconds) of the request duration histogram; one more bucket holds the rest
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: the ``route`` label of requests that no route took
UNMATCHED = "unmatched"
#: the methods a catch-all route counts by name; any other token a client sends counts as "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})

WEBHOOK_OUTCOMES = ("delivered", "failed", "dead_lettered")
INGEST_SOURCES = ("upload", "github", "sync", "bundle", "pullthrough")
INGEST_OUTCOMES = ("created", "unchanged", "rejected", "failed")


def route_template(path: str) -> str:
    """A route's path as its label: ``{id:[0-9]+}`` becomes ``{id}``."""
    return web.DynamicResource(path).canonical if "{" in path else path


class RouteStats:
    """One wrapped route's answers, counted by status, and its duration histogram."""

    __slots__ = ("route", "method", "counts", "buckets", "seconds")

    def __init__(self, route: str, method: str) -> None:
        self.route = route
        self.method = method
        self.counts: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # not cumulative; the last is above 10 s
        self.seconds = 0.0

    def observe(self, request: web.BaseRequest, status: int, seconds: float) -> None:
        """Count one answer (the route's method is known: ``request`` is not looked at)."""
        counts = self.counts
        counts[status] = counts.get(status, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds += seconds


class AnyMethodStats:
    """A catch-all route's answers: one ``RouteStats`` per request method. Clients may send any
    method token, so those not in ``KNOWN_METHODS`` are counted together as "other"."""

    def __init__(self, route: str) -> None:
        self.route = route
        self.by_method: dict[str, RouteStats] = {}

    def observe(self, request: web.BaseRequest, status: int, seconds: float) -> None:
        method = request.method if request.method in KNOWN_METHODS else "other"
        stats = self.by_method.get(method)
        if stats is None:
            stats = self.by_method[method] = RouteStats(self.route, method)
        stats.observe(request, status, seconds)


class HttpMetrics:
    """Every wrapped route's stats; routes sharing a template are added up when scraped."""

    def __init__(self) -> None:
        self._routes: list[RouteStats | AnyMethodStats] = []

    def route(self, path: str, method: str) -> RouteStats | AnyMethodStats:
        """Stats for one route being registered (``method`` "*" for a catch-all)."""
        route = route_template(path)
        stats = AnyMethodStats(route) if method == "*" else RouteStats(route, method)
        self._routes.append(stats)
        return stats

    def _every_route_stats(self) -> Iterator[RouteStats]:
        for stats in self._routes:
            if isinstance(stats, AnyMethodStats):
                yield from list(stats.by_method.values())
            else:
                yield stats

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "mirror_http_requests", "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        durations = HistogramMetricFamily(
            "mirror_http_request_duration_seconds", "Time from the request's dispatch to its answer, by route template",
            labels=["route"],
        )
        counts: dict[tuple[str, str, int], int] = {}
        buckets: dict[str, list[int]] = {}
        seconds: dict[str, float] = {}
        for stats in self._every_route_stats():
            for status, count in list(stats.counts.items()):
                key = (stats.route, stats.method, status)
                counts[key] = counts.get(key, 0) + count
            added = buckets.setdefault(stats.route, [0] * len(stats.buckets))
            for index, count in enumerate(stats.buckets):
                added[index] += count
            seconds[stats.route] = seconds.get(stats.route, 0.0) + stats.seconds
        for (route, method, status), count in sorted(counts.items()):
            requests.add_metric([route, method, str(status)], count)
        for route, added in sorted(buckets.items()):
            if sum(added):
                durations.add_metric([route], _cumulative(added), sum_value=seconds[route])
        yield requests
        yield durations


def _cumulative(buckets: list[int]) -> list[tuple[str, float]]:
    bounds = [floatToGoString(bound) for bound in LATENCY_BUCKETS] + ["+Inf"]
    total, cumulative = 0, []
    for bound, count in zip(bounds, buckets):
        total += count
        cumulative.append((bound, total))
    return cumulative


class Tally:
    """Counts by label values, for the services' outcome callbacks: ``tally.count("github", "created")``."""

    __slots__ = ("counts",)

    def __init__(self, known: Iterable[tuple[str, ...]] = ()) -> None:
        #: ``known`` label values are exposed from the start, at 0
        self.counts: dict[tuple[str, ...], int] = dict.fromkeys(known, 0)

    def count(self, *labels: str) -> None:
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + 1

    def family(self, name: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=labels)
        for values, count in sorted(self.counts.items()):
            family.add_metric(list(values), count)
        return family


class Metrics:
    """One app's counters and the registry that exposes them (a prometheus-client collector)."""

    def __init__(self, download_mode: str) -> None:
        self.http = HttpMetrics()
        self.download_mode = download_mode
        #: download answers given; ``modules_v1.download`` adds to it
        self.downloads = 0
        self.jobs = Tally()
        self.webhooks = Tally((outcome,) for outcome in WEBHOOK_OUTCOMES)
        self.ingest = Tally((source, outcome) for source in INGEST_SOURCES for outcome in INGEST_OUTCOMES)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def collect(self) -> Iterator[Metric]:
        yield from self.http.collect()
        downloads = CounterMetricFamily(
            "mirror_downloads", "Download answers given (download 200s), by download mode", labels=["mode"]
        )
        downloads.add_metric([self.download_mode], self.downloads)
        yield downloads
        yield self.jobs.family("mirror_jobs", "Background job runs by kind and outcome", ["kind", "outcome"])
        yield self.webhooks.family(
            "mirror_webhook_deliveries", "Outbound webhook delivery attempts by outcome", ["outcome"]
        )
        yield self.ingest.family("mirror_ingest", "Module versions offered for ingest by source and outcome", ["source", "outcome"])

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
