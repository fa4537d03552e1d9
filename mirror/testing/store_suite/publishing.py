"""The contract: a store's lifecycle, publishing, and the latest-version summary, lists and search."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio

from mirror.domain.models import NewVersion
from mirror.storage.protocols import MetadataStore
from mirror.testing.store_suite.support import NOW, Backend, addr, events, ids, mv, publish, released
from mirror.testing.store_suite.support import backend, store  # noqa: F401  (the fixtures, registered here)


pytestmark = pytest.mark.asyncio


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


@pytest_asyncio.fixture
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


async def test_downloads_read_back_per_version(browsing: MetadataStore):
    network = addr("acme/network/aws")
    assert await browsing.version_downloads(network) == {"1.0.0": 0, "1.10.0": 0, "1.2.0": 0, "2.0.0-beta.1": 0}
    await browsing.add_downloads({(network, "1.10.0"): 3, (network, "1.0.0"): 2, (addr("beta/vpc/aws"), "2.0.0"): 1})
    await browsing.add_downloads({(network, "1.10.0"): 1, (network, "9.9.9"): 4})
    assert await browsing.version_downloads(network) == {"1.0.0": 2, "1.10.0": 4, "1.2.0": 0, "2.0.0-beta.1": 0}
    assert await browsing.version_downloads(addr("ACME/Network/aws")) == await browsing.version_downloads(network)
    assert await browsing.version_downloads(addr("beta/vpc/aws")) == {"2.0.0": 1}
    assert await browsing.version_downloads(addr("acme/network/google")) == {"0.1.0": 0}  # another provider's own
    assert await browsing.version_downloads(addr("nobody/x/aws")) == {}
    await browsing.revoke_version(network, "1.0.0")  # a revoked version keeps its count
    assert (await browsing.version_downloads(network))["1.0.0"] == 2
