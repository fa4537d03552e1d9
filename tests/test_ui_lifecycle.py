"""A module page's History tab, each version's downloads, and the lifecycle forms (deprecate,
revoke, delete) of its Versions tab, against an in-process app: the forms call what the API
calls, record the signed-in token as the actor, refuse other sites, and answer bad input and
missing scopes with HTML error pages."""

from __future__ import annotations

import html as entities
import re
from pathlib import Path
from typing import Any

from mirror.domain.addresses import ModuleAddress
from mirror.http.keys import DOWNLOADS, STORE
from mirror.http.ui.module_page import who
from mirror.services.audit import module_history
from mirror.services.tokens import create_token
from tests.modules import write_module
from tests.test_ui import cookie, html, network_module, publish

NETWORK = "acme/network/aws"
BASE = f"/modules/{NETWORK}"


async def published(registry: Any, tmp_path: Path) -> None:
    """acme/network/aws 1.0.0, 1.1.0 and 1.2.0 (the latest), and acme/vpc/aws 3.0.0."""
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        await publish(registry, NETWORK, version, network_module(tmp_path / version, version))
    await publish(registry, "acme/vpc/aws", "3.0.0", write_module(tmp_path / "vpc"))


async def signed_in(
    registry: Any, namespace: str = "*", scope: str = "admin", description: str = "Ada"
) -> tuple[str, dict[str, str]]:
    """A token's id and the cookie header that carries it."""
    record, secret = await create_token(registry.app[STORE], namespace, scope, description)  # type: ignore[arg-type]
    return record.id, cookie(secret)


async def post(registry: Any, path: str, form: dict[str, str], headers: dict[str, str], status: int) -> Any:
    response = await registry.client.post(path, data=form, headers=headers, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    if status != 303:
        assert response.content_type == "text/html"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    return response


def history_rows(page: str) -> list[str]:
    """The History tab's rows as text: when, change, version, who."""
    table = re.search(r'<table class="history-table".*?</table>', page, re.S)
    assert table is not None, page
    body = table.group(0).split("<tbody>", 1)[1]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [" ".join(entities.unescape(re.sub(r"<[^>]+>", " ", row)).split()) for row in rows]


def version_cells(page: str) -> dict[str, str]:
    """The Versions tab's downloads by version."""
    table = re.search(r'<table class="versions-table".*?</table>', page, re.S)
    assert table is not None
    row = r'<tr>\s*<td class="nowrap"><a [^>]*>([^<]+)</a></td>.*?<td class="number">(\d+)</td>'
    return dict(re.findall(row, table.group(0), re.S))


async def test_the_history_tab_lists_the_changes_newest_first_with_who_made_them(registry, tmp_path: Path):
    await published(registry, tmp_path)
    token_id, headers = await signed_in(registry, description="Release <bot>")
    await post(registry, f"{BASE}/1.1.0/deprecate", {"reason": "Leaks subnets", "replacement": "1.2.0"}, headers, 303)
    page = await html(registry, BASE, 200, params={"tab": "history"}, headers=headers)
    assert f'<a href="{BASE}?tab=history" aria-current="page">History</a>' in page  # a tab without a count
    rows = history_rows(page)
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d deprecated Leaks subnets \(use 1\.2\.0 instead\) 1\.1\.0 token Release <bot> id {token_id}",
        rows[0],
    ), rows
    assert "Release &lt;bot&gt;" in page and "Release <bot>" not in page
    published_rows = [row for row in rows if " published " in row]
    assert [row.split()[3] for row in published_rows] == ["1.2.0", "1.1.0", "1.0.0"]  # newest first
    assert all(" token " in row and " id " in row for row in published_rows), published_rows
    assert rows[-1].split()[2] == "created"
    assert "acme/vpc/aws" not in " ".join(rows) and len(rows) == 5  # only this module's changes
    assert 'href="/api/v1/audit?namespace=acme"' in page and "These are all its changes." in page
    # The same tab on a version's own URL; other tabs leave the log unread.
    assert len(history_rows(await html(registry, f"{BASE}/1.0.0", 200, params={"tab": "history"}, headers=headers))) == 5
    assert 'class="history-table"' not in await html(registry, BASE, 200, headers=headers)


async def test_the_history_is_bounded_and_the_actor_is_shown_whatever_its_kind(registry, tmp_path: Path):
    await published(registry, tmp_path)
    store = registry.app[STORE]
    address = ModuleAddress.parse_parts("acme", "network", "aws")
    everything = await module_history(store, address)
    assert [event.type for event in everything.events][:3] == ["module.version_released"] * 3 and everything.complete
    newest = await module_history(store, address, shown=2)
    assert [event.data["version"] for event in newest.events] == ["1.2.0", "1.1.0"] and not newest.complete
    latest = await store.latest_serial()
    short = await module_history(store, address, max_scan=2)  # the vpc module's two events only
    assert short.events == [] and short.searched_from == latest - 2 and not short.complete
    person = who({"kind": "person", "id": "ada@example.com", "description": "Ada Lovelace"})
    assert (person.kind, person.name, person.details) == ("person", "Ada Lovelace", (("id", "ada@example.com"),))
    github = who({"kind": "github", "delivery": "72d3162e"})
    assert (github.kind, github.name, github.details) == ("GitHub", "", (("delivery", "72d3162e"),))
    assert who({"kind": "robot", "serial_no": "R2", "host": "h.example"}).details == (("host", "h.example"), ("serial_no", "R2"))
    assert who(None).kind == "unknown"


async def test_each_version_shows_its_downloads_once_counted_and_flushed(registry, tmp_path: Path):
    await published(registry, tmp_path)
    auth = await registry.auth()
    for version in ("1.2.0", "1.2.0", "1.0.0"):
        download = await registry.client.get(f"/v1/modules/{NETWORK}/{version}/download", headers=auth)
        assert download.status == 200, await download.text()
    _, headers = await signed_in(registry, "acme", "read")
    page = await html(registry, BASE, 200, params={"tab": "versions"}, headers=headers)
    assert version_cells(page) == {"1.2.0": "2", "1.1.0": "0", "1.0.0": "1"}  # counted, not flushed yet
    await registry.app[DOWNLOADS].flush()
    page = await html(registry, BASE, 200, params={"tab": "versions"}, headers=headers)
    assert version_cells(page) == {"1.2.0": "2", "1.1.0": "0", "1.0.0": "1"}
    assert '<dd id="version-downloads">2</dd>' in page
    assert re.search(r'<dd id="downloads">3 <span class="muted">\(all versions\)</span></dd>', page)
    older = await html(registry, f"{BASE}/1.0.0", 200, headers=headers)
    assert "<dt>Downloads of 1.0.0</dt>" in older and '<dd id="version-downloads">1</dd>' in older


async def test_deprecating_through_the_form_shows_the_banner_on_the_version(registry, tmp_path: Path):
    await published(registry, tmp_path)
    _, headers = await signed_in(registry, "acme", "publish")  # uploads own the module: publish is enough
    versions = await html(registry, f"{BASE}/1.0.0", 200, params={"tab": "versions"}, headers=headers)
    assert f'action="{BASE}/1.0.0/deprecate"' in versions and f'action="{BASE}/1.0.0/revoke"' in versions
    assert 'id="delete-form"' not in versions  # deleting takes admin
    done = await post(registry, f"{BASE}/1.0.0/deprecate", {"reason": "  Subnets   overlap ", "replacement": "acme/vpc/aws 3.0.0"}, headers, 303)
    assert done.headers["Location"] == f"{BASE}/1.0.0"
    page = await html(registry, f"{BASE}/1.0.0", 200, headers=headers)
    banner = re.search(r'<div class="banner deprecated".*?</div>', page, re.S)
    assert banner is not None and "Version 1.0.0 is deprecated" in banner.group(0) and "Subnets overlap" in banner.group(0)
    assert '<a href="/modules/acme/vpc/aws/3.0.0" id="replacement-link">acme/vpc/aws 3.0.0</a>' in banner.group(0)
    # The form shows the deprecation, to change it; posting again replaces it, without a replacement.
    again = await html(registry, f"{BASE}/1.0.0", 200, params={"tab": "versions"}, headers=headers)
    assert ">Subnets overlap</textarea>" in again and 'value="acme/vpc/aws 3.0.0"' in again and "Update the deprecation" in again
    await post(registry, f"{BASE}/v1.0.0/deprecate", {"reason": "Broken", "replacement": ""}, headers, 303)
    detail = await registry.client.get(f"/v1/modules/{NETWORK}/1.0.0", headers=await registry.auth())
    assert (await detail.json())["deprecation"]["reason"] == "Broken" and (await detail.json())["deprecation"]["replacement"] is None


async def test_revoking_takes_the_ticked_box(registry, tmp_path: Path):
    await published(registry, tmp_path)
    _, headers = await signed_in(registry, "acme", "publish")
    asked = await post(registry, f"{BASE}/1.2.0/revoke", {}, headers, 400)
    text = await asked.text()
    assert "Tick the box to revoke version 1.2.0; nothing was revoked." in text and 'name="confirm" value="yes" required' in text
    await post(registry, f"{BASE}/1.2.0/revoke", {"confirm": "on"}, headers, 400)
    assert "1.2.0" in version_cells(await html(registry, BASE, 200, params={"tab": "versions"}, headers=headers))
    done = await post(registry, f"{BASE}/1.2.0/revoke", {"confirm": "yes"}, headers, 303)
    assert done.headers["Location"] == f"{BASE}?tab=versions"
    page = await html(registry, BASE, 200, params={"tab": "versions"}, headers=headers)
    assert list(version_cells(page)) == ["1.1.0", "1.0.0"]
    await html(registry, f"{BASE}/1.2.0", 404, headers=headers)
    await post(registry, f"{BASE}/1.2.0/revoke", {"confirm": "yes"}, headers, 404)  # not live any more
    history = history_rows(await html(registry, BASE, 200, params={"tab": "history"}, headers=headers))
    assert history[0].split()[2:4] == ["revoked", "1.2.0"]
    # The last version revoked: nothing to show, so back to the list.
    await post(registry, "/modules/acme/vpc/aws/3.0.0/revoke", {"confirm": "yes"}, headers, 303)


async def test_an_admin_deletes_the_module_by_typing_its_name(registry, tmp_path: Path):
    await published(registry, tmp_path)
    _, headers = await signed_in(registry, "acme", "admin")
    versions = await html(registry, BASE, 200, params={"tab": "versions"}, headers=headers)
    assert f'action="{BASE}/delete"' in versions and "Type the module's name, <strong>network</strong>" in versions
    asked = await post(registry, f"{BASE}/delete", {"confirm": "acme/network/aws"}, headers, 400)
    assert "Type the module&#39;s name, network, to delete it; nothing was deleted." in await asked.text()
    await html(registry, BASE, 200, headers=headers)
    done = await post(registry, f"{BASE}/delete", {"confirm": " network "}, headers, 303)
    assert done.headers["Location"] == "/"
    await html(registry, BASE, 404, headers=headers)
    await html(registry, "/modules/acme/vpc/aws", 200, headers=headers)
    await post(registry, f"{BASE}/delete", {"confirm": "network"}, headers, 404)


async def test_without_the_scope_there_are_no_forms_and_posts_are_refused(registry, tmp_path: Path):
    await published(registry, tmp_path)
    _, reader = await signed_in(registry, "acme", "read")
    page = await html(registry, BASE, 200, params={"tab": "versions"}, headers=reader)
    assert "<form class=\"lifecycle-form\"" not in page and "/deprecate" not in page
    refused = await post(registry, f"{BASE}/1.2.0/deprecate", {"reason": "x"}, reader, 403)
    assert "lacks the &#39;publish&#39; scope" in await refused.text()
    await post(registry, f"{BASE}/1.2.0/revoke", {"confirm": "yes"}, reader, 403)
    await post(registry, f"{BASE}/delete", {"confirm": "network"}, reader, 403)
    _, publisher = await signed_in(registry, "acme", "publish")
    await post(registry, f"{BASE}/delete", {"confirm": "network"}, publisher, 403)
    _, elsewhere = await signed_in(registry, "other", "admin")
    await post(registry, f"{BASE}/1.2.0/revoke", {"confirm": "yes"}, elsewhere, 403)
    anonymous = await post(registry, f"{BASE}/1.2.0/revoke", {"confirm": "yes"}, {}, 303)
    assert anonymous.headers["Location"].startswith("/login?next=")
    assert "1.2.0" in version_cells(await html(registry, BASE, 200, params={"tab": "versions"}, headers=reader))
    # A module another source owns: publish scope cannot change it (409), so no forms show.
    admin = await registry.auth()
    changed = await registry.client.patch(f"/api/v1/modules/{NETWORK}", json={"owner_source": "bundle"}, headers=admin)
    assert changed.status == 200, await changed.text()
    assert 'id="deprecate-form"' not in await html(registry, BASE, 200, params={"tab": "versions"}, headers=publisher)
    owned = await post(registry, f"{BASE}/1.2.0/deprecate", {"reason": "x"}, publisher, 409)
    assert "bundle" in await owned.text()


async def test_a_form_from_another_site_is_refused(registry, tmp_path: Path):
    await published(registry, tmp_path)
    _, headers = await signed_in(registry)
    forms = (
        (f"{BASE}/1.2.0/deprecate", {"reason": "x"}),
        (f"{BASE}/1.2.0/revoke", {"confirm": "yes"}),
        (f"{BASE}/delete", {"confirm": "network"}),
    )
    for path, form in forms:
        refused = await post(registry, path, form, {**headers, "Origin": "https://evil.example"}, 403)
        assert "sent from another site" in await refused.text()
    page = await html(registry, BASE, 200, params={"tab": "versions"}, headers=headers)
    assert list(version_cells(page)) == ["1.2.0", "1.1.0", "1.0.0"] and 'id="deprecated-banner"' not in page
    host = registry.client.server.host + ":" + str(registry.client.server.port)
    await post(registry, f"{BASE}/1.2.0/deprecate", {"reason": "x"}, {**headers, "Origin": f"http://{host}"}, 303)


async def test_bad_input_is_a_400_page(registry, tmp_path: Path):
    await published(registry, tmp_path)
    _, headers = await signed_in(registry)
    too_long = await post(registry, f"{BASE}/1.2.0/deprecate", {"reason": "x" * 1001}, headers, 400)
    assert "reason must be 1 to 1000 characters" in await too_long.text()
    assert "reason must be" in await (await post(registry, f"{BASE}/1.2.0/deprecate", {"reason": "   "}, headers, 400)).text()
    bad = await post(registry, f"{BASE}/1.2.0/deprecate", {"reason": "x", "replacement": "2.0.0\x07"}, headers, 400)
    assert "replacement must be 1 to 200 printable characters" in await bad.text()
    await post(registry, f"{BASE}/1.2.0/deprecate", {"reason": "x", "replacement": "y" * 201}, headers, 400)
    await post(registry, f"{BASE}/not-a-version/deprecate", {"reason": "x"}, headers, 400)
    await post(registry, "/modules/acme/-bad-/aws/1.0.0/revoke", {"confirm": "yes"}, headers, 400)
    await post(registry, f"{BASE}/9.9.9/deprecate", {"reason": "x"}, headers, 404)
    as_json = await registry.client.post(f"{BASE}/1.2.0/deprecate", json={"reason": "x"}, headers=headers, allow_redirects=False)
    assert as_json.status == 400 and as_json.content_type == "text/html"
    huge = await post(registry, f"{BASE}/1.2.0/deprecate", {"reason": "x" * 20_000}, headers, 413)
    assert "larger than" in await huge.text()
    assert 'id="deprecated-banner"' not in await html(registry, BASE, 200, headers=headers)
