"""A version's lifecycle after publishing, over the API and the CLI: deprecate (shown on the
version), revoke (gone from versions), delete a module or a provider (admin), owner rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.domain.addresses import ModuleAddress
from mirror.domain.provenance import Owner
from mirror.domain.providers import ProviderAddress
from mirror.http.keys import BLOBS, PROVIDERS, STORE
from tests.providers import build_release, generate_key, public_key
from tests.test_sync import run_mirror

NETWORK = "acme/network/aws"
API = f"/api/v1/modules/{NETWORK}"


@pytest.fixture(scope="module")
def rsa():
    return generate_key("rsa")


async def errors(response) -> str:
    body = await response.json()
    assert set(body) == {"errors"}, body
    assert len(body["errors"]) >= 1
    return " ".join(body["errors"])


async def publish(registry, module_archive, address: str = NETWORK, version: str = "1.0.0", marker: str = "v1"):
    response = await registry.publish(address, version, module_archive(marker), await registry.auth("acme", "publish"))
    assert response.status == 201, await response.text()
    return await response.json()


async def event_types(registry, after: int = 0) -> list[tuple[str, dict]]:
    return [(e.type, e.data) for e in await registry.app[STORE].events_after(after, 1000)]


async def versions(registry, address: str = NETWORK) -> list[str]:
    response = await registry.client.get(f"/v1/modules/{address}/versions", headers=await registry.auth("acme", "read"))
    if response.status == 404:
        return []
    return [v["version"] for v in (await response.json())["modules"][0]["versions"]]


async def test_a_deprecation_shows_on_the_version_and_writes_its_event(registry, module_archive) -> None:
    await publish(registry, module_archive)
    await publish(registry, module_archive, version="1.1.0", marker="v2")
    reader = await registry.auth("acme", "read")
    detail = await (await registry.client.get(f"/v1/modules/{NETWORK}/1.0.0", headers=reader)).json()
    assert detail["deprecation"] is None
    serial = await registry.app[STORE].latest_serial()
    publisher = await registry.auth("acme", "publish")
    body = {"reason": "Leaks the  NAT gateway.\n", "replacement": "1.1.0"}
    response = await registry.client.post(f"{API}/1.0.0/deprecate", json=body, headers=publisher)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["id"] == f"{NETWORK}/1.0.0" and answer["version"] == "1.0.0"
    assert answer["deprecation"]["reason"] == "Leaks the NAT gateway."
    assert answer["deprecation"]["replacement"] == "1.1.0" and answer["deprecation"]["deprecated_at"]
    detail = await (await registry.client.get(f"/v1/modules/{NETWORK}/1.0.0", headers=reader)).json()
    assert detail["deprecation"] == answer["deprecation"]
    latest = await (await registry.client.get(f"/v1/modules/{NETWORK}", headers=reader)).json()
    assert latest["version"] == "1.1.0" and latest["deprecation"] is None
    assert await versions(registry) == ["1.1.0", "1.0.0"]  # still installable
    assert await event_types(registry, serial) == [
        ("module.version_deprecated", {"namespace": "acme", "name": "network", "provider": "aws", "version": "1.0.0",
                                       "reason": "Leaks the NAT gateway.", "replacement": "1.1.0"}),
    ]
    again = await registry.client.post(f"{API}/v1.0.0/deprecate", json={"reason": "Use 1.1.0."}, headers=publisher)
    assert again.status == 200 and (await again.json())["deprecation"]["replacement"] is None
    ui = await registry.client.get(f"/v1/modules/{NETWORK}/1.0.0", headers=reader)
    assert (await ui.json())["deprecation"]["reason"] == "Use 1.1.0."


async def test_bad_deprecations_are_refused_on_one_line(registry, module_archive) -> None:
    await publish(registry, module_archive)
    publisher = await registry.auth("acme", "publish")
    path = f"{API}/1.0.0/deprecate"
    for bad, status in (
        (b'{"reason": ""}', 400),
        (b'{"reason": "   "}', 400),
        (b'{"reason": 5}', 400),
        (b'{"reason": "x", "replacement": 7}', 400),
        (b'{"reason": "x", "replacement": "\\u0007"}', 400),
        (b"[", 400),
        (b"[1]", 400),
        (b'{"reason": "x"}', 415),
    ):
        headers = publisher | {"Content-Type": "text/plain" if status == 415 else "application/json"}
        refused = await registry.client.post(path, data=bad, headers=headers)
        assert refused.status == status, (bad, await refused.text())
        assert "\n" not in await errors(refused)
    body = {"reason": "old"}
    assert (await registry.client.post(f"{API}/9.0.0/deprecate", json=body, headers=publisher)).status == 404
    assert (await registry.client.post(f"{API}/nope/deprecate", json=body, headers=publisher)).status == 400
    unknown = await registry.client.post("/api/v1/modules/acme/other/aws/1.0.0/deprecate", json=body, headers=publisher)
    assert unknown.status == 404 and "acme/other/aws" in await errors(unknown)
    reader = await registry.client.post(path, json=body, headers=await registry.auth("acme", "read"))
    assert reader.status == 403
    other = await registry.client.post(path, json=body, headers=await registry.auth("other", "publish"))
    assert other.status == 403
    assert (await registry.client.post(path, json=body)).status == 401
    assert "module.version_deprecated" not in [t for t, _ in await event_types(registry)]


async def test_revoke_takes_a_version_out_of_versions_and_downloads(registry, module_archive) -> None:
    await publish(registry, module_archive)
    await publish(registry, module_archive, version="1.1.0", marker="v2")
    publisher = await registry.auth("acme", "publish")
    reader = await registry.auth("acme", "read")
    assert await versions(registry) == ["1.1.0", "1.0.0"]  # cached in the catalog now
    assert (await registry.client.post(f"{API}/1.1.0/revoke", headers=await registry.auth("acme", "read"))).status == 403
    assert (await registry.client.post(f"{API}/1.1.0/revoke", headers=publisher)).status == 204
    assert await versions(registry) == ["1.0.0"]
    assert (await registry.client.get(f"/v1/modules/{NETWORK}/1.1.0/download", headers=reader)).status == 404
    assert (await (await registry.client.get(f"/v1/modules/{NETWORK}", headers=reader)).json())["version"] == "1.0.0"
    again = await registry.client.post(f"{API}/1.1.0/revoke", headers=publisher)
    assert again.status == 404 and "not live" in await errors(again)
    assert (await registry.client.post(f"{API}/1.1.0/deprecate", json={"reason": "x"}, headers=publisher)).status == 404
    assert ("module.version_revoked", {"namespace": "acme", "name": "network", "provider": "aws", "version": "1.1.0"}) in (
        await event_types(registry)
    )


async def test_delete_module_is_for_admins_and_removes_archives_nothing_else_uses(registry, module_archive) -> None:
    one = await publish(registry, module_archive)
    two = await publish(registry, module_archive, version="1.1.0", marker="v2")
    copy = await publish(registry, module_archive, address="acme/copy/aws", marker="v2")  # the same archive as 1.1.0
    blobs, store = registry.app[BLOBS], registry.app[STORE]
    first = await store.get_version(ModuleAddress.parse(NETWORK), "1.0.0")
    shared = await store.get_version(ModuleAddress.parse(NETWORK), "1.1.0")
    assert shared.sha256 == copy["sha256"] == two["sha256"] != one["sha256"]
    assert await versions(registry) == ["1.1.0", "1.0.0"]
    publisher = await registry.auth("acme", "publish")
    refused = await registry.client.delete(API, headers=publisher)
    assert refused.status == 403 and "\n" not in await errors(refused)
    assert (await registry.client.delete(API, headers=await registry.auth("other", "admin"))).status == 403
    serial = await store.latest_serial()
    assert (await registry.client.delete(API, headers=await registry.auth("acme", "admin"))).status == 204
    assert await event_types(registry, serial) == [
        ("module.deleted", {"namespace": "acme", "name": "network", "provider": "aws"})
    ]
    assert await versions(registry) == []
    assert await store.get_module(ModuleAddress.parse(NETWORK)) is None
    assert not blobs.local_path(first.blob_key).exists()  # nothing else used it
    assert blobs.local_path(shared.blob_key).is_file()  # acme/copy/aws still does
    assert await versions(registry, "acme/copy/aws") == ["1.0.0"]
    gone = await registry.client.delete(API, headers=await registry.auth("acme", "admin"))
    assert gone.status == 404 and "not found" in await errors(gone)
    assert (await registry.client.delete("/api/v1/modules/acme/bad name/aws", headers=await registry.auth())).status == 400
    await publish(registry, module_archive)  # the address is free again, for uploads
    assert await versions(registry) == ["1.0.0"]


async def test_a_module_another_source_owns_changes_only_with_an_admin_token(registry, module_archive) -> None:
    await publish(registry, module_archive)
    await publish(registry, module_archive, version="1.1.0", marker="v2")
    await registry.app[STORE].set_module_policy(ModuleAddress.parse(NETWORK), owner=Owner.github(42))
    publisher = await registry.auth("acme", "publish")
    for path, body in ((f"{API}/1.0.0/deprecate", {"reason": "old"}), (f"{API}/1.0.0/revoke", None)):
        refused = await registry.client.post(path, json=body, headers=publisher)
        assert refused.status == 409, path
        assert "github:42" in await errors(refused) and "uploads (publish over the API) cannot" in await errors(refused)
    assert await versions(registry) == ["1.1.0", "1.0.0"]
    admin = await registry.auth("acme", "admin")
    assert (await registry.client.post(f"{API}/1.0.0/deprecate", json={"reason": "old"}, headers=admin)).status == 200
    assert (await registry.client.post(f"{API}/1.0.0/revoke", headers=admin)).status == 204
    assert await versions(registry) == ["1.1.0"]
    assert (await registry.client.delete(API, headers=admin)).status == 204


# -- providers


async def publish_provider(registry, rsa, directory: Path, version: str = "1.0.0") -> None:
    files = build_release(directory, rsa, version=version)
    await registry.app[PROVIDERS].publish(ProviderAddress("acme", "example"), version, files, source="upload")


async def test_delete_provider_is_for_admins_and_removes_its_zips(registry, rsa, tmp_path: Path) -> None:
    store, blobs = registry.app[STORE], registry.app[BLOBS]
    armored = {"ascii_armor": public_key(rsa)}
    assert (await registry.client.post("/api/v1/providers/acme/keys", json=armored, headers=await registry.auth())).status == 201
    await publish_provider(registry, rsa, tmp_path / "one")
    await publish_provider(registry, rsa, tmp_path / "two", version="1.1.0")
    found = await store.provider_versions("", ProviderAddress("acme", "example"))
    keys = [f.blob_key for v in found for f in v.platforms]
    assert keys and all(blobs.local_path(key).is_file() for key in keys)
    path = "/api/v1/providers/acme/example"
    refused = await registry.client.delete(path, headers=await registry.auth("acme", "publish"))
    assert refused.status == 403 and "\n" not in await errors(refused)
    serial = await store.latest_serial()
    assert (await registry.client.delete(path, headers=await registry.auth("acme", "admin"))).status == 204
    assert await event_types(registry, serial) == [
        ("provider.deleted", {"hostname": "", "namespace": "acme", "type": "example"})
    ]
    assert not any(blobs.local_path(key).exists() for key in keys)
    listed = await registry.client.get("/v1/providers/acme/example/versions", headers=await registry.auth("acme", "read"))
    assert listed.status == 404
    assert (await registry.client.delete(path, headers=await registry.auth())).status == 404
    assert len(await store.list_provider_keys("acme")) == 1  # the namespace keeps its keys
    assert (await registry.client.delete("/api/v1/providers/acme/Bad_Type!", headers=await registry.auth())).status == 400


async def test_a_provider_another_source_owns_is_deleted_by_an_admin(registry, rsa, tmp_path: Path) -> None:
    armored = {"ascii_armor": public_key(rsa)}
    await registry.client.post("/api/v1/providers/acme/keys", json=armored, headers=await registry.auth())
    files = build_release(tmp_path / "dist", rsa)
    await registry.app[PROVIDERS].publish(ProviderAddress("acme", "example"), "1.0.0", files, owner=Owner.github(42))
    assert (await registry.client.delete("/api/v1/providers/acme/example", headers=await registry.auth())).status == 204
    assert await registry.app[STORE].get_provider("", ProviderAddress("acme", "example")) is None


# -- the CLI, against the in-process server


@pytest.mark.slow
async def test_the_cli_deprecates_revokes_and_deletes(registry, module_archive, rsa, tmp_path: Path) -> None:
    await publish(registry, module_archive)
    await publish(registry, module_archive, version="1.1.0", marker="v2")
    url = str(registry.client.make_url("/"))
    publisher = {"MIRROR_TOKEN": await registry.token("acme", "publish")}
    admin = {"MIRROR_TOKEN": await registry.token("acme", "admin")}

    async def mirror(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        return await run_mirror(*args, "--registry", url, cwd=tmp_path, env=env)

    code, out, err = await mirror("modules", "deprecate", NETWORK, "v1.0.0", "--reason", "Old.", "--replacement", "1.1.0",
                                  env=publisher)
    assert (code, out.strip()) == (0, f"deprecated: {NETWORK}/1.0.0 (use 1.1.0 instead)"), err
    detail = await registry.client.get(f"/v1/modules/{NETWORK}/1.0.0", headers=await registry.auth("acme", "read"))
    assert (await detail.json())["deprecation"]["reason"] == "Old."
    code, out, err = await mirror("modules", "revoke", NETWORK, "1.1.0", env=publisher)
    assert (code, out.strip()) == (0, f"revoked: {NETWORK} 1.1.0"), err
    assert await versions(registry) == ["1.0.0"]

    code, out, err = await mirror("modules", "revoke", NETWORK, "1.1.0", env=publisher)
    assert code != 0 and "Traceback" not in err and "404" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = await mirror("modules", "deprecate", NETWORK, "1.0.0", "--reason", " ", env=publisher)
    assert code != 0 and "reason" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = await mirror("modules", "revoke", NETWORK, "not-a-version", env=publisher)
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    code, out, err = await mirror("modules", "delete", NETWORK, env=publisher)
    assert code != 0 and "403" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = await mirror("modules", "delete", NETWORK, env={})
    assert code != 0 and "MIRROR_TOKEN" in err, err
    code, out, err = await mirror("modules", "delete", NETWORK, env=admin)
    assert (code, out.strip()) == (0, f"deleted: {NETWORK}"), err
    assert await versions(registry) == []

    armored = {"ascii_armor": public_key(rsa)}
    await registry.client.post("/api/v1/providers/acme/keys", json=armored, headers=await registry.auth())
    await publish_provider(registry, rsa, tmp_path / "dist")
    code, out, err = await mirror("provider", "delete", "acme/example", env=publisher)
    assert code != 0 and "403" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = await mirror("provider", "delete", "acme/example", env=admin)
    assert (code, out.strip()) == (0, "deleted: acme/example"), err
    assert await registry.app[STORE].get_provider("", ProviderAddress("acme", "example")) is None
    code, out, err = await mirror("provider", "delete", "acme/example", env=admin)
    assert code != 0 and "404" in err, err
