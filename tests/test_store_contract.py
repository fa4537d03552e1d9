"""The MetadataStore contract: every test runs against SQLite (a temporary file) and DynamoDB (a
table of its own on the session's moto server, made by ``mirror dynamodb create-table``'s code).

Stores are built from a validated config through the factory, as the app builds them. Tests that
speak of replicas open a second store on the same file or table: two processes sharing it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mirror.config import Config, load_config
from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import (
    Installation,
    ModuleVersion,
    NewVersion,
    TokenRecord,
    WebhookSubscription,
)
from mirror.domain.provenance import NotOwner, Owner
from mirror.domain.errors import Conflict, MirrorError
from mirror.services.jobs import JobQueue
from mirror.storage.factory import make_metadata_store, metadata_backends
from mirror.storage.protocols import MetadataStore
from tests.live import write_config

BACKENDS = ("sqlite", "dynamodb")
NOW = "2026-11-24T20:27:51Z"


@dataclass
class Backend:
    """One database (a SQLite file or a DynamoDB table) and the stores opened on it."""

    name: str
    config: Config
    opened: list[MetadataStore]

    async def replica(self) -> MetadataStore:
        """Another store on the same database, as another process would open it."""
        store = make_metadata_store(self.config)
        await store.open()
        self.opened.append(store)
        return store


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    metadata: dict[str, Any] = {"backend": request.param, "path": str(tmp_path / "mirror.db")}
    if request.param == "dynamodb":
        from mirror.storage.dynamodb import DynamoMetadataStore

        moto = request.getfixturevalue("moto")
        request.getfixturevalue("aws_env")  # dummy credentials through the standard AWS chain
        metadata.update(table=f"mirror-{uuid.uuid4().hex[:12]}", region=moto.region, endpoint_url=moto.endpoint_url)
    config = load_config(
        write_config(tmp_path / "mirror.toml", {"metadata": metadata}),
        environ={},
        metadata_backends=frozenset(metadata_backends()),
    )
    if request.param == "dynamodb":
        assert await DynamoMetadataStore.from_config(config).create_table() is True
    backend = Backend(request.param, config, [])
    yield backend
    for store in backend.opened:
        await store.close()


@pytest.fixture
async def store(backend: Backend) -> MetadataStore:
    return await backend.replica()


# -- helpers -------------------------------------------------------------------------------------


def addr(text: str = "acme/network/aws") -> ModuleAddress:
    return ModuleAddress.parse(text)


def mv(
    address: str = "acme/network/aws",
    version: str = "1.0.0",
    *,
    sha: str = "a",
    raw: str | None = None,
    readme: str | None = None,
    blob: str | None = None,
    published_at: str = NOW,
    commit: str | None = None,
) -> ModuleVersion:
    sha256 = (sha * 64)[:64]
    return ModuleVersion(
        address=addr(address),
        version=version,
        raw_version=raw or version,
        sha256=sha256,
        size=123,
        blob_key=blob or f"modules/{sha256[:2]}/{sha256}.tar.gz",
        published_at=published_at,
        readme=readme if readme is not None else f"# {address}\n\nRelease {version} of {address}.\n\nMore.",
        source="upload",
        commit_sha=commit,
    )


def released(version: ModuleVersion, analysis: dict[str, Any] | None = None) -> NewVersion:
    data = {
        "namespace": version.address.namespace,
        "name": version.address.name,
        "provider": version.address.provider,
        "version": version.version,
        "url": f"file:///{version.blob_key}",
    }
    return NewVersion(version, [("module.version_released", data)], analysis=analysis)


async def publish(store: MetadataStore, *args: Any, **kwargs: Any) -> str:
    return (await store.publish_version(released(mv(*args, **kwargs)))).status


async def events(store: MetadataStore, after: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
    return [(e.serial, e.type, e.data) for e in await store.events_after(after, 100_000)]


def ids(summaries: list[Any]) -> list[str]:
    return [f"{s.version.address}/{s.version.version}" for s in summaries]


# -- lifecycle -------------------------------------------------------------------------------------


async def test_a_new_store_is_empty_and_answers_ping(store: MetadataStore):
    await store.ping()
    assert await store.latest_serial() == 0
    assert await store.events_after(0, 10) == []
    assert await store.list_versions(addr()) == []
    assert await store.get_version(addr(), "1.0.0") is None
    assert await store.latest_versions() == []
    assert await store.browse_modules() == ([], False)
    assert await store.list_tokens() == []
    assert await store.list_jobs() == []
    assert await store.claim_job(time.time(), 5) is None
    assert await store.list_installations() == []
    assert await store.list_consumers() == []
    assert await store.list_subscriptions() == []
    assert await store.list_modules("acme") == []


async def test_what_one_store_writes_another_reads_after_reopening(backend: Backend):
    first = await backend.replica()
    assert await publish(first) == "created"
    await first.close()
    backend.opened.remove(first)
    second = await backend.replica()
    assert [v.version for v in await second.list_versions(addr())] == ["1.0.0"]
    assert await second.latest_serial() == 2


# -- publishing ------------------------------------------------------------------------------------


async def test_publish_created_unchanged_conflict(store: MetadataStore):
    new = mv(readme="# t\n\nhello", commit="c0ffee")
    outcome = await store.publish_version(released(new, {"root": {"inputs": [{"name": "x"}]}}))
    assert outcome.status == "created" and outcome.version == new
    stored = await store.get_version(addr(), "1.0.0")
    assert stored == new
    same = await store.publish_version(released(replace(new, published_at="2030-01-01T00:00:00Z")))
    assert same.status == "unchanged" and same.version == new  # the stored one, not the new attempt
    other = await store.publish_version(released(mv(sha="b")))
    assert other.status == "conflict" and other.version == new
    assert await store.get_version(addr(), "1.0.0") == new
    assert await store.version_analysis(addr(), "1.0.0") == {"root": {"inputs": [{"name": "x"}]}}
    assert [e[1] for e in await events(store)] == ["module.created", "module.version_released"]


async def test_publish_keeps_raw_version_and_fields(store: MetadataStore):
    version = replace(mv(version="2.1.0", raw="v2.1"), source="https://github.com/acme/x", commit_sha="abc")
    assert (await store.publish_version(NewVersion(version))).status == "created"
    stored = await store.get_version(addr(), "2.1.0")
    assert stored == version and stored.raw_version == "v2.1" and stored.revoked_at is None
    assert await store.get_version(addr(), "v2.1") is None  # the normalized string is the identity
    assert await store.version_analysis(addr(), "2.1.0") is None  # not analysed
    assert await store.version_analysis(addr(), "9.9.9") is None


async def test_large_readme_and_analysis_round_trip(store: MetadataStore):
    readme = "# big\n\n" + "A line of prose that repeats.\n" * 20_000  # about 600 KB
    analysis = {"root": {"inputs": [{"name": f"input_{i}", "description": "x" * 50} for i in range(5000)]}}
    version = mv(readme=readme)
    assert (await store.publish_version(released(version, analysis))).status == "created"
    assert (await store.get_version(addr(), "1.0.0")).readme == readme
    assert [v.readme for v in await store.list_versions(addr())] == [readme]
    assert await store.version_analysis(addr(), "1.0.0") == analysis
    # The protocol's view leaves the README out, and only the README
    (lean,) = await store.list_versions(addr(), readme=False)
    assert lean.readme is None and dataclasses.replace(lean, readme=readme) == await store.get_version(addr(), "1.0.0")


async def test_namespace_and_name_match_any_case_provider_does_not(store: MetadataStore):
    assert await publish(store, "Acme/Network/aws", "1.0.0") == "created"
    assert await publish(store, "acme/NETWORK/aws", "1.1.0", sha="b") == "created"
    assert await publish(store, "ACME/network/aws", "1.0.0") == "unchanged"
    listed = await store.list_versions(addr("acme/network/aws"))
    assert sorted(v.version for v in listed) == ["1.0.0", "1.1.0"]
    assert {str(v.address) for v in listed} == {"Acme/Network/aws"}  # the module's first spelling
    assert str((await store.get_version(addr("aCmE/nEtWoRk/aws"), "1.1.0")).address) == "Acme/Network/aws"
    assert [e[1] for e in await events(store)].count("module.created") == 1
    assert [str(m.address) for m in await store.list_modules("ACME")] == ["Acme/Network/aws"]


async def test_list_versions_leaves_out_revoked_get_version_does_not(store: MetadataStore):
    for number, version in enumerate(("1.0.0", "1.1.0", "2.0.0")):
        await publish(store, version=version, sha="abc"[number])
    assert await store.revoke_version(addr(), "1.1.0") is True
    assert await store.revoke_version(addr(), "1.1.0") is False  # not live any more
    assert await store.revoke_version(addr(), "7.0.0") is False
    assert await store.revoke_version(addr("nobody/x/aws"), "1.0.0") is False
    assert sorted(v.version for v in await store.list_versions(addr())) == ["1.0.0", "2.0.0"]
    revoked = await store.get_version(addr(), "1.1.0")
    assert revoked is not None and revoked.revoked_at is not None
    assert sorted((v.version, v.revoked_at is None) for v in await store.all_versions(addr())) == [
        ("1.0.0", True),
        ("1.1.0", False),
        ("2.0.0", True),
    ]
    revocation = (await events(store))[-1]
    assert revocation[1:] == (
        "module.version_revoked",
        {"namespace": "acme", "name": "network", "provider": "aws", "version": "1.1.0"},
    )


async def test_the_same_bytes_reinstate_a_revoked_version(store: MetadataStore):
    await publish(store, version="1.0.0")
    await store.revoke_version(addr(), "1.0.0")
    assert await publish(store, version="1.0.0", sha="b") == "conflict"  # other bytes stay refused
    before = await store.latest_serial()
    again = await store.publish_version(released(mv(published_at="2030-01-01T00:00:00Z")))
    assert again.status == "created" and again.version == mv()  # the stored record, live again
    assert (await store.get_version(addr(), "1.0.0")).revoked_at is None
    assert [(e[1], e[2]["version"]) for e in await events(store, before)] == [("module.version_released", "1.0.0")]
    assert (await store.events_after(before, 10))[0].occurred_at == "2030-01-01T00:00:00Z"
    assert ids(await store.latest_versions()) == ["acme/network/aws/1.0.0"]


async def test_events_of_a_publish(store: MetadataStore):
    await publish(store, "acme/network/aws", "1.0.0")
    await publish(store, "acme/network/aws", "1.1.0", sha="b", published_at="2026-11-25T00:00:00Z")
    listed = await store.events_after(0, 10)
    assert [(e.serial, e.type) for e in listed] == [
        (1, "module.created"),
        (2, "module.version_released"),
        (3, "module.version_released"),
    ]
    assert listed[0].data == {"namespace": "acme", "name": "network", "provider": "aws"}
    assert listed[2].data["version"] == "1.1.0" and listed[2].occurred_at == "2026-11-25T00:00:00Z"
    assert listed[0].occurred_at == NOW
    assert await store.latest_serial() == 3


# -- the latest-version summary, lists and search ------------------------------------------------

BROWSE = {
    "acme/network/aws": ["1.0.0", "1.10.0", "1.2.0", "2.0.0-beta.1"],
    "acme/network/google": ["0.1.0"],
    "acme/storage/aws": ["3.0.0-rc.1", "3.0.0-rc.2"],
    "beta/dns/azurerm": ["0.0.1"],
    "beta/vpc/aws": ["2.0.0"],
    "beta-x/vpc/aws": ["1.0.0"],
    "Gamma/Big_Name/aws": ["1.0.0"],
}
LATEST = [
    "acme/network/aws/1.10.0",
    "acme/network/google/0.1.0",
    "acme/storage/aws/3.0.0-rc.2",
    "beta/dns/azurerm/0.0.1",
    "beta/vpc/aws/2.0.0",
    "beta-x/vpc/aws/1.0.0",
    "Gamma/Big_Name/aws/1.0.0",
]


@pytest.fixture
async def browsing(store: MetadataStore) -> MetadataStore:
    for address, versions in BROWSE.items():
        for number, version in enumerate(versions):
            readme = f"# {address}\n\n![badge](x)\n\nBuilds {address} (release {version}) 100%_done.\nSecond line."
            assert await publish(store, address, version, sha="0123456789"[number], readme=readme) == "created"
    return store


async def test_latest_versions_pick_semver_order(browsing: MetadataStore):
    summaries = await browsing.latest_versions()
    assert ids(summaries) == LATEST
    first = summaries[0]
    assert first.description == "Builds acme/network/aws (release 1.10.0) 100%_done. Second line."
    assert first.version.readme.startswith("# acme/network/aws")  # lists of latest_versions carry the README
    assert first.downloads == 0 and first.source_url is None
    assert first.version == await browsing.get_version(addr("acme/network/aws"), "1.10.0")
    assert ids(await browsing.latest_versions(namespace="ACME", provider="aws")) == LATEST[0:1] + LATEST[2:3]
    assert ids(await browsing.latest_versions(namespace="acme", name="Network")) == LATEST[0:2]
    assert ids(await browsing.latest_versions(name="vpc")) == LATEST[4:6]
    assert ids(await browsing.latest_versions(namespace="acme", name="network", provider="google")) == LATEST[1:2]
    assert await browsing.latest_versions(namespace="nobody") == []


async def test_revocations_move_the_latest_version(browsing: MetadataStore):
    network = addr("acme/network/aws")
    await browsing.revoke_version(network, "1.10.0")
    assert ids(await browsing.latest_versions(namespace="acme", name="network", provider="aws")) == [
        "acme/network/aws/1.2.0"
    ]
    for version in ("1.0.0", "1.2.0"):
        await browsing.revoke_version(network, version)
    assert ids(await browsing.latest_versions(namespace="acme", name="network", provider="aws")) == [
        "acme/network/aws/2.0.0-beta.1"  # no release left: the highest prerelease
    ]
    await browsing.revoke_version(network, "2.0.0-beta.1")
    assert ids(await browsing.latest_versions()) == LATEST[1:]  # nothing live: not listed
    page, more = await browsing.browse_modules(namespace="acme")
    assert ids(page) == LATEST[1:3] and not more
    assert [str(m.address) for m in await browsing.list_modules("acme")] == [
        "acme/network/aws",  # the module itself is still there
        "acme/network/google",
        "acme/storage/aws",
    ]
    assert await publish(browsing, "acme/network/aws", "1.2.0", sha="2") == "created"  # reinstated
    assert ids(await browsing.latest_versions(namespace="acme", name="network"))[0] == "acme/network/aws/1.2.0"


async def test_browse_pages_in_address_order(browsing: MetadataStore):
    page, more = await browsing.browse_modules(limit=3)
    assert ids(page) == LATEST[:3] and more
    assert all(s.version.readme is None for s in page)  # lists show the description only
    assert page[0].description.startswith("Builds acme/network/aws (release 1.10.0)")
    page, more = await browsing.browse_modules(offset=3, limit=3)
    assert ids(page) == LATEST[3:6] and more
    page, more = await browsing.browse_modules(offset=6, limit=3)
    assert ids(page) == LATEST[6:] and not more
    page, more = await browsing.browse_modules(offset=7, limit=3)
    assert page == [] and not more
    page, more = await browsing.browse_modules(offset=0, limit=7)
    assert ids(page) == LATEST and not more


async def test_browse_filters(browsing: MetadataStore):
    async def browse(**kwargs: Any) -> list[str]:
        page, _ = await browsing.browse_modules(limit=100, **kwargs)
        return ids(page)

    assert await browse(namespace="Acme") == LATEST[:3]
    assert await browse(namespace="acme", provider="aws") == [LATEST[0], LATEST[2]]
    assert await browse(provider="aws") == [LATEST[0], LATEST[2], LATEST[4], LATEST[5], LATEST[6]]
    assert await browse(provider="AWS") == []  # providers are lowercase, matched exactly
    assert await browse(only_namespaces=["BETA", "gamma"]) == [LATEST[3], LATEST[4], LATEST[6]]
    assert await browse(only_namespaces=[]) == []
    assert await browse(exclude_namespaces=["Acme", "beta"]) == LATEST[5:]
    assert await browse(namespace="nobody") == []
    page, more = await browsing.browse_modules(provider="aws", offset=1, limit=2)
    assert ids(page) == [LATEST[2], LATEST[4]] and more


async def test_search_matches_four_fields_in_any_case(browsing: MetadataStore):
    async def search(query: str, **kwargs: Any) -> list[str]:
        page, _ = await browsing.browse_modules(query=query, limit=100, **kwargs)
        return ids(page)

    assert await search("STORAGE") == [LATEST[2]]  # name
    assert await search("bet") == LATEST[3:6]  # namespace
    assert await search("azure") == [LATEST[3]]  # provider
    assert await search("Release 1.10") == [LATEST[0]]  # description
    assert await search("big_name") == [LATEST[6]]
    assert await search("second LINE") == LATEST  # the paragraph's later lines
    assert await search("badge") == []  # not the description
    assert await search("100%_done") == LATEST  # wildcards are text
    for wildcard in ("%", "_", "\\", "a%b", "1_1"):
        assert await search(wildcard) == ([] if wildcard not in ("%", "_") else LATEST), wildcard
    assert await search("builds", namespace="acme", provider="aws") == [LATEST[0], LATEST[2]]
    assert await search("vpc", exclude_namespaces=["beta"]) == [LATEST[5]]
    page, more = await browsing.browse_modules(query="builds", offset=5, limit=1)
    assert ids(page) == [LATEST[5]] and more


async def test_downloads_add_up_per_version_and_module(browsing: MetadataStore):
    network = addr("acme/network/aws")
    await browsing.add_downloads({(network, "1.10.0"): 3, (network, "1.0.0"): 2, (addr("beta/vpc/aws"), "2.0.0"): 1})
    await browsing.add_downloads({(network, "1.10.0"): 1})
    await browsing.add_downloads({})
    await browsing.add_downloads({(addr("nobody/x/aws"), "1.0.0"): 5, (addr("beta/dns/azurerm"), "9.9.9"): 0})
    counts = {str(s.version.address): s.downloads for s in await browsing.latest_versions()}
    assert counts["acme/network/aws"] == 6 and counts["beta/vpc/aws"] == 1 and counts["acme/storage/aws"] == 0
    page, _ = await browsing.browse_modules(query="network", limit=5)
    assert [s.downloads for s in page] == [6, 0]
    assert await browsing.get_version(addr("nobody/x/aws"), "1.0.0") is None  # counting made nothing up
    await browsing.revoke_version(network, "1.0.0")  # revoked versions' downloads still count
    assert (await browsing.latest_versions(namespace="acme", name="network", provider="aws"))[0].downloads == 6


# -- module administration ---------------------------------------------------------------------


async def test_ensure_module(store: MetadataStore):
    network, repository = addr("acme/network/aws"), Owner.github(7)
    assert await store.ensure_module(network, owner=repository) is True
    assert await store.ensure_module(addr("ACME/NETWORK/aws"), owner=repository) is False
    assert [e[1:] for e in await events(store)] == [
        ("module.created", {"namespace": "acme", "name": "network", "provider": "aws"})
    ]
    [record] = await store.list_modules("acme")
    assert record.address == network and record.source_url is None and record.repository_id == 7
    assert (record.owner, record.installation_id, record.allow_uploads) == (repository, None, False)
    assert await store.latest_versions() == []  # no version yet: not listed
    url = "https://github.com/acme/terraform-aws-network"
    assert await store.ensure_module(network, owner=repository, source_url=url, installation_id=3) is False
    assert await store.ensure_module(network, owner=repository) is False  # None keeps what is stored
    [record] = await store.list_modules("Acme")
    assert (record.source_url, record.repository_id, record.installation_id) == (url, 7, 3)
    assert await store.module_by_repository(7) == record == await store.get_module(addr("ACME/Network/aws"))
    assert await store.module_by_repository(8) is None and await store.get_module(addr("acme/other/aws")) is None
    assert await publish(store, "acme/network/aws", "1.0.0") == "created"
    assert [e[1] for e in await events(store)] == ["module.created", "module.version_released"]  # created once
    [summary] = await store.latest_versions()
    assert summary.source_url == "https://github.com/acme/terraform-aws-network"


async def test_list_modules_in_name_order(store: MetadataStore):
    for number, text in enumerate(("acme/zeta/aws", "acme/Alpha/google", "acme/alpha/aws", "acme/alpha-x/aws", "other/beta/aws")):
        await store.ensure_module(addr(text), owner=Owner.github(number))
    assert [str(m.address) for m in await store.list_modules("ACME")] == [
        "acme/alpha/aws",
        "acme/Alpha/google",
        "acme/alpha-x/aws",
        "acme/zeta/aws",
    ]
    assert await store.list_modules("nobody") == []


async def test_rename_module(store: MetadataStore):
    old = addr("acme/network/aws")
    await store.ensure_module(old, owner=Owner.github(42), source_url="https://github.com/acme/terraform-aws-network")
    for number, version in enumerate(("1.0.0", "1.1.0")):
        await publish(store, "acme/network/aws", version, sha="ab"[number])
    await store.add_downloads({(old, "1.1.0"): 4})
    await store.revoke_version(old, "1.0.0")
    before = await store.latest_serial()
    assert await store.rename_module(addr("ACME/Network/aws"), "net") is True
    assert await events(store, before) == [
        (before + 1, "module.renamed", {"namespace": "ACME", "name": "net", "provider": "aws", "old_name": "Network"})
    ]
    assert await store.list_versions(old) == [] and await store.get_version(old, "1.1.0") is None
    new = addr("acme/net/aws")
    assert [(str(v.address), v.version) for v in await store.list_versions(new)] == [("acme/net/aws", "1.1.0")]
    assert (await store.get_version(new, "1.0.0")).revoked_at is not None
    [summary] = await store.latest_versions()
    assert ids([summary]) == ["acme/net/aws/1.1.0"] and summary.downloads == 4
    assert summary.source_url == "https://github.com/acme/terraform-aws-network"
    assert (await store.module_by_repository(42)).address == new
    assert ids((await store.browse_modules(query="net"))[0]) == ["acme/net/aws/1.1.0"]
    assert await store.rename_module(old, "other") is False  # no such module any more
    await store.ensure_module(addr("acme/taken/aws"))
    with pytest.raises(Conflict):
        await store.rename_module(new, "TAKEN")
    assert [str(m.address) for m in await store.list_modules("acme")] == ["acme/net/aws", "acme/taken/aws"]


async def test_rename_a_module_with_many_versions(store: MetadataStore):
    old = addr("acme/network/aws")
    for minor in range(60):
        await publish(store, "acme/network/aws", f"1.{minor}.0", sha="ab"[minor % 2], published_at=NOW)
    assert await store.rename_module(old, "net") is True
    assert await store.list_versions(old) == []
    assert len(await store.list_versions(addr("acme/net/aws"))) == 60
    assert ids(await store.latest_versions()) == ["acme/net/aws/1.59.0"]
    assert [e[1] for e in await events(store, 61)] == ["module.renamed"]


async def test_delete_module_reports_archives_nothing_uses(store: MetadataStore):
    shared = "modules/sh/shared.tar.gz"
    await store.ensure_module(addr(), owner=Owner.github(5))
    await publish(store, "acme/network/aws", "1.0.0", sha="a", blob=shared)
    await publish(store, "acme/network/aws", "1.1.0", sha="b")
    await publish(store, "acme/network/aws", "1.2.0", sha="c")
    await store.revoke_version(addr(), "1.2.0")  # revoked versions keep their archive
    await publish(store, "acme/other/aws", "1.0.0", sha="a", blob=shared)
    before = await store.latest_serial()
    orphans = await store.delete_module(addr("ACME/network/aws"))
    assert sorted(orphans) == sorted([mv(sha="b").blob_key, mv(sha="c").blob_key])
    assert await events(store, before) == [
        (before + 1, "module.deleted", {"namespace": "ACME", "name": "network", "provider": "aws"})
    ]
    assert await store.all_versions(addr()) == [] and await store.get_version(addr(), "1.0.0") is None
    assert await store.module_by_repository(5) is None
    assert [str(m.address) for m in await store.list_modules("acme")] == ["acme/other/aws"]
    assert ids(await store.latest_versions()) == ["acme/other/aws/1.0.0"]
    assert await store.delete_module(addr()) == []
    assert await store.latest_serial() == before + 1
    assert await store.delete_module(addr("acme/other/aws")) == [shared]  # the last user is gone
    assert await publish(store, "acme/network/aws", "1.0.0", sha="z") == "created"  # a new module
    assert [e[1] for e in await events(store, before + 2)] == ["module.created", "module.version_released"]


async def test_delete_a_module_with_many_versions(store: MetadataStore):
    for minor in range(60):
        await publish(store, "acme/network/aws", f"1.{minor}.0", sha="ab"[minor % 2])
    orphans = await store.delete_module(addr())
    assert sorted(orphans) == sorted({mv(sha="a").blob_key, mv(sha="b").blob_key})
    assert await store.all_versions(addr()) == [] and await store.list_modules("acme") == []
    assert [e[1] for e in await events(store, 61)] == ["module.deleted"]


# -- provenance: each module has one owner source ------------------------------------------------


def owned(version: ModuleVersion, owner: Owner, expected: Owner | None) -> NewVersion:
    return replace(released(version), owner=owner, expected_owner=expected)


async def test_a_new_module_belongs_to_the_source_that_created_it(store: MetadataStore):
    repository = Owner.github(11)
    assert (await store.publish_version(owned(mv(), repository, None))).status == "created"
    record = await store.get_module(addr("ACME/network/aws"))
    assert (record.owner, record.repository_id) == (repository, 11)
    assert await store.module_by_repository(11) == record
    assert record.to_json()["owner_source"] == "github:11"
    assert (await store.publish_version(owned(mv(version="1.1.0"), repository, repository))).status == "created"
    await store.publish_version(owned(mv("acme/synced/aws"), Owner.upstream("Registry.Example:8443"), None))
    assert str((await store.get_module(addr("acme/synced/aws"))).owner) == "upstream:registry.example:8443"


async def test_writes_decided_against_another_owner_change_nothing(store: MetadataStore):
    repository = Owner.github(11)
    await store.publish_version(owned(mv(), repository, None))
    before = await store.latest_serial()
    refused = [
        lambda: store.publish_version(owned(mv(version="2.0.0"), Owner.upload(), None)),  # "no module yet"
        lambda: store.publish_version(owned(mv(version="2.0.0"), Owner.upload(), Owner.upload())),
        lambda: store.ensure_module(addr(), owner=Owner.upload()),
        lambda: store.ensure_module(addr(), owner=Owner.github(12), source_url="https://example.com/x"),
        lambda: store.revoke_version(addr(), "1.0.0", owner=Owner.bundle()),
        lambda: store.rename_module(addr(), "other", owner=Owner.upstream("registry.example")),
        lambda: store.delete_module(addr(), owner=Owner.upload()),
    ]
    for attempt in refused:
        with pytest.raises(NotOwner) as caught:
            await attempt()
        assert "github:11" in str(caught.value)
    assert await store.latest_serial() == before
    assert [v.version for v in await store.list_versions(addr())] == ["1.0.0"]
    assert (await store.get_module(addr())).source_url is None
    assert await store.revoke_version(addr(), "1.0.0", owner=repository) is True
    assert await store.rename_module(addr(), "net", owner=repository) is True
    assert await store.delete_module(addr("acme/net/aws"), owner=repository) == [mv().blob_key]


async def test_an_admin_sets_the_owner_and_allows_uploads(store: MetadataStore):
    repository = Owner.github(11)
    await store.ensure_module(addr(), owner=repository, installation_id=4)
    assert await store.set_module_policy(addr("acme/missing/aws"), allow_uploads=True) is None
    before = await store.latest_serial()
    record = await store.set_module_policy(addr("ACME/network/aws"), allow_uploads=True)
    assert (record.owner, record.allow_uploads, record.installation_id) == (repository, True, 4)
    assert record == await store.get_module(addr())
    assert await events(store, before) == [
        (
            before + 1,
            "module.policy_changed",
            {"namespace": "ACME", "name": "network", "provider": "aws", "owner_source": "github:11", "allow_uploads": True},
        )
    ]
    # an upload decided against the repository's ownership goes in, and the module stays the repository's
    assert (await store.publish_version(owned(mv(), Owner.upload(), repository))).status == "created"
    assert (await store.get_module(addr())).owner == repository
    record = await store.set_module_policy(addr(), owner=Owner.upload())
    assert (record.owner, record.repository_id, record.installation_id, record.allow_uploads) == (
        Owner.upload(), None, None, True
    )
    assert record == await store.get_module(addr()) and await store.module_by_repository(11) is None
    with pytest.raises(NotOwner):  # decided before the change: refused
        await store.publish_version(owned(mv(version="1.1.0"), repository, repository))
    await store.ensure_module(addr("acme/other/aws"), owner=Owner.github(12))
    with pytest.raises(Conflict):  # a repository owns one module
        await store.set_module_policy(addr(), owner=Owner.github(12))
    record = await store.set_module_policy(addr(), owner=Owner.github(13), allow_uploads=False)
    assert (record.owner, record.repository_id, record.allow_uploads) == (Owner.github(13), 13, False)
    assert await store.module_by_repository(13) == record


async def test_uninstalling_removes_only_what_the_installation_brought(store: MetadataStore):
    await store.record_installation(Installation(9, "beta-corp", "beta", NOW))
    await store.ensure_module(addr("beta/vpc/aws"), owner=Owner.github(1), installation_id=9)
    await store.publish_version(owned(mv("beta/vpc/aws", sha="a"), Owner.github(1), Owner.github(1)))
    await store.ensure_module(addr("beta/later/aws"), owner=Owner.github(2), installation_id=10)
    await store.publish_version(owned(mv("beta/hand/aws", sha="b"), Owner.upload(), None))
    before = await store.latest_serial()
    assert await store.remove_installation(9) == [mv(sha="a").blob_key]
    assert await events(store, before) == [
        (before + 1, "module.deleted", {"namespace": "beta", "name": "vpc", "provider": "aws"}),
        (before + 2, "app.uninstalled", {"namespace": "beta"}),
    ]
    assert [str(m.address) for m in await store.list_modules("beta")] == ["beta/hand/aws", "beta/later/aws"]
    assert ids(await store.latest_versions()) == ["beta/hand/aws/1.0.0"]
    assert (await store.publish_version(owned(mv("beta/hand/aws", "1.1.0", sha="c"), Owner.upload(), Owner.upload()))).status == "created"


# -- installations -------------------------------------------------------------------------------


async def test_installations(store: MetadataStore):
    second = Installation(20, "beta-corp", "Beta", NOW)
    first = Installation(3, "acme-corp", "acme", NOW)
    assert await store.record_installation(second) is True
    assert await store.record_installation(first) is True
    assert await store.record_installation(replace(first, account="changed")) is False
    assert await store.installation(3) == first and await store.installation(4) is None
    assert await store.list_installations() == [first, second]
    assert [e[1:] for e in await events(store)] == [
        ("app.installed", {"namespace": "Beta"}),
        ("app.installed", {"namespace": "acme"}),
    ]
    assert (await store.events_after(0, 1))[0].occurred_at == NOW


async def test_removing_an_installation_removes_its_namespace(store: MetadataStore):
    await store.record_installation(Installation(9, "beta-corp", "beta", NOW))
    for number, text in enumerate(("BETA/vpc/aws", "beta/dns/azurerm", "beta/empty/aws")):
        await store.ensure_module(addr(text), owner=Owner.github(number), installation_id=9)
    await publish(store, "BETA/vpc/aws", "1.0.0", sha="a", blob="modules/sh/shared.tar.gz")
    await publish(store, "beta/dns/azurerm", "1.0.0", sha="b")
    await publish(store, "acme/keep/aws", "1.0.0", sha="a", blob="modules/sh/shared.tar.gz")
    before = await store.latest_serial()
    orphans = await store.remove_installation(9)
    assert orphans == [mv(sha="b").blob_key]
    assert await events(store, before) == [
        (before + 1, "module.deleted", {"namespace": "beta", "name": "dns", "provider": "azurerm"}),
        (before + 2, "module.deleted", {"namespace": "beta", "name": "empty", "provider": "aws"}),
        (before + 3, "module.deleted", {"namespace": "BETA", "name": "vpc", "provider": "aws"}),
        (before + 4, "app.uninstalled", {"namespace": "beta"}),
    ]
    assert await store.list_modules("beta") == [] and await store.installation(9) is None
    assert ids(await store.latest_versions()) == ["acme/keep/aws/1.0.0"]
    assert await store.remove_installation(9) == []
    assert await store.record_installation(Installation(9, "beta-corp", "beta", NOW)) is True  # installed again


# -- tokens ----------------------------------------------------------------------------------------


def token(token_id: str, token_hash: str, created_at: str = NOW, **kwargs: Any) -> TokenRecord:
    return TokenRecord(
        token_id, token_hash, kwargs.pop("namespace", "acme"), kwargs.pop("scope", "read"), created_at, **kwargs
    )


async def test_tokens(store: MetadataStore):
    late = token("tok_b", "h" * 64, "2026-11-25T00:00:00Z", namespace="*", scope="admin", description="ci")
    early = token("tok_z", "g" * 64, "2026-11-24T00:00:00Z", scope="publish")
    same_time = token("tok_a", "f" * 64, "2026-11-25T00:00:00Z")
    for record in (late, early, same_time):
        await store.create_token(record)
    assert await store.find_token("h" * 64) == late
    assert await store.find_token("x" * 64) is None
    assert await store.list_tokens() == [early, same_time, late]  # by creation time, then id
    assert await store.revoke_token("tok_b") is True
    assert await store.revoke_token("tok_b") is False
    assert await store.revoke_token("tok_nope") is False
    revoked = await store.find_token("h" * 64)
    assert revoked.revoked_at is not None and replace(revoked, revoked_at=None) == late
    assert [t.revoked_at is None for t in await store.list_tokens()] == [True, True, False]
    with pytest.raises(MirrorError):
        await store.create_token(token("tok_b", "k" * 64))  # the id is taken
    with pytest.raises(MirrorError):
        await store.create_token(token("tok_c", "g" * 64))  # the hash is taken
    assert len(await store.list_tokens()) == 3 and await store.find_token("k" * 64) is None


# -- events, listeners, consumers --------------------------------------------------------------


async def test_events_after_pages_and_filters(store: MetadataStore):
    for number in range(12):
        await publish(store, f"acme/m{number}/aws", "1.0.0", sha="abcdefghijkl"[number])
    await store.revoke_version(addr("acme/m3/aws"), "1.0.0")
    assert await store.latest_serial() == 25
    everything = await store.events_after(0, 1000)
    assert [e.serial for e in everything] == list(range(1, 26))
    assert [e.serial for e in await store.events_after(5, 3)] == [6, 7, 8]
    assert await store.events_after(25, 10) == [] and await store.events_after(99, 10) == []
    released = await store.events_after(4, 3, ["module.version_released"])
    assert [(e.serial, e.type) for e in released] == [
        (6, "module.version_released"),
        (8, "module.version_released"),
        (10, "module.version_released"),
    ]
    both = await store.events_after(20, 100, ("module.created", "module.version_revoked"))
    assert [(e.serial, e.type) for e in both] == [
        (21, "module.created"),
        (23, "module.created"),
        (25, "module.version_revoked"),
    ]
    assert await store.events_after(0, 10, ["app.installed"]) == []
    assert everything[3].to_json() == {
        "serial": 4,
        "type": "module.version_released",
        "occurred_at": NOW,
        "data": {
            "namespace": "acme",
            "name": "m1",
            "provider": "aws",
            "version": "1.0.0",
            "url": f"file:///{mv(sha='b').blob_key}",
        },
    }


async def test_listeners_hear_of_commits_with_events(store: MetadataStore):
    calls: list[int] = []
    store.add_event_listener(lambda: calls.append(1))
    await publish(store)
    assert len(calls) == 1
    await publish(store)  # unchanged: nothing appended
    await store.create_token(token("tok_a", "a" * 64))
    await store.enqueue_job("ingest", {})
    await store.get_or_create_setting("k", "v")
    assert len(calls) == 1
    await store.revoke_version(addr(), "1.0.0")
    await store.ensure_module(addr("acme/other/aws"))
    assert len(calls) == 3


async def test_consumers(store: MetadataStore):
    for number in range(3):
        await publish(store, f"acme/m{number}/aws", "1.0.0")
    fresh = await store.consumer("webhook:a", start_serial=4)
    assert (fresh.name, fresh.serial, fresh.attempts, fresh.next_attempt_at, fresh.last_error) == (
        "webhook:a",
        4,
        0,
        0,
        None,
    )
    assert (await store.consumer("webhook:a", start_serial=0)).serial == 4  # created once
    assert (await store.consumer("eventlog")).serial == 0
    await store.record_consumer_failure("webhook:a", 2, 1234.5, "HTTP 500")
    failing = await store.consumer("webhook:a")
    assert (failing.serial, failing.attempts, failing.next_attempt_at, failing.last_error) == (4, 2, 1234.5, "HTTP 500")
    await store.advance_consumer("webhook:a", 6)
    moved = await store.consumer("webhook:a")
    assert (moved.serial, moved.attempts, moved.next_attempt_at, moved.last_error) == (6, 0, 0, None)
    await store.record_consumer_failure("webhook:a", 1, 99.0, "timeout")
    await store.advance_consumer("webhook:a", 5)  # never backwards, but the retry state is reset
    moved = await store.consumer("webhook:a")
    assert (moved.serial, moved.attempts, moved.next_attempt_at, moved.last_error) == (6, 0, 0, None)
    await store.advance_consumer("nobody", 3)  # unknown consumers are not created
    await store.record_consumer_failure("nobody", 1, 1.0, "x")
    assert [c.name for c in await store.list_consumers()] == ["eventlog", "webhook:a"]
    await store.delete_consumer("eventlog")
    await store.delete_consumer("eventlog")
    assert [c.name for c in await store.list_consumers()] == ["webhook:a"]
    assert (await store.consumer("eventlog", start_serial=2)).serial == 2  # starts afresh


# -- webhooks --------------------------------------------------------------------------------------


def subscription(sub_id: str, created_at: str = NOW, **kwargs: Any) -> WebhookSubscription:
    return WebhookSubscription(
        sub_id,
        kwargs.get("url", f"https://hooks.example/{sub_id}"),
        kwargs.get("secret", "s" * 20),
        kwargs.get("events", ()),
        kwargs.get("namespaces", ()),
        kwargs.get("source", "api"),
        created_at,
    )


async def test_subscriptions(store: MetadataStore):
    b = subscription("b", "2026-01-02T00:00:00Z", events=("module.version_released",), namespaces=("acme", "beta"))
    a = subscription("a", "2026-01-02T00:00:00Z", source="config")
    c = subscription("c", "2026-01-01T00:00:00Z")
    for sub in (b, a, c):
        await store.put_subscription(sub)
    assert await store.list_subscriptions() == [c, a, b]
    assert await store.get_subscription("b") == b and await store.get_subscription("zz") is None
    changed = replace(
        b, url="https://other.example/", secret="t" * 20, events=(), namespaces=("x",), source="config", created_at=NOW
    )
    await store.put_subscription(changed)  # url, secret, events and namespaces change; the rest stays
    assert await store.get_subscription("b") == replace(changed, source="api", created_at=b.created_at)
    await store.consumer("webhook:b", start_serial=0)
    await store.consumer("webhook:c", start_serial=0)
    assert await store.delete_subscription("b") is True
    assert await store.delete_subscription("b") is False
    assert [s.id for s in await store.list_subscriptions()] == ["c", "a"]
    assert [c.name for c in await store.list_consumers()] == ["webhook:c"]  # its cursor went with it


async def test_delivery_failures(store: MetadataStore):
    await store.put_subscription(subscription("a"))
    await store.consumer("webhook:a", start_serial=3)
    await store.record_consumer_failure("webhook:a", 9, 555.0, "HTTP 502")
    await store.add_delivery_failure("a", 4, 10, "HTTP 502")
    cursor = await store.consumer("webhook:a")
    assert (cursor.serial, cursor.attempts, cursor.next_attempt_at, cursor.last_error) == (4, 0, 0, "HTTP 502")
    await store.add_delivery_failure("a", 2, 10, "timeout")  # an older serial: the cursor stays
    assert (await store.consumer("webhook:a")).serial == 4
    await store.add_delivery_failure("other", 7, 1, "refused")  # no consumer: parked all the same
    first, second = await store.list_delivery_failures("a")
    assert (first.subscription_id, first.serial, first.attempts, first.last_error, first.redelivered_at) == (
        "a",
        4,
        10,
        "HTTP 502",
        None,
    )
    assert (second.serial, second.last_error) == (2, "timeout") and first.id < second.id
    assert first.failed_at.endswith("Z")
    [other] = await store.list_delivery_failures("other")
    assert other.serial == 7 and other.id not in (first.id, second.id)
    assert await store.mark_redelivered(first.id) is True
    assert await store.mark_redelivered(first.id) is False
    assert await store.mark_redelivered(987654) is False
    assert [f.id for f in await store.list_delivery_failures("a")] == [second.id]
    everything = await store.list_delivery_failures("a", pending_only=False)
    assert [f.id for f in everything] == [first.id, second.id] and everything[0].redelivered_at is not None
    assert await store.list_delivery_failures("nobody") == []


# -- settings --------------------------------------------------------------------------------------


async def test_settings_are_created_once(backend: Backend):
    first, second = await backend.replica(), await backend.replica()
    values = await asyncio.gather(
        *(s.get_or_create_setting("signing_key", f"key-{i}") for i, s in enumerate([first, second] * 5))
    )
    assert len(set(values)) == 1
    assert await first.get_or_create_setting("signing_key", "other") == values[0]
    assert await second.get_or_create_setting("another", "x") == "x"


# -- jobs ------------------------------------------------------------------------------------------


async def test_enqueue_and_dedupe(store: MetadataStore):
    before = time.time()
    job = await store.enqueue_job("ingest", {"tag": "v1", "n": 1.5, "nested": {"a": [1, None]}}, dedupe_key="d-1")
    assert job is not None and job.state == "queued" and job.attempts == 0 and job.kind == "ingest"
    assert job.dedupe_key == "d-1" and before <= job.run_after <= time.time() and job.last_error is None
    assert await store.get_job(job.id) == job
    assert await store.enqueue_job("ingest", {"tag": "other"}, dedupe_key="d-1") is None
    later = await store.enqueue_job("ingest", {}, run_after=time.time() + 3600)
    assert later.id != job.id and later.run_after > time.time() + 3000
    assert await store.get_job(987654) is None
    assert [j.id for j in await store.list_jobs()] == sorted([job.id, later.id], reverse=True)


async def test_claims_take_due_jobs_oldest_first(store: MetadataStore):
    now = time.time()
    late = await store.enqueue_job("b", {}, run_after=now - 10)
    early = await store.enqueue_job("a", {}, run_after=now - 20)
    await store.enqueue_job("future", {}, run_after=now + 3600)
    claimed = await store.claim_job(now, 30)
    assert claimed.id == early.id and claimed.state == "running" and claimed.attempts == 1
    assert (await store.claim_job(now, 30)).id == late.id
    assert await store.claim_job(now, 30) is None  # the third is not due
    assert [j.kind for j in await store.list_jobs("running")] == ["a", "b"]  # newest first
    assert [j.kind for j in await store.list_jobs("queued")] == ["future"]


async def test_an_expired_lease_is_taken_over(store: MetadataStore):
    job = await store.enqueue_job("ingest", {"tag": "v2"})
    now = time.time()
    assert (await store.claim_job(now, 10)).attempts == 1
    assert await store.claim_job(now + 5, 10) is None  # the lease holds
    await store.renew_job_lease(job.id, now + 30)
    assert await store.claim_job(now + 20, 10) is None  # renewed
    taken = await store.claim_job(now + 31, 10)
    assert taken.id == job.id and taken.attempts == 2 and taken.state == "running"
    await store.finish_job(job.id)
    await store.renew_job_lease(job.id, now + 100)  # only running jobs are renewed
    assert await store.claim_job(now + 1000, 10) is None
    assert (await store.get_job(job.id)).state == "done"


async def test_retry_fail_requeue(store: MetadataStore):
    job = await store.enqueue_job("ingest", {})
    now = time.time()
    await store.claim_job(now, 10)
    await store.retry_job(job.id, "boom 1", now + 60)
    retried = await store.get_job(job.id)
    assert (retried.state, retried.attempts, retried.last_error, retried.run_after) == ("queued", 1, "boom 1", now + 60)
    assert await store.claim_job(now, 10) is None and (await store.claim_job(now + 61, 10)).attempts == 2
    assert await store.requeue_job(job.id) is False  # only failed jobs
    await store.fail_job(job.id, "gave up")
    failed = await store.get_job(job.id)
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 2, "gave up")
    assert await store.claim_job(now + 1000, 10) is None
    assert await store.requeue_job(job.id) is True
    assert await store.requeue_job(job.id) is False
    requeued = await store.get_job(job.id)
    assert (requeued.state, requeued.attempts, requeued.last_error) == ("queued", 0, "gave up")
    assert requeued.run_after <= time.time()
    await store.finish_job(job.id)
    done = await store.get_job(job.id)
    assert done.state == "done" and done.last_error == "gave up"
    assert await store.requeue_job(987654) is False
    await store.finish_job(987654)  # unknown jobs are left alone
    await store.fail_job(987654, "x")
    assert await store.get_job(987654) is None


async def test_a_lapsed_holder_cannot_clobber_the_new_one(backend: Backend, store: MetadataStore):
    other = await backend.replica()
    job = await store.enqueue_job("ingest", {"tag": "v3"})
    now = time.time()
    first = await store.claim_job(now, 10)
    assert first.id == job.id and first.lease_owner
    assert await store.renew_job_lease(job.id, now + 15, owner=first.lease_owner) is True
    assert await other.claim_job(now + 12, 10) is None  # renewed by its holder
    second = await other.claim_job(now + 16, 10)  # the first holder was too slow: taken over
    assert second.id == job.id and second.attempts == 2 and second.lease_owner not in (None, first.lease_owner)
    assert await store.renew_job_lease(job.id, now + 100, owner=first.lease_owner) is False
    assert await store.finish_job(job.id, owner=first.lease_owner) is False
    assert await store.retry_job(job.id, "late", now + 60, owner=first.lease_owner) is False
    assert await store.fail_job(job.id, "late", owner=first.lease_owner) is False
    held = await other.get_job(job.id)
    assert (held.state, held.attempts, held.last_error, held.lease_owner) == ("running", 2, None, second.lease_owner)
    assert await store.claim_job(now + 20, 10) is None  # the stale renewal did not touch the lease
    assert await other.renew_job_lease(job.id, now + 40, owner=second.lease_owner) is True
    assert await other.finish_job(job.id, owner=second.lease_owner) is True
    done = await store.get_job(job.id)
    assert (done.state, done.last_error, done.lease_owner) == ("done", None, None)
    assert await other.finish_job(job.id, owner=second.lease_owner) is False  # its claim is over
    assert await other.renew_job_lease(job.id, now + 50, owner=second.lease_owner) is False

    # retry and fail of the current holder apply; a former holder's do not
    job = await store.enqueue_job("ingest", {"tag": "v4"})
    now = time.time()
    claim = await store.claim_job(now, 10)
    assert await store.retry_job(job.id, "boom", now, owner=claim.lease_owner) is True
    assert await store.retry_job(job.id, "boom again", now, owner=claim.lease_owner) is False
    again = await other.claim_job(now + 1, 10)
    assert again.id == job.id and again.lease_owner != claim.lease_owner
    assert await store.fail_job(job.id, "stale", owner=claim.lease_owner) is False
    assert await other.fail_job(job.id, "bad archive", owner=again.lease_owner) is True
    failed = await store.get_job(job.id)
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 2, "bad archive")
    assert await store.finish_job(987654, owner="nobody") is False


async def test_consumer_leases(backend: Backend, store: MetadataStore):
    other = await backend.replica()
    await store.consumer("webhook:a", start_serial=3)
    now = time.time()
    assert await store.acquire_consumer_lease("nobody", "A", now + 10, now) is False  # unknown consumer
    assert [c.name for c in await store.list_consumers()] == ["webhook:a"]
    assert await store.acquire_consumer_lease("webhook:a", "A", now + 10, now) is True  # free
    assert await other.acquire_consumer_lease("webhook:a", "B", now + 15, now + 5) is False  # A's runs
    assert await store.acquire_consumer_lease("webhook:a", "A", now + 20, now + 5) is True  # renewed
    assert await other.acquire_consumer_lease("webhook:a", "B", now + 25, now + 15) is False  # renewal holds
    assert await store.advance_consumer("webhook:a", 5, owner="A") is True
    assert await other.advance_consumer("webhook:a", 9, owner="B") is False
    assert await other.record_consumer_failure("webhook:a", 1, 9.0, "x", owner="B") is False
    assert await other.add_delivery_failure("a", 6, 3, "x", owner="B") is False
    cursor = await other.consumer("webhook:a")
    assert (cursor.serial, cursor.attempts, cursor.last_error) == (5, 0, None)
    assert await other.list_delivery_failures("a") == []

    # A's lease lapses: B takes over, and A's writes no longer apply
    assert await other.acquire_consumer_lease("webhook:a", "B", now + 31, now + 21) is True
    assert await store.advance_consumer("webhook:a", 7, owner="A") is False
    assert await store.record_consumer_failure("webhook:a", 2, 1.0, "late", owner="A") is False
    assert await store.add_delivery_failure("a", 6, 3, "late", owner="A") is False
    assert await store.acquire_consumer_lease("webhook:a", "A", now + 40, now + 22) is False
    assert await other.record_consumer_failure("webhook:a", 1, 50.0, "HTTP 500", owner="B") is True
    failing = await store.consumer("webhook:a")
    assert (failing.serial, failing.attempts, failing.next_attempt_at, failing.last_error) == (5, 1, 50.0, "HTTP 500")
    assert await other.add_delivery_failure("a", 6, 3, "HTTP 500", owner="B") is True
    assert (await store.consumer("webhook:a")).serial == 6
    assert [(f.serial, f.last_error) for f in await store.list_delivery_failures("a")] == [(6, "HTTP 500")]

    # released: free at once for another owner, and no longer B's
    assert await store.release_consumer_lease("webhook:a", "A") is False  # not A's to release
    assert await other.release_consumer_lease("webhook:a", "B") is True
    assert await other.advance_consumer("webhook:a", 8, owner="B") is False
    assert await store.acquire_consumer_lease("webhook:a", "A", now + 50, now + 23) is True
    assert await store.advance_consumer("webhook:a", 8, owner="A") is True
    assert await other.advance_consumer("webhook:a", 9) is True  # without an owner: unconditional
    assert (await store.consumer("webhook:a")).serial == 9
    assert await store.release_consumer_lease("nobody", "A") is False


async def test_list_jobs(store: MetadataStore):
    now = time.time()
    jobs = [await store.enqueue_job(f"k{n}", {"n": n}, run_after=now - 100 + n) for n in range(6)]
    for _ in range(4):
        await store.claim_job(now, 60)
    await store.finish_job(jobs[0].id)
    await store.fail_job(jobs[1].id, "bad")
    await store.finish_job(jobs[2].id)
    by_state = {
        state: [j.id for j in await store.list_jobs(state)] for state in ("queued", "running", "done", "failed")
    }
    assert by_state == {
        "queued": [jobs[5].id, jobs[4].id],
        "running": [jobs[3].id],
        "done": [jobs[2].id, jobs[0].id],
        "failed": [jobs[1].id],
    }
    assert [j.id for j in await store.list_jobs()] == [j.id for j in reversed(jobs)]
    assert [j.id for j in await store.list_jobs(limit=2)] == [jobs[5].id, jobs[4].id]
    assert [j.id for j in await store.list_jobs("done", limit=1)] == [jobs[2].id]
    assert (await store.list_jobs("failed"))[0].payload == {"n": 1}


async def test_a_queue_takes_over_the_job_of_a_dead_replica(backend: Backend):
    dead, alive = await backend.replica(), await backend.replica()
    job = await dead.enqueue_job("ingest", {"tag": "v2"})
    assert (await dead.claim_job(time.time(), 0.3)).id == job.id  # then its process dies
    calls: list[dict[str, Any]] = []

    async def handle(payload: dict[str, Any]) -> None:
        calls.append(payload)

    queue = JobQueue(
        alive, workers=2, lease_seconds=5, max_attempts=3, backoff_base=0.01, backoff_max=1, poll_interval=0.05
    )
    queue.register("ingest", handle)
    await queue.start()
    try:
        async with asyncio.timeout(10):
            while (await alive.get_job(job.id)).state != "done":
                await asyncio.sleep(0.05)
    finally:
        await queue.stop(timeout=2)
    assert calls == [{"tag": "v2"}] and (await alive.get_job(job.id)).attempts == 2


# -- replicas: several stores on one database at once ---------------------------------------------


async def together(count: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    return await asyncio.gather(*(make(n) for n in range(count)))


async def test_replicas_ingesting_the_same_tag_make_one_version(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    outcomes = await together(9, lambda n: replicas[n % 3].publish_version(released(mv())))
    assert sorted(o.status for o in outcomes) == ["created"] + ["unchanged"] * 8
    assert [e[1] for e in await events(replicas[0])] == ["module.created", "module.version_released"]
    assert await replicas[1].latest_serial() == 2


async def test_replicas_publishing_at_once_leave_no_gap_in_serials(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    outcomes = await together(
        12,
        lambda n: replicas[n % 3].publish_version(
            released(mv(f"acme/m{n % 4}/aws", f"1.{n}.0", sha="abcdefghijkl"[n]))
        ),
    )
    assert [o.status for o in outcomes] == ["created"] * 12
    listed = await replicas[2].events_after(0, 1000)
    assert [e.serial for e in listed] == list(range(1, 17))
    assert sorted(e.data["version"] for e in listed if e.type == "module.version_released") == sorted(
        f"1.{n}.0" for n in range(12)
    )
    assert sorted(e.data["name"] for e in listed if e.type == "module.created") == ["m0", "m1", "m2", "m3"]
    for e in listed:  # every module's creation comes before its versions
        if e.type == "module.version_released":
            created = next(c for c in listed if c.type == "module.created" and c.data["name"] == e.data["name"])
            assert created.serial < e.serial
    latest = {s.version.address.name: s.version.version for s in await replicas[0].latest_versions()}
    assert latest == {f"m{m}": f"1.{max(n for n in range(12) if n % 4 == m)}.0" for m in range(4)}


async def test_readers_never_see_a_gap_while_replicas_write(backend: Backend):
    writers = [await backend.replica() for _ in range(2)]
    reader = await backend.replica()
    seen: list[list[int]] = []
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            serials = [e.serial for e in await reader.events_after(0, 1000)]
            seen.append(serials)
            await asyncio.sleep(0)

    async def write(n: int) -> None:
        await writers[n % 2].publish_version(released(mv(f"acme/r{n % 3}/aws", f"2.{n}.0", sha="abcdefghij"[n])))

    task = asyncio.create_task(read())
    await together(10, write)
    stop.set()
    await task
    for serials in seen:
        assert serials == list(range(1, len(serials) + 1))
    assert await reader.latest_serial() == 13


async def test_replicas_claim_each_job_once(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    for n in range(4):
        await replicas[0].enqueue_job("ingest", {"n": n})
    now = time.time()
    claims = await together(9, lambda n: replicas[n % 3].claim_job(now, 60))
    won = [c.id for c in claims if c is not None]
    assert len(won) == 4 and len(set(won)) == 4
    assert await replicas[1].list_jobs("queued") == []


async def test_replicas_enqueue_a_dedupe_key_once(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    queued = await together(6, lambda n: replicas[n % 3].enqueue_job("delivery", {"n": n}, dedupe_key="delivery-1"))
    assert len([j for j in queued if j is not None]) == 1
    assert len(await replicas[0].list_jobs()) == 1


async def test_replicas_ensure_a_module_once(backend: Backend):
    replicas = [await backend.replica() for _ in range(3)]
    created = await together(6, lambda n: replicas[n % 3].ensure_module(addr(), owner=Owner.github(1)))
    assert sorted(created) == [False] * 5 + [True]
    assert [e[1] for e in await events(replicas[0])] == ["module.created"]


async def test_replicas_revoking_and_deleting_at_once(backend: Backend):
    replicas = [await backend.replica() for _ in range(2)]
    for n in range(3):
        await publish(replicas[0], version=f"1.{n}.0", sha="abc"[n])
    revoked = await together(4, lambda n: replicas[n % 2].revoke_version(addr(), "1.2.0"))
    assert sorted(revoked) == [False, False, False, True]
    orphans = await together(4, lambda n: replicas[n % 2].delete_module(addr()))
    assert sorted(key for keys in orphans for key in keys) == sorted(mv(sha=s).blob_key for s in "abc")
    assert [e[1] for e in await events(replicas[1], 4)] == ["module.version_revoked", "module.deleted"]
