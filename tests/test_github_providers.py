"""GitHub releases of ``terraform-provider-TYPE`` repositories become provider versions, end to
end: a fake GitHub over real HTTP, signed deliveries, the job queue, and the registry's
providers.v1 answers."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from mirror.domain.errors import PayloadTooLarge
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import LOCAL_HOST
from mirror.domain.providers import ProviderAddress
from mirror.http.keys import JOBS, STORE
from mirror.integrations.github.api import GitHubClient, TokenCredentials
from mirror.integrations.github.releases import INGEST_PROVIDER_RELEASE
from tests.conftest import Registry
from tests.fake_github import FakeGitHub, FakeRepo, release_payload, webhook_delivery
from tests.providers import build_release, generate_key, public_key
from tests.test_github import github_sections

SECRET = "webhook-secret-for-tests"
STEM = "terraform-provider-widget_1.0.0"


@pytest.fixture(scope="module")
def signer():
    return generate_key("ed25519")


@pytest.fixture(scope="module")
def stranger():
    return generate_key("ed25519")


@dataclass
class World:
    fake: FakeGitHub
    server: TestServer
    registry: Registry
    tmp_path: Path

    async def deliver(self, event: str, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        headers, body = webhook_delivery(event, payload, SECRET)
        return await self.registry.client.post("/github/webhook", data=body, headers=headers)

    async def settle(self, timeout: float = 20) -> None:
        await self.registry.app[JOBS].drain(timeout)

    async def add_key(self, namespace: str, armored: str) -> None:
        response = await self.registry.client.post(
            f"/api/v1/providers/{namespace}/keys", json={"ascii_armor": armored}, headers=await self.registry.auth()
        )
        assert response.status == 201, await response.text()

    async def provider_versions(self, address: str) -> list[str] | None:
        response = await self.registry.client.get(f"/v1/providers/{address}/versions", headers=await self.registry.auth())
        if response.status == 404:
            return None
        assert response.status == 200, await response.text()
        return [v["version"] for v in (await response.json())["versions"]]

    async def failed_jobs(self) -> list[Any]:
        return await self.registry.app[STORE].list_jobs(state="failed")

    def release(self, signer, *, name: str = "build", **options: Any) -> dict[str, bytes]:
        """A GoReleaser release of widget 1.0.0 as asset bytes, by file name."""
        files = build_release(self.tmp_path / name, signer, type_="widget", **options)
        return {file_name: path.read_bytes() for file_name, path in files.items()}

    def publish_release(self, repo: FakeRepo, tag: str, assets: dict[str, bytes]) -> dict[str, Any]:
        self.fake.add_release(repo.owner, repo.name, tag, assets)
        return release_payload(repo, tag)


async def start_world(aiohttp_server, start_registry, make_config, tmp_path, **sections: dict[str, Any]) -> World:
    fake = FakeGitHub()
    server = await aiohttp_server(fake.app)
    config = github_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    registry = await start_registry(make_config(**config))
    return World(fake, server, registry, tmp_path)


@pytest.fixture
async def world(aiohttp_server, start_registry, make_config, tmp_path) -> World:
    return await start_world(aiohttp_server, start_registry, make_config, tmp_path)


async def test_a_signed_release_becomes_a_provider_version_owned_by_the_repository(world: World, signer):
    repo = world.fake.add_repository("acme-corp", "terraform-provider-widget", installation_id=7)
    await world.add_key("acme-corp", public_key(signer))
    assets = world.release(signer)
    release_files = set(assets)
    extras = {
        "checksums.txt": b"0" * 64 + b"  widget.zip\n",
        "terraform-provider-widget_1.0.0.tar.gz": b"source tarball",
        "terraform-provider-widget_0.9.0_linux_amd64.zip": b"another version's zip",
        "terraform-provider-gadget_1.0.0_linux_amd64.zip": b"another provider's zip",
    }
    payload = world.publish_release(repo, "v1.0.0", assets | extras)
    assert len(payload["release"]["assets"]) == len(release_files) + len(extras)

    response = await world.deliver("release", payload)
    assert response.status == 202, await response.text()
    await world.settle()

    assert await world.failed_jobs() == []
    assert await world.provider_versions("acme-corp/widget") == ["1.0.0"]
    record = await world.registry.app[STORE].get_provider(LOCAL_HOST, ProviderAddress("acme-corp", "widget"))
    assert record.owner == Owner.github(repo.id)
    assert record.source_url == f"https://github.com/{repo.full_name}"
    # only the release's own files were downloaded: the extra assets were left alone
    assert world.fake.calls["release_asset"] == len(release_files)
    assert world.fake.calls["asset_storage"] == len(release_files)
    assert world.fake.calls["tarball"] == 0  # and the repository was not taken for a module
    assert await world.registry.app[STORE].list_modules("acme-corp") == []

    # the download answer serves the zip GitHub held, byte for byte
    auth = await world.registry.auth()
    download = await world.registry.client.get("/v1/providers/acme-corp/widget/1.0.0/download/linux/amd64", headers=auth)
    assert download.status == 200, await download.text()
    answer = await download.json()
    assert answer["shasum"] == hashlib.sha256(assets[f"{STEM}_linux_amd64.zip"]).hexdigest()

    # the repository owns the provider: an upload of it is refused, naming the owner
    upload = aiohttp.FormData()
    for file_name, data in world.release(signer, name="upload").items():
        upload.add_field("file", data, filename=file_name, content_type="application/octet-stream")
    refused = await world.registry.client.post("/api/v1/providers/acme-corp/widget/1.0.1", data=upload, headers=auth)
    assert refused.status == 409, await refused.text()
    assert f"github:{repo.id}" in " ".join((await refused.json())["errors"])


async def test_a_release_with_a_bad_signature_stores_nothing_and_fails_its_job(world: World, signer, stranger):
    repo = world.fake.add_repository("acme-corp", "terraform-provider-widget", installation_id=7)
    await world.add_key("acme-corp", public_key(signer))
    response = await world.deliver("release", world.publish_release(repo, "v1.0.0", world.release(stranger)))
    assert response.status == 202
    await world.settle()

    assert await world.provider_versions("acme-corp/widget") is None
    assert await world.registry.app[STORE].get_provider(LOCAL_HOST, ProviderAddress("acme-corp", "widget")) is None
    (failed,) = await world.failed_jobs()
    assert failed.kind == INGEST_PROVIDER_RELEASE and failed.attempts == 1  # permanent: not retried
    assert "signature" in failed.last_error and "\n" not in failed.last_error


async def test_a_namespace_without_signing_keys_fails_the_job_before_any_download(world: World, signer):
    repo = world.fake.add_repository("acme-corp", "terraform-provider-widget", installation_id=7)
    await world.deliver("release", world.publish_release(repo, "v1.0.0", world.release(signer)))
    await world.settle()

    (failed,) = await world.failed_jobs()
    assert "no provider signing keys" in failed.last_error and "mirror provider keys add acme-corp" in failed.last_error
    assert world.fake.calls["release_asset"] == 0
    assert await world.provider_versions("acme-corp/widget") is None


async def test_a_network_error_retries_the_job(world: World, signer):
    repo = world.fake.add_repository("acme-corp", "terraform-provider-widget", installation_id=7)
    await world.add_key("acme-corp", public_key(signer))
    world.fake.fail_next["asset_storage"] = 1
    world.fake.fail_next["release"] = 1
    await world.deliver("release", world.publish_release(repo, "v1.0.0", world.release(signer)))
    await world.settle()

    assert await world.failed_jobs() == []
    assert await world.provider_versions("acme-corp/widget") == ["1.0.0"]
    (job,) = [j for j in await world.registry.app[STORE].list_jobs() if j.kind == INGEST_PROVIDER_RELEASE]
    assert job.attempts == 3


async def test_events_that_are_not_provider_releases_are_ignored(world: World, signer):
    await world.add_key("acme-corp", public_key(signer))
    website = world.fake.add_repository("acme-corp", "website", installation_id=7)
    response = await world.deliver("release", world.publish_release(website, "v1.0.0", world.release(signer)))
    assert response.status == 202  # a release event: looked at, then nothing to do
    provider = world.fake.add_repository("acme-corp", "terraform-provider-widget", installation_id=7)
    assets = world.release(signer, name="second")
    world.fake.add_release(provider.owner, provider.name, "v1.0.0", assets)
    for action in ("created", "edited", "deleted", "prereleased", "released", "unpublished"):
        response = await world.deliver("release", release_payload(provider, "v1.0.0", action))
        assert response.status == 204, action
    nightly = world.fake.add_repository("acme-corp", "terraform-provider-nightly", installation_id=7)
    await world.deliver("release", world.publish_release(nightly, "nightly", {"notes.txt": b"x"}))  # not a version
    await world.settle()

    kinds = [job.kind for job in await world.registry.app[STORE].list_jobs()]
    assert INGEST_PROVIDER_RELEASE not in kinds and "github.ingest_tag" not in kinds
    assert await world.failed_jobs() == []
    assert world.fake.calls["release"] == 0 and world.fake.calls["release_asset"] == 0


async def test_a_release_is_ingested_once_whatever_the_deliveries(world: World, signer):
    repo = world.fake.add_repository("acme-corp", "terraform-provider-widget", installation_id=7)
    await world.add_key("acme-corp", public_key(signer))
    payload = world.publish_release(repo, "v1.0.0", world.release(signer))
    assert (await world.deliver("release", payload)).status == 202
    repo.pushes += 1  # a later delivery of the same release: another body
    assert (await world.deliver("release", release_payload(repo, "v1.0.0"))).status == 202
    await world.settle()

    jobs = [job for job in await world.registry.app[STORE].list_jobs() if job.kind == INGEST_PROVIDER_RELEASE]
    assert len(jobs) == 1
    assert await world.provider_versions("acme-corp/widget") == ["1.0.0"]


async def test_the_namespace_is_the_one_a_module_gets_and_limits_bound_downloads(
    aiohttp_server, start_registry, make_config, tmp_path, signer
):
    world = await start_world(
        aiohttp_server,
        start_registry,
        make_config,
        tmp_path,
        github={"namespaces": "acme-corp=acme"},
        limits={"max_provider_zip_bytes": 4096},
    )
    repo = world.fake.add_repository("acme-corp", "terraform-provider-widget", installation_id=7)
    await world.add_key("acme", public_key(signer))
    await world.deliver("release", world.publish_release(repo, "v1.0.0", world.release(signer)))
    await world.settle()
    assert await world.provider_versions("acme/widget") == ["1.0.0"]  # zips of ~1 kB fit

    big = world.release(signer, name="big", version="1.1.0", binary=os.urandom(8192))
    await world.deliver("release", world.publish_release(repo, "v1.1.0", big))
    await world.settle()
    (failed,) = await world.failed_jobs()
    assert "larger than the limit of 4096 bytes" in failed.last_error
    assert await world.provider_versions("acme/widget") == ["1.0.0"]
    assert await world.provider_versions("acme-corp/widget") is None


async def test_the_client_reads_releases_and_streams_assets_within_a_bound(aiohttp_server):
    fake = FakeGitHub(plain_tokens=["ghp_plain"])
    server = await aiohttp_server(fake.app)
    repo = fake.add_repository("acme-corp", "terraform-provider-widget", installation_id=None)
    made = fake.add_release(repo.owner, repo.name, "v2.0.0", {"a.zip": b"A" * 5000, "notes.txt": b"hello"})
    async with aiohttp.ClientSession() as session:
        client = GitHubClient(
            session=session, api_url=str(server.make_url("")).rstrip("/"), credentials=TokenCredentials("ghp_plain")
        )
        release = await client.release(repo.owner, repo.name, made.id, None)
        assert (release.id, release.tag_name, release.draft) == (made.id, "v2.0.0", False)
        assert [(a.name, a.size, a.state) for a in release.assets] == [("a.zip", 5000, "uploaded"), ("notes.txt", 5, "uploaded")]
        zip_asset, notes = release.assets
        sink = io.BytesIO()
        # the storage URL refuses an Authorization header: the redirect is followed without it
        assert await client.download_release_asset(repo.owner, repo.name, notes, None, sink, 100) == 5
        assert sink.getvalue() == b"hello"
        with pytest.raises(PayloadTooLarge, match="a.zip is larger than the limit of 4096 bytes"):
            await client.download_release_asset(repo.owner, repo.name, zip_asset, None, io.BytesIO(), 4096)
    assert fake.calls["release_asset"] == 2 and fake.calls["asset_storage"] == 2
