"""The pull-through cache end to end: a downstream ``mirror serve`` whose ``acme`` (or
``hashicorp``) namespace proxies an upstream, which is a real ``mirror serve`` on loopback or an
aiohttp server standing in for a public registry; real ``terraform init`` runs on the downstream
side, before and after the upstream is stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from mirror.config import load_config
from mirror.domain.errors import ConfigError
from mirror.services.pullthrough import STALE_WAIT_SECONDS
from tests.live import MirrorServer, eventually
from tests.modules import write_module, write_root_config
from tests.terraform import TERRAFORM_1_15, base_env, cli_config, installed_modules
from tests.test_sync import LiveMirror, config_of, mirror_config, token_for, version_of
from tests.test_upstream import TOKEN, ArchiveHost, FakeRegistry, packed, serve

HOST = "registry.example.test"
ADDRESS = "acme/network/aws"
TTL = 2


class Downstream:
    """A live downstream ``mirror serve`` and an HTTP client for it."""

    def __init__(self, server: MirrorServer, session: aiohttp.ClientSession, admin: str, read: str) -> None:
        self.server = server
        self.session = session
        self.admin = admin
        self.read = read

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.read}"}
        async with self.session.get(self.server.url + path, headers=headers, allow_redirects=False) as response:
            return response.status, await response.json()

    async def versions(self, address: str = ADDRESS) -> list[str]:
        status, body = await self.get(f"/v1/modules/{address}/versions")
        assert status == 200, body
        assert body["modules"][0]["source"].lower() == address.lower()
        return [item["version"] for item in body["modules"][0]["versions"]]

    async def download(self, version: str, address: str = ADDRESS) -> tuple[int, Any]:
        return await self.get(f"/v1/modules/{address}/{version}/download")

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        status, body = await self.get("/api/v1/events?after=0&limit=1000", token=self.admin)
        assert status == 200, body
        return [(event["type"], event["data"]) for event in body["events"]]

    async def archive_bytes(self, version: str, address: str = ADDRESS) -> bytes:
        status, body = await self.download(version, address)
        assert status == 200, body
        location = body["location"]
        url = location if location.startswith("http") else self.server.url + location
        async with self.session.get(url) as response:  # no token: the location signs itself
            assert response.status == 200
            return await response.read()


async def start_downstream(root: Path, session: aiohttp.ClientSession, *upstreams: dict[str, Any]) -> Downstream:
    config_file = mirror_config(root, upstreams=list(upstreams))
    admin, read = await token_for(config_file, "admin"), await token_for(config_file, "read")
    server = MirrorServer(config_file, config_of(config_file).server.port, root).start()
    return Downstream(server, session, admin, read)


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[LiveMirror]:
    """A live ``mirror serve`` to pull through from, with an admin token."""
    config_file = mirror_config(tmp_path / "upstream")
    server = MirrorServer(config_file, config_of(config_file).server.port, config_file.parent)
    mirror = LiveMirror(config_file, server.start(), await token_for(config_file))
    yield mirror
    server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        yield client


def released(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [data["version"] for kind, data in events if kind == "module.version_released"]


async def metric(session: aiohttp.ClientSession, url: str, name: str, **labels: str) -> dict[str, float]:
    """``/metrics`` samples of ``name`` matching ``labels``, by the value of their other label."""
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                (rest,) = [value for key, value in sample.labels.items() if key not in labels]
                found[rest] = sample.value
    return found


# A mirror upstream, terraform on the downstream side ----------------------------------------------


@pytest.mark.terraform
async def test_pull_through_from_a_mirror_installs_with_terraform_and_outlives_the_upstream(
    upstream, session, tmp_path
):
    published = {v: await upstream.publish(ADDRESS, v, marker=f"up-{v}") for v in ("1.0.0", "1.1.0")}
    await upstream.publish("other/network/aws", "1.0.0", marker="other")
    down = await start_downstream(
        tmp_path / "down",
        session,
        {
            "host": upstream.url,
            "token": await token_for(upstream.config_file, "read"),
            "proxy_namespaces": ["acme"],
            "proxy_ttl_seconds": TTL,
        },
    )
    rc = cli_config(tmp_path / "terraform.rc", host=HOST, port=down.server.port, token=down.read)
    try:
        # versions of a module unknown here come from the upstream; nothing is fetched yet
        assert await down.versions() == ["1.1.0", "1.0.0"]
        assert await down.events() == []
        # a namespace that is not proxied is untouched: unknown is 404, whatever the upstream has
        status, body = await down.get("/v1/modules/other/network/aws/versions")
        assert (status, body) == (404, {"errors": ["module other/network/aws not found"]})
        assert (await down.download("1.0.0", "other/network/aws"))[0] == 404

        # terraform init installs the newest match: its first download pulls it through
        root = write_root_config(tmp_path / "root", f"{HOST}/{ADDRESS}", "~> 1.0")
        init = TERRAFORM_1_15.run(root, "init", "-no-color", env=base_env(rc, tmp_path))
        assert init.returncode == 0, init.stdout + init.stderr
        assert installed_modules(root)["net"]["Version"] == "1.1.0"
        assert 'value = "up-1.1.0-${var.name}"' in (root / ".terraform/modules/net/main.tf").read_text()
        assert (root / ".terraform/modules/net/modules/subnets/main.tf").is_file()
        events = await down.events()
        assert [kind for kind, _ in events] == ["module.created", "module.version_released"]
        assert events[0][1] == {"namespace": "acme", "name": "network", "provider": "aws"}
        assert events[1][1]["version"] == "1.1.0" and events[1][1]["url"].startswith("file://")
        pulled = await version_of(down.server.config_file, ADDRESS, "1.1.0")
        assert pulled.sha256 == published["1.1.0"]["sha256"]  # the upstream's bytes, byte for byte
        assert pulled.source == f"{upstream.url.removeprefix('http://')}/{ADDRESS}"

        # concurrent first downloads of one version: one fetch, one ingest, one event
        answers = await asyncio.gather(*(down.download("1.0.0") for _ in range(12)))
        assert {status for status, _ in answers} == {200}
        assert len({body["location"] for _, body in answers}) == 1
        assert released(await down.events()) == ["1.1.0", "1.0.0"]
        assert (await version_of(down.server.config_file, ADDRESS, "1.0.0")).sha256 == published["1.0.0"]["sha256"]
        ingests = await metric(session, down.server.url, "mirror_ingest_total", source="pullthrough")
        assert ingests == {"created": 2, "unchanged": 0, "rejected": 0, "failed": 0}  # no fetch was repeated
        assert await metric(session, upstream.url, "mirror_downloads_total") == {"proxy": 2}  # one /download each

        # the upstream's list is reused for the TTL: a new version shows after it
        await asyncio.sleep(TTL)  # whatever list is cached is stale now: the next request asks again
        asked = time.monotonic()
        assert await down.versions() == ["1.1.0", "1.0.0"]
        await upstream.publish(ADDRESS, "1.2.0", marker="up-1.2.0")
        assert await down.versions() == ["1.1.0", "1.0.0"]
        await eventually(lambda: _lists(down, "1.2.0"), "1.2.0 to be listed", timeout=TTL + 5)
        assert time.monotonic() - asked >= TTL
        assert await down.versions() == ["1.2.0", "1.1.0", "1.0.0"]

        # the upstream goes away
        assert upstream.server.stop() == 0
        await asyncio.sleep(TTL + 0.2)
        assert await down.versions() == ["1.2.0", "1.1.0", "1.0.0"]  # the last list, stale
        await eventually(lambda: _logged(down, "upstream failed: serving the module's last versions list"), "the stale-list log line", timeout=5)
        assert (await down.download("1.1.0"))[0] == 200  # already here: never leaves the site
        again = write_root_config(tmp_path / "again", f"{HOST}/{ADDRESS}", "1.1.0")
        init = TERRAFORM_1_15.run(again, "init", "-no-color", env=base_env(rc, tmp_path))
        assert init.returncode == 0, init.stdout + init.stderr
        assert installed_modules(again)["net"]["Version"] == "1.1.0"
        # a version listed but never fetched cannot be had now: a 502 that says why
        status, body = await down.download("1.2.0")
        assert status == 502, body
        assert body["errors"][0].startswith(
            f"version 1.2.0 of module {ADDRESS} is not in this registry, "
            f"and its upstream {upstream.url} cannot be reached now: "
        )
        # a module never listed, nothing here: 502 as well
        status, body = await down.get("/v1/modules/acme/vpc/aws/versions")
        assert status == 502 and "cannot be reached now" in body["errors"][0], body
        assert released(await down.events()) == ["1.1.0", "1.0.0"]
    finally:
        assert down.server.stop() == 0, down.server.logs()


async def _lists(down: Downstream, version: str, address: str = ADDRESS) -> bool:
    return version in await down.versions(address)


async def _logged(down: Downstream, text: str) -> bool:
    return text in down.server.logs()  # log lines are written in batches


# A public-style registry upstream -----------------------------------------------------------------


@pytest.mark.slow
async def test_pull_through_from_a_public_style_registry(aiohttp_server, session, tmp_path):
    archives = ArchiveHost()
    archives.url = await serve(aiohttp_server, archives.app())
    registry = FakeRegistry()
    registry.url = await serve(aiohttp_server, registry.app())
    good = packed(write_module(tmp_path / "src" / "consul", marker="public"))
    registry.add("hashicorp/consul/aws", "0.1.0", archives.add("/files/consul-0.1.0.tar.gz", good))
    registry.add("hashicorp/consul/aws", "0.2.0", archives.add("/files/consul-0.2.0.tar.gz", b"not a gzip archive"))
    registry.extra_versions["hashicorp/consul/aws"] = ["nightly"]  # not SemVer: left out
    # a second upstream, for another namespace, whose versions answers can be slowed down
    slow, delay = FakeRegistry(), {"seconds": 0.0}

    @web.middleware
    async def slowly(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith("/versions"):
            await asyncio.sleep(delay["seconds"])
        return await handler(request)

    slow_app = slow.app()
    slow_app.middlewares.append(slowly)
    slow.url = await serve(aiohttp_server, slow_app)
    slow.add("slow/mod/aws", "1.0.0", archives.url + "/files/consul-0.1.0.tar.gz")
    down = await start_downstream(
        tmp_path / "down",
        session,
        # their archives are on another loopback server
        {"host": registry.url, "token": TOKEN, "proxy_namespaces": ["HashiCorp"], "proxy_ttl_seconds": 60, "allow_private": True},
        {"host": slow.url, "token": TOKEN, "proxy_namespaces": ["slow"], "proxy_ttl_seconds": 1, "allow_private": True},
    )
    try:
        assert await down.versions("hashicorp/consul/aws") == ["0.2.0", "0.1.0"]
        assert await down.versions("HASHICORP/consul/aws") == ["0.2.0", "0.1.0"]  # namespaces match in any case
        asked = len(registry.seen_tokens)

        status, body = await down.download("0.1.0", "hashicorp/consul/aws")
        assert status == 200, body
        assert (await down.archive_bytes("0.1.0", "hashicorp/consul/aws")) == good
        # the token went to the registry's discovery, versions and download, never to the archive host
        assert set(registry.seen_tokens) == {f"Bearer {TOKEN}"}
        assert [path for path, _ in archives.requests] == ["/files/consul-0.1.0.tar.gz"]
        assert all("Authorization" not in headers for _, headers in archives.requests)
        # later downloads stay here
        assert (await down.download("0.1.0", "hashicorp/consul/aws"))[0] == 200
        assert len(registry.seen_tokens) == asked + 1  # the one /download of the first fetch

        # an archive the checks refuse: 502 naming the reason, nothing stored, not fetched again for the TTL
        for _ in range(2):
            status, body = await down.download("0.2.0", "hashicorp/consul/aws")
            assert status == 502, body
            assert "the archive of hashicorp/consul/aws 0.2.0" in body["errors"][0] and "refused" in body["errors"][0]
        assert [path for path, _ in archives.requests].count("/files/consul-0.2.0.tar.gz") == 1
        assert released(await down.events()) == ["0.1.0"]

        assert len(registry.seen_tokens) == asked + 2  # and the /download of 0.2.0's one fetch

        # unknown upstream (404): 404 here too, and that answer is reused for the TTL
        for _ in range(2):
            status, body = await down.get("/v1/modules/hashicorp/absent/aws/versions")
            assert status == 404, body
            assert body["errors"] == [f"module hashicorp/absent/aws not found, here or at its upstream {registry.url}"]
        assert (await down.download("1.0.0", "hashicorp/absent/aws"))[0] == 404
        assert len(registry.seen_tokens) == asked + 3  # one versions call

        # a slow upstream: past the TTL, a request waits STALE_WAIT_SECONDS at most, then gets the
        # last list; the look-up goes on, and its answer serves the next requests
        assert await down.versions("slow/mod/aws") == ["1.0.0"]
        delay["seconds"] = 4.0
        slow.add("slow/mod/aws", "1.1.0", archives.url + "/files/consul-0.1.0.tar.gz")
        await asyncio.sleep(1.1)
        started = time.monotonic()
        assert await down.versions("slow/mod/aws") == ["1.0.0"]
        assert STALE_WAIT_SECONDS - 0.3 < time.monotonic() - started < 3.5
        await eventually(lambda: _lists(down, "1.1.0", "slow/mod/aws"), "1.1.0 of slow/mod/aws to be listed", timeout=6)
    finally:
        assert down.server.stop() == 0, down.server.logs()


# Configuration ------------------------------------------------------------------------------------


def test_proxy_namespaces_in_the_config(tmp_path):
    path = tmp_path / "mirror.toml"
    path.write_text(
        '[[upstreams]]\nhost = "registry.terraform.io"\nproxy_namespaces = ["hashicorp", "Terraform-AWS-Modules"]\n'
        '[[upstreams]]\nhost = "http://127.0.0.1:8080"\nproxy_namespaces = ["acme"]\nproxy_ttl_seconds = 30\n'
        "modules = [\"acme/network/aws\"]\n"
    )
    config = load_config(path, {})
    assert [(u.proxy_namespaces, u.proxy_ttl_seconds) for u in config.upstreams] == [
        (("hashicorp", "Terraform-AWS-Modules"), 300),
        (("acme",), 30),
    ]
    path.write_text(
        '[[upstreams]]\nhost = "registry.terraform.io"\nproxy_namespaces = ["hashicorp", "not ok", "acme", "ACME"]\n'
        "proxy_ttl_seconds = 0\n"
        '[[upstreams]]\nhost = "http://127.0.0.1:8080"\nproxy_namespaces = ["HashiCorp"]\nproxy_ttl_seconds = 86401\n'
        '[[upstreams]]\nhost = "http://127.0.0.1:8081"\nproxy_namespaces = "acme"\nproxy_ttl_seconds = "soon"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    problems = info.value.problems
    for fragment in (
        "#1 (registry.terraform.io): proxy_namespaces: 'not ok' is not a valid namespace",
        "#1 (registry.terraform.io): proxy_namespaces: 'ACME' is listed twice",
        "#1 (registry.terraform.io): proxy_ttl_seconds must be between 1 and 86400, not 0",
        "#2 (http://127.0.0.1:8080): proxy_namespaces: 'HashiCorp' is already proxied by [[upstreams]] #1",
        "#2 (http://127.0.0.1:8080): proxy_ttl_seconds must be between 1 and 86400, not 86401",
        "#3 (http://127.0.0.1:8081): proxy_namespaces must be a list of strings",
        "#3 (http://127.0.0.1:8081): proxy_ttl_seconds must be a whole number of seconds, not 'soon'",
    ):
        assert any(fragment in problem for problem in problems), (fragment, problems)
    assert len(problems) == 7, problems
