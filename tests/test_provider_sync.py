"""``mirror sync`` of providers from a stand-in upstream registry: the configured constraints and
platforms, signed SHA256SUMS verified, zips stored; re-running skips what is here; a bad signature
copies nothing."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from mirror.app.stores import metadata_store
from mirror.cli.common import with_store
from mirror.domain.providers import ProviderAddress
from mirror.formats.provider_zip import check_provider_zip
from tests.provider_upstream import ProviderUpstream
from tests.live import MirrorServer
from tests.providers import build_release, generate_key, public_key
from tests.test_sync import config_of, mirror_config, run_mirror, start_mirror, token_for  # noqa: F401

HOST = "registry.example.com"
AWS = ProviderAddress("hashicorp", "aws")


def stand_in(tmp_path: Path) -> ProviderUpstream:
    rsa = generate_key("rsa")
    upstream = ProviderUpstream()
    for version in ("4.9.0", "5.0.0", "5.1.0"):
        files = build_release(tmp_path / f"aws-{version}", rsa, type_="aws", version=version,
                              platforms=("linux_amd64", "darwin_arm64"), protocols=None)
        upstream.add("hashicorp", "aws", version, files, rsa)
    return upstream


async def stored(config_file: Path, version: str):
    async with metadata_store(config_of(config_file), create=False) as store:
        return await store.get_provider_version(HOST, AWS, version), await store.latest_serial()


async def test_sync_copies_the_configured_providers_and_resumes(aiohttp_server, tmp_path: Path) -> None:
    upstream = stand_in(tmp_path)
    server = await aiohttp_server(upstream.app())
    config_file = mirror_config(tmp_path / "registry", upstreams=[{
        "host": HOST, "url": str(server.make_url("")).rstrip("/"), "providers": ["hashicorp/aws ~> 5.0"],
        "platforms": ["linux_amd64"],
    }])
    code, out, err = await run_mirror("sync", "--config", str(config_file), cwd=tmp_path)
    assert code == 0, out + err
    assert "copied    hashicorp/aws 5.0.0" in out and "copied    hashicorp/aws 5.1.0" in out
    assert "4.9.0" not in out
    version, serial = await stored(config_file, "5.1.0")
    assert version is not None and version.platform_names == ["linux_amd64"]
    [linux] = version.platforms
    zip_path = upstream.releases[2].files["terraform-provider-aws_5.1.0_linux_amd64.zip"]
    assert linux.complete and linux.h1 == check_provider_zip(zip_path, "aws").h1
    blob = tmp_path / "registry" / "blobs" / linux.blob_key
    assert blob.read_bytes() == zip_path.read_bytes()
    assert upstream.served["terraform-provider-aws_5.1.0_darwin_arm64.zip"] == 0  # not a configured platform

    code, out, err = await run_mirror("sync", "--config", str(config_file), cwd=tmp_path)
    assert code == 0 and out.count("(already here)") == 2 and "total: 2 skipped" in out, out + err
    assert (await stored(config_file, "5.1.0"))[1] == serial  # nothing new written


async def test_a_bad_signature_copies_nothing_and_fails_the_run(aiohttp_server, tmp_path: Path) -> None:
    upstream = stand_in(tmp_path)
    sums = "terraform-provider-aws_5.1.0_SHA256SUMS"
    upstream.tampered[sums] = upstream.releases[2].files[sums].read_bytes() + b"\n"
    server = await aiohttp_server(upstream.app())
    config_file = mirror_config(tmp_path / "registry", upstreams=[{
        "host": HOST, "url": str(server.make_url("")).rstrip("/"), "providers": ["hashicorp/aws 5.1.0"],
    }])
    code, out, err = await run_mirror("sync", "--config", str(config_file), cwd=tmp_path)
    assert code == 1, out + err
    assert "failed" in out and "refused" in out and "Traceback" not in out + err
    assert (await stored(config_file, "5.1.0"))[0] is None


async def publish_provider(mirror, tmp_path: Path, tsk, version: str, *, key: bool = False) -> None:
    headers = {"Authorization": f"Bearer {mirror.token}"}
    async with aiohttp.ClientSession() as session:
        if key:
            async with session.post(f"{mirror.url}/api/v1/providers/acme/keys", json={"ascii_armor": public_key(tsk)},
                                    headers=headers) as response:
                assert response.status == 201, await response.text()
        form = aiohttp.FormData()
        files = build_release(tmp_path / f"widget-{version}", tsk, type_="widget", version=version, platforms=("linux_amd64",))
        for name, path in files.items():
            form.add_field("file", path.read_bytes(), filename=name, content_type="application/octet-stream")
        async with session.post(f"{mirror.url}/api/v1/providers/acme/widget/{version}", data=form, headers=headers) as response:
            assert response.status == 201, await response.text()


@pytest.mark.slow
async def test_from_mirror_follows_provider_events_along_a_chain(start_mirror, tmp_path: Path) -> None:
    """connected -> DMZ -> air gap, for providers: each hop reads the version whole, verifies it
    and stores its zips; a revocation follows."""
    rsa = generate_key("rsa")
    connected = await start_mirror("connected")
    await publish_provider(connected, tmp_path, rsa, "1.0.0", key=True)
    dmz_file, gap_file = mirror_config(tmp_path / "dmz"), mirror_config(tmp_path / "gap")
    widget = ProviderAddress("acme", "widget")

    async def follow(config_file: Path, upstream: str, token: str) -> str:
        code, out, err = await run_mirror("sync", "--config", str(config_file), "--from-mirror", upstream,
                                          cwd=tmp_path, env={"MIRROR_UPSTREAM_TOKEN": token})
        assert code == 0, out + err
        return out

    async def local(config_file: Path, version: str):
        async with metadata_store(config_of(config_file), create=False) as store:
            return await store.get_provider_version("", widget, version)

    assert "copied    acme/widget 1.0.0" in await follow(dmz_file, connected.url, connected.token)
    dmz = MirrorServer(dmz_file, config_of(dmz_file).server.port, tmp_path / "dmz").start()
    try:
        dmz_token = await token_for(dmz_file, "read")
        assert "copied    acme/widget 1.0.0" in await follow(gap_file, dmz.url, dmz_token)
        original = await local(connected.config_file, "1.0.0")
        copied = await local(gap_file, "1.0.0")
        assert copied is not None and copied.shasums == original.shasums and copied.platforms == original.platforms
        [linux] = copied.platforms
        assert (tmp_path / "gap" / "blobs" / linux.blob_key).is_file()

        await publish_provider(connected, tmp_path, rsa, "1.1.0")
        assert await with_store(config_of(connected.config_file),
                                lambda s: s.revoke_provider_version("", widget, "1.0.0"))
        for config_file, upstream, token in ((dmz_file, connected.url, connected.token), (gap_file, dmz.url, dmz_token)):
            out = await follow(config_file, upstream, token)
            assert "copied    acme/widget 1.1.0" in out and "revoked   acme/widget 1.0.0" in out, out
            assert (await local(config_file, "1.0.0")).revoked_at is not None
        assert "caught up" in await follow(gap_file, dmz.url, dmz_token)
    finally:
        assert dmz.stop() == 0, dmz.logs()
