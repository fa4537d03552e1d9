"""The network mirror pulling providers through from a stand-in upstream registry, in process:
versions listed from the upstream, a version's JSON built from its verified SHA256SUMS, each zip
fetched once for every concurrent requester and served from the blob store after, the upstream
gone; tampered signatures, lists and zips refused with nothing stored."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from urllib.parse import urljoin

import pytest

from mirror.config import load_config
from mirror.formats.provider_zip import check_provider_zip
from mirror.http.keys import STORE
from tests.provider_upstream import ProviderUpstream
from tests.providers import build_release, generate_key

HOST = "registry.example.com"
ZIP = "terraform-provider-aws_5.1.0_linux_amd64.zip"
SUMS = "terraform-provider-aws_5.1.0_SHA256SUMS"


@pytest.fixture(scope="module")
def rsa():
    return generate_key("rsa")


@pytest.fixture
def upstream(tmp_path: Path, rsa) -> ProviderUpstream:
    stand_in = ProviderUpstream()
    for version in ("5.0.0", "5.1.0"):
        files = build_release(tmp_path / f"aws-{version}", rsa, type_="aws", version=version,
                              platforms=("linux_amd64", "darwin_arm64", "windows_amd64"), protocols=None)
        stand_in.add("hashicorp", "aws", version, files, rsa)
    return stand_in


async def start(start_registry, tmp_path: Path, upstream_url: str, *, ttl: int = 300):
    data = tmp_path / "data"
    config = tmp_path / "mirror.toml"
    config.write_text(
        f'[server]\nspool_dir = "{data}/spool"\n[metadata]\npath = "{data}/mirror.db"\n[blobs]\npath = "{data}/blobs"\n'
        f'[events]\nlog_path = ""\n[auth]\nanonymous_read = true\n'
        f'[[upstreams]]\nhost = "{HOST}"\nurl = "{upstream_url}"\nproxy_providers = ["hashicorp/*"]\n'
        f'platforms = ["linux_amd64", "darwin_arm64"]\nproxy_ttl_seconds = {ttl}\n'
    )
    return await start_registry(load_config(config, environ={}))


async def test_a_provider_is_pulled_through_once_and_then_served_without_the_upstream(
    start_registry, aiohttp_server, upstream, tmp_path: Path
) -> None:
    upstream.zip_delay = 0.2
    server = await aiohttp_server(upstream.app())
    registry = await start(start_registry, tmp_path, str(server.make_url("")).rstrip("/"))
    client = registry.client
    base = f"/v1/mirror/{HOST}/hashicorp/aws"

    index = await client.get(base + "/index.json")
    assert index.status == 200, await index.text()
    assert await index.json() == {"versions": {"5.1.0": {}, "5.0.0": {}}}
    assert await registry.app[STORE].list_providers() == []  # listing stores nothing

    answer = await client.get(base + "/5.1.0.json")
    assert answer.status == 200, await answer.text()
    archives = (await answer.json())["archives"]
    assert sorted(archives) == ["darwin_arm64", "linux_amd64"]  # the configured platforms only
    linux = archives["linux_amd64"]
    zip_bytes = upstream.releases[1].files[ZIP].read_bytes()
    assert linux["hashes"] == ["zh:" + hashlib.sha256(zip_bytes).hexdigest()]
    assert upstream.served[ZIP] == 0  # nothing fetched before the first download

    url = urljoin(base + "/5.1.0.json", linux["url"])
    downloads = await asyncio.gather(*(client.get(url) for _ in range(5)))
    assert [d.status for d in downloads] == [200] * 5
    assert all([await d.read() == zip_bytes for d in downloads])
    assert upstream.served[ZIP] == 1  # one fetch for five concurrent requesters

    stored = await registry.app[STORE].get_provider_version(HOST, upstream_address(), "5.1.0")
    assert stored is not None and stored.shasums == upstream.releases[1].files[SUMS].read_bytes()
    events = [(e.type, e.data) for e in await registry.app[STORE].events_after(0, 100)]
    assert events == [
        ("provider.created", {"hostname": HOST, "namespace": "hashicorp", "type": "aws"}),
        ("provider.version_released", {"hostname": HOST, "namespace": "hashicorp", "type": "aws",
                                       "version": "5.1.0", "platforms": ["darwin_arm64", "linux_amd64"]}),
    ]

    await server.close()  # the upstream is gone
    index = await client.get(base + "/index.json")
    assert index.status == 200 and "5.1.0" in (await index.json())["versions"]
    after = (await (await client.get(base + "/5.1.0.json")).json())["archives"]["linux_amd64"]
    h1 = check_provider_zip(upstream.releases[1].files[ZIP], "aws").h1
    assert after["hashes"] == [h1, "zh:" + hashlib.sha256(zip_bytes).hexdigest()]
    again = await client.get(urljoin(base + "/5.1.0.json", after["url"]))
    assert again.status == 200 and await again.read() == zip_bytes
    old = await client.get(url)  # the first URL still works too
    assert old.status == 200 and await old.read() == zip_bytes
    # a version never pulled cannot be fetched now: a clear 502, not a hang
    missing = await client.get(base + "/5.0.0.json")
    assert missing.status == 502 and "errors" in await missing.json()


def upstream_address():
    from mirror.domain.providers import ProviderAddress

    return ProviderAddress("hashicorp", "aws")


async def test_a_bad_signature_or_list_is_refused_and_nothing_is_stored(
    start_registry, aiohttp_server, upstream, tmp_path: Path
) -> None:
    server = await aiohttp_server(upstream.app())
    registry = await start(start_registry, tmp_path, str(server.make_url("")).rstrip("/"))
    base = f"/v1/mirror/{HOST}/hashicorp/aws"
    sums = upstream.releases[1].files[SUMS].read_bytes()
    upstream.tampered[SUMS] = sums.replace(b"linux_amd64", b"linux_arm64")
    refused = await registry.client.get(base + "/5.1.0.json")
    assert refused.status == 502
    message = " ".join((await refused.json())["errors"])
    assert "signature does not verify" in message and "nothing stored" in message
    assert await registry.app[STORE].list_providers() == []
    assert await registry.app[STORE].latest_serial() == 0


async def test_a_tampered_zip_is_refused_and_not_kept(start_registry, aiohttp_server, upstream, tmp_path: Path) -> None:
    server = await aiohttp_server(upstream.app())
    registry = await start(start_registry, tmp_path, str(server.make_url("")).rstrip("/"))
    base = f"/v1/mirror/{HOST}/hashicorp/aws"
    upstream.tampered[ZIP] = b"PK\x03\x04 not the signed zip"
    linux = (await (await registry.client.get(base + "/5.1.0.json")).json())["archives"]["linux_amd64"]
    refused = await registry.client.get(urljoin(base + "/5.1.0.json", linux["url"]))
    assert refused.status == 502 and "sha256" in " ".join((await refused.json())["errors"])
    assert not list((tmp_path / "data" / "blobs").rglob("*.zip"))
    del upstream.tampered[ZIP]  # the upstream mends: the next download fetches the right zip
    fixed = await registry.client.get(urljoin(base + "/5.1.0.json", linux["url"]))
    assert fixed.status == 200 and await fixed.read() == upstream.releases[1].files[ZIP].read_bytes()


async def test_unproxied_providers_and_unknown_hosts_are_not_found(start_registry, aiohttp_server, upstream, tmp_path: Path) -> None:
    server = await aiohttp_server(upstream.app())
    registry = await start(start_registry, tmp_path, str(server.make_url("")).rstrip("/"))
    for path in (f"/v1/mirror/{HOST}/other/aws/index.json", "/v1/mirror/elsewhere.example.com/hashicorp/aws/index.json",
                 f"/v1/mirror/{HOST}/hashicorp/nope/index.json", f"/v1/mirror/{HOST}/hashicorp/aws/9.9.9.json"):
        response = await registry.client.get(path)
        assert response.status == 404, (path, await response.text())
        assert (await response.json())["errors"]
    assert upstream.served["versions"] == 1 and upstream.served["download"] == 2  # nope; 9.9.9 on two platforms


async def test_the_last_list_is_served_stale_while_the_upstream_is_down(
    start_registry, aiohttp_server, upstream, tmp_path: Path
) -> None:
    server = await aiohttp_server(upstream.app())
    registry = await start(start_registry, tmp_path, str(server.make_url("")).rstrip("/"), ttl=1)
    path = f"/v1/mirror/{HOST}/hashicorp/aws/index.json"
    assert (await (await registry.client.get(path)).json()) == {"versions": {"5.1.0": {}, "5.0.0": {}}}
    await server.close()
    await asyncio.sleep(1.1)  # the list's TTL runs out: the behaviour under test
    stale = await registry.client.get(path)
    assert stale.status == 200 and await stale.json() == {"versions": {"5.1.0": {}, "5.0.0": {}}}
