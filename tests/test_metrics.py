"""``GET /metrics`` on the real app: request counts and durations per route template, downloads,
ingests, job outcomes and webhook deliveries, read back with prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from mirror.domain.errors import BadRequest, StorageUnavailable
from mirror.http.keys import JOBS, STORE
from mirror.http.metrics import LATENCY_BUCKETS
from tests.conftest import Registry
from tests.live import eventually
from tests.fake_github import FakeGitHub, installation_payload, webhook_delivery

# Names that must never reach the metrics: the module's parts are made up to be unmistakable.
NAMESPACE, NAME = "zebracorp", "quokkanet"
ADDR = f"{NAMESPACE}/{NAME}/aws"
VERSIONS = "/v1/modules/{namespace}/{name}/{provider}/versions"
DOWNLOAD = "/v1/modules/{namespace}/{name}/{provider}/{version}/download"
PUBLISH = "/api/v1/modules/{namespace}/{name}/{provider}/{version}"


async def scrape(registry: Registry) -> tuple[str, dict[str, Any]]:
    """The body of ``/metrics`` and its families by name (counters without ``_total``)."""
    response = await registry.client.get("/metrics")
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    body = await response.text()
    return body, {family.name: family for family in text_string_to_metric_families(body)}


def values(family: Any, *labels: str, sample: str | None = None) -> dict[tuple[str, ...], float]:
    """``{label values: value}`` of the family's samples named ``sample`` (by default its ``_total``)."""
    name = sample or f"{family.name}_total"
    return {tuple(s.labels[label] for label in labels): s.value for s in family.samples if s.name == name}


async def test_requests_are_counted_by_route_template_method_and_status(registry, module_archive):
    admin_token = await registry.token()
    admin = {"Authorization": f"Bearer {admin_token}"}
    assert (await registry.publish(ADDR, "1.0.0", module_archive(), admin)).status == 201
    for _ in range(3):
        assert (await registry.client.get(f"/v1/modules/{ADDR}/versions", headers=admin)).status == 200
    assert (await registry.client.head(f"/v1/modules/{ADDR}/versions", headers=admin)).status == 200
    assert (await registry.client.get(f"/v1/modules/{ADDR}/versions")).status == 401
    for _ in range(2):
        assert (await registry.client.get(f"/v1/modules/{ADDR}/1.0.0/download", headers=admin)).status == 200
    assert (await registry.client.get(f"/v1/modules/{ADDR}/9.9.9/download", headers=admin)).status == 404
    assert (await registry.client.get(f"/{NAMESPACE}/nothing/here")).status == 404
    assert (await registry.client.post(f"/v1/modules/{ADDR}/versions")).status == 405

    body, families = await scrape(registry)
    counted = values(families["mirror_http_requests"], "route", "method", "status")
    assert counted == {
        (PUBLISH, "PUT", "201"): 1,
        (VERSIONS, "GET", "200"): 3,
        (VERSIONS, "HEAD", "200"): 1,
        (VERSIONS, "GET", "401"): 1,
        (DOWNLOAD, "GET", "200"): 2,
        (DOWNLOAD, "GET", "404"): 1,
        ("unmatched", "GET", "404"): 1,
        ("unmatched", "POST", "405"): 1,
    }

    durations = families["mirror_http_request_duration_seconds"]
    per_route: dict[str, float] = {}
    for (route, *_), count in counted.items():
        per_route[route] = per_route.get(route, 0) + count
    assert values(durations, "route", sample="mirror_http_request_duration_seconds_count") == {
        (route,): count for route, count in per_route.items()
    }
    for route, count in per_route.items():
        buckets = [(s.labels["le"], s.value) for s in durations.samples
                   if s.name.endswith("_bucket") and s.labels["route"] == route]
        assert [float(le) for le, _ in buckets] == [*LATENCY_BUCKETS, float("inf")]
        assert [value for _, value in buckets] == sorted(value for _, value in buckets)  # cumulative
        assert buckets[-1][1] == count
    sums = values(durations, "route", sample="mirror_http_request_duration_seconds_sum")
    assert all(0 < seconds < 60 for seconds in sums.values())

    assert values(families["mirror_downloads"], "mode") == {("proxy",): 2}
    assert "process_resident_memory_bytes" in families and "python_info" in families
    for secret in (NAMESPACE, NAME, "1.0.0", "9.9.9", admin_token, "Bearer"):
        assert secret not in body

    # The scrape itself is counted once it has been answered.
    _, families = await scrape(registry)
    assert values(families["mirror_http_requests"], "route", "method", "status")[("/metrics", "GET", "200")] == 1


async def test_ingest_outcomes_are_counted(registry, module_archive):
    admin = await registry.auth()
    body = module_archive("first")
    assert (await registry.publish(ADDR, "1.0.0", body, admin)).status == 201
    assert (await registry.publish(ADDR, "1.1.0", module_archive("second"), admin)).status == 201
    assert (await registry.publish(ADDR, "v1.0.0", body, admin)).status == 200  # same bytes
    assert (await registry.publish(ADDR, "1.0.0", module_archive("other"), admin)).status == 409
    assert (await registry.publish(ADDR, "2.0.0", b"not a tarball", admin)).status == 422

    _, families = await scrape(registry)
    ingested = values(families["mirror_ingest"], "source", "outcome")
    assert {key: count for key, count in ingested.items() if count} == {
        ("upload", "created"): 2,
        ("upload", "unchanged"): 1,
        ("upload", "rejected"): 2,
    }
    assert ingested[("github", "created")] == 0  # every known series is there from the start


async def test_github_ingests_and_their_jobs_are_counted(aiohttp_server, start_registry, make_config, tmp_path):
    fake = FakeGitHub()
    server = await aiohttp_server(fake.app)
    key_file = tmp_path / "app.pem"
    key_file.write_text(fake.private_key_pem)
    secret = "webhook-secret-for-metrics"
    github = {
        "app_id": fake.app_id,
        "private_key_file": str(key_file),
        "webhook_secret": secret,
        "api_url": str(server.make_url("")).rstrip("/"),
        "workers": 2,
        "reconcile_interval": 0,
    }
    registry = await start_registry(make_config(github=github))
    fake.add_repository(NAMESPACE, f"terraform-aws-{NAME}", installation_id=7)
    for tag in ("v1.0.0", "v1.1.0"):
        fake.add_tag(NAMESPACE, f"terraform-aws-{NAME}", tag, {"main.tf": f'output "tag" {{\n  value = "{tag}"\n}}\n'.encode()})
    headers, body = webhook_delivery("installation", installation_payload(fake, "created", 7), secret)
    assert (await registry.client.post("/github/webhook", data=body, headers=headers)).status == 202
    await registry.app[JOBS].drain(15)

    text, families = await scrape(registry)
    ingested = values(families["mirror_ingest"], "source", "outcome")
    assert {key: count for key, count in ingested.items() if count} == {("github", "created"): 2}
    assert values(families["mirror_jobs"], "kind", "outcome") == {
        ("github.delivery", "succeeded"): 1,  # the installation event
        ("github.sync_repository", "succeeded"): 1,  # its one repository
        ("github.ingest_tag", "succeeded"): 2,  # and that repository's tags
    }
    assert values(families["mirror_http_requests"], "route", "method", "status") == {("/github/webhook", "POST", "202"): 1}
    assert NAMESPACE not in text and NAME not in text


@pytest.mark.parametrize("mode", ["presigned", "s3"])
async def test_downloads_are_counted_by_mode(mode, start_registry, make_config, module_archive, moto, bucket):
    config = make_config(
        blobs={"backend": "s3"},
        s3={"bucket": bucket, "prefix": "registry/", "endpoint_url": moto.endpoint_url, "region": moto.region},
        downloads={"mode": mode},
    )
    registry = await start_registry(config)
    admin = await registry.auth()
    assert (await registry.publish(ADDR, "1.0.0", module_archive(), admin)).status == 201
    for _ in range(3):
        assert (await registry.client.get(f"/v1/modules/{ADDR}/1.0.0/download", headers=admin)).status == 200
    _, families = await scrape(registry)
    assert values(families["mirror_downloads"], "mode") == {(mode,): 3}


async def test_job_outcomes_are_counted(start_registry, make_config):
    registry = await start_registry(make_config(jobs={"backoff_base": 0.01, "backoff_max": 0.02}))
    queue = registry.app[JOBS]
    calls = {"flaky": 0}

    async def flaky(payload: dict[str, Any]) -> None:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise StorageUnavailable("bucket unreachable")

    async def doomed(payload: dict[str, Any]) -> None:
        raise BadRequest(f"archive of {NAMESPACE} has no .tf files")  # a permanent error

    queue.register("test.flaky", flaky)
    queue.register("test.doomed", doomed)
    flaky_job = await queue.enqueue("test.flaky", {"module": ADDR})
    doomed_job = await queue.enqueue("test.doomed", {"module": ADDR})
    await queue.drain(timeout=10)
    store = registry.app[STORE]
    assert (await store.get_job(flaky_job.id)).state == "done"
    assert (await store.get_job(doomed_job.id)).state == "failed"

    body, families = await scrape(registry)
    assert values(families["mirror_jobs"], "kind", "outcome") == {
        ("test.flaky", "retried"): 1,
        ("test.flaky", "succeeded"): 1,
        ("test.doomed", "failed"): 1,
    }
    assert NAMESPACE not in body


async def test_webhook_deliveries_are_counted(start_registry, make_config, module_archive, aiohttp_server):
    attempts = {"good": 0, "bad": 0}

    def receiver(name: str, status: int) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            await request.read()
            attempts[name] += 1
            return web.Response(status=status)

        return handle

    hooks = web.Application()
    hooks.router.add_post("/good", receiver("good", 204))
    hooks.router.add_post("/bad", receiver("bad", 500))
    server = await aiohttp_server(hooks)

    max_attempts = 2
    webhooks = {"allow_private": True, "backoff_base": 0.01, "backoff_max": 0.02, "max_attempts": max_attempts}
    registry = await start_registry(make_config(webhooks=webhooks))
    admin = await registry.auth()
    store = registry.app[STORE]
    start_serial = await store.latest_serial()
    ids = {}
    for name in ("good", "bad"):
        response = await registry.client.post(
            "/api/v1/webhooks", json={"url": str(server.make_url(f"/{name}")), "secret": "s" * 20}, headers=admin
        )
        assert response.status == 201, await response.text()
        ids[name] = (await response.json())["webhook"]["id"]
    assert (await registry.publish(ADDR, "1.0.0", module_archive(), admin)).status == 201
    events = len(await store.events_after(start_serial, 1000))
    assert events >= 1

    async def settled() -> bool:
        parked = await store.list_delivery_failures(ids["bad"])
        return attempts["good"] == events and len(parked) == events

    await eventually(settled, "the counters to settle", timeout=10)
    body, families = await scrape(registry)
    assert values(families["mirror_webhook_deliveries"], "outcome") == {
        ("delivered",): events,
        ("failed",): events * max_attempts,
        ("dead_lettered",): events,
    }
    assert attempts["bad"] == events * max_attempts
    assert str(server.port) not in body and "/bad" not in body and "/good" not in body


async def test_metrics_can_be_turned_off(start_registry, make_config):
    registry = await start_registry(make_config(metrics={"enabled": False}))
    response = await registry.client.get("/metrics")
    assert response.status == 404
    assert (await response.json())["errors"]
