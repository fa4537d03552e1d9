"""Outbound requests: the address connected to is the one checked (webhooks, download locations),
tunnel and translation ranges, what an upstream may hand out (``s3::``, ``git::file``, private
hosts), and subscriber URLs redacted wherever they are shown.

DNS is made up by giving the guard an inner resolver (dependency injection of aiohttp's
``AbstractResolver``): real sockets, real servers on loopback, nothing of mirror patched."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from mirror.config import load_config
from mirror.formats.archive import ArchiveLimits
from mirror.domain.models import Event
from mirror.domain.timeutil import now_rfc3339
from mirror.domain.urls import redact_url, redact_urls_in
from mirror.domain.errors import BadRequest
from mirror.http.keys import STORE
from mirror.integrations.netguard import GuardedResolver, NonPublicAddress, non_public_reason, outbound_session
from mirror.integrations.webhook_transport import check_destination, deliver
from mirror.services.webhooks import DeliveryError, new_subscription
from mirror.integrations.upstream.client import RegistryClient
from mirror.domain.errors import UnsupportedSource
from mirror.integrations.upstream.fetch import Fetcher, source_policies
from mirror.domain.addresses import ModuleAddress
from tests.live import eventually, run_cli, write_config
from tests.test_upstream import ArchiveHost, FakeRegistry, bare_repository, packed, serve
from tests.modules import write_module

SECRET = "s3cret-s3cret-s3cret"
PUBLIC = "93.184.216.34"
ADDRESS = ModuleAddress.parse("hashicorp/net/aws")


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next list of addresses (the last one repeats): a DNS server
    that rebinds a name between the check and the connection."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        self.lookups.append(host)
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


# -- which addresses are public ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("2002:7f00:1::1", "6to4 address of 127.0.0.1"),  # 6to4 wrapping loopback
        ("2002:a9fe:a9fe::", "6to4 address of 169.254.169.254"),  # ... the metadata service
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),  # the whole Teredo range
        ("2001::1", "Teredo"),
        ("64:ff9b::7f00:1", "NAT64 address of 127.0.0.1"),
        ("64:ff9b::a00:1", "NAT64 address of 10.0.0.1"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("::ffff:10.0.0.1", "IPv4-mapped address of 10.0.0.1"),
        ("::808:808", "IPv4-compatible"),
        ("fec0::1", "site-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("fd00::1", "private"),
        ("ff02::1", "multicast"),
        ("2002:808:808::1", None),  # 6to4 of a public address
        ("64:ff9b::808:808", None),  # NAT64 of a public address (DNS64 networks)
        ("::ffff:8.8.8.8", None),
        ("2606:4700::1111", None),
        (PUBLIC, None),
    ],
)
def test_tunnel_and_translation_ranges_are_judged_by_where_they_lead(address, refused):
    reason = non_public_reason(ipaddress.ip_address(address))
    assert (reason is None) if refused is None else (refused in (reason or ""))


@pytest.mark.parametrize("host", ["[2002:7f00:1::1]", "[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "[64:ff9b::7f00:1]"])
async def test_tunnel_literals_are_refused_as_webhook_destinations(host):
    with pytest.raises(BadRequest, match="non-public"):
        await check_destination(f"http://{host}/hook", allow_private=False)


async def test_the_guarded_resolver_keeps_only_public_answers():
    mixed = GuardedResolver(ScriptedResolver([PUBLIC, "127.0.0.1", "2002:a00:1::1"]))
    assert [answer["host"] for answer in await mixed.resolve("mixed.test", 80)] == [PUBLIC]
    with pytest.raises(NonPublicAddress, match="no public address: 10.1.2.3 .*private"):
        await GuardedResolver(ScriptedResolver(["10.1.2.3"])).resolve("internal.test", 80)


# -- webhooks: DNS rebinding ------------------------------------------------------------------


async def test_a_webhook_host_that_rebinds_after_the_check_is_not_connected_to(aiohttp_server):
    calls: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app, host="127.0.0.1")
    url = f"http://hooks.rebind.test:{server.port}/hook"
    subscription = new_subscription(url, SECRET, [], [], now_rfc3339())
    event = Event(1, "module.created", now_rfc3339(), {})

    # the check sees a public address; the connection's own lookup gets loopback
    dns = ScriptedResolver([PUBLIC], ["127.0.0.1"])
    await check_destination(url, allow_private=False, resolver=dns)
    async with outbound_session(allow_private=False, resolver=dns) as session:
        with pytest.raises(DeliveryError, match="non-public address.*127.0.0.1"):
            await deliver(session, subscription, event, timeout=2)
    assert dns.lookups == ["hooks.rebind.test", "hooks.rebind.test"]
    assert calls == []  # nothing reached the loopback receiver

    # a literal loopback address never goes through a resolver: the socket check refuses it
    literal = new_subscription(f"http://127.0.0.1:{server.port}/hook", SECRET, [], [], now_rfc3339())
    async with outbound_session(allow_private=False) as session:
        with pytest.raises(DeliveryError, match="non-public"):
            await deliver(session, literal, event, timeout=2)
    assert calls == []

    # the same name and receiver with allow_private: delivered (the refusals above were the guard's)
    async with outbound_session(allow_private=True, resolver=ScriptedResolver(["127.0.0.1"])) as session:
        await deliver(session, subscription, event, timeout=2)
    assert calls == ["/hook"]


# -- what an upstream may hand out --------------------------------------------------------------


def upstream_config(tmp_path: Path, registry_url: str, **keys: Any) -> Any:
    lines = ["[[upstreams]]", f'host = "{registry_url}"']
    for key, value in keys.items():
        rendered = "[" + ", ".join(f'"{item}"' for item in value) + "]" if isinstance(value, list) else str(value).lower()
        lines.append(f"{key} = {rendered}")
    path = tmp_path / "mirror.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path, environ={})


async def fetch_version(tmp_path: Path, registry: FakeRegistry, version: str, **keys: Any) -> str:
    """Ask the fake upstream for ``version`` and fetch it as sync does; the archive's sha256."""
    config = upstream_config(tmp_path, registry.url, **keys)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        fetcher = Fetcher(
            session,
            spool_dir=tmp_path / "spool",
            limits=ArchiveLimits(),
            timeout=5,
            policies=source_policies(config.upstreams),
        )
        try:
            location = await RegistryClient(session, registry.url, token=registry.token, timeout=5).download(
                ADDRESS, version
            )
            async with fetcher.fetch(location.location, base_url=location.download_url) as fetched:
                return fetched.archive.sha256
        finally:
            await fetcher.close()


@pytest.fixture
async def registry(aiohttp_server) -> FakeRegistry:
    fake = FakeRegistry()
    fake.url = await serve(aiohttp_server, fake.app())
    return fake


async def test_s3_locations_on_other_hosts_get_no_signed_request(aiohttp_server, registry, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATHISHOSTSKEY0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "this-hosts-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "this-hosts-session-token")
    seen: list[dict[str, str]] = []

    async def fake_s3(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake_s3)
    fake = await serve(aiohttp_server, app)
    registry.add("hashicorp/net/aws", "1.0.0", f"s3::{fake}/bucket/modules/net.tar.gz")

    with pytest.raises(UnsupportedSource, match="not an AWS S3 host, nor one of this upstream's s3_endpoints"):
        await fetch_version(tmp_path, registry, "1.0.0")
    assert seen == []  # no request at all, so no Authorization header and no session token
    # with allow_private only: still refused (s3 endpoints are named one by one)
    with pytest.raises(UnsupportedSource, match="s3_endpoints"):
        await fetch_version(tmp_path, registry, "1.0.0", allow_private=True)
    assert seen == []
    # named in s3_endpoints: asked (and signed), as the operator configured
    with pytest.raises(Exception, match="404|NoSuchKey|Not Found"):
        await fetch_version(tmp_path, registry, "1.0.0", s3_endpoints=[fake])
    assert seen and "AWS4-HMAC-SHA256" in seen[0]["Authorization"]


async def test_git_file_sources_need_allow_file_sources(registry, tmp_path):
    bare, commits = bare_repository(tmp_path)
    registry.add("hashicorp/net/aws", "1.0.0", f"git::file://{bare}?ref=v1.0.0")
    registry.add("hashicorp/net/aws", "1.0.1", f"git::{bare}?ref=v1.0.0")  # a plain path is local too
    for version in ("1.0.0", "1.0.1"):
        with pytest.raises(UnsupportedSource, match="local repository; set allow_file_sources = true"):
            await fetch_version(tmp_path, registry, version)
    assert await fetch_version(tmp_path, registry, "1.0.0", allow_file_sources=True)


async def test_private_http_locations_need_allow_private(aiohttp_server, registry, tmp_path):
    archives = ArchiveHost()
    archives.url = await serve(aiohttp_server, archives.app())  # loopback, another origin
    body = packed(write_module(tmp_path / "m"))
    registry.add("hashicorp/net/aws", "1.0.0", archives.add("/m.tar.gz", body))
    with pytest.raises(UnsupportedSource, match="loopback address; set allow_private = true"):
        await fetch_version(tmp_path, registry, "1.0.0")
    assert archives.requests == []
    assert await fetch_version(tmp_path, registry, "1.0.0", allow_private=True)
    assert len(archives.requests) == 1

    # a location at the upstream's own origin is allowed as configured, but a redirect from
    # there to another private origin is judged like any location: refused before connecting
    async def own_file(request: web.Request) -> web.Response:
        return web.Response(body=body)

    async def redirect_away(request: web.Request) -> web.Response:
        raise web.HTTPFound(archives.url + "/m.tar.gz")

    upstream = FakeRegistry()
    upstream_app = upstream.app()
    upstream_app.router.add_get("/files/own.tar.gz", own_file)
    upstream_app.router.add_get("/files/m.tar.gz", redirect_away)
    upstream.url = await serve(aiohttp_server, upstream_app)
    upstream.locations = {
        ("hashicorp/net/aws", "1.0.0"): upstream.url + "/files/own.tar.gz",
        ("hashicorp/net/aws", "1.0.1"): upstream.url + "/files/m.tar.gz",
    }
    assert await fetch_version(tmp_path, upstream, "1.0.0")
    with pytest.raises(UnsupportedSource, match="loopback"):
        await fetch_version(tmp_path, upstream, "1.0.1")
    assert len(archives.requests) == 1  # the redirect was not followed


async def test_a_download_host_that_rebinds_is_not_connected_to(aiohttp_server, tmp_path):
    archives = ArchiveHost()
    archives.url = await serve(aiohttp_server, archives.app())
    port = archives.url.rsplit(":", 1)[1]
    archives.add("/m.tar.gz", packed(write_module(tmp_path / "m")))
    async with aiohttp.ClientSession() as session:
        fetcher = Fetcher(
            session, spool_dir=tmp_path / "spool", limits=ArchiveLimits(), timeout=5,
            resolver=ScriptedResolver(["127.0.0.1"]),
        )
        try:
            with pytest.raises(UnsupportedSource, match="files.rebind.test.*no public address: 127.0.0.1"):
                async with fetcher.fetch(f"http://files.rebind.test:{port}/m.tar.gz"):
                    pass
        finally:
            await fetcher.close()
    assert archives.requests == []


# -- subscriber URLs redacted -------------------------------------------------------------------


def test_redact_url_hides_userinfo_and_query_values():
    assert redact_url("https://bot:hunter2@hooks.example.com/x?token=abc&v=1") == "https://***@hooks.example.com/x?token=***&v=***"
    assert redact_url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    assert redact_url("http://[") == "http://***"
    assert redact_urls_in("POST http://u:p@h.test/a?k=v answered HTTP 500") == "POST http://***@h.test/a?k=*** answered HTTP 500"


async def test_subscriber_urls_are_redacted_in_the_api_last_error_logs_and_cli(
    aiohttp_client, make_config, aiohttp_server, capsys, tmp_path
):
    from mirror.app.build import create_app
    from tests.conftest import Registry

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    server = await aiohttp_server(app)
    url = f"http://robot:pa55word@127.0.0.1:{server.port}/hook?token=tok-SECRETVALUE"
    config = make_config(webhooks={"allow_private": True, "backoff_base": 0.02, "backoff_max": 0.05, "max_attempts": 2, "timeout_seconds": 1})
    registry = Registry(await aiohttp_client(create_app(config)))
    admin = await registry.auth()
    created = await registry.client.post("/api/v1/webhooks", json={"url": url, "secret": SECRET}, headers=admin)
    assert created.status == 201
    subscription_id = (await created.json())["webhook"]["id"]
    response = await registry.publish("acme/net/aws", "1.0.0", _archive(tmp_path), admin)
    assert response.status == 201
    await eventually(lambda: registry.app[STORE].list_delivery_failures(subscription_id), "a parked delivery", timeout=10)
    listed = await (await registry.client.get("/api/v1/webhooks", headers=admin)).text()
    failures = await (await registry.client.get(f"/api/v1/webhooks/{subscription_id}/failures", headers=admin)).text()
    shown = f"http://***@127.0.0.1:{server.port}/hook?token=***"
    assert shown in listed and shown in failures
    logs = capsys.readouterr()
    for text in (listed, failures, logs.out, logs.err, await created.text()):
        assert "pa55word" not in text and "SECRETVALUE" not in text and "robot" not in text

    cli_config = write_config(tmp_path / "cli.toml", {"metadata": {"path": str(config.metadata.path)}})
    result = run_cli("webhooks", "list", "--config", str(cli_config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert shown in result.stdout and "pa55word" not in result.stdout and "SECRETVALUE" not in result.stdout
    result = run_cli("webhooks", "failures", subscription_id, "--config", str(cli_config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HTTP 500" in result.stdout and "SECRETVALUE" not in result.stdout and "pa55word" not in result.stdout


def _archive(tmp_path: Path) -> bytes:
    import io

    from mirror.formats.archive import pack_directory

    out = io.BytesIO()
    pack_directory(write_module(tmp_path / "published"), out)
    return out.getvalue()
