"""Providers in the browse API and the web UI.

In process first: releases published through the API, then the ``/v1/providers`` browse answers
(shapes, the latest version, paging, namespace tokens, the protocol routes they must not shadow)
and the provider pages (snippets, versions and platforms, escaping, access). Then a real headless
Chromium against a live ``mirror serve`` shows a provider page at desktop and phone widths.

Playwright's sync API must not run inside an asyncio loop, so the browser test comes last.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.request import Request, urlopen

import aiohttp
import pytest
from playwright.sync_api import Browser, expect

from tests.browser import launch_chromium, log_in
from tests.live import run_cli
from tests.providers import build_release, generate_key, public_key
from tests.test_ui import start_site

PROVIDER_KEYS = {
    "id", "owner", "namespace", "name", "alias", "version", "tag", "description", "source", "published_at",
    "downloads", "tier", "logo_url",
}  # fmt: skip


@pytest.fixture(scope="module")
def rsa():
    return generate_key("rsa")


@pytest.fixture(scope="module")
def releases(rsa, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Path]]:
    """Signed releases, built once: acme/example in a release, a later release and a later
    prerelease (the latest is the highest release), and other/widget 0.3.0."""
    root = tmp_path_factory.mktemp("provider-releases")
    built = {}
    for type_, version, platforms in (
        ("example", "1.0.0", ("linux_amd64",)),
        ("example", "1.1.0", ("linux_amd64", "darwin_arm64")),
        ("example", "2.0.0-rc.1", ("linux_amd64",)),
        ("widget", "0.3.0", ("windows_amd64",)),
    ):
        built[type_, version] = build_release(root / f"{type_}-{version}", rsa, type_=type_, version=version, platforms=platforms)
    return built


def form(files: dict[str, Path]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, path in files.items():
        data.add_field("file", path.read_bytes(), filename=name, content_type="application/octet-stream")
    return data


async def publish_all(registry: Any, rsa: Any, releases: dict[tuple[str, str], dict[str, Path]]) -> None:
    admin = await registry.auth()
    for namespace in ("acme", "other"):
        response = await registry.client.post(
            f"/api/v1/providers/{namespace}/keys", json={"ascii_armor": public_key(rsa)}, headers=admin
        )
        assert response.status == 201, await response.text()
    for (type_, version), files in releases.items():
        namespace = "acme" if type_ == "example" else "other"
        response = await registry.client.post(
            f"/api/v1/providers/{namespace}/{type_}/{version}", data=form(files), headers=admin
        )
        assert response.status == 201, await response.text()


async def get_json(registry: Any, path: str, status: int = 200, **kwargs: Any) -> Any:
    response = await registry.client.get(path, allow_redirects=False, **kwargs)
    body = await response.json()
    assert response.status == status, body
    return body


async def html(registry: Any, path: str, status: int, **kwargs: Any) -> str:
    response = await registry.client.get(path, allow_redirects=False, **kwargs)
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    return text


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"mirror_token={token}"}


# -- the browse API ---------------------------------------------------------------------------------


async def test_the_browse_api_lists_providers_in_the_public_registrys_shape(registry, rsa, releases) -> None:
    await publish_all(registry, rsa, releases)
    read = await registry.auth("*", "read")
    listed = await get_json(registry, "/v1/providers", headers=read)
    assert listed["meta"] == {"limit": 15, "current_offset": 0}
    example, widget = listed["providers"]
    assert set(example) == PROVIDER_KEYS
    assert {k: v for k, v in example.items() if k != "published_at"} == {
        "id": "acme/example/1.1.0", "owner": "", "namespace": "acme", "name": "example", "alias": "example",
        "version": "1.1.0", "tag": "v1.1.0", "description": "", "source": "", "downloads": 0,
        "tier": "community", "logo_url": "",
    }  # fmt: skip
    assert example["published_at"].endswith("Z") and widget["id"] == "other/widget/0.3.0"

    first = await get_json(registry, "/v1/providers?limit=1", headers=read)
    assert [p["id"] for p in first["providers"]] == ["acme/example/1.1.0"]
    assert first["meta"]["next_offset"] == 1 and "offset=1" in first["meta"]["next_url"]
    second = await get_json(registry, first["meta"]["next_url"], headers=read)
    assert [p["id"] for p in second["providers"]] == ["other/widget/0.3.0"]
    assert second["meta"] == {"limit": 1, "current_offset": 1, "prev_offset": 0}

    for path in ("/v1/providers?namespace=other", "/v1/providers/other", "/v1/providers/OTHER"):
        assert [p["id"] for p in (await get_json(registry, path, headers=read))["providers"]] == ["other/widget/0.3.0"]
    assert (await get_json(registry, "/v1/providers/nobody", headers=read))["providers"] == []

    # A namespace token lists only its namespace, and may not ask for another.
    acme = await registry.auth("acme", "read")
    assert [p["namespace"] for p in (await get_json(registry, "/v1/providers", headers=acme))["providers"]] == ["acme"]
    await get_json(registry, "/v1/providers?namespace=other", 403, headers=acme)
    await get_json(registry, "/v1/providers/other", 403, headers=acme)
    await get_json(registry, "/v1/providers", 401)
    for bad in ("/v1/providers?limit=0", "/v1/providers?offset=-1", "/v1/providers?namespace=a%20b", "/v1/providers/-x-"):
        assert (await get_json(registry, bad, 400, headers=read))["errors"]


async def test_a_provider_in_detail_and_the_protocol_routes_it_does_not_shadow(registry, rsa, releases) -> None:
    await publish_all(registry, rsa, releases)
    read = await registry.auth("acme", "read")
    latest = await get_json(registry, "/v1/providers/acme/example", headers=read)
    assert set(latest) == PROVIDER_KEYS | {"versions", "platforms", "protocols"}
    assert latest["version"] == "1.1.0" and latest["versions"] == ["2.0.0-rc.1", "1.1.0", "1.0.0"]
    assert [(p["os"], p["arch"]) for p in latest["platforms"]] == [("darwin", "arm64"), ("linux", "amd64")]
    assert latest["platforms"][1]["filename"] == "terraform-provider-example_1.1.0_linux_amd64.zip"
    assert len(latest["platforms"][1]["shasum"]) == 64 and latest["protocols"] == ["6.0"]

    old = await get_json(registry, "/v1/providers/acme/example/v1.0.0", headers=read)
    assert old["id"] == "acme/example/1.0.0" and old["tag"] == "v1.0.0" and len(old["platforms"]) == 1
    pre = await get_json(registry, "/v1/providers/acme/example/2.0.0-rc.1", headers=read)
    assert pre["version"] == "2.0.0-rc.1" and pre["versions"] == latest["versions"]

    # the providers.v1 routes answer as before
    versions = await get_json(registry, "/v1/providers/acme/example/versions", headers=read)
    assert versions["id"] == "acme/example" and len(versions["versions"]) == 3
    download = await get_json(registry, "/v1/providers/acme/example/1.1.0/download/darwin/arm64", headers=read)
    assert download["filename"] == "terraform-provider-example_1.1.0_darwin_arm64.zip"

    assert "not found" in " ".join((await get_json(registry, "/v1/providers/acme/example/9.9.9", 404, headers=read))["errors"])
    await get_json(registry, "/v1/providers/acme/nothing", 404, headers=read)
    await get_json(registry, "/v1/providers/acme/example/one", 400, headers=read)
    await get_json(registry, "/v1/providers/acme/Bad_Type", 400, headers=read)
    await get_json(registry, "/v1/providers/other/widget", 403, headers=read)
    await get_json(registry, "/v1/providers/acme/example", 401)


# -- the pages --------------------------------------------------------------------------------------


async def test_the_provider_pages_show_versions_platforms_and_both_snippets(registry, rsa, releases) -> None:
    await publish_all(registry, rsa, releases)
    headers = cookie(await registry.token())
    index = await html(registry, "/", 200, headers=headers)
    assert '<a href="/providers">Providers</a>' in index
    listing = await html(registry, "/providers", 200, headers=headers)
    assert 'href="/providers/acme/example"' in listing and 'href="/providers/acme/example/1.1.0"' in listing
    assert 'href="/providers/other/widget"' in listing
    only_other = await html(registry, "/providers?namespace=other", 200, headers=headers)
    assert "other/widget" in only_other and "acme/example" not in only_other and "Show all providers" in only_other

    host = f"{registry.client.host}:{registry.client.port}"
    page = await html(registry, "/providers/acme/example", 200, headers=headers)
    assert (
        "terraform {\n  required_providers {\n    example = {\n"
        f"      source  = &#34;{host}/acme/example&#34;\n      version = &#34;~&gt; 1.1&#34;\n"
        "    }\n  }\n}\n"
    ) in page
    assert f"url = &#34;https://{host}/v1/mirror/&#34;" in page and "network_mirror {" in page
    for shown in ("2.0.0-rc.1", "1.1.0", "1.0.0", "darwin_arm64, linux_amd64", "<td>darwin_arm64</td>"):
        assert shown in page
    assert 'name="provider" value=""' in page  # the header's module search keeps its own fields
    assert 'href="/providers/acme/example/1.1.0" aria-current="page"' in page
    prerelease = await html(registry, "/providers/acme/example/2.0.0-rc.1", 200, headers=headers)
    assert "version = &#34;2.0.0-rc.1&#34;" in prerelease
    widget = await html(registry, "/providers/other/widget/0.3.0", 200, headers=headers)
    assert "version = &#34;~&gt; 0.3.0&#34;" in widget and "windows" in widget


@pytest.mark.parametrize(
    ("server", "source", "mirror"),
    [
        ({"public_url": "https://user:pw@registry.example.com/base/"}, "registry.example.com",
         "https://registry.example.com/base/v1/mirror/"),
        ({"public_url": "https://registry.example.com", "registry_host": "tf.example.org"}, "tf.example.org",
         "https://registry.example.com/v1/mirror/"),
    ],
)  # fmt: skip
async def test_the_snippets_name_the_configured_host_and_public_url(
    start_registry, make_config, rsa, releases, server: dict[str, str], source: str, mirror: str
) -> None:
    registry = await start_registry(make_config(server=server))
    await publish_all(registry, rsa, releases)
    page = await html(registry, "/providers/acme/example", 200, headers=cookie(await registry.token()))
    assert f"source  = &#34;{source}/acme/example&#34;" in page
    assert f"url = &#34;{mirror}&#34;" in page and "pw@" not in page


async def test_hostile_input_is_escaped(registry, rsa, releases) -> None:
    await publish_all(registry, rsa, releases)
    headers = cookie(await registry.token())
    hostile_host = 'evil.test"><script>alert(1)</script>'
    page = await html(registry, "/providers/acme/example", 200, headers={**headers, "Host": hostile_host})
    bad_namespace = await html(registry, "/providers", 400, params={"namespace": "<script>alert(2)</script>"}, headers=headers)
    searched = await html(registry, "/providers", 200, params={"q": '"><script>alert(3)</script>'}, headers=headers)
    for text in (page, bad_namespace, searched):
        assert "<script>alert" not in text
    assert "evil.test&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;/acme/example" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in bad_namespace


async def test_provider_pages_check_access_as_the_module_pages_do(registry, rsa, releases) -> None:
    await publish_all(registry, rsa, releases)
    for path in ("/providers", "/providers/acme/example", "/providers/acme/example/1.0.0"):
        response = await registry.client.get(path, allow_redirects=False)
        assert response.status == 303
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login" and parse_qs(location.query)["next"] == [path]
    acme = await registry.token("acme", "read")
    listing = await html(registry, "/providers", 200, headers=cookie(acme))
    assert "acme/example" in listing and "other/widget" not in listing
    assert "lacks the &#39;read&#39; scope" in await html(registry, "/providers/other/widget", 403, headers=cookie(acme))
    await html(registry, "/providers?namespace=other", 403, headers=cookie(acme))
    await html(registry, "/providers/acme/example", 200, headers={"Authorization": f"Bearer {acme}"})
    await html(registry, "/providers/acme/example/9.9.9", 404, headers=cookie(acme))
    await html(registry, "/providers/acme/nothing", 404, headers=cookie(acme))
    assert "invalid version" in await html(registry, "/providers/acme/example/one", 400, headers=cookie(acme))
    assert "invalid provider type" in await html(registry, "/providers/acme/Bad_Type", 400, headers=cookie(acme))
    assert "offset" in await html(registry, "/providers", 400, params={"offset": "x"}, headers=cookie(acme))


async def test_deprecate_revoke_and_delete_through_the_provider_page(registry, rsa, releases) -> None:
    await publish_all(registry, rsa, releases)
    reader, publisher, admin = [await registry.token("acme", scope) for scope in ("read", "publish", "admin")]
    page = await html(registry, "/providers/acme/example/1.0.0", 200, headers=cookie(reader))
    assert 'id="deprecate-form"' not in page and 'id="delete-form"' not in page
    refused = await registry.client.post(
        "/providers/acme/example/1.0.0/deprecate", data={"reason": "x"}, headers=cookie(reader), allow_redirects=False
    )
    assert refused.status == 403 and refused.content_type == "text/html"
    page = await html(registry, "/providers/acme/example/1.0.0", 200, headers=cookie(publisher))
    assert 'id="deprecate-form"' in page and 'id="delete-form"' not in page  # publish: no delete
    assert "A version of this provider" in page and "A version of this module" not in page
    other_site = await registry.client.post(
        "/providers/acme/example/1.0.0/deprecate", data={"reason": "x"},
        headers={**cookie(publisher), "Origin": "https://evil.example.com"}, allow_redirects=False,
    )  # fmt: skip
    assert other_site.status == 403
    done = await registry.client.post(
        "/providers/acme/example/1.0.0/deprecate", data={"reason": "Signs with a retired key", "replacement": "1.1.0"},
        headers=cookie(publisher), allow_redirects=False,
    )  # fmt: skip
    assert done.status == 303 and done.headers["Location"] == "/providers/acme/example/1.0.0"
    page = await html(registry, "/providers/acme/example/1.0.0", 200, headers=cookie(publisher))
    assert "Signs with a retired key" in page and 'id="deprecated-banner"' in page
    versions = await get_json(registry, "/v1/providers/acme/example/versions", headers={"Authorization": f"Bearer {reader}"})
    assert any("1.0.0" in warning for warning in versions.get("warnings", []))
    unticked = await registry.client.post(
        "/providers/acme/example/1.0.0/revoke", data={}, headers=cookie(publisher), allow_redirects=False
    )
    assert unticked.status == 400 and "Tick the box" in await unticked.text()
    revoked = await registry.client.post(
        "/providers/acme/example/1.0.0/revoke", data={"confirm": "yes"}, headers=cookie(publisher), allow_redirects=False
    )
    assert revoked.status == 303 and revoked.headers["Location"] == "/providers/acme/example"
    await html(registry, "/providers/acme/example/1.0.0", 404, headers=cookie(publisher))
    page = await html(registry, "/providers/acme/example", 200, headers=cookie(admin))
    assert 'id="delete-form"' in page
    wrong = await registry.client.post(
        "/providers/acme/example/delete", data={"confirm": "widget"}, headers=cookie(admin), allow_redirects=False
    )
    assert wrong.status == 400 and "nothing was deleted" in await wrong.text()
    deleted = await registry.client.post(
        "/providers/acme/example/delete", data={"confirm": "example"}, headers=cookie(admin), allow_redirects=False
    )
    assert deleted.status == 303 and deleted.headers["Location"] == "/providers"
    await html(registry, "/providers/acme/example", 404, headers=cookie(admin))
    audit = await get_json(registry, "/api/v1/audit?namespace=acme", headers={"Authorization": f"Bearer {admin}"})
    kinds = [e["type"] for e in audit["events"] if e["type"].startswith("provider.") and e["type"] != "provider.version_released"]
    assert kinds[-3:] == ["provider.version_deprecated", "provider.version_revoked", "provider.deleted"]


async def test_the_provider_list_pages(registry, rsa, releases) -> None:
    await publish_all(registry, rsa, releases)
    headers = cookie(await registry.token())
    assert "No providers found." in await html(registry, "/providers?namespace=nobody", 200, headers=headers)
    assert "No providers found." in await html(registry, "/providers?offset=5", 200, headers=headers)


# -- a live server and a real browser ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def test_the_provider_page_in_a_browser_at_desktop_and_phone_widths(browser: Browser, rsa, releases, tmp_path: Path):
    site = start_site(tmp_path / "site", {"server": {"public_url": "https://registry.ui.test"}})
    try:
        request = Request(
            f"{site.url}/api/v1/providers/acme/keys",
            data=json.dumps({"ascii_armor": public_key(rsa)}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {site.token}", "Content-Type": "application/json"},
        )
        with urlopen(request, timeout=30) as response:
            assert response.status == 201
        for version in ("1.0.0", "1.1.0"):
            directory = next(iter(releases["example", version].values())).parent
            published = run_cli(
                "provider", "publish", "acme/example", version, str(directory), "--registry", site.url,
                cwd=tmp_path, env={"MIRROR_TOKEN": site.token},
            )  # fmt: skip
            assert published.returncode == 0, published.stderr
        for width, height in ((1280, 800), (390, 844)):
            context = browser.new_context(base_url=site.url, viewport={"width": width, "height": height})
            context.set_default_timeout(10_000)
            page = context.new_page()
            log_in(page, site.token)
            page.get_by_role("link", name="Providers", exact=True).click()
            page.get_by_role("link", name="acme/example").click()
            heading = page.get_by_role("heading", level=1)
            expect(heading).to_contain_text("acme/example")
            expect(heading).to_contain_text("1.1.0")
            expect(page.locator("#usage-code")).to_contain_text('source  = "registry.ui.test/acme/example"')
            expect(page.locator("#usage-code")).to_contain_text('version = "~> 1.1"')
            expect(page.locator("#mirror-code")).to_contain_text('url = "https://registry.ui.test/v1/mirror/"')
            expect(page.locator("#versions tbody tr")).to_have_count(2)
            expect(page.locator("#versions tbody tr").first).to_contain_text("darwin_arm64, linux_amd64")
            expect(page.locator("#platforms tbody tr")).to_have_count(2)
            for block in ("#usage-code", "#mirror-code", "#versions", "h1"):  # nothing runs off the page
                box = page.locator(block).bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (block, width, box)
            page.locator("#versions").get_by_role("link", name="1.0.0").click()
            page.wait_for_url("**/providers/acme/example/1.0.0")
            expect(page.locator("#usage-code")).to_contain_text('version = "~> 1.0"')
            context.close()
    finally:
        site.stop()
