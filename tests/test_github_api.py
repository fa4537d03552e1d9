"""mirror.integrations.github.api against the fake GitHub in tests/fake_github.py, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import io
import socket
import tarfile
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gidgethub import sansio

from mirror.formats.archive import ArchiveLimits, strip_top_level_directory
from mirror.domain.errors import PayloadTooLarge
from mirror.integrations.github.api import (
    AppCredentials,
    GitHubClient,
    GitHubError,
    GitHubUnavailable,
    Repository,
    Tag,
    TokenCredentials,
)
from tests.fake_github import FakeGitHub, create_tag_payload, webhook_delivery

MODULE_FILES = {"main.tf": b'variable "name" {}\n', "modules/sub/main.tf": b"# sub\n", "README.md": b"# net\n"}


@pytest.fixture
def fake() -> FakeGitHub:
    return FakeGitHub(plain_tokens={"ghp_plain"})


@pytest.fixture
async def api_url(fake: FakeGitHub, aiohttp_server) -> str:
    server = await aiohttp_server(fake.app)
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def app_credentials(session: aiohttp.ClientSession, api_url: str, fake: FakeGitHub, **kwargs: Any) -> AppCredentials:
    return AppCredentials(
        session=session, api_url=api_url, app_id=fake.app_id, private_key=fake.private_key_pem, **kwargs
    )


@pytest.fixture
def app_client(session: aiohttp.ClientSession, api_url: str, fake: FakeGitHub) -> GitHubClient:
    return GitHubClient(session=session, api_url=api_url, credentials=app_credentials(session, api_url, fake))


@pytest.fixture
def token_client(session: aiohttp.ClientSession, api_url: str) -> GitHubClient:
    return GitHubClient(session=session, api_url=api_url, credentials=TokenCredentials("ghp_plain"))


# App credentials -------------------------------------------------------------------------------


async def test_app_token_is_fetched_once_and_cached(session, api_url, fake):
    fake.add_repository("acme", "net")
    credentials = app_credentials(session, api_url, fake)

    first = await credentials.token_for(1)
    second = await credentials.token_for(1)

    assert first == second
    assert fake.installation_tokens[first][0] == 1
    assert fake.tokens_issued == 1


async def test_app_token_is_refreshed_within_the_margin_of_its_expiry(session, api_url, fake):
    fake.add_repository("acme", "net")
    now = [time.time()]
    credentials = app_credentials(session, api_url, fake, clock=lambda: now[0], refresh_margin=300.0)
    first = await credentials.token_for(1)
    expires_at = fake.installation_tokens[first][1]

    now[0] = expires_at - 301
    assert await credentials.token_for(1) == first
    now[0] = expires_at - 299
    refreshed = await credentials.token_for(1)

    assert refreshed != first
    assert fake.tokens_issued == 2


async def test_concurrent_callers_share_one_token_request_per_installation(session, api_url, fake):
    fake.add_repository("acme", "net", installation_id=1)
    fake.add_repository("other", "vpc", installation_id=2)
    fake.delay["access_tokens"] = 0.05
    credentials = app_credentials(session, api_url, fake)

    tokens = await asyncio.gather(*(credentials.token_for(1 + i % 2) for i in range(10)))

    assert len(set(tokens[0::2])) == 1 and len(set(tokens[1::2])) == 1
    assert tokens[0] != tokens[1]
    assert fake.calls["access_tokens"] == 2


async def test_app_credentials_need_an_installation(session, api_url, fake):
    with pytest.raises(ValueError):
        await app_credentials(session, api_url, fake).token_for(None)


async def test_app_token_refusals_are_translated(session, api_url, fake):
    fake.add_repository("acme", "net")
    credentials = app_credentials(session, api_url, fake)
    fake.fail_next["access_tokens"] = 1
    with pytest.raises(GitHubUnavailable):
        await credentials.token_for(1)
    with pytest.raises(GitHubError) as unknown:
        await credentials.token_for(99)
    assert unknown.value.status_code == 404

    wrong_key = AppCredentials(session=session, api_url=api_url, app_id=fake.app_id, private_key=_fresh_private_key())
    with pytest.raises(GitHubError) as refused:
        await wrong_key.token_for(1)
    assert refused.value.status_code == 401
    assert await credentials.token_for(1)  # the failures cached nothing


def _fresh_private_key() -> str:
    """An RSA private key that is not the fake app's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# Repositories and tags -------------------------------------------------------------------------


async def test_installation_repositories_are_listed_across_pages(app_client, fake):
    for i in range(150):
        fake.add_repository("acme", f"repo-{i:03}", installation_id=1)
    fake.add_repository("other", "hidden", installation_id=2)

    repos = await app_client.installation_repositories(1)

    assert sorted(repo.name for repo in repos) == [f"repo-{i:03}" for i in range(150)]
    assert fake.calls["repositories"] == 2


async def test_repository_fields(app_client, fake):
    created = fake.add_repository("acme", "net", description="Networking", archived=True, default_branch="trunk")

    repo = await app_client.repository("acme", "net", 1)

    assert repo == Repository(
        id=created.id,
        owner="acme",
        name="net",
        full_name="acme/net",
        html_url="https://github.com/acme/net",
        description="Networking",
        default_branch="trunk",
        archived=True,
    )


async def test_missing_or_invisible_repository_is_a_404(app_client, fake):
    fake.add_repository("other", "vpc", installation_id=2)
    fake.add_repository("acme", "net", installation_id=1)
    for owner, name in [("acme", "missing"), ("other", "vpc")]:
        with pytest.raises(GitHubError) as caught:
            await app_client.repository(owner, name, 1)
        assert caught.value.status_code == 404
        assert caught.value.status == 502


async def test_tags_are_listed_across_pages(app_client, fake):
    fake.add_repository("acme", "net")
    expected = {Tag(f"v1.0.{i}", fake.add_tag("acme", "net", f"v1.0.{i}", MODULE_FILES)) for i in range(250)}

    tags = await app_client.tags("acme", "net", 1)

    assert len(tags) == 250 and set(tags) == expected
    assert fake.calls["tags"] == 3


async def test_token_credentials_list_an_organization_or_else_a_user(token_client, fake):
    fake.add_repository("acme", "net", installation_id=None)
    fake.add_repository("acme", "vpc", installation_id=None)
    fake.add_repository("alice", "dns", installation_id=None, owner_type="User")

    assert {repo.full_name for repo in await token_client.account_repositories("acme")} == {"acme/net", "acme/vpc"}
    assert fake.calls["user_repos"] == 0
    assert [repo.full_name for repo in await token_client.account_repositories("alice")] == ["alice/dns"]
    assert fake.calls["user_repos"] == 1
    with pytest.raises(GitHubError) as caught:
        await token_client.account_repositories("nobody")
    assert caught.value.status_code == 404


# Tarballs --------------------------------------------------------------------------------------


async def test_tarball_is_downloaded_through_the_redirect_without_authorization(app_client, fake, tmp_path):
    fake.add_repository("acme", "net")
    fake.add_tag("acme", "net", "v1.0.0", MODULE_FILES)
    dst = io.BytesIO()

    written = await app_client.download_tarball("acme", "net", "v1.0.0", 1, dst, max_bytes=10**6)

    assert dst.getvalue() == fake.tarball("acme", "net", "v1.0.0")
    assert written == len(dst.getvalue())
    assert fake.calls["tarball"] == 1 and fake.calls["codeload"] == 1
    rerooted = io.BytesIO()
    strip_top_level_directory(io.BytesIO(dst.getvalue()), rerooted, ArchiveLimits())
    with tarfile.open(fileobj=io.BytesIO(rerooted.getvalue()), mode="r:gz") as tar:
        names = tar.getnames()
    assert "main.tf" in names and "modules/sub/main.tf" in names


async def test_codeload_refuses_an_authorization_header(session, api_url, fake):
    """The fake enforces what the download test relies on."""
    fake.add_repository("acme", "net")
    fake.add_tag("acme", "net", "v1.0.0", MODULE_FILES)
    headers = {"Authorization": "token ghp_plain"}
    async with session.get(f"{api_url}/repos/acme/net/tarball/v1.0.0", headers=headers) as response:
        assert response.status == 400  # aiohttp followed the same-host redirect with the header


async def test_tarball_of_an_unknown_ref_is_a_404(app_client, fake):
    fake.add_repository("acme", "net")
    with pytest.raises(GitHubError) as caught:
        await app_client.download_tarball("acme", "net", "v9.9.9", 1, io.BytesIO(), max_bytes=10**6)
    assert caught.value.status_code == 404


async def test_tarball_larger_than_max_bytes_is_refused(app_client, fake):
    fake.add_repository("acme", "net")
    fake.add_tag("acme", "net", "v1.0.0", {"main.tf": b"", "blob.bin": bytes(range(256)) * 4096})
    dst = io.BytesIO()
    with pytest.raises(PayloadTooLarge):
        await app_client.download_tarball("acme", "net", "v1.0.0", 1, dst, max_bytes=1000)
    assert len(dst.getvalue()) <= 1000


# Transient failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["tags", "tarball", "codeload"])
async def test_5xx_is_unavailable_and_a_retry_succeeds(app_client, fake, route):
    fake.add_repository("acme", "net")
    fake.add_tag("acme", "net", "v1.0.0", MODULE_FILES)
    fake.fail_next[route] = 1

    async def call() -> object:
        if route == "tags":
            return await app_client.tags("acme", "net", 1)
        return await app_client.download_tarball("acme", "net", "v1.0.0", 1, io.BytesIO(), max_bytes=10**6)

    with pytest.raises(GitHubUnavailable):
        await call()
    assert await call()


async def test_rate_limit_is_unavailable(app_client, fake):
    fake.add_repository("acme", "net")
    fake.rate_limit_next["repository"] = 1
    with pytest.raises(GitHubUnavailable, match="rate limit"):
        await app_client.repository("acme", "net", 1)


@pytest.mark.parametrize("route", ["tags", "codeload"])
async def test_slow_answer_times_out_as_unavailable(session, api_url, fake, route):
    fake.add_repository("acme", "net")
    fake.add_tag("acme", "net", "v1.0.0", MODULE_FILES)
    client = GitHubClient(session=session, api_url=api_url, credentials=TokenCredentials("ghp_plain"), timeout=0.2)
    fake.delay[route] = 5.0

    started = time.monotonic()
    with pytest.raises(GitHubUnavailable):
        if route == "tags":
            await client.tags("acme", "net", None)
        else:
            await client.download_tarball("acme", "net", "v1.0.0", None, io.BytesIO(), max_bytes=10**6)
    assert time.monotonic() - started < 2


async def test_connection_refused_is_unavailable(session):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GitHubClient(session=session, api_url=f"http://127.0.0.1:{port}", credentials=TokenCredentials("x"))
    with pytest.raises(GitHubUnavailable):
        await client.account_repositories("acme")


# Webhook helpers -------------------------------------------------------------------------------


def test_webhook_deliveries_verify_with_gidgethub(fake):
    repo = fake.add_repository("acme", "net")
    headers, body = webhook_delivery("create", create_tag_payload(repo, "v1.0.0"), "s3cret")

    event = sansio.Event.from_http({k.lower(): v for k, v in headers.items()}, body, secret="s3cret")

    assert (event.event, event.data["ref"], event.data["installation"]["id"]) == ("create", "v1.0.0", 1)
