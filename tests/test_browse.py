"""The browse and search API (PROTOCOL section 4), in process against a real app and SQLite."""

from __future__ import annotations

import re

import pytest

from mirror.domain.addresses import ModuleAddress
from mirror.domain.models import NewVersion
from mirror.http.keys import STORE
from mirror.http.keys import DOWNLOADS

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

# address -> versions as published, in publish order
MODULES = {
    "acme/network/aws": ["1.0.0", "1.10.0", "1.2.0", "2.0.0-beta.1"],  # latest release, not string order
    "acme/network/google": ["0.1.0"],
    "acme/storage/aws": ["3.0.0-rc.1", "3.0.0-rc.2"],  # only prereleases: the highest one
    "beta/dns/azurerm": ["0.0.1"],
    "beta/vpc/aws": ["v2.1", "2.0.0"],
}
# address -> (latest version, the raw spelling it was published as)
LATEST = {
    "acme/network/aws": ("1.10.0", "1.10.0"),
    "acme/network/google": ("0.1.0", "0.1.0"),
    "acme/storage/aws": ("3.0.0-rc.2", "3.0.0-rc.2"),
    "beta/dns/azurerm": ("0.0.1", "0.0.1"),
    "beta/vpc/aws": ("2.1.0", "v2.1"),
}


@pytest.fixture
async def published(registry, module_archive):
    admin = await registry.auth()
    for address, versions in MODULES.items():
        for raw in versions:
            response = await registry.publish(address, raw, module_archive(f"release {raw}"), admin)
            assert response.status == 201, await response.text()
    return admin


async def get(registry, path, headers, status=200):
    response = await registry.client.get(path, headers=headers, allow_redirects=False)
    assert response.status == status, await response.text()
    return await response.json()


async def test_list_items_field_by_field(registry, published):
    answer = await get(registry, "/v1/modules", published)
    assert (await get(registry, "/v1/modules/", published)) == answer  # trailing slash (the discovery base)
    assert answer["meta"] == {"limit": 15, "current_offset": 0}
    items = answer["modules"]
    assert [f"{m['namespace']}/{m['name']}/{m['provider']}" for m in items] == list(MODULES)
    for item in items:
        address = f"{item['namespace']}/{item['name']}/{item['provider']}"
        version, raw = LATEST[address]
        published_at = item.pop("published_at")
        assert RFC3339.match(published_at), published_at
        ns, name, provider = address.split("/")
        assert item == {
            "id": f"{address}/{version}",
            "owner": ns,  # no repository: the namespace owns it
            "namespace": ns,
            "name": name,
            "version": version,
            "provider": provider,
            "description": f"Builds a network (release {raw}).",
            "source": "",  # uploads have no repository
            "downloads": 0,
            "verified": False,
        }


async def test_module_source_url_is_the_source(registry, published):
    dns = ModuleAddress.parse("beta/dns/azurerm")
    await registry.app[STORE].ensure_module(dns, source_url="https://git.example/beta/dns")
    items = (await get(registry, "/v1/modules/beta", published))["modules"]
    assert {m["name"]: m["source"] for m in items} == {"dns": "https://git.example/beta/dns", "vpc": ""}
    assert {m["name"]: m["owner"] for m in items} == {"dns": "beta", "vpc": "beta"}
    await registry.app[STORE].ensure_module(dns, source_url="https://github.com/beta-corp/terraform-azurerm-dns")
    items = (await get(registry, "/v1/modules/beta", published))["modules"]
    assert {m["name"]: m["owner"] for m in items} == {"dns": "beta-corp", "vpc": "beta"}  # the repository's account
    detail = await get(registry, "/v1/modules/beta/dns/azurerm", published)
    assert detail["owner"] == "beta-corp" and detail["source"] == "https://github.com/beta-corp/terraform-azurerm-dns"


async def test_verified_namespaces(start_registry, make_config, module_archive):
    registry = await start_registry(make_config(browse={"verified_namespaces": ["ACME"]}))
    admin = await registry.auth()
    for address in ("acme/a/aws", "beta/b/aws", "acme/c/google"):
        assert (await registry.publish(address, "1.0.0", module_archive(), admin)).status == 201
    everything = (await get(registry, "/v1/modules", admin))["modules"]
    assert {m["id"]: m["verified"] for m in everything} == {
        "acme/a/aws/1.0.0": True,
        "acme/c/google/1.0.0": True,
        "beta/b/aws/1.0.0": False,
    }
    verified = await get(registry, "/v1/modules?verified=true&limit=1", admin)
    assert [m["id"] for m in verified["modules"]] == ["acme/a/aws/1.0.0"] and verified["meta"]["next_offset"] == 1
    unverified = await get(registry, "/v1/modules/search?q=b&verified=false", admin)
    assert [m["id"] for m in unverified["modules"]] == ["beta/b/aws/1.0.0"]
    assert (await get(registry, "/v1/modules/acme/c/google", admin))["verified"] is True
    assert (await get(registry, "/v1/modules/beta/b/aws/1.0.0", admin))["verified"] is False


async def test_pagination_over_three_pages(registry, published):
    first = await get(registry, "/v1/modules?limit=2", published)
    assert first["meta"] == {
        "limit": 2,
        "current_offset": 0,
        "next_offset": 2,
        "next_url": "/v1/modules?limit=2&offset=2",
    }
    second = await get(registry, first["meta"]["next_url"], published)
    assert second["meta"] == {
        "limit": 2,
        "current_offset": 2,
        "next_offset": 4,
        "prev_offset": 0,
        "next_url": "/v1/modules?limit=2&offset=4",
    }
    third = await get(registry, second["meta"]["next_url"], published)
    assert third["meta"] == {"limit": 2, "current_offset": 4, "prev_offset": 2}
    ids = [m["id"] for page in (first, second, third) for m in page["modules"]]
    assert ids == [f"{a}/{v}" for a, (v, _) in LATEST.items()]
    beyond = await get(registry, "/v1/modules?limit=2&offset=10", published)
    assert beyond["modules"] == [] and beyond["meta"] == {"limit": 2, "current_offset": 10, "prev_offset": 8}


async def test_namespace_and_provider_filters(registry, published):
    acme_aws = await get(registry, "/v1/modules/acme?provider=aws", published)
    assert [m["id"] for m in acme_aws["modules"]] == ["acme/network/aws/1.10.0", "acme/storage/aws/3.0.0-rc.2"]
    aws = await get(registry, "/v1/modules?provider=aws", published)
    assert [m["name"] for m in aws["modules"]] == ["network", "storage", "vpc"]
    assert (await get(registry, "/v1/modules?verified=true", published))["modules"] == []
    assert len((await get(registry, "/v1/modules?verified=false", published))["modules"]) == 5
    assert (await get(registry, "/v1/modules/nobody", published))["modules"] == []


async def test_search(registry, published):
    by_name = await get(registry, "/v1/modules/search?q=STORAGE", published)
    assert [m["id"] for m in by_name["modules"]] == ["acme/storage/aws/3.0.0-rc.2"]
    by_namespace = await get(registry, "/v1/modules/search?q=bet", published)
    assert [m["id"] for m in by_namespace["modules"]] == ["beta/dns/azurerm/0.0.1", "beta/vpc/aws/2.1.0"]
    by_description = await get(registry, "/v1/modules/search?q=Release%20V2.1", published)
    assert [m["id"] for m in by_description["modules"]] == ["beta/vpc/aws/2.1.0"]
    by_provider = await get(registry, "/v1/modules/search?q=azure", published)
    assert [m["id"] for m in by_provider["modules"]] == ["beta/dns/azurerm/0.0.1"]
    filtered = await get(registry, "/v1/modules/search?q=builds&namespace=acme&provider=aws&limit=1", published)
    assert [m["id"] for m in filtered["modules"]] == ["acme/network/aws/1.10.0"]
    assert filtered["meta"]["next_url"] == "/v1/modules/search?q=builds&namespace=acme&provider=aws&limit=1&offset=1"
    assert (await get(registry, "/v1/modules/search?q=nothing-like-it", published))["modules"] == []
    for wildcard in ("%", "_", "\\", "a%25b"):  # LIKE's wildcards are matched as text
        assert (await get(registry, f"/v1/modules/search?q={wildcard}", published))["modules"] == []


async def test_namespace_token_sees_only_its_namespace(registry, published):
    beta = await registry.auth("beta", "read")
    assert [m["namespace"] for m in (await get(registry, "/v1/modules", beta))["modules"]] == ["beta", "beta"]
    assert [m["id"] for m in (await get(registry, "/v1/modules/search?q=builds", beta))["modules"]] == [
        "beta/dns/azurerm/0.0.1",
        "beta/vpc/aws/2.1.0",
    ]
    await get(registry, "/v1/modules/acme", beta, 403)
    await get(registry, "/v1/modules/search?q=builds&namespace=acme", beta, 403)
    await get(registry, "/v1/modules/acme/network", beta, 403)
    await get(registry, "/v1/modules/acme/network/aws", beta, 403)
    await get(registry, "/v1/modules", {}, 401)
    await get(registry, "/v1/modules/search?q=x", {}, 401)


async def test_anonymous_read_sees_everything(start_registry, make_config, module_archive):
    registry = await start_registry(make_config(auth={"anonymous_read": True}))
    await registry.publish("acme/a/aws", "1.0.0", module_archive(), await registry.auth())
    await registry.publish("beta/b/aws", "1.0.0", module_archive(), await registry.auth())
    assert len((await get(registry, "/v1/modules", {}))["modules"]) == 2


async def test_module_providers_and_latest_detail(registry, published):
    providers = await get(registry, "/v1/modules/acme/network", published)
    assert providers["meta"] == {"limit": 15, "current_offset": 0}
    assert [m["id"] for m in providers["modules"]] == ["acme/network/aws/1.10.0", "acme/network/google/0.1.0"]
    await get(registry, "/v1/modules/acme/nothing", published, 404)

    detail = await get(registry, "/v1/modules/acme/network/aws", published)
    same = await get(registry, "/v1/modules/acme/network/aws/1.10.0", published)
    assert detail == same
    assert detail["id"] == "acme/network/aws/1.10.0" and detail["verified"] is False and detail["owner"] == "acme"
    assert detail["versions"] == ["2.0.0-beta.1", "1.10.0", "1.2.0", "1.0.0"]
    assert [i["name"] for i in detail["root"]["inputs"]] == ["name"] and detail["submodules"]
    prerelease = await get(registry, "/v1/modules/acme/storage/aws", published)
    assert prerelease["version"] == "3.0.0-rc.2"
    await get(registry, "/v1/modules/acme/nothing/aws", published, 404)


async def test_bad_parameters_are_400(registry, published):
    for query in (
        "/v1/modules?offset=-1",
        "/v1/modules?offset=x",
        "/v1/modules?offset=1000000001",
        "/v1/modules?offset=%C2%B2",  # a digit to str.isdigit, not to int()
        "/v1/modules/search?q=a&offset=" + "9" * 5000,
        "/v1/modules?limit=0",
        "/v1/modules?limit=101",
        "/v1/modules?provider=AWS",
        "/v1/modules?verified=maybe",
        "/v1/modules/search",
        "/v1/modules/search?q=",
        "/v1/modules/search?q=a&namespace=-bad",
        "/v1/modules/-bad",
        "/v1/modules/acme/bad!name",
        "/v1/modules/acme/network/AWS",
    ):
        answer = await get(registry, query, published, 400)
        assert answer["errors"] and isinstance(answer["errors"][0], str), query


async def test_downloads_counted_at_once_and_kept_across_restarts(start_registry, make_config, module_archive):
    config = make_config()
    registry = await start_registry(config)
    admin = await registry.auth()
    for raw in ("1.0.0", "1.1.0"):
        await registry.publish("acme/network/aws", raw, module_archive(raw), admin)
    await registry.publish("acme/other/aws", "1.0.0", module_archive(), admin)
    for version in ("1.0.0", "v1.1.0", "1.1.0"):
        response = await registry.client.get(f"/v1/modules/acme/Network/aws/{version}/download", headers=admin)
        assert response.status == 200
    await get(registry, "/v1/modules/acme/network/aws/9.9.9/download", admin, 404)  # not counted

    def counts(answer):
        return {m["name"]: m["downloads"] for m in answer["modules"]}

    assert counts(await get(registry, "/v1/modules", admin)) == {"network": 3, "other": 0}  # not flushed yet
    assert (await get(registry, "/v1/modules/acme/network/aws", admin))["downloads"] == 3

    await registry.app[DOWNLOADS].flush()
    stored = await registry.app[STORE].latest_versions(namespace="acme", name="network")
    assert [s.downloads for s in stored] == [3]
    assert counts(await get(registry, "/v1/modules/search?q=other", admin)) == {"other": 0}

    await registry.client.get("/v1/modules/acme/other/aws/1.0.0/download", headers=admin)
    await registry.client.close()  # shutdown flushes what is pending

    again = await start_registry(config)
    admin = await again.auth()
    assert counts(await get(again, "/v1/modules", admin)) == {"network": 3, "other": 1}
    assert (await get(again, "/v1/modules/acme/network", admin))["modules"][0]["downloads"] == 3


async def test_revoked_versions_are_skipped(registry, module_archive):
    admin = await registry.auth()
    await registry.publish("acme/gone/aws", "1.0.0", module_archive(), admin)
    await registry.publish("acme/kept/aws", "1.0.0", module_archive(), admin)
    await registry.publish("acme/kept/aws", "2.0.0", module_archive("two"), admin)
    store = registry.app[STORE]
    assert await store.revoke_version(ModuleAddress.parse("acme/gone/aws"), "1.0.0")
    assert await store.revoke_version(ModuleAddress.parse("acme/kept/aws"), "2.0.0")
    assert [m["id"] for m in (await get(registry, "/v1/modules", admin))["modules"]] == ["acme/kept/aws/1.0.0"]
    await get(registry, "/v1/modules/acme/gone", admin, 404)
    # the same bytes again at the same commit reinstate the version (what a tag pushed back does),
    # and the lists show it again at once
    revoked = await store.get_version(ModuleAddress.parse("acme/kept/aws"), "2.0.0")
    assert (await store.publish_version(NewVersion(revoked))).status == "created"
    kept = (await get(registry, "/v1/modules/search?q=kept", admin))["modules"]
    assert [m["id"] for m in kept] == ["acme/kept/aws/2.0.0"]


async def test_terraform_protocol_routes_still_answer(registry, published):
    base = "/v1/modules/acme/network/aws"
    versions = await get(registry, f"{base}/versions", published)
    assert versions["modules"][0]["versions"][0] == {"version": "2.0.0-beta.1"}
    assert "location" in await get(registry, f"{base}/1.2.0/download", published)
    response = await registry.client.get(f"{base}/download", headers=published, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == f"{base}/1.10.0/download"
    assert (await get(registry, f"{base}/1.2.0", published))["version"] == "1.2.0"
    discovery = await get(registry, "/.well-known/terraform.json", published)
    assert discovery["modules.v1"] == "/v1/modules/" and discovery["providers.v1"] == "/v1/providers/"
    # a namespace called "search" is still reachable below the search route
    assert (await get(registry, "/v1/modules/search/x", published, 404))["errors"]
