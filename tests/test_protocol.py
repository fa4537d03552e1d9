"""The module registry protocol and the publish API, in process against a real app and SQLite."""

from __future__ import annotations

import io
import tarfile
import time

from mirror.app.build import SIGNING_KEY_SETTING
from mirror.domain import signatures
from mirror.http.keys import STORE
from mirror.services.downloads import archive_path

ADDR = "acme/network/aws"


async def test_discovery_needs_a_token_and_names_modules_v1(registry):
    response = await registry.client.get("/.well-known/terraform.json")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["errors"]

    response = await registry.client.get("/.well-known/terraform.json", headers=await registry.auth("acme", "read"))
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == {
        "modules.v1": "/v1/modules/",
        "providers.v1": "/v1/providers/",
        "login.v1": {
            "client": "terraform-cli",
            "grant_types": ["authz_code"],
            "authz": "/oauth/authorize",
            "token": "/oauth/token",
            "ports": [10000, 10010],
        },
    }


async def test_publish_then_versions_and_download(registry, module_archive):
    admin = await registry.auth()
    body = module_archive()
    response = await registry.publish(ADDR, "v1.2.0", body, admin)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["version"] == "1.2.0" and created["status"] == "created"
    assert created["id"] == "acme/network/aws/1.2.0"

    for raw in ("1.0.0", "1.10.0", "2.0.0-beta.1"):
        assert (await registry.publish(ADDR, raw, module_archive(raw), admin)).status == 201

    response = await registry.client.get(f"/v1/modules/{ADDR}/versions", headers=admin)
    assert response.status == 200
    listed = [v["version"] for v in (await response.json())["modules"][0]["versions"]]
    assert listed == ["2.0.0-beta.1", "1.10.0", "1.2.0", "1.0.0"]

    # Terraform asks for the normalized form; the v-prefixed spelling works too.
    for spelling in ("1.2.0", "v1.2.0"):
        response = await registry.client.get(f"/v1/modules/{ADDR}/{spelling}/download", headers=admin)
        assert response.status == 200
        location = (await response.json())["location"]
        assert response.headers["X-Terraform-Get"] == location
        assert location.startswith(archive_path(created["sha256"]) + "?")

    archive = await registry.client.get(location)  # no bearer token: the URL carries its own signature
    assert archive.status == 200
    assert await archive.read() == body
    assert archive.headers["Content-Type"] == "application/gzip"


async def test_latest_download_redirects_to_the_highest_release(registry, module_archive):
    admin = await registry.auth()
    for raw in ("1.0.0", "1.1.0", "2.0.0-rc.1"):
        await registry.publish(ADDR, raw, module_archive(raw), admin)
    response = await registry.client.get(f"/v1/modules/{ADDR}/download", headers=admin, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == f"/v1/modules/{ADDR}/1.1.0/download"


async def test_same_bytes_is_idempotent_and_other_bytes_conflict(registry, module_archive):
    admin = await registry.auth()
    body = module_archive("first")
    assert (await registry.publish(ADDR, "1.0.0", body, admin)).status == 201
    again = await registry.publish(ADDR, "v1.0.0", body, admin)
    assert again.status == 200
    assert (await again.json())["status"] == "unchanged"

    conflict = await registry.publish(ADDR, "1.0.0", module_archive("second"), admin)
    assert conflict.status == 409
    assert "immutable" in (await conflict.json())["errors"][0]

    events = await registry.app[STORE].events_after(0, 100)
    assert [(e.serial, e.type) for e in events] == [(1, "module.created"), (2, "module.version_released")]
    released = events[1].data
    assert released["namespace"] == "acme" and released["provider"] == "aws" and released["version"] == "1.0.0"
    assert released["url"].startswith("file://") and released["url"].endswith(".tar.gz")


async def test_a_second_version_adds_only_its_release_event(registry, module_archive):
    admin = await registry.auth()
    await registry.publish(ADDR, "1.0.0", module_archive("a"), admin)
    await registry.publish(ADDR, "1.1.0", module_archive("b"), admin)
    events = await registry.app[STORE].events_after(0, 100)
    assert [e.type for e in events] == ["module.created", "module.version_released", "module.version_released"]
    assert [e.serial for e in events] == [1, 2, 3]


async def test_scopes_and_namespaces(registry, module_archive):
    body = module_archive()
    assert (await registry.publish(ADDR, "1.0.0", body, {})).status == 401
    bad = {"Authorization": "Bearer mirror_not-a-real-token"}
    assert (await registry.publish(ADDR, "1.0.0", body, bad)).status == 401
    assert (await registry.publish(ADDR, "1.0.0", body, {"Authorization": "Basic abc"})).status == 401
    # read < publish < admin, per namespace
    assert (await registry.publish(ADDR, "1.0.0", body, await registry.auth("acme", "read"))).status == 403
    assert (await registry.publish(ADDR, "1.0.0", body, await registry.auth("other", "admin"))).status == 403
    assert (await registry.publish(ADDR, "1.0.0", body, await registry.auth("ACME", "publish"))).status == 201

    other_ns = await registry.auth("other", "read")
    response = await registry.client.get(f"/v1/modules/{ADDR}/versions", headers=other_ns)
    assert response.status == 403
    response = await registry.client.get(f"/v1/modules/{ADDR}/1.0.0/download", headers=other_ns)
    assert response.status == 403
    reader = await registry.auth("acme", "read")
    assert (await registry.client.get(f"/v1/modules/{ADDR}/versions", headers=reader)).status == 200


async def test_revoked_token_is_refused(registry, module_archive):
    store = registry.app[STORE]
    from mirror.services.tokens import create_token

    record, secret = await create_token(store, "acme", "read")
    assert await store.revoke_token(record.id)
    response = await registry.client.get(f"/v1/modules/{ADDR}/versions", headers={"Authorization": f"Bearer {secret}"})
    assert response.status == 401


async def test_anonymous_read_opens_reads_only(start_registry, make_config, module_archive):
    registry = await start_registry(make_config(auth={"anonymous_read": True}))
    assert (await registry.client.get("/.well-known/terraform.json")).status == 200
    assert (await registry.publish(ADDR, "1.0.0", module_archive(), {})).status == 401
    await registry.publish(ADDR, "1.0.0", module_archive(), await registry.auth())
    assert (await registry.client.get(f"/v1/modules/{ADDR}/versions")).status == 200
    assert (await registry.client.get(f"/v1/modules/{ADDR}/1.0.0/download")).status == 200


async def test_unknown_and_invalid_names(registry):
    admin = await registry.auth()
    cases = {
        f"/v1/modules/{ADDR}/versions": 404,
        f"/v1/modules/{ADDR}/1.0.0/download": 404,
        f"/v1/modules/{ADDR}/download": 404,
        "/v1/modules/acme/network/AWS/versions": 400,  # providers are lowercase
        "/v1/modules/-acme/network/aws/versions": 400,
        f"/v1/modules/{'a' * 65}/network/aws/versions": 400,
        f"/v1/modules/{ADDR}/not-a-version/download": 400,
        "/nothing/here": 404,
    }
    for path, status in cases.items():
        response = await registry.client.get(path, headers=admin)
        assert response.status == status, path
        body = await response.json()
        assert isinstance(body["errors"], list) and body["errors"][0], path
    response = await registry.client.post(f"/v1/modules/{ADDR}/versions", headers=admin)
    assert response.status == 405
    assert (await response.json())["errors"]


async def test_bad_versions_on_publish(registry, module_archive):
    admin = await registry.auth()
    for raw in ("latest", "1.2.3.4", "01.2.3", "1.2.3-", "v"):
        response = await registry.publish(ADDR, raw, module_archive(), admin)
        assert response.status == 400, raw
    assert await registry.app[STORE].events_after(0, 10) == []


async def test_archive_links_are_signed_and_expire(registry, module_archive):
    admin = await registry.auth()
    sha256 = (await (await registry.publish(ADDR, "1.0.0", module_archive(), admin)).json())["sha256"]
    path = archive_path(sha256)
    assert (await registry.client.get(path)).status == 401
    assert (await registry.client.get(path, params={"expires": "9999999999", "signature": "0" * 64})).status == 401

    key = (await registry.app[STORE].get_or_create_setting(SIGNING_KEY_SETTING, "unused")).encode()
    past = int(time.time()) - 1
    expired = {"expires": str(past), "signature": signatures.sign(key, path, past)}
    assert (await registry.client.get(path, params=expired)).status == 401
    future = int(time.time()) + 60
    valid = {"expires": str(future), "signature": signatures.sign(key, path, future)}
    response = await registry.client.get(path, params=valid)
    assert response.status == 200
    head = await registry.client.head(path, params=valid)  # go-getter sends HEAD first
    assert head.status == 200


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _file(name: str, data: bytes = b"# x\n") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


BAD_ARCHIVES = {
    "not gzip": b"this is not an archive",
    "gzip but not tar": __import__("gzip").compress(b"x" * 2000),
    "absolute path": _tar([_file("main.tf"), _file("/etc/evil.tf")]),
    "parent traversal": _tar([_file("main.tf"), _file("../evil.tf")]),
    "symlink escaping": _tar([_file("main.tf"), _special("link", tarfile.SYMTYPE, "../../etc/passwd")]),
    "hardlink escaping": _tar([_file("main.tf"), _special("hard", tarfile.LNKTYPE, "../outside")]),
    "device": _tar([_file("main.tf"), _special("dev", tarfile.CHRTYPE)]),
    "fifo": _tar([_file("main.tf"), _special("pipe", tarfile.FIFOTYPE)]),
    "no root tf": _tar([_file("modules/x/main.tf"), _file("README.md", b"hi")]),
}


async def test_bad_archives_are_refused_and_nothing_is_stored(registry, tmp_path):
    admin = await registry.auth()
    for label, body in BAD_ARCHIVES.items():
        response = await registry.publish(ADDR, "1.0.0", body, admin)
        assert 400 <= response.status < 500, label
        errors = (await response.json())["errors"]
        assert errors and isinstance(errors[0], str), label
    truncated = _tar([_file("main.tf", b"x" * 100_000)])[:-200]
    assert 400 <= (await registry.publish(ADDR, "1.0.0", truncated, admin)).status < 500
    assert await registry.app[STORE].events_after(0, 10) == []
    assert (await registry.client.get(f"/v1/modules/{ADDR}/versions", headers=admin)).status == 404
    blob_dir = tmp_path / "data" / "blobs"
    assert not [p for p in blob_dir.rglob("*") if p.is_file()]


async def test_limits_are_enforced(start_registry, make_config, module_archive, tmp_path):
    registry = await start_registry(make_config(limits={"max_archive_bytes": 300, "max_files": 3}))
    admin = await registry.auth()
    big = module_archive()
    assert len(big) > 300
    response = await registry.publish(ADDR, "1.0.0", big, admin)
    assert response.status == 413
    assert (await response.json())["errors"]
    assert await registry.app[STORE].events_after(0, 10) == []


async def test_empty_body_is_a_clear_400(registry):
    response = await registry.publish(ADDR, "1.0.0", b"", await registry.auth())
    assert response.status == 400
    assert "empty" in (await response.json())["errors"][0]


async def test_healthz_and_request_ids(registry):
    response = await registry.client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert len(response.headers["X-Request-Id"]) == 32
    echoed = await registry.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"


async def test_version_detail_carries_the_module_analysis(registry, module_archive):
    admin = await registry.auth()
    await registry.publish(ADDR, "v1.0.0", module_archive("one"), admin)
    await registry.publish(ADDR, "1.1.0", module_archive("two"), admin)
    response = await registry.client.get(f"/v1/modules/{ADDR}/v1.0.0", headers=admin)
    assert response.status == 200, await response.text()
    detail = await response.json()
    assert detail["id"] == "acme/network/aws/1.0.0" and detail["version"] == "1.0.0"
    assert detail["description"] == "Builds a network (one)."
    assert detail["versions"] == ["1.1.0", "1.0.0"]
    root = detail["root"]
    assert root["inputs"] == [
        {"name": "name", "type": "string", "description": "Name of the network", "default": "main", "required": False,
         "sensitive": False, "nullable": True}
    ]
    assert [o["name"] for o in root["outputs"]] == ["id", "subnets"]
    assert root["dependencies"] == [{"name": "subnets", "source": "./modules/subnets", "version": ""}]
    (subnets,) = detail["submodules"]
    assert subnets["path"] == "modules/subnets"
    assert subnets["inputs"][0]["name"] == "prefix" and subnets["inputs"][0]["required"] is True
    assert detail["analysis_errors"] == []
    assert (await registry.client.get(f"/v1/modules/{ADDR}/9.9.9", headers=admin)).status == 404
    assert (await registry.client.get(f"/v1/modules/{ADDR}/1.0.0")).status == 401


async def test_a_long_request_line_reaches_the_handlers(registry):
    """The event feed's documented maximum (20 types of 100 characters, percent-encoded UTF-8) is
    answered by the registry in its error shape, not by the HTTP parser in plain text."""
    admin = await registry.auth()
    types = "&".join("type=" + "%F0%9F%90%8D" * 100 for _ in range(21))
    response = await registry.client.get(f"/api/v1/events?{types}", headers=admin)
    assert response.status == 400 and response.content_type == "application/json"
    assert "at most 20" in (await response.json())["errors"][0]
