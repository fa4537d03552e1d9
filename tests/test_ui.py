"""The web UI.

First plain HTTP checks of its defences against an in-process app (escaping, the login form's
redirect guard, scopes, static files, HTML error pages), then a real headless Chromium against
a live ``mirror serve``: logging in and out, search, the module page, the Copy button, a hostile
README, anonymous reads, and the copied snippet installed by a real ``terraform init``.

The in-process tests come first: Playwright's sync API must not run inside an asyncio loop, so
the browser (one per module) starts once they are done.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.request import Request, urlopen

import pytest
from playwright.sync_api import Browser, Page, expect
from yarl import URL

from mirror.formats.archive import pack_directory
from mirror.http.ui.readme import safe_link
from mirror.http.ui.usage import version_constraint
from tests.browser import launch_chromium, log_in
from tests.live import MirrorServer, free_port, run_cli, write_config
from tests.modules import write_module
from tests.terraform import TERRAFORM_1_15, base_env, cli_config, installed_modules

#: the host ``[server] public_url`` names in the live tests; it resolves nowhere
PUBLIC_HOST = "registry.ui.test"
NETWORK = "acme/network/aws"

README = """# Network module

Builds a network with subnets.

<script>window.__pwned = true</script>

<img src=x onerror="window.__pwned=true">

[link](javascript:window.__pwned=true)

## Example

```hcl
module "network" {
  cidr_blocks = ["10.0.0.0/24"]
}
```

| Input | Meaning |
|-------|---------|
| cidr_blocks | where the subnets go |
"""

VARIABLES_TF = """
variable "cidr_blocks" {
  type        = list(string)
  description = "CIDR blocks of the subnets"
  default     = ["10.0.0.0/24"]
}

variable "az_count" {
  type    = number
  default = 2
}
"""

HOSTILE_TF = """
variable "x" {
  type        = string
  description = "<img src=x onerror=alert(1)>"
  default     = "</code><script>alert(2)</script>"
}

output "o" {
  value       = 1
  description = "<script>alert(3)</script>"
}
"""


def network_module(root: Path, marker: str = "v1") -> Path:
    """The module the UI shows: typed variables, outputs, a submodule with a required variable,
    and a README that tries to run scripts. The root needs no argument, so its usage snippet
    installs as it is."""
    write_module(root, marker=marker)
    (root / "variables.tf").write_text(VARIABLES_TF)
    (root / "README.md").write_text(README)
    return root


def pack(root: Path) -> bytes:
    out = io.BytesIO()
    pack_directory(root, out)
    return out.getvalue()


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"mirror_token={token}"}


# -- in process: escaping, the login form, scopes, static files, error pages -----------------------


async def publish(registry: Any, address: str, version: str, root: Path) -> None:
    response = await registry.publish(address, version, pack(root), await registry.auth())
    assert response.status == 201, await response.text()


async def html(registry: Any, path: str | URL, status: int, **kwargs: Any) -> str:
    """GET a page, check its status and that it is HTML with the CSP, and return its text."""
    response = await registry.client.get(path, allow_redirects=False, **kwargs)
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    return text


async def test_hostile_text_is_escaped_everywhere(registry, tmp_path: Path):
    root = write_module(tmp_path / "hostile")
    (root / "README.md").write_text("# T\n\nHostile <script>alert(\"readme\")</script> & 'quoted'\n")
    (root / "hostile.tf").write_text(HOSTILE_TF)
    submodule = root / "modules" / "<svg onload=alert(4)>"
    submodule.mkdir(parents=True)
    (submodule / "main.tf").write_text('variable "y" {\n  type = string\n}\n')
    await publish(registry, "acme/hostile/aws", "1.0.0", root)
    headers = cookie(await registry.token())
    pages = [
        await html(registry, "/", 200, params={"q": "alert"}, headers=headers),
        await html(registry, "/", 200, params={"q": "<script>alert(5)</script>"}, headers=headers),
        *[
            await html(
                registry,
                "/modules/acme/hostile/aws",
                200,
                params={"tab": tab},
                headers={**headers, "Host": 'evil.test"><script>alert(6)</script>'},
            )
            for tab in ("readme", "inputs", "outputs", "submodules")
        ],
    ]
    for page in pages:
        for raw in ("<script>alert", "<img src=x", "<svg", "onload=alert(4)>"):
            assert raw not in page
    listing, reflected, *tabs = pages
    module = "".join(tabs)
    assert "acme/hostile" in listing and "&lt;script&gt;alert(&#34;readme&#34;)&lt;/script&gt; &amp;" in listing
    assert "No modules found." in reflected and "&lt;script&gt;alert(5)&lt;/script&gt;" in reflected
    for escaped in (
        "&lt;img src=x onerror=alert(1)&gt;",  # an input's description
        "&#34;&lt;/code&gt;&lt;script&gt;alert(2)&lt;/script&gt;&#34;",  # its default
        "&lt;script&gt;alert(3)&lt;/script&gt;",  # an output's description
        "modules/&lt;svg onload=alert(4)&gt;",  # a submodule's directory
        "&lt;script&gt;alert(&quot;readme&quot;)&lt;/script&gt;",  # the README, through markdown
        "evil.test&#34;&gt;&lt;script&gt;alert(6)&lt;/script&gt;/acme/hostile/aws",  # the Host in the snippet
    ):
        assert escaped in module


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/modules/acme/network/aws?tab=inputs", "/modules/acme/network/aws?tab=inputs"),
        ("//evil.test/x", "/"),
        ("https://evil.test/", "/"),
        ("/\\evil.test", "/"),
        ("/\t/evil.test", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.test", "/"),
        ("", "/"),
    ],
)
async def test_login_sends_only_to_local_paths(registry, target: str, expected: str):
    response = await registry.client.post(
        "/login", data={"token": await registry.token("acme", "read"), "next": target}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == expected
    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith("mirror_token=mirror_")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"):
        assert attribute in set_cookie
    assert "Secure" not in set_cookie  # plain http here


async def test_the_login_form_keeps_a_safe_next_only(registry):
    assert 'name="next" value="/modules/acme/x/aws"' in await html(registry, "/login?next=/modules/acme/x/aws", 200)
    assert 'name="next" value="/"' in await html(registry, "/login", 200, params={"next": "//evil.test"})


async def test_a_wrong_token_shows_the_form_again_with_401(registry):
    response = await registry.client.post("/login", data={"token": "mirror_wrong", "next": "/x"}, allow_redirects=False)
    text = await response.text()
    assert response.status == 401 and response.content_type == "text/html"
    assert "That token is not valid" in text and 'name="token"' in text and 'name="next" value="/x"' in text
    assert "Set-Cookie" not in response.headers
    empty = await registry.client.post("/login", data={"token": " "}, allow_redirects=False)
    assert empty.status == 400 and "Enter a token." in await empty.text()
    # Another site's form cannot log a browser in with the other site's token.
    cross_site = await registry.client.post(
        "/login", data={"token": await registry.token()}, headers={"Origin": "https://evil.test"}, allow_redirects=False
    )
    assert cross_site.status == 403 and "Set-Cookie" not in cross_site.headers
    # Bodies that are not a readable form are a 400 page, never a server error.
    for content_type in ("multipart/form-data", "application/json"):
        odd = await registry.client.post(
            "/login", data=b"token=&next=", headers={"Content-Type": content_type}, allow_redirects=False
        )
        assert odd.status == 400 and odd.content_type == "text/html", content_type


async def test_a_namespace_token_sees_only_its_namespace(registry, tmp_path: Path):
    await publish(registry, NETWORK, "1.0.0", network_module(tmp_path / "network"))
    await publish(registry, "other/vault/aws", "1.0.0", write_module(tmp_path / "vault"))
    acme = await registry.token("acme", "read")
    forbidden = await html(registry, "/modules/other/vault/aws", 403, headers=cookie(acme))
    assert "lacks the &#39;read&#39; scope on namespace &#39;other&#39;" in forbidden
    await html(registry, "/modules/other/vault/aws", 403, headers={"Authorization": f"Bearer {acme}"})
    await html(registry, f"/modules/{NETWORK}", 200, headers=cookie(acme))
    listing = await html(registry, "/", 200, headers=cookie(acme))
    assert "acme/network" in listing and "other/vault" not in listing
    everything = await html(registry, "/", 200, headers=cookie(await registry.token()))
    assert "acme/network" in everything and "other/vault" in everything
    second_page = await html(registry, "/?offset=1", 200, headers=cookie(await registry.token()))
    assert "other/vault" in second_page and "acme/network" not in second_page and 'rel="prev" href="/"' in second_page


async def test_pages_without_a_usable_credential_go_to_the_login_form(registry):
    for path in ("/", "/?q=net", f"/modules/{NETWORK}/1.0.0"):
        response = await registry.client.get(path, allow_redirects=False)
        assert response.status == 303
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login" and parse_qs(location.query)["next"] == [path]
    stale = await registry.client.get("/", headers=cookie("mirror_revoked"), allow_redirects=False)
    assert stale.status == 303 and stale.headers["Set-Cookie"].startswith('mirror_token=""')  # dropped
    # The API keeps its own answers.
    api = await registry.client.get("/v1/modules")
    assert api.status == 401 and (await api.json())["errors"]


async def test_errors_are_html_pages(registry):
    headers = cookie(await registry.token())
    await html(registry, "/modules/acme/no-such/aws", 404, headers=headers)
    assert "invalid module name" in await html(registry, "/modules/acme/-bad-/aws", 400, headers=headers)
    assert "invalid version" in await html(registry, f"/modules/{NETWORK}/one", 400, headers=headers)
    assert "invalid provider" in await html(registry, "/", 400, params={"provider": "a-b"}, headers=headers)
    assert "offset" in await html(registry, "/", 400, params={"offset": "-1"}, headers=headers)


async def test_static_files_are_the_known_ones_only(registry):
    for name, content_type in (("mirror.css", "text/css"), ("mirror.js", "text/javascript")):
        response = await registry.client.get(f"/static/{name}")
        assert response.status == 200 and response.content_type == content_type
        assert "max-age" in response.headers["Cache-Control"]
    base = str(registry.client.make_url("/")).rstrip("/")
    for raw in (
        "/static/..%2Fpages.py",
        "/static/%2e%2e%2fpages.py",
        "/static/..%2F..%2Fapp.py",
        "/static/..%5Cpages.py",
        "/static/%2E%2E",
        "/static/pages.py",
        "/static/templates%2Fbase.html",
        "/static/mirror.css%00",
        "/static/../web/pages.py",
    ):
        response = await registry.client.session.get(URL(base + raw, encoded=True), allow_redirects=False)
        body = await response.text()
        assert response.status == 404, raw
        assert "import" not in body and "{%" not in body


@pytest.mark.parametrize(
    ("version", "constraint"),
    [("1.2.3", "~> 1.2"), ("10.0.0", "~> 10.0"), ("0.3.1", "~> 0.3.1"), ("2.0.0-rc.1", "2.0.0-rc.1")],
)
def test_the_snippet_version_constraint(version: str, constraint: str):
    assert version_constraint(version) == constraint


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://example.com", True),
        ("mailto:a@example.com", True),
        ("docs/usage.md", True),
        ("#inputs", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,x", False),
        ("vbscript:x", False),
    ],
)
def test_readme_link_schemes(url: str, allowed: bool):
    assert safe_link(url) is allowed


# -- a live server and a real browser ---------------------------------------------------------------


@dataclass
class Site:
    """A live ``mirror serve`` with an admin token."""

    server: MirrorServer
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def publish(self, address: str, version: str, root: Path) -> None:
        request = Request(
            f"{self.url}/api/v1/modules/{address}/{version}",
            data=pack(root),
            method="PUT",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/gzip"},
        )
        with urlopen(request, timeout=30) as response:
            assert response.status == 201

    def stop(self) -> None:
        assert self.server.stop() == 0, self.server.logs()
        assert "mirror_" not in self.server.logs()  # neither the cookie nor the login form's token


def start_site(workdir: Path, sections: dict[str, dict[str, Any]]) -> Site:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict[str, dict[str, Any]] = {
        "server": {"port": port},
        "metadata": {"path": str(workdir / "data" / "mirror.db")},
        "blobs": {"path": str(workdir / "data" / "blobs")},
        "events": {"log_path": ""},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    config_file = write_config(workdir / "mirror.toml", config)
    server = MirrorServer(config_file, port, workdir).start()
    created = run_cli(
        "token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config_file), cwd=workdir
    )
    assert created.returncode == 0, created.stderr
    return Site(server, created.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Logins required, ``public_url`` naming PUBLIC_HOST, acme verified; acme/network/aws in two
    versions and acme/dns/google."""
    workdir = tmp_path_factory.mktemp("ui-site")
    site = start_site(
        workdir,
        {
            "server": {"public_url": f"http://{PUBLIC_HOST}"},
            "browse": {"verified_namespaces": ["acme"]},
        },
    )
    try:
        site.publish(NETWORK, "1.0.0", network_module(workdir / "network-1.0.0", "1.0.0"))
        site.publish(NETWORK, "1.2.0", network_module(workdir / "network-1.2.0", "1.2.0"))
        site.publish("acme/dns/google", "0.3.0", write_module(workdir / "dns"))
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    """A fresh browser context, logged in through the form."""
    context = browser.new_context(base_url=site.url, permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(10_000)
    page = context.new_page()
    log_in(page, site.token)
    yield page
    context.close()


def rows(page: Page, table: str) -> list[list[str]]:
    """A table's body as cell texts."""
    return page.locator(f"{table} tbody tr").evaluate_all(
        "rows => rows.map(row => Array.from(row.cells, cell => cell.innerText.trim()))"
    )


def copy_snippet(page: Page) -> str:
    """Click Copy on a module page; the clipboard's text, checked against the text shown."""
    shown = page.locator("#usage-code").text_content()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#usage-status")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown
    return copied


def test_logging_in_returns_to_the_page_and_logging_out_ends_the_session(browser: Browser, site: Site):
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"/modules/{NETWORK}")
    location = urlsplit(page.url)
    assert location.path == "/login" and parse_qs(location.query)["next"] == [f"/modules/{NETWORK}"]
    page.get_by_label("Token").fill("mirror_not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid (unknown or revoked).")
    page.get_by_label("Token").fill(site.token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("acme/network/aws")
    assert page.url == f"{site.url}/modules/{NETWORK}"
    (session,) = [c for c in context.cookies() if c["name"] == "mirror_token"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/"
    assert page.evaluate("document.cookie") == ""  # out of scripts' reach
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/login")  # "/" needs a login again
    assert [c for c in context.cookies() if c["name"] == "mirror_token"] == []
    context.close()


def test_search_and_the_provider_filter(page: Page):
    page.goto("/")
    modules = page.locator("table.modules a.module-link")
    expect(modules).to_have_text(["acme/dns", "acme/network"])
    expect(page.locator("table.modules .badge.verified")).to_have_count(2)
    page.get_by_label("Search modules").fill("subnets")  # in the description
    page.get_by_role("button", name="Search").click()
    expect(modules).to_have_text(["acme/network"])
    page.get_by_label("Search modules").fill("no-such-thing")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No modules found.")).to_be_visible()
    page.get_by_label("Search modules").fill("")
    page.get_by_label("Provider").fill("google")
    page.get_by_role("button", name="Search").click()
    expect(modules).to_have_text(["acme/dns"])
    page.get_by_role("link", name="Show all modules").click()
    page.get_by_role("link", name="aws", exact=True).click()  # a provider links to its filter
    expect(modules).to_have_text(["acme/network"])


def test_the_module_page_shows_its_interface_submodules_and_versions(page: Page):
    page.goto("/")
    page.get_by_role("link", name="acme/network").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("acme/network/aws")
    expect(heading).to_contain_text("1.2.0")
    expect(heading.locator(".badge.verified")).to_be_visible()
    expect(page.locator(".lead")).to_have_text("Builds a network with subnets.")
    expect(page.locator("#owner")).to_have_text("uploads (publish over the API)")
    tabs = page.get_by_role("navigation", name="Module sections")
    expect(tabs.get_by_role("link")).to_have_text(
        ["Readme", "Inputs 3", "Outputs 2", "Dependencies 1", "Resources 0", "Submodules 1", "Versions 2", "History"]
    )
    expect(tabs.get_by_role("link", name="Readme")).to_have_attribute("aria-current", "page")
    tabs.get_by_role("link", name="Inputs 3").click()
    expect(tabs.get_by_role("link", name="Inputs 3")).to_have_attribute("aria-current", "page")
    assert rows(page, "#inputs") == [
        ["az_count", "number", "", "2", "no"],
        ["cidr_blocks", "list(string)", "CIDR blocks of the subnets", '["10.0.0.0/24"]', "no"],
        ["name", "string", "Name of the network", '"main"', "no"],
    ]
    tabs.get_by_role("link", name="Outputs 2").click()
    expect(page.locator("#outputs")).to_be_visible()
    assert rows(page, "#outputs") == [["id", ""], ["subnets", ""]]
    tabs.get_by_role("link", name="Submodules 1").focus()  # the tabs are links: the keyboard follows them
    page.keyboard.press("Enter")
    submodules = page.locator("#submodules")
    expect(submodules.get_by_role("heading", level=3)).to_have_text(["modules/subnets"])
    expect(submodules).to_contain_text(f"{PUBLIC_HOST}/{NETWORK}//modules/subnets")
    assert rows(page, "#inputs-1") == [["prefix", "string", "", "none", "required"]]
    assert rows(page, "#outputs-1") == [["names", ""]]
    picker = page.locator("#version-picker")
    picker.locator("summary").click()
    versions = picker.get_by_role("link")
    expect(versions).to_have_text(["1.2.0", "1.0.0"])
    expect(versions.first).to_have_attribute("aria-current", "page")
    expect(picker.locator("li").first).to_contain_text("latest")
    versions.get_by_text("1.0.0").click()
    page.wait_for_url(f"**/modules/{NETWORK}/1.0.0")
    expect(heading).to_contain_text("1.0.0")
    expect(page.locator("#newer-banner")).to_contain_text("You are viewing an older version, 1.0.0; the latest is 1.2.0.")
    expect(page.locator("#usage-code")).to_contain_text('version = "~> 1.0"')
    page.get_by_role("link", name="acme", exact=True).first.click()
    page.wait_for_url("**/namespaces/acme")
    expect(page.locator("a.module-link")).to_have_text(["acme/dns", "acme/network"])


def test_copy_puts_the_usage_snippet_on_the_clipboard(page: Page):
    page.goto(f"/modules/{NETWORK}")
    assert copy_snippet(page) == (
        'module "network" {\n'
        f'  source  = "{PUBLIC_HOST}/{NETWORK}"\n'
        '  version = "~> 1.2"\n'
        "}\n"
    )
    page.goto("/modules/acme/dns/google")
    assert 'version = "~> 0.3.0"' in copy_snippet(page)


def test_the_readme_is_rendered_and_never_runs_a_script(page: Page):
    response = page.goto(f"/modules/{NETWORK}")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "object-src 'none'" in csp
    readme = page.locator("#readme")
    expect(readme.get_by_role("heading", name="Network module")).to_be_visible()
    expect(readme.locator("pre code")).to_contain_text('cidr_blocks = ["10.0.0.0/24"]')
    expect(readme.locator("table td").first).to_have_text("cidr_blocks")
    expect(readme).to_contain_text("<script>window.__pwned = true</script>")  # shown, as text
    expect(readme.locator("script, img, [onerror]")).to_have_count(0)
    expect(readme.locator("a")).to_have_count(0)  # the javascript: link is not a link
    readme.get_by_text("javascript:window.__pwned=true").click()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # The CSP is enforced too: an inline script that got into the page would not run.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__pwned = true';"
        " document.body.appendChild(s); }"
    )
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_an_unknown_module_is_a_404_page(page: Page):
    for path in ("/modules/acme/no-such/aws", f"/modules/{NETWORK}/9.9.9"):
        response = page.goto(path)
        assert response is not None and response.status == 404
        expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
        expect(page.get_by_role("alert")).to_contain_text("not found")


def test_anonymous_read_shows_pages_without_logging_in(browser: Browser, tmp_path: Path):
    site = start_site(tmp_path / "anonymous", {"auth": {"anonymous_read": True}})
    try:
        site.publish(NETWORK, "1.0.0", network_module(tmp_path / "network"))
        context = browser.new_context(base_url=site.url)
        context.set_default_timeout(10_000)
        page = context.new_page()
        response = page.goto("/")
        assert response is not None and response.status == 200 and urlsplit(page.url).path == "/"
        expect(page.get_by_role("link", name="Log in")).to_be_visible()
        page.get_by_role("link", name="acme/network").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("acme/network/aws")
        # Without public_url the snippet names the host the browser used.
        expect(page.locator("#usage-code")).to_contain_text(f'source  = "127.0.0.1:{site.server.port}/{NETWORK}"')
        context.close()
    finally:
        site.stop()


@pytest.mark.terraform
def test_the_copied_snippets_install_with_terraform_init(page: Page, site: Site, tmp_path: Path):
    """Both constraint rules (``~> 1.2`` and ``~> 0.3.0``), exactly as copied, in one root."""
    snippets = []
    for path in (f"/modules/{NETWORK}", "/modules/acme/dns/google"):
        page.goto(path)
        snippets.append(copy_snippet(page))
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text("\n".join(snippets))
    rc = cli_config(tmp_path / "terraform.rc", host=PUBLIC_HOST, port=site.server.port, token=site.token)
    # The host block sends the registry calls to 127.0.0.1. PUBLIC_HOST resolves nowhere here, and
    # with public_url set the archive location is http://PUBLIC_HOST/v1/archives/...: Terraform
    # honours HTTP_PROXY for hosts that are not loopback, so that fetch goes through the server
    # itself, standing in for the front proxy a real deployment has.
    init = TERRAFORM_1_15.run(root, "init", "-no-color", env=base_env(rc, tmp_path, HTTP_PROXY=site.url))
    assert init.returncode == 0, init.stdout + init.stderr
    assert f"Downloading {PUBLIC_HOST}/{NETWORK} 1.2.0 for network..." in init.stdout
    installed = installed_modules(root)
    assert installed["network"]["Source"] == f"{PUBLIC_HOST}/{NETWORK}"
    assert (installed["network"]["Version"], installed["dns"]["Version"]) == ("1.2.0", "0.3.0")
