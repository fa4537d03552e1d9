"""Sign-in through a real OpenID Provider (npm's ``oidc-provider``, ``tests/oidc_provider.py``) to a
live ``mirror serve``, in a real headless Chromium: the whole path a person takes.

Alice (group ``platform``: publish on namespace platform) signs in, finds the module, reads its
tabs, makes a token on the tokens page and installs the module with the real ``terraform init``
from the usage snippet, deprecates a version and sees the banner, and finds the change under her
name in the module's history and the audit trail; signing out makes the old cookie worthless.
Bob, whom no rule matches, is signed in with no access and told so. The real ``terraform login``
signs in through the same provider and gets a token that expires.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import HTTPRedirectHandler, Request, build_opener, urlopen

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import launch_chromium
from tests.live import MirrorServer, free_port, run_cli
from tests.oidc_provider import Provider, oidc_client, run_oidc_provider, sign_in_at_provider
from tests.terraform import TERRAFORM_1_15, base_env, installed_modules
from tests.test_terraform_login import _cli_config, _lines, _no_browser, _printed_url
from tests.test_ui import network_module, pack

pytestmark = pytest.mark.browser

HOST = "registry.example.test"
MODULE = "platform/network/aws"
CLIENT_ID = "mirror"
CLIENT_SECRET = "a-secret-of-the-tests-only-0123456789"
ACCOUNTS = {
    "alice": {"email": "alice@example.test", "name": "Alice Example", "groups": ["platform", "staff"]},
    "bob": {"email": "bob@example.test", "name": "Bob Visitor", "groups": ["visitors"]},
}


class _NoRedirect(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


@dataclass
class World:
    server: MirrorServer
    provider: Provider
    admin: str
    workdir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, path: str, token: str | None = None) -> dict:
        request = Request(f"{self.url}{path}", headers={"Authorization": f"Bearer {token or self.admin}"})
        with urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def _config(path: Path, port: int, issuer: str, workdir: Path) -> Path:
    path.write_text(
        f"""[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
registry_host = "{HOST}"

[metadata]
path = "{workdir / 'data' / 'mirror.db'}"

[blobs]
path = "{workdir / 'data' / 'blobs'}"

[events]
log_path = ""

[oidc]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
scopes = ["openid", "profile", "email", "groups"]
display_name = "the test provider"

[[oidc.grants]]
group = "platform"
namespace = "platform"
scope = "publish"

[[oidc.grants]]
group = "staff"
namespace = "shared"
scope = "read"
"""
    )
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("oidc-signin")
    port = free_port()
    client = oidc_client(CLIENT_ID, CLIENT_SECRET, [f"http://127.0.0.1:{port}/oidc/callback"])
    # on "localhost": another site than the registry on 127.0.0.1, as a real provider would be
    with run_oidc_provider(workdir, clients=[client], accounts=ACCOUNTS, hostname="localhost") as provider:
        config = _config(workdir / "mirror.toml", port, provider.issuer, workdir)
        server = MirrorServer(config, port, workdir, env={"MIRROR_OIDC_CLIENT_SECRET": CLIENT_SECRET}).start()
        try:
            created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config), cwd=workdir)
            assert created.returncode == 0, created.stderr
            world = World(server, provider, created.stdout.strip().splitlines()[-1], workdir)
            for version in ("1.0.0", "1.1.0"):
                request = Request(
                    f"{world.url}/api/v1/modules/{MODULE}/{version}", data=pack(network_module(workdir / version, version)),
                    method="PUT", headers={"Authorization": f"Bearer {world.admin}", "Content-Type": "application/gzip"},
                )  # fmt: skip
                with urlopen(request, timeout=30) as response:
                    assert response.status == 201
            yield world
        finally:
            assert server.stop() == 0, server.logs()[-5000:]
    logs = server.logs()
    assert "mirror_" not in logs and "mirrorsession_" not in logs  # no token or session secret is logged
    assert CLIENT_SECRET not in logs


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def _sign_in(page: Page, world: World, login: str, start: str = "/") -> None:
    page.goto(f"{world.url}{start}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_role("link", name="Sign in with the test provider").click()
    sign_in_at_provider(page, login)
    page.wait_for_url(f"{world.url}{start}")


def test_a_person_signs_in_installs_deprecates_and_is_named_for_it(world: World, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, world, "alice")
    expect(page.locator("#signed-in")).to_contain_text("Alice Example")
    expect(page.locator("#no-access")).to_have_count(0)

    # finds the module and reads its tabs
    page.get_by_role("link", name="platform/network", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("network")
    page.get_by_role("navigation", name="Module sections").get_by_role("link", name="Inputs").click()
    expect(page.locator("#tab-panel")).to_contain_text("cidr")
    snippet = page.locator("section.usage pre").first.inner_text()
    assert f'source  = "{HOST}/{MODULE}"' in snippet or f'source = "{HOST}/{MODULE}"' in snippet, snippet

    # makes a read token for terraform on the tokens page, within her grants
    page.get_by_role("link", name="Tokens").click()
    page.get_by_label("Description").fill("laptop terraform")
    page.get_by_label("Namespace").fill("platform")
    page.get_by_label("Scope").select_option("read")
    page.get_by_role("button", name="Make token").click()
    secret = page.locator("#new-secret").inner_text().strip()
    assert secret.startswith("mirror_")
    (mine,) = [t for t in world.api("/api/v1/tokens")["tokens"] if t["description"] == "laptop terraform"]
    assert mine["created_by"] == "alice@example.test" and mine["expires_at"]

    # the copied snippet installs with the real terraform init
    project = world.workdir / "project"
    project.mkdir()
    (project / "main.tf").write_text(snippet)
    home = world.workdir / "home"
    home.mkdir()
    tf_config = world.workdir / "terraform.rc"
    tf_config.write_text(
        f'host "{HOST}" {{\n  services = {{\n    "modules.v1" = "{world.url}/v1/modules/"\n  }}\n}}\n'
        f'credentials "{HOST}" {{\n  token = "{secret}"\n}}\n'
    )
    init = subprocess.run(
        [*TERRAFORM_1_15.command, "init", "-backend=false"], cwd=project, env=base_env(tf_config, home),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    assert any(m["Source"] == f"{HOST}/{MODULE}" for m in installed_modules(project).values())

    # deprecates 1.0.0 on its page and sees the banner
    page.goto(f"{world.url}/modules/{MODULE}/1.0.0?tab=versions")
    page.get_by_label("Reason").fill("Overlapping subnets: use 1.1.0")
    page.get_by_label("Replacement").fill("1.1.0")
    page.get_by_role("button", name="Deprecate").click()
    expect(page.locator(".banner.deprecated")).to_contain_text("Overlapping subnets")

    # the change is hers: in the module's history and the audit trail
    page.goto(f"{world.url}/modules/{MODULE}?tab=history")
    expect(page.locator("#tab-panel")).to_contain_text("Alice Example")
    changes = world.api("/api/v1/audit?actor=alice@example.test")["events"]
    assert [c["type"] for c in changes] == ["module.version_deprecated"]
    assert changes[0]["actor"] == {"kind": "person", "id": "alice@example.test", "description": "Alice Example"}

    # her session is listed; signing out revokes it, and the copied cookie stops working
    page.get_by_role("link", name="Sign-ins").click()
    expect(page.locator("table.sessions tbody tr")).to_have_count(1)
    (listed,) = world.api("/api/v1/sessions")["sessions"]
    assert listed["person"] == "alice@example.test" and listed["state"] == "active"
    assert listed["grants"] == [{"namespace": "platform", "scope": "publish"}, {"namespace": "shared", "scope": "read"}]
    cookie = next(c for c in context.cookies() if c["name"] == "mirror_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{world.url}/**")
    stale = Request(f"{world.url}/modules/{MODULE}", headers={"Cookie": f"mirror_session={cookie['value']}"})
    with pytest.raises(HTTPError) as refused:
        build_opener(_NoRedirect).open(stale, timeout=10)
    assert refused.value.code == 303 and refused.value.headers["Location"].startswith("/login?next=")
    assert world.api("/api/v1/sessions")["sessions"][0]["state"] == "revoked"
    context.close()


def test_a_person_no_rule_matches_is_signed_in_with_no_access(world: World, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{world.url}/login")
    page.get_by_role("link", name="Sign in with the test provider").click()
    sign_in_at_provider(page, "bob")
    page.wait_for_url(f"{world.url}/**")
    page.goto(f"{world.url}/providers")
    expect(page.locator("#no-access")).to_contain_text("Bob Visitor")
    page.goto(f"{world.url}/modules/{MODULE}")
    expect(page.locator("main")).to_contain_text("no 'read' grant")
    context.close()


@pytest.mark.terraform
def test_terraform_login_signs_in_through_the_provider(world: World, browser: Browser, tmp_path: Path) -> None:
    port = world.server.port
    home = tmp_path / "home"
    (home / ".terraform.d").mkdir(parents=True)
    _no_browser(tmp_path / "bin")
    env = base_env(_cli_config(tmp_path / "terraform.rc", port), home)
    env.pop("TF_INPUT")
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    process = subprocess.Popen(
        [*TERRAFORM_1_15.command, "login", HOST], cwd=tmp_path, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    context = browser.new_context()
    try:
        assert process.stdin is not None
        process.stdin.write("yes\n")
        process.stdin.flush()
        url = _printed_url(lines, seen).replace("//localhost:", "//127.0.0.1:")
        page = context.new_page()
        page.goto(url)
        page.get_by_role("link", name="Sign in with the test provider").click()
        sign_in_at_provider(page, "alice")
        page.wait_for_url(re.compile(re.escape(f"{world.url}/oauth/authorize?")))
        expect(page.locator("#signed-in-person")).to_contain_text("publish on platform")
        page.get_by_label("Namespace", exact=False).fill("platform")
        page.get_by_label("Scope").select_option("read")
        page.get_by_role("button", name="Allow").click()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        context.close()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    saved = json.loads((home / ".terraform.d" / "credentials.tfrc.json").read_text())
    token = saved["credentials"][HOST]["token"]
    (mine,) = world.api("/api/v1/tokens", token)["tokens"]
    assert (mine["namespace"], mine["scope"]) == ("platform", "read")
    assert mine["expires_at"] and mine["created_by"] == "alice@example.test"
    versions = world.api(f"/v1/modules/{MODULE}/versions", token)
    assert {v["version"] for v in versions["modules"][0]["versions"]} >= {"1.1.0"}


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_sign_in_pages_fit_the_width_and_pass_axe(world: World, browser: Browser, width: str) -> None:
    from tests.test_ui_layout import AXE, WIDTHS, check_page

    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed at {AXE}: run scripts/test.sh, which installs it from npm")
    axe_source = AXE.read_text()
    viewport_width, viewport_height = WIDTHS[width]
    authorize = (
        "/oauth/authorize?client_id=terraform-cli&redirect_uri=http%3A%2F%2Flocalhost%3A10000%2Flogin"
        "&response_type=code&code_challenge=" + "A" * 43 + "&code_challenge_method=S256&state=xyz"
    )
    for login, pages in (
        ("alice", {"sessions page": ("/sessions", "Your sign-ins"), "authorize page": (authorize, "terraform login")}),
        ("bob", {"no access banner": ("/namespaces/platform", "Forbidden")}),
    ):
        context = browser.new_context(base_url=world.url, viewport={"width": viewport_width, "height": viewport_height})
        context.set_default_timeout(10_000)
        page = context.new_page()
        try:
            page.goto("/login")
            expect(page.locator("#oidc-login")).to_be_visible()
            check_page(page, axe_source, "light", f"login with single sign-on at {width}")
            page.locator("#oidc-login").click()
            sign_in_at_provider(page, login)
            page.wait_for_url(f"{world.url}/")
            for name, (path, heading) in pages.items():
                page.goto(path)
                expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
                check_page(page, axe_source, "light", f"{name} at {width}")
        finally:
            context.close()
