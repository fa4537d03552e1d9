"""The module page's tabs, version picker and banners, the namespace page, the provider page's
deprecation banner and the signed-in person in the header, against an in-process app: several
versions published (one a prerelease), one deprecated through the API with an admin token."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mirror.services.tokens import create_token
from mirror.http.keys import STORE
from tests.modules import write_module
from tests.test_provider_ui import publish_all, releases, rsa  # noqa: F401  (fixtures)
from tests.test_ui import cookie, html, network_module, publish

NETWORK = "acme/network/aws"
BASE = f"/modules/{NETWORK}"
RESOURCES_TF = """
resource "terraform_data" "marker" {
  input = var.name
}

resource "terraform_data" "other" {
  input = 1
}
"""


async def published(registry: Any, tmp_path: Path) -> None:
    """acme/network/aws 1.0.0, 1.1.0, 1.2.0 (the latest, with two resources) and 2.0.0-rc.1,
    and acme/vpc/aws 3.0.0."""
    for version in ("1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1"):
        root = network_module(tmp_path / version, version)
        if version == "1.2.0":
            (root / "resources.tf").write_text(RESOURCES_TF)
        await publish(registry, NETWORK, version, root)
    await publish(registry, "acme/vpc/aws", "3.0.0", write_module(tmp_path / "vpc"))


async def deprecate(registry: Any, address: str, version: str, reason: str, replacement: str | None) -> None:
    body: dict[str, Any] = {"reason": reason}
    if replacement is not None:
        body["replacement"] = replacement
    response = await registry.client.post(
        f"/api/v1/{address}/{version}/deprecate", json=body, headers=await registry.auth()
    )
    assert response.status == 200, await response.text()


def tab_links(page: str) -> dict[str, str]:
    """The tabs' labels (with their counts) by URL; the current one's label starts with '*'."""
    nav = re.search(r'<nav class="tabs".*?</nav>', page, re.S)
    assert nav is not None
    found = {}
    for attrs, label in re.findall(r"<a href=\"([^\"]*\"[^>]*)>(.*?)</a>", nav.group(0), re.S):
        href, _, rest = attrs.partition('"')
        text = " ".join(re.sub(r"<[^>]+>", " ", label).split())
        found[href.replace("&amp;", "&")] = ("*" if 'aria-current="page"' in rest else "") + text
    return found


def picker(page: str) -> list[str]:
    """The version picker's entries as text: version, date and labels."""
    block = re.search(r'<details class="picker".*?</details>', page, re.S)
    assert block is not None
    items = re.findall(r"<li>(.*?)</li>", block.group(0), re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in items]


async def test_tabs_carry_their_counts_and_each_is_its_own_url(registry, tmp_path: Path):
    await published(registry, tmp_path)
    headers = cookie(await registry.token())
    page = await html(registry, BASE, 200, headers=headers)
    assert tab_links(page) == {
        BASE: "*Readme",
        f"{BASE}?tab=inputs": "Inputs 3",
        f"{BASE}?tab=outputs": "Outputs 2",
        f"{BASE}?tab=dependencies": "Dependencies 1",
        f"{BASE}?tab=resources": "Resources 2",
        f"{BASE}?tab=submodules": "Submodules 1",
        f"{BASE}?tab=versions": "Versions 4",
        f"{BASE}?tab=history": "History",
    }
    assert 'id="readme"' in page and "Builds a network with subnets." in page
    assert 'id="inputs"' not in page  # one tab at a time
    inputs = await html(registry, BASE, 200, params={"tab": "inputs"}, headers=headers)
    assert tab_links(inputs)[f"{BASE}?tab=inputs"] == "*Inputs 3"
    assert '<table class="inputs" id="inputs">' in inputs and "cidr_blocks" in inputs and 'id="readme"' not in inputs
    assert '<table class="outputs" id="outputs">' in await html(registry, BASE, 200, params={"tab": "outputs"}, headers=headers)
    dependencies = await html(registry, BASE, 200, params={"tab": "dependencies"}, headers=headers)
    assert "Module calls" in dependencies and "./modules/subnets" in dependencies
    resources = await html(registry, BASE, 200, params={"tab": "resources"}, headers=headers)
    assert "terraform_data" in resources and "marker" in resources and "other" in resources
    submodules = await html(registry, BASE, 200, params={"tab": "submodules"}, headers=headers)
    assert "modules/subnets" in submodules and 'id="inputs-1"' in submodules
    # On a version's own URL the tabs keep the version; an older one has no resources.
    older = await html(registry, f"{BASE}/1.0.0", 200, params={"tab": "resources"}, headers=headers)
    assert tab_links(older)[f"{BASE}/1.0.0?tab=resources"] == "*Resources 0"
    assert "No resources." in older
    assert "unknown tab" in await html(registry, BASE, 400, params={"tab": "<script>"}, headers=headers)
    assert "&lt;script&gt;" in await html(registry, BASE, 400, params={"tab": "<script>"}, headers=headers)


async def test_the_picker_lists_versions_with_dates_and_labels_and_banners_mark_other_versions(registry, tmp_path: Path):
    await published(registry, tmp_path)
    headers = cookie(await registry.token())
    page = await html(registry, BASE, 200, headers=headers)
    entries = picker(page)
    assert [entry.split()[0] for entry in entries] == ["2.0.0-rc.1", "1.2.0", "1.1.0", "1.0.0"]
    assert re.fullmatch(r"2\.0\.0-rc\.1 \d{4}-\d\d-\d\d prerelease", entries[0]), entries
    assert re.fullmatch(r"1\.2\.0 \d{4}-\d\d-\d\d latest", entries[1]), entries
    assert re.fullmatch(r"1\.0\.0 \d{4}-\d\d-\d\d", entries[3]), entries
    assert f'<a href="{BASE}/1.2.0" aria-current="page">1.2.0</a>' in page
    assert 'id="newer-banner"' not in page and 'id="deprecated-banner"' not in page
    older = await html(registry, f"{BASE}/1.0.0", 200, headers=headers)
    assert "You are viewing an older version, <strong>1.0.0</strong>; the latest is" in older
    assert f'<a href="{BASE}/1.2.0">1.2.0</a>.' in older
    prerelease = await html(registry, f"{BASE}/2.0.0-rc.1", 200, headers=headers)
    assert "You are viewing a prerelease, <strong>2.0.0-rc.1</strong>; the latest release is" in prerelease
    versions = await html(registry, BASE, 200, params={"tab": "versions"}, headers=headers)
    assert '<table class="versions-table" id="versions">' in versions and versions.count("badge latest") >= 2


async def test_a_deprecated_version_shows_its_reason_and_links_its_replacement(registry, tmp_path: Path):
    await published(registry, tmp_path)
    await deprecate(registry, f"modules/{NETWORK}", "1.0.0", "Leaks <b>subnets</b> & more", "1.2.0")
    await deprecate(registry, f"modules/{NETWORK}", "1.1.0", "Broken", "acme/vpc/aws 3.0.0")
    await deprecate(registry, f"modules/{NETWORK}", "1.2.0", "Superseded", "9.9.9")
    headers = cookie(await registry.token())
    first = await html(registry, f"{BASE}/1.0.0", 200, headers=headers)
    banner = re.search(r'<div class="banner deprecated".*?</div>', first, re.S)
    assert banner is not None
    assert "Version 1.0.0 is deprecated" in banner.group(0)
    assert "Leaks &lt;b&gt;subnets&lt;/b&gt; &amp; more" in banner.group(0) and "<b>" not in banner.group(0)
    assert f'<a href="{BASE}/1.2.0" id="replacement-link">1.2.0</a>' in banner.group(0)
    assert "You are viewing an older version" in first  # both banners
    other_module = await html(registry, f"{BASE}/1.1.0", 200, headers=headers)
    assert '<a href="/modules/acme/vpc/aws/3.0.0" id="replacement-link">acme/vpc/aws 3.0.0</a>' in other_module
    unknown = await html(registry, BASE, 200, headers=headers)  # the latest, deprecated too
    assert "Version 1.2.0 is deprecated" in unknown and "<code>9.9.9</code>" in unknown
    assert 'id="replacement-link"' not in unknown and 'id="newer-banner"' not in unknown
    assert "deprecated" in picker(unknown)[3]  # 1.0.0 in the picker
    # A replacement in a namespace the token cannot read is shown as text, not linked.
    acme_only = cookie(await registry.token("acme", "read"))
    await deprecate(registry, f"modules/{NETWORK}", "1.0.0", "Moved", "other/vpc/aws 1.0.0")
    moved = await html(registry, f"{BASE}/1.0.0", 200, headers=acme_only)
    assert "<code>other/vpc/aws 1.0.0</code>" in moved and 'id="replacement-link"' not in moved


async def test_source_owner_downloads_and_namespace_link(registry, tmp_path: Path):
    await published(registry, tmp_path)
    download = await registry.client.get(f"/v1/modules/{NETWORK}/1.2.0/download", headers=await registry.auth())
    assert download.status == 200, await download.text()
    page = await html(registry, BASE, 200, headers=cookie(await registry.token()))
    assert '<dd id="owner">uploads (publish over the API)</dd>' in page
    assert re.search(r'<dd id="downloads">1 <span class="muted">\(all versions\)</span></dd>', page)
    assert '<a class="namespace" href="/namespaces/acme">acme</a>' in page


async def test_the_namespace_page_lists_its_modules_and_providers(registry, rsa, releases, tmp_path: Path):  # noqa: F811
    await published(registry, tmp_path)
    await publish(registry, "other/vpc/aws", "1.0.0", write_module(tmp_path / "other"))
    await publish_all(registry, rsa, releases)
    headers = cookie(await registry.token())
    page = await html(registry, "/namespaces/acme", 200, headers=headers)
    assert "Namespace <span class=\"namespace\">acme</span>" in page
    assert f'href="{BASE}"' in page and 'href="/modules/acme/vpc/aws"' in page and "other/vpc" not in page
    assert 'href="/providers/acme/example"' in page and "other/widget" not in page
    other = await html(registry, "/namespaces/other", 200, headers=headers)
    assert 'href="/modules/other/vpc/aws"' in other and 'href="/providers/other/widget"' in other
    assert "has no modules or providers" in await html(registry, "/namespaces/nobody", 404, headers=headers)
    assert "invalid namespace" in await html(registry, "/namespaces/-bad-", 400, headers=headers)
    assert "offset" in await html(registry, "/namespaces/acme", 400, params={"offset": "x"}, headers=headers)
    acme_only = cookie(await registry.token("acme", "read"))
    await html(registry, "/namespaces/acme", 200, headers=acme_only)
    await html(registry, "/namespaces/other", 403, headers=acme_only)
    response = await registry.client.get("/namespaces/acme", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login?next=")


async def test_a_deprecated_provider_version_has_its_banner(registry, rsa, releases) -> None:  # noqa: F811
    await publish_all(registry, rsa, releases)
    await deprecate(registry, "providers/acme/example", "1.0.0", "CVE-2024-0001", "1.1.0")
    headers = cookie(await registry.token())
    page = await html(registry, "/providers/acme/example/1.0.0", 200, headers=headers)
    assert "Version 1.0.0 is deprecated" in page and "CVE-2024-0001" in page
    assert '<a href="/providers/acme/example/1.1.0" id="replacement-link">1.1.0</a>' in page
    assert "You are viewing an older version, <strong>1.0.0</strong>; the latest is" in page
    latest = await html(registry, "/providers/acme/example", 200, headers=headers)
    assert 'id="deprecated-banner"' not in latest and 'id="newer-banner"' not in latest
    assert "badge deprecated" in latest and "badge prerelease" in latest
    assert '<a class="namespace" href="/namespaces/acme">acme</a>' in latest


async def test_the_header_names_the_signed_in_token(registry, tmp_path: Path):
    await published(registry, tmp_path)
    record, secret = await create_token(registry.app[STORE], "acme", "read", "Ada <CI> & co")
    page = await html(registry, "/", 200, headers=cookie(secret))
    assert '<span class="person" id="signed-in">Signed in as <strong>Ada &lt;CI&gt; &amp; co</strong></span>' in page
    assert "Log out" in page
    _, plain = await create_token(registry.app[STORE], "acme", "read")
    by_header = await html(registry, BASE, 200, headers={"Authorization": f"Bearer {plain}"})
    assert re.search(r"Signed in as <strong>token [^<]+</strong>", by_header) and "Log out" not in by_header
    login = await html(registry, "/login", 200)
    assert 'id="signed-in"' not in login and ">Log in</a>" in login
    stale = await registry.client.get("/login", headers=cookie("mirror_revoked"))
    assert stale.status == 200 and 'id="signed-in"' not in await stale.text()


async def test_a_sensitive_input_is_labelled_and_its_default_not_shown(registry, tmp_path: Path):
    root = write_module(tmp_path / "secrets")
    (root / "secrets.tf").write_text(
        'variable "api_key" {\n  type      = string\n  default   = "do-not-show-me"\n  sensitive = true\n}\n'
    )
    await publish(registry, "acme/secrets/aws", "1.0.0", root)
    token = await registry.token("acme", "read")
    page = await html(registry, "/modules/acme/secrets/aws?tab=inputs", 200, headers=cookie(token))
    assert "api_key" in page and "do-not-show-me" not in page
    assert '<span class="badge sensitive">sensitive</span>' in page and "(sensitive)" in page
