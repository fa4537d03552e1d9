"""Providers over HTTP, in process against a real app and SQLite: signing keys, publishing a
GoReleaser release, the providers.v1 answers and the network mirror, and the self-authenticating
locations they hand out."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import pytest

from mirror.formats.provider_zip import check_provider_zip
from mirror.http.keys import STORE
from tests.providers import build_release, generate_key, public_key, sign

ZIP = "terraform-provider-example_1.0.0_linux_amd64.zip"
SUMS = "terraform-provider-example_1.0.0_SHA256SUMS"
SIG = "terraform-provider-example_1.0.0_SHA256SUMS.sig"


@pytest.fixture(scope="module")
def rsa():
    return generate_key("rsa")


def form(files: dict[str, Path] | dict[str, bytes]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, content in files.items():
        body = content.read_bytes() if isinstance(content, Path) else content
        data.add_field("file", body, filename=name, content_type="application/octet-stream")
    return data


async def add_key(registry, namespace: str, armored: str, headers=None):
    return await registry.client.post(
        f"/api/v1/providers/{namespace}/keys", json={"ascii_armor": armored}, headers=headers or await registry.auth()
    )


async def publish(registry, files, *, version: str = "1.0.0", headers=None, address: str = "acme/example"):
    return await registry.client.post(
        f"/api/v1/providers/{address}/{version}", data=form(files), headers=headers or await registry.auth()
    )


async def errors(response) -> str:
    body = await response.json()
    assert set(body) == {"errors"}, body
    return " ".join(body["errors"])


# -- keys


async def test_signing_keys_are_added_listed_and_removed(registry, rsa) -> None:
    response = await add_key(registry, "acme", public_key(rsa))
    assert response.status == 201, await response.text()
    added = await response.json()
    assert added["status"] == "created" and added["algorithm"] == "rsa" and added["warnings"] == []
    key_id = added["key_id"]
    assert len(key_id) == 16 and added["namespace"] == "acme"
    assert (await add_key(registry, "acme", public_key(rsa))).status == 200  # already there

    plain = await registry.client.post(
        "/api/v1/providers/acme/keys", data=public_key(generate_key("ecdsa")),
        headers=await registry.auth() | {"Content-Type": "text/plain"},
    )
    assert plain.status == 201 and (await plain.json())["algorithm"] == "ecdsa"

    listed = await registry.client.get("/api/v1/providers/acme/keys", headers=await registry.auth("acme", "read"))
    keys = (await listed.json())["keys"]
    assert [k["key_id"] for k in keys][0] == key_id and len(keys) == 2
    assert keys[0]["ascii_armor"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")

    gone = await registry.client.delete(f"/api/v1/providers/acme/keys/{key_id.lower()}", headers=await registry.auth("acme", "admin"))
    assert gone.status == 204
    again = await registry.client.delete(f"/api/v1/providers/acme/keys/{key_id}", headers=await registry.auth())
    assert again.status == 404 and key_id[:4] in (await errors(again)).upper()


async def test_keys_need_admin_and_bad_keys_get_one_line(registry, rsa) -> None:
    response = await add_key(registry, "acme", public_key(rsa), await registry.auth("acme", "publish"))
    assert response.status == 403
    response = await add_key(registry, "acme", public_key(rsa), await registry.auth("other", "admin"))
    assert response.status == 403
    for body, status in (("not a key", 400), ("", 400)):
        response = await add_key(registry, "acme", body)
        assert response.status == status and "\n" not in await errors(response)
    response = await registry.client.post(
        "/api/v1/providers/acme/keys", data=b"x" * 400_000, headers=await registry.auth() | {"Content-Type": "text/plain"}
    )
    assert response.status == 413
    response = await registry.client.post(
        "/api/v1/providers/acme/keys", data=b"<xml/>", headers=await registry.auth() | {"Content-Type": "application/xml"}
    )
    assert response.status == 415
    ed = await add_key(registry, "acme", public_key(generate_key("ed25519")))
    assert ed.status == 201 and "before 1.11" in (await ed.json())["warnings"][0]


# -- publish and the protocols


async def test_a_published_release_is_served_by_both_protocols(registry, rsa, tmp_path: Path) -> None:
    await add_key(registry, "acme", public_key(rsa))
    files = build_release(tmp_path / "dist", rsa)
    response = await publish(registry, files, headers=await registry.auth("acme", "publish"))
    assert response.status == 201, await response.text()
    outcome = await response.json()
    assert outcome["status"] == "created" and outcome["platforms"] == ["darwin_arm64", "linux_amd64"]
    assert outcome["protocols"] == ["6.0"]

    read = await registry.auth("acme", "read")
    versions = await registry.client.get("/v1/providers/acme/example/versions", headers=read)
    assert versions.status == 200 and versions.content_type == "application/json"
    assert await versions.json() == {
        "id": "acme/example",
        "versions": [{"version": "1.0.0", "protocols": ["6.0"],
                      "platforms": [{"os": "darwin", "arch": "arm64"}, {"os": "linux", "arch": "amd64"}]}],
    }
    download_path = "/v1/providers/acme/example/1.0.0/download/linux/amd64"
    assert (await registry.client.get(download_path)).status == 401
    answer = await (await registry.client.get(download_path, headers=read)).json()
    zip_bytes = files[ZIP].read_bytes()
    assert answer["filename"] == ZIP and answer["shasum"] == hashlib.sha256(zip_bytes).hexdigest()
    assert answer["protocols"] == ["6.0"] and (answer["os"], answer["arch"]) == ("linux", "amd64")
    [key] = answer["signing_keys"]["gpg_public_keys"]
    assert key["key_id"] == outcome["key_id"] and key["trust_signature"] == ""
    base = download_path  # the locations are relative: Terraform resolves them against this URL
    # the three locations need no token; each answers the exact bytes
    for url, expected in ((answer["download_url"], zip_bytes), (answer["shasums_url"], files[SUMS].read_bytes()),
                          (answer["shasums_signature_url"], files[SIG].read_bytes())):
        fetched = await registry.client.get(urljoin(base, url))
        assert fetched.status == 200 and await fetched.read() == expected
        tampered = await registry.client.get(urljoin(base, url).replace("signature=", "signature=0"))
        assert tampered.status == 401
    missing = await registry.client.get("/v1/providers/acme/example/1.0.0/download/windows/amd64", headers=read)
    assert missing.status == 404 and "darwin_arm64, linux_amd64" in await errors(missing)

    host = registry.client.make_url("/").host + ":" + str(registry.client.make_url("/").port)
    index = await registry.client.get(f"/v1/mirror/{host}/acme/example/index.json", headers=read)
    assert index.status == 200 and index.content_type == "application/json"
    assert await index.json() == {"versions": {"1.0.0": {}}}
    version_path = f"/v1/mirror/{host}/acme/example/1.0.0.json"
    archives = (await (await registry.client.get(version_path, headers=read)).json())["archives"]
    assert sorted(archives) == ["darwin_arm64", "linux_amd64"]
    linux = archives["linux_amd64"]
    assert linux["hashes"] == [check_provider_zip(files[ZIP], "example").h1, "zh:" + answer["shasum"]]
    fetched = await registry.client.get(urljoin(version_path, linux["url"]))
    assert await fetched.read() == zip_bytes
    other = await registry.client.get("/v1/mirror/registry.terraform.io/acme/example/index.json", headers=read)
    assert other.status == 404
    assert (await registry.client.get(f"/v1/mirror/{host}/other/example/index.json", headers=read)).status == 403


async def test_publishing_again_is_unchanged_extended_or_a_conflict(registry, rsa, tmp_path: Path) -> None:
    await add_key(registry, "acme", public_key(rsa))
    files = build_release(tmp_path / "dist", rsa, extra_sums=("windows_amd64",))
    linux_only = {name: path for name, path in files.items() if "darwin" not in name}
    assert (await publish(registry, linux_only)).status == 201
    again = await publish(registry, linux_only)
    assert again.status == 200 and (await again.json())["status"] == "unchanged"
    darwin = await publish(registry, {n: p for n, p in files.items() if "linux" not in n})
    assert darwin.status == 200 and (await darwin.json())["added"] == ["darwin_arm64"]
    other = build_release(tmp_path / "other", rsa, binary=b"another build")
    conflict = await publish(registry, other)
    assert conflict.status == 409 and "never changes" in await errors(conflict)


async def test_nothing_is_stored_from_a_refused_release(registry, rsa, tmp_path: Path) -> None:
    files = build_release(tmp_path / "dist", rsa)
    no_keys = await publish(registry, files)
    assert no_keys.status == 400 and "mirror provider keys add acme KEYFILE" in await errors(no_keys)
    await add_key(registry, "acme", public_key(generate_key("rsa")))  # not the key that signed
    wrong = await publish(registry, files)
    assert wrong.status in (400, 422) and SIG in await errors(wrong)
    await add_key(registry, "acme", public_key(rsa))
    armored = dict(files) | {SIG: sign(rsa, files[SUMS].read_bytes(), armor=True)}
    refused = await publish(registry, armored)
    assert refused.status in (400, 422) and "armor" in (await errors(refused)).lower()
    tampered = dict(files) | {ZIP: files[ZIP].read_bytes() + b"!"}
    refused = await publish(registry, tampered)
    assert refused.status == 422 and ZIP in await errors(refused)
    store = registry.app[STORE]
    assert await store.list_providers() == [] and await store.latest_serial() == 0
    assert not list((registry.app[STORE].path.parent / "blobs").rglob("*.zip"))


async def test_bad_uploads_get_one_line(registry, rsa, tmp_path: Path) -> None:
    files = build_release(tmp_path / "dist", rsa)
    path = "/api/v1/providers/acme/example/1.0.0"
    auth = await registry.auth()
    cases = [
        (await registry.client.post(path, data=b"zip", headers=auth | {"Content-Type": "application/zip"}), 415),
        (await publish(registry, files, headers=await registry.auth("acme", "read")), 403),
        (await publish(registry, files, version="not-a-version"), 400),
        (await publish(registry, files, address="acme/Bad_Type"), 400),
        (await publish(registry, {"../etc/passwd": b"x"}), 400),
        (await publish(registry, {"readme.txt": b"x"}), 400),
        (await publish(registry, {}), 415),  # an empty form is not sent as multipart
        (await publish(registry, {f"terraform-provider-example_1.0.0_{n}_amd64.zip": b"x" for n in range(70)}), 413),
        (await publish(registry, {SUMS: b"x" * (1024 * 1024 + 1)}), 413),
    ]
    for raw in (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\x01\r\n\r\nx\r\n--b--\r\n',
                b'--b\r\nX: \x00\r\n\r\nx\r\n--b--\r\n', b"no boundary at all"):
        headers = auth | {"Content-Type": "multipart/form-data; boundary=b"}
        cases.append((await registry.client.post(path, data=raw, headers=headers), 400))
    dup = aiohttp.FormData()
    for _ in range(2):
        dup.add_field("file", b"x", filename=SUMS, content_type="application/octet-stream")
    cases.append((await registry.client.post(path, data=dup, headers=auth), 400))
    for response, status in cases:
        assert response.status == status, (status, await response.text())
        message = await errors(response)
        assert "\n" not in message and "Traceback" not in message
    assert await registry.app[STORE].list_providers() == []


# -- lifecycle


async def test_deprecation_reaches_terraform_warnings_and_revoke_hides_a_version(registry, rsa, tmp_path: Path) -> None:
    await add_key(registry, "acme", public_key(rsa))
    assert (await publish(registry, build_release(tmp_path / "one", rsa))).status == 201
    assert (await publish(registry, build_release(tmp_path / "two", rsa, version="1.1.0"), version="1.1.0")).status == 201
    publisher = await registry.auth("acme", "publish")
    path = "/api/v1/providers/acme/example/1.0.0"
    body = {"reason": "Broken on  ARM.\n", "replacement": "1.1.0"}
    response = await registry.client.post(path + "/deprecate", json=body, headers=publisher)
    assert response.status == 200, await response.text()
    assert (await response.json())["deprecation"]["reason"] == "Broken on ARM."
    versions = await (await registry.client.get("/v1/providers/acme/example/versions", headers=publisher)).json()
    assert versions["warnings"] == ["Version 1.0.0 of acme/example is deprecated: Broken on ARM. Use 1.1.0 instead."]
    events = [e.type for e in await registry.app[STORE].events_after(0, 100)]
    assert events.count("provider.version_deprecated") == 1

    for bad, status in ((b'{"reason": ""}', 400), (b'{"reason": 5}', 400), (b"[", 400), (b'{"reason": "x"}', 415)):
        headers = publisher | {"Content-Type": "text/plain" if status == 415 else "application/json"}
        refused = await registry.client.post(path + "/deprecate", data=bad, headers=headers)
        assert refused.status == status and "\n" not in await errors(refused)
    missing = await registry.client.post("/api/v1/providers/acme/example/9.0.0/deprecate", json=body, headers=publisher)
    assert missing.status == 404
    reader = await registry.client.post(path + "/revoke", headers=await registry.auth("acme", "read"))
    assert reader.status == 403

    assert (await registry.client.post(path + "/revoke", headers=publisher)).status == 204
    assert (await registry.client.post(path + "/revoke", headers=publisher)).status == 404
    versions = await (await registry.client.get("/v1/providers/acme/example/versions", headers=publisher)).json()
    assert [v["version"] for v in versions["versions"]] == ["1.1.0"] and "warnings" not in versions
    gone = await registry.client.get("/v1/providers/acme/example/1.0.0/download/linux/amd64", headers=publisher)
    assert gone.status == 404
    assert "provider.version_revoked" in [e.type for e in await registry.app[STORE].events_after(0, 100)]


async def test_a_provider_another_source_owns_changes_only_with_an_admin_token(registry, rsa, tmp_path: Path) -> None:
    from mirror.domain.provenance import Owner
    from mirror.http.keys import PROVIDERS
    from mirror.domain.providers import ProviderAddress

    await add_key(registry, "acme", public_key(rsa))
    files = build_release(tmp_path / "dist", rsa)
    await registry.app[PROVIDERS].publish(ProviderAddress("acme", "example"), "1.0.0", files, owner=Owner.github(42))
    path = "/api/v1/providers/acme/example/1.0.0"
    refused = await registry.client.post(path + "/revoke", headers=await registry.auth("acme", "publish"))
    assert refused.status == 409 and "github:42" in await errors(refused)
    admin = await registry.auth("acme", "admin")
    assert (await registry.client.post(path + "/deprecate", json={"reason": "old"}, headers=admin)).status == 200
    assert (await registry.client.post(path + "/revoke", headers=admin)).status == 204
