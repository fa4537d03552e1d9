"""The web UI's layout and accessibility, in a real headless Chromium against a live ``mirror serve``.

Every page (module list, module page and each of its tabs, an older and deprecated version with
its banners and the version picker open, namespace page, provider list, provider page and a
deprecated provider version, login, a 404) at a desktop (1280 px) and a phone (390 px) width, in
the light and the dark color scheme:

- the page never scrolls sideways (``scrollWidth <= innerWidth``): wide tables and code scroll
  inside their own boxes;
- no heading, table header or navigation text may break between any two letters
  (``overflow-wrap: anywhere``, ``word-break: break-all``), and no word of prose, heading or table
  header is split over two lines (only code may break mid-token);
- the system's color scheme is followed;
- axe-core (from npm, installed by scripts/test.sh) finds no "serious" or "critical" violation.

The snippets name ``[server] registry_host``, never the address the browser used, with each Copy
button inside the snippet's box.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import launch_chromium, log_in
from tests.live import run_cli
from tests.modules import write_module
from tests.providers import build_release, generate_key, public_key
from tests.test_ui import Site, network_module, start_site

AXE = Path(__file__).resolve().parents[1] / ".axe" / "node_modules" / "axe-core" / "axe.min.js"
REGISTRY_HOST = "registry.layout.test"
NETWORK = "acme/network/aws"
LONG = "acme/kubernetes-cluster-autoscaler/aws"
PROVIDER = "acme/example"
WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}
BACKGROUNDS = {"light": "rgb(255, 255, 255)", "dark": "rgb(13, 17, 23)"}

LONG_TF = """
variable "kubernetes_cluster_autoscaler_scale_down_utilization_threshold" {
  type        = map(object({ minimum_node_count = number, maximum_node_count = number }))
  description = "Node utilization level, defined as the sum of requested resources divided by capacity, below which a node can be considered for scale down by the autoscaler"
  default     = { "general-purpose-workloads-on-demand" = { minimum_node_count = 3, maximum_node_count = 12 } }
}

output "autoscaler_service_account_role_arn" {
  value       = "arn:aws:iam::123456789012:role/kubernetes-cluster-autoscaler-service-account-role"
  description = "The ARN of the IAM role the autoscaler's service account assumes through IRSA"
}
"""

LONG_README = """# Kubernetes cluster autoscaler

Installs the cluster autoscaler with sensible defaults for production node groups.

```hcl
module "kubernetes_cluster_autoscaler" {
  scale_down_utilization_threshold = { "general-purpose-workloads-on-demand" = { minimum_node_count = 3 } }
}
```

| Setting | Meaning |
|---------|---------|
| scale_down_utilization_threshold | sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 |
"""

#: what the page's layout looks like from inside: sideways scrolling, text that may break
#: anywhere where it must not, and words of prose, headings and headers split over two lines
LAYOUT_JS = """() => {
  const describe = (element) => element.tagName.toLowerCase()
    + (element.id ? "#" + element.id : "") + (element.className ? "." + String(element.className).replace(/ /g, ".") : "");
  const strict = "h1, h2, h3, h4, h5, h6, th, nav";
  const breakable = [];
  for (const container of document.querySelectorAll(strict)) {
    for (const element of [container, ...container.querySelectorAll("*")]) {
      const style = getComputedStyle(element);
      if (style.overflowWrap === "anywhere" || style.wordBreak === "break-all") {
        breakable.push(describe(element) + " in " + describe(container));
      }
    }
  }
  const split = [];
  const prose = strict + ", p, li, dt, dd, td, caption, label, button, a";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || !parent.closest(prose) || parent.closest("code, pre, .visually-hidden")) {
      continue;
    }
    for (const match of node.textContent.matchAll(/[^\\s\\/-]+[\\/-]?/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set(Array.from(range.getClientRects(), (rect) => Math.round(rect.top)));
      if (lines.size > 1) {
        split.push(match[0] + " in " + describe(parent));
      }
    }
  }
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    background: getComputedStyle(document.documentElement).backgroundColor,
    breakable,
    split,
  };
}"""

AXE_JS = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      nodes: violation.nodes.slice(0, 5).map((node) => node.target.join(" ") + ": " + node.failureSummary),
    }));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed at {AXE}: run scripts/test.sh, which installs it from npm")
    return AXE.read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Logins required, ``registry_host`` set and no ``public_url``; a module with long names and
    prose beside acme/network/aws, and the provider acme/example in two versions."""
    workdir = tmp_path_factory.mktemp("ui-layout")
    site = start_site(
        workdir, {"server": {"registry_host": REGISTRY_HOST}, "browse": {"verified_namespaces": ["acme"]}}
    )
    try:
        site.publish(NETWORK, "1.0.0", network_module(workdir / "network-1.0.0", "1.0.0"))
        site.publish(NETWORK, "1.2.0", network_module(workdir / "network"))
        deprecate(site, f"modules/{NETWORK}/1.0.0", "Subnets overlap when az_count is above three", "1.2.0")
        long_module = write_module(workdir / "long")
        (long_module / "autoscaler.tf").write_text(LONG_TF)
        (long_module / "README.md").write_text(LONG_README)
        site.publish(LONG, "10.20.30-beta.1", long_module)
        publish_provider(site, workdir)
        deprecate(site, f"providers/{PROVIDER}/1.0.0", "Signs with a retired key", "1.1.0")
        yield site
    finally:
        site.stop()


def deprecate(site: Site, version_path: str, reason: str, replacement: str) -> None:
    request = Request(
        f"{site.url}/api/v1/{version_path}/deprecate",
        data=json.dumps({"reason": reason, "replacement": replacement}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {site.token}", "Content-Type": "application/json"},
    )
    with urlopen(request, timeout=30) as response:
        assert response.status == 200


def publish_provider(site: Site, workdir: Path) -> None:
    key = generate_key("rsa")
    request = Request(
        f"{site.url}/api/v1/providers/acme/keys",
        data=json.dumps({"ascii_armor": public_key(key)}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {site.token}", "Content-Type": "application/json"},
    )
    with urlopen(request, timeout=30) as response:
        assert response.status == 201
    for version in ("1.0.0", "1.1.0"):
        files = build_release(
            workdir / f"example-{version}", key, version=version,
            platforms=("linux_amd64", "linux_arm64", "darwin_arm64", "windows_amd64"),
        )  # fmt: skip
        published = run_cli(
            "provider", "publish", PROVIDER, version, str(next(iter(files.values())).parent), "--registry", site.url,
            cwd=workdir, env={"MIRROR_TOKEN": site.token},
        )  # fmt: skip
        assert published.returncode == 0, published.stderr


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


def check_page(page: Page, axe_source: str, scheme: str, where: str) -> None:
    """The layout and axe checks of the page shown."""
    layout: dict[str, Any] = page.evaluate(LAYOUT_JS)
    assert layout["scrollWidth"] <= layout["innerWidth"], (where, layout)
    assert layout["breakable"] == [], (where, layout["breakable"])
    assert layout["split"] == [], (where, layout["split"])
    assert layout["background"] == BACKGROUNDS[scheme], (where, layout["background"])
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(f"() => {{ {axe_source}\n}}")  # by DevTools, so the page's CSP still holds
    violations = page.evaluate(AXE_JS)
    assert violations == [], (where, json.dumps(violations, indent=1))


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_every_page_fits_the_width_follows_the_color_scheme_and_passes_axe(
    browser: Browser, site: Site, axe_source: str, width: str, scheme: str
):
    viewport_width, viewport_height = WIDTHS[width]
    context = browser.new_context(
        base_url=site.url, viewport={"width": viewport_width, "height": viewport_height}, color_scheme=scheme
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/login")
        expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
        check_page(page, axe_source, scheme, "login")
        log_in(page, site.token)
        pages = {
            "module list": ("/", "Modules"),
            "module page": (f"/modules/{LONG}", "kubernetes-cluster-autoscaler"),
            "module page with submodules": (f"/modules/{NETWORK}", "acme/network/aws"),
            **{
                f"module {tab} tab": (f"/modules/{tab_module}?tab={tab}", "acme/")
                for tab, tab_module in (
                    ("inputs", LONG), ("outputs", LONG), ("dependencies", NETWORK), ("resources", NETWORK),
                    ("submodules", NETWORK), ("versions", NETWORK), ("history", NETWORK),
                )
            },  # fmt: skip
            "older deprecated version, picker open": (f"/modules/{NETWORK}/1.0.0", "acme/network/aws"),
            "namespace page": ("/namespaces/acme", "acme"),
            "provider list": ("/providers", "Providers"),
            "provider page": (f"/providers/{PROVIDER}", "acme/example"),
            "deprecated provider version": (f"/providers/{PROVIDER}/1.0.0", "acme/example"),
            "404 page": ("/modules/acme/no-such/aws", "Not Found"),
            "tokens page": ("/tokens", "Tokens"),
        }
        for name, (path, heading) in pages.items():
            page.goto(path)
            expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
            if "picker open" in name:
                expect(page.locator("#deprecated-banner")).to_be_visible()
                page.locator("#version-picker summary").click()
                expect(page.locator("#version-picker li").first).to_be_visible()
            check_page(page, axe_source, scheme, f"{name} at {width} in {scheme}")
    finally:
        context.close()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_snippets_name_the_registry_host_with_copy_inside_their_box(
    browser: Browser, site: Site, width: str
):
    viewport_width, viewport_height = WIDTHS[width]
    context = browser.new_context(base_url=site.url, viewport={"width": viewport_width, "height": viewport_height})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        log_in(page, site.token, f"/modules/{NETWORK}?tab=submodules")
        code = page.locator("#usage-code")
        expect(code).to_contain_text(f'source  = "{REGISTRY_HOST}/{NETWORK}"')  # not 127.0.0.1:PORT
        expect(page.locator("#submodules")).to_contain_text(f"{REGISTRY_HOST}/{NETWORK}//modules/subnets")
        box = page.locator(".snippet", has=code).bounding_box()
        shown, button = code.bounding_box(), page.get_by_role("button", name="Copy").bounding_box()
        assert box is not None and shown is not None and button is not None
        assert 0 <= box["x"] and box["x"] + box["width"] <= viewport_width, box
        for inner in (shown, button):  # the button in the snippet's box, beside the code, never over it
            assert box["x"] <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"], (box, inner)
            assert box["y"] <= inner["y"] and inner["y"] + inner["height"] <= box["y"] + box["height"], (box, inner)
        assert shown["x"] + shown["width"] <= button["x"], (shown, button)
        page.goto(f"/providers/{PROVIDER}")
        expect(page.locator("#usage-code")).to_contain_text(f'source  = "{REGISTRY_HOST}/{PROVIDER}"')
        expect(page.locator("#mirror-code")).to_contain_text(f'url = "https://{REGISTRY_HOST}/v1/mirror/"')
    finally:
        context.close()
