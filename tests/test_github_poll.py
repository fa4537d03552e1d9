"""Poll mode: a registry GitHub cannot reach finds installations, repositories and tags itself,
against the stand-in GitHub over HTTP, with no webhook delivered at all."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mirror.config import load_config
from mirror.domain.errors import ConfigError
from mirror.http.keys import STORE
from tests.live import write_config
from tests.fake_github import FakeGitHub
from tests.live import eventually
from tests.test_github import GitHubWorld, github_sections, module_files

INTERVAL = 2


def poll_sections(tmp_path: Path, fake: FakeGitHub, api_url: str, **github: Any) -> dict[str, dict[str, Any]]:
    sections = github_sections(tmp_path, fake, api_url)
    del sections["github"]["webhook_secret"]
    sections["github"] |= {"mode": "poll", "poll_interval": INTERVAL} | github
    return sections


def make_org(fake: FakeGitHub, installation_id: int | None = 7) -> None:
    for repo, tags in {
        "terraform-aws-network": ["v1.0.0", "v1.1.0", "nightly"],
        "terraform-google-dns-zone": ["2.0.0"],
        "terraform-aws-bucket": ["v0.1.0", "v0.2.0", "v0.3.0"],
    }.items():
        fake.add_repository("acme-corp", repo, installation_id=installation_id)
        for tag in tags:
            fake.add_tag("acme-corp", repo, tag, module_files(f"{repo}-{tag}"))
    fake.add_repository("acme-corp", "website", installation_id=installation_id)


EXPECTED = {
    "acme-corp/network/aws": ["1.1.0", "1.0.0"],
    "acme-corp/dns-zone/google": ["2.0.0"],
    "acme-corp/bucket/aws": ["0.3.0", "0.2.0", "0.1.0"],
}


async def all_versions(world: GitHubWorld) -> dict[str, list[str]]:
    return {address: await world.versions(address) for address in EXPECTED}


@pytest.mark.slow
async def test_polling_gets_every_tag_of_an_org_without_webhooks(aiohttp_server, start_registry, make_config, tmp_path):
    fake = FakeGitHub()
    make_org(fake)
    server = await aiohttp_server(fake.app)
    started = time.monotonic()
    registry = await start_registry(make_config(**poll_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))))
    world = GitHubWorld(fake, server, registry)

    async def every_tag() -> bool:
        return await all_versions(world) == EXPECTED

    await eventually(every_tag, "every tag a version", timeout=INTERVAL + 10)
    assert time.monotonic() - started < INTERVAL + 10
    assert (await world.registry.client.post("/github/webhook", data=b"{}")).status == 404  # no webhook in poll mode
    assert [i.id for i in await registry.app[STORE].list_installations()] == [7]

    # an unchanged organization costs only 304s, and no rate limit
    async def quiet_pass() -> bool:
        return fake.not_modified["repositories"] >= 2 and fake.not_modified["tags"] >= 6

    await eventually(quiet_pass, "two passes answered 304", timeout=3 * INTERVAL + 10)
    fake.rate_limit_remaining = 1000
    before_calls, before_304 = dict(fake.calls), dict(fake.not_modified)
    await eventually(lambda: fake.not_modified["repositories"] > before_304["repositories"], "another pass", timeout=2 * INTERVAL + 5)
    await eventually(lambda: fake.not_modified["tags"] >= before_304["tags"] + 3, "its tag lists", timeout=5)
    for route in ("repositories", "tags", "app_installations"):
        assert fake.calls[route] - before_calls.get(route, 0) == fake.not_modified[route] - before_304.get(route, 0), route
    assert fake.calls["repository"] == before_calls["repository"] and fake.calls["tarball"] == before_calls["tarball"]
    assert fake.rate_limit_remaining == 1000

    # a tag deleted at GitHub revokes its version at the next poll; a new tag is ingested
    fake.delete_tag("acme-corp", "terraform-aws-bucket", "v0.2.0")
    fake.add_tag("acme-corp", "terraform-aws-network", "v1.2.0", module_files("net-1.2.0"))

    async def followed() -> bool:
        return (
            await world.versions("acme-corp/bucket/aws") == ["0.3.0", "0.1.0"]
            and (await world.versions("acme-corp/network/aws"))[0] == "1.2.0"
        )

    await eventually(followed, "the deleted tag revoked, the new one ingested", timeout=2 * INTERVAL + 10)
    types = await world.event_types()
    assert "module.version_revoked" in types


@pytest.mark.slow
async def test_renamed_and_removed_repositories_and_uninstall(aiohttp_server, start_registry, make_config, tmp_path):
    fake = FakeGitHub()
    make_org(fake)
    server = await aiohttp_server(fake.app)
    registry = await start_registry(make_config(**poll_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))))
    world = GitHubWorld(fake, server, registry)
    await eventually(lambda: all_versions(world), "backfill", timeout=INTERVAL + 10)
    await eventually(lambda: world.versions("acme-corp/bucket/aws"), "bucket", timeout=INTERVAL + 10)

    fake.rename_repository("acme-corp", "terraform-aws-bucket", "terraform-aws-storage")
    fake.remove_repository("acme-corp", "terraform-google-dns-zone")

    async def followed() -> bool:
        return (
            await world.versions("acme-corp/storage/aws") == ["0.3.0", "0.2.0", "0.1.0"]
            and await world.versions("acme-corp/bucket/aws") == []
            and await world.versions("acme-corp/dns-zone/google") == []
        )

    await eventually(followed, "rename followed, removed repository's module deleted", timeout=2 * INTERVAL + 10)
    assert "module.renamed" in await world.event_types()

    fake.remove_installation(7)

    async def uninstalled() -> bool:
        return await registry.app[STORE].list_installations() == []

    await eventually(uninstalled, "the uninstall found", timeout=2 * INTERVAL + 10)
    assert await world.versions("acme-corp/network/aws") == []


@pytest.mark.slow
async def test_a_plain_token_polls_its_accounts(aiohttp_server, start_registry, make_config, tmp_path):
    fake = FakeGitHub(plain_tokens=["ghp_poll"])
    make_org(fake, installation_id=None)
    server = await aiohttp_server(fake.app)
    sections = poll_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"), token="ghp_poll", accounts=["acme-corp"])
    for key in ("app_id", "private_key_file"):
        del sections["github"][key]
    registry = await start_registry(make_config(**sections))
    world = GitHubWorld(fake, server, registry)

    async def every_tag() -> bool:
        return await all_versions(world) == EXPECTED

    await eventually(every_tag, "every tag a version", timeout=INTERVAL + 15)
    assert fake.tokens_issued == 0
    fake.remove_repository("acme-corp", "terraform-aws-bucket")
    await eventually(
        lambda: _empty(world.versions("acme-corp/bucket/aws")), "the removed repository's module deleted", timeout=2 * INTERVAL + 10
    )


async def _empty(versions: Any) -> bool:
    return await versions == []


@pytest.mark.slow
async def test_a_rate_limited_answer_pauses_polling_until_the_reset(aiohttp_server, start_registry, make_config, tmp_path):
    fake = FakeGitHub()
    make_org(fake)
    server = await aiohttp_server(fake.app)
    registry = await start_registry(make_config(**poll_sections(tmp_path, fake, str(server.make_url("")).rstrip("/"))))
    world = GitHubWorld(fake, server, registry)

    async def every_tag() -> bool:
        return await all_versions(world) == EXPECTED

    await eventually(every_tag, "every tag a version", timeout=INTERVAL + 10)
    # the budget is used up until a reset three intervals away
    fake.rate_limit_remaining, fake.rate_limit_reset = 0, time.time() + 3 * INTERVAL
    refused = fake.calls["app_installations"]
    await eventually(lambda: fake.calls["app_installations"] > refused, "a refused poll", timeout=2 * INTERVAL + 5)
    asked = sum(fake.calls.values())
    fake.add_tag("acme-corp", "terraform-aws-network", "v2.0.0", module_files("net-2.0.0"))
    await _sleep_until(fake.rate_limit_reset - 1)
    assert sum(fake.calls.values()) == asked  # paused: not one more request before the reset
    assert (await world.versions("acme-corp/network/aws"))[0] == "1.1.0"

    async def resumed() -> bool:
        return (await world.versions("acme-corp/network/aws"))[0] == "2.0.0"

    await eventually(resumed, "polling resumed after the reset", timeout=2 * INTERVAL + 10)
    assert await registry.app[STORE].list_jobs(state="failed") == []


async def _sleep_until(epoch: float) -> None:
    import asyncio

    await asyncio.sleep(max(0.0, epoch - time.time()))


@pytest.mark.parametrize(
    ("github", "problem"),
    [
        ({"token": "t", "mode": "poll"}, "[github] accounts is required with a token"),
        ({"token": "t", "mode": "poll", "accounts": ["acme"], "poll_interval": 1}, "poll_interval must be between 2 and 86400"),
        ({"token": "t", "mode": "sometimes", "webhook_secret": "s"}, "mode"),
        ({"token": "t", "mode": "both", "accounts": ["acme"]}, "webhook_secret (or webhook_secret_file) is required"),
        ({"token": "t", "mode": "poll", "accounts": ["no/such"]}, "accounts: 'no/such'"),
        ({"token": "t", "webhook_secret": "s", "api_url": "ftp://x"}, "api_url must be an http(s) URL"),
    ],
)
def test_config_checks(tmp_path, github, problem):
    path = write_config(tmp_path / "mirror.toml", {"github": github})
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert any(problem in line for line in caught.value.problems), caught.value.problems


def test_config_keys_and_defaults(tmp_path):
    config = load_config(write_config(tmp_path / "m.toml", {"github": {"token": "t", "mode": "poll", "accounts": ["acme"]}}), environ={})
    assert (config.github.mode, config.github.poll_interval, config.github.accounts) == ("poll", 300, ("acme",))
    assert config.github.api_url == "https://api.github.com" and config.github.webhook_secret is None
    env = {"MIRROR_GITHUB_ACCOUNTS": "acme,solo-dev", "MIRROR_GITHUB_MODE": "both", "MIRROR_GITHUB_WEBHOOK_SECRET": "s"}
    config = load_config(write_config(tmp_path / "n.toml", {"github": {"token": "t"}}), environ=env)
    assert config.github.accounts == ("acme", "solo-dev") and config.github.mode == "both"
