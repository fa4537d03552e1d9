"""The web UI's token page (``/tokens``) and the HTML error page for a browser on a path no route
matches.

In process first (the aiohttp test client): making a token shows its secret once, revoking it,
the grant's limits as a 403 page, forms from other sites refused, bad fields as 400 pages, the
anonymous visitor sent to log in; then the unmatched paths, HTML for a browser and JSON for the
API. Then a real headless Chromium against a live ``mirror serve``: the page at 390 and 1280 px
never scrolls sideways and axe-core finds no serious or critical violation, before and after a
token is made (its Copy button copying the secret) and revoked. Playwright's sync API must not run
inside an asyncio loop, so the browser starts once the in-process tests are done.
"""

from __future__ import annotations

import html as html_text
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from mirror.domain.models import TokenRecord
from mirror.http.keys import STORE
from mirror.http.ui.token_pages import expiry_choices
from mirror.services.tokens import create_token
from tests.browser import launch_chromium, log_in
from tests.test_ui import Site, cookie, html, start_site
from tests.test_ui_layout import AXE, WIDTHS, check_page

DAY = 24 * 3600
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SECRET = re.compile(r'<pre id="new-secret" tabindex="0">([^<]+)</pre>')


async def post(registry: Any, path: str, data: dict[str, str], token: str | None, status: int, **headers: str) -> str:
    """POST a form as a browser on this site would, check the status, return the page's text."""
    response = await registry.client.post(
        path, data=data, headers=(cookie(token) if token else {}) | headers, allow_redirects=False
    )
    text = await response.text()
    assert response.status == status, text
    if status != 303:
        assert response.content_type == "text/html"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    return text


async def tokens_by_description(registry: Any) -> dict[str, TokenRecord]:
    return {record.description: record for record in await registry.app[STORE].list_tokens() if record.description}


async def api_status(registry: Any, secret: str) -> int:
    response = await registry.client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {secret}"})
    return response.status


def new_token(description: str, namespace: str = "acme", scope: str = "publish", expiry: str = "default") -> dict[str, str]:
    return {"description": description, "namespace": namespace, "scope": scope, "expiry": expiry}


# -- in process: the token page -----------------------------------------------------------------


async def test_a_new_token_shows_its_secret_once_and_works(registry):
    admin = await registry.token()
    page = await html(registry, "/tokens", 200, headers=cookie(admin))
    assert "You can make tokens for: every namespace (*): admin." in page
    assert 'id="token-namespace" name="namespace" value="*"' in page  # the principal's namespace
    assert '<option value="default" selected>90 days (the default)</option>' in page
    assert 'href="/tokens"' in page  # the header's link

    created = await post(registry, "/tokens", new_token("ci <deploy>"), admin, 201)
    secret = html_text.unescape(SECRET.search(created).group(1))  # type: ignore[union-attr]
    assert secret.startswith("mirror_") and "it is not shown again" in created
    assert 'data-copy-target="new-secret"' in created
    assert "ci &lt;deploy&gt;" in created and "<deploy>" not in created
    record = (await tokens_by_description(registry))["ci <deploy>"]
    assert (record.namespace, record.scope) == ("acme", "publish")
    assert record.expires_at is not None and record.created_by  # the default lifetime; made by the admin
    assert await api_status(registry, secret) == 200

    listed = await html(registry, "/tokens", 200, headers=cookie(admin))
    assert secret not in listed and record.token_hash not in listed and 'id="new-secret"' not in listed
    assert f'id="token-{record.id}"' in listed and f'action="/tokens/{record.id}/revoke"' in listed


async def test_revoking_a_token_ends_it_at_once(registry):
    admin = await registry.token()
    created = await post(registry, "/tokens", new_token("to revoke", expiry=str(7 * DAY)), admin, 201)
    secret = html_text.unescape(SECRET.search(created).group(1))  # type: ignore[union-attr]
    record = (await tokens_by_description(registry))["to revoke"]
    assert await api_status(registry, secret) == 200  # now remembered by the authenticator
    response = await registry.client.post(
        f"/tokens/{record.id}/revoke", data={}, headers=cookie(admin), allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/tokens"
    assert await api_status(registry, secret) == 401
    listed = await html(registry, "/tokens", 200, headers=cookie(admin))
    assert f'action="/tokens/{record.id}/revoke"' not in listed and "state-revoked" in listed
    # Twice, or a token that does not exist: a 404 page.
    assert "may revoke" in await post(registry, f"/tokens/{record.id}/revoke", {}, admin, 404)
    await post(registry, "/tokens/no-such-token/revoke", {}, admin, 404)
    await post(registry, "/tokens/%C2%84%3Cb%3E/revoke", {}, admin, 404)  # any id is a page, never the API's JSON


async def test_a_token_makes_and_sees_only_tokens_within_its_grant(registry):
    reader = await registry.token("acme", "read")
    page = await post(registry, "/tokens", new_token("wants more", scope="publish"), reader, 403)
    assert "cannot make a &#39;publish&#39; token for namespace &#39;acme&#39;" in page
    assert 'role="alert"' in page and 'value="wants more"' in page  # the form again, as sent
    assert "wants more" not in await tokens_by_description(registry)
    other = await post(registry, "/tokens", new_token("elsewhere", namespace="other", scope="read"), reader, 403)
    assert "namespace &#39;other&#39;" in other
    await post(registry, "/tokens", new_token("mine", scope="read"), reader, 201)

    page = await html(registry, "/tokens", 200, headers=cookie(reader))
    assert "You can make tokens for: acme: read." in page and 'value="acme"' in page
    assert "mine" in page
    admin = await registry.token()
    await post(registry, "/tokens", new_token("the admin's"), admin, 201)
    assert "the admin&#39;s" not in await html(registry, "/tokens", 200, headers=cookie(reader))
    theirs = (await tokens_by_description(registry))["the admin's"]
    await post(registry, f"/tokens/{theirs.id}/revoke", {}, reader, 404)  # not its to revoke
    assert (await tokens_by_description(registry))["the admin's"].revoked_at is None


async def test_a_token_that_expires_cannot_make_one_that_outlives_it(registry):
    creator, secret = await create_token(registry.app[STORE], "acme", "admin", expires_in=DAY)
    page = await html(registry, "/tokens", 200, headers=cookie(secret))
    assert "expires by" in page  # the cap is said
    refused = await post(registry, "/tokens", new_token("too long", expiry=str(30 * DAY)), secret, 403)
    assert "would outlive this token" in refused
    await post(registry, "/tokens", new_token("cut to mine"), secret, 201)  # the default is cut instead
    made = (await tokens_by_description(registry))["cut to mine"]
    assert creator.expires_at is not None and made.expires_at is not None and made.expires_at <= creator.expires_at


async def test_forms_from_another_site_are_refused(registry):
    admin = await registry.token()
    evil = {"Origin": "https://evil.example"}
    page = await post(registry, "/tokens", new_token("planted"), admin, 403, **evil)
    assert "another site" in page and "planted" not in await tokens_by_description(registry)
    await post(registry, "/tokens", new_token("victim"), admin, 201)
    victim = (await tokens_by_description(registry))["victim"]
    await post(registry, f"/tokens/{victim.id}/revoke", {}, admin, 403, **evil)
    assert (await tokens_by_description(registry))["victim"].revoked_at is None
    host = str(registry.client.make_url("/")).rstrip("/")
    await post(registry, "/tokens", new_token("same site"), admin, 201, Origin=host)


async def test_anonymous_visitors_go_to_the_login_form(registry):
    for method, path in (("GET", "/tokens"), ("POST", "/tokens"), ("POST", "/tokens/x/revoke")):
        response = await registry.client.request(method, path, data={}, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next=")
    assert 'href="/tokens"' not in await html(registry, "/login", 200)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expiry": "12345"}, "choose an expiry from the list"),
        ({"expiry": "never"}, "choose an expiry from the list"),  # with a maximum, never is no choice
        ({"description": "d" * 257}, "at most 256 characters"),
        ({"namespace": "-bad-"}, "invalid namespace"),
        ({"namespace": ""}, "invalid namespace"),
        ({"scope": "root"}, "scope must be one of read, publish, admin"),
    ],
)
async def test_bad_fields_show_the_form_again_with_400(registry, fields: dict[str, str], message: str):
    admin = await registry.token()
    page = await post(registry, "/tokens", new_token("bad") | fields, admin, 400)
    assert message in page and 'id="token-error"' in page and 'action="/tokens"' in page
    assert "bad" not in await tokens_by_description(registry)


async def test_only_a_urlencoded_form_of_bounded_size_is_read(registry):
    admin = await registry.token()
    response = await registry.client.post("/tokens", json=new_token("json"), headers=cookie(admin))
    assert response.status == 400 and "x-www-form-urlencoded" in await response.text()
    response = await registry.client.post("/tokens", data={"description": "x" * 20_000}, headers=cookie(admin))
    assert response.status == 413 and response.content_type == "text/html"


async def test_the_expiry_choices_follow_the_config(start_registry, make_config):
    assert expiry_choices(90 * DAY, 365 * DAY) == [
        ("default", "90 days (the default)"), (str(7 * DAY), "7 days"), (str(30 * DAY), "30 days"),
        (str(365 * DAY), "1 year"),
    ]  # fmt: skip
    assert expiry_choices(2 * DAY, 30 * DAY) == [
        ("default", "2 days (the default)"), (str(7 * DAY), "7 days"), (str(30 * DAY), "30 days"),
    ]  # fmt: skip
    assert expiry_choices(0, 0)[0] == ("default", "Never (the default)") and ("never", "Never") not in expiry_choices(0, 0)
    assert expiry_choices(DAY, 0)[-1] == ("never", "Never")

    registry = await start_registry(make_config(auth={"token_default_expiry_seconds": DAY, "token_max_expiry_seconds": 0}))
    admin = await registry.token()
    page = await html(registry, "/tokens", 200, headers=cookie(admin))
    assert '<option value="never">Never</option>' in page and "1 day (the default)" in page
    await post(registry, "/tokens", new_token("forever", expiry="never"), admin, 201)
    await post(registry, "/tokens", new_token("a day"), admin, 201)
    made = await tokens_by_description(registry)
    assert made["forever"].expires_at is None and made["a day"].expires_at is not None

    _, expiring = await create_token(registry.app[STORE], "acme", "admin", expires_in=DAY, now=time.time())
    assert "would outlive" in await post(registry, "/tokens", new_token("nope", expiry="never"), expiring, 403)


# -- in process: a path no route matches ----------------------------------------------------------


async def test_a_browser_gets_an_html_page_for_an_unknown_path(registry):
    for path in ("/no/such/page", "/modules/acme", "/tokens/abc"):
        response = await registry.client.get(path, headers={"Accept": BROWSER_ACCEPT})
        text = await response.text()
        assert response.status == 404 and response.content_type == "text/html", path
        assert "<h1>Not Found</h1>" in text and "There is no page at this address." in text
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY" and response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Request-Id"]
        assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", text))  # no inline script
    wrong_method = await registry.client.get("/logout", headers={"Accept": BROWSER_ACCEPT})
    assert wrong_method.status == 405 and wrong_method.content_type == "text/html"
    assert wrong_method.headers["Allow"] == "POST" and "Method Not Allowed" in await wrong_method.text()
    reflected = await registry.client.get("/%3Cscript%3Ealert(1)%3C/script%3E", headers={"Accept": BROWSER_ACCEPT})
    assert reflected.status == 404 and "<script>alert" not in await reflected.text()


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/no/such/page", "application/json"),
        ("/no/such/page", "*/*"),
        ("/no/such/page", ""),
        ("/no/such/page", "application/json, text/html;q=0.5"),
        ("/no/such/page", "text/html;q=0"),
        ("/v1/nope", BROWSER_ACCEPT),
        ("/api/v1/nothing", BROWSER_ACCEPT),
        ("/.well-known/nothing", BROWSER_ACCEPT),
        ("/oauth/token/x", BROWSER_ACCEPT),
    ],
)
async def test_api_clients_keep_the_json_errors(registry, path: str, accept: str):
    response = await registry.client.get(path, headers={"Accept": accept} if accept else {})
    assert response.status == 404 and response.content_type == "application/json"
    assert await response.json() == {"errors": ["Not Found"]}


async def test_a_wrong_method_on_the_api_keeps_the_json_405(registry):
    response = await registry.client.get("/oauth/token", headers={"Accept": BROWSER_ACCEPT})
    assert response.status == 405 and response.headers["Allow"] == "POST"
    assert await response.json() == {"errors": ["Method Not Allowed"]}


# -- a live server and a real browser ---------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = start_site(tmp_path_factory.mktemp("ui-tokens"), {})
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed at {AXE}: run scripts/test.sh, which installs it from npm")
    return AXE.read_text()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_token_page_fits_the_width_and_passes_axe(browser: Browser, site: Site, axe_source: str, width: str):
    viewport_width, viewport_height = WIDTHS[width]
    context = browser.new_context(
        base_url=site.url,
        viewport={"width": viewport_width, "height": viewport_height},
        permissions=["clipboard-read", "clipboard-write"],
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        log_in(page, site.token, "/tokens")
        expect(page.get_by_role("heading", level=1)).to_have_text("Tokens")
        check_page(page, axe_source, "light", f"tokens at {width}")

        description = f"deploys from the {width} pipeline of the platform team"
        page.get_by_label("Description").fill(description)
        page.get_by_label("Namespace").fill("acme")
        page.get_by_label("Scope").select_option("publish")
        page.get_by_label("Expires after").select_option("7 days")
        page.get_by_role("button", name="Make token").click()
        expect(page.get_by_role("heading", level=2, name=f"New token: {description}")).to_be_visible()
        expect(page.locator("#secret-warning")).to_contain_text("it is not shown again")
        check_page(page, axe_source, "light", f"new token at {width}")
        page.get_by_role("button", name="Copy the new token").click()
        expect(page.locator("#new-secret-status")).to_have_text("Copied")
        secret = page.evaluate("navigator.clipboard.readText()")
        assert secret.startswith("mirror_") and secret == page.locator("#new-secret").text_content()

        page.get_by_role("button", name=f"Revoke {description}").click()
        page.wait_for_url("**/tokens")
        row = page.locator("tr", has_text=description)
        expect(row).to_contain_text("revoked")
        expect(row.get_by_role("button")).to_have_count(0)
        assert secret not in page.content()
        check_page(page, axe_source, "light", f"a revoked token at {width}")
    finally:
        context.close()
