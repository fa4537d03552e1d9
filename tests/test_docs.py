"""The documentation: the site builds with ``mkdocs build --strict`` (offline: no plug-in that
fetches anything), every ``mirror/...`` path the docs name exists, the events page lists the
whole event catalogue, and the README stays short."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: a path into the package as the docs write it: ``mirror/storage/protocols.py``, ``mirror/cli/``
PACKAGE_PATH = re.compile(r"(?<![\w./-])mirror/[\w./-]*[\w/]")

@pytest.mark.slow  # the build takes two to three seconds
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "site"
    # the generated pages are filled in (their markers replaced)
    config_page = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "MIRROR_SERVER_DATA_DIR" in config_page and "[downloads]" in config_page
    api_page = (site / "http-api" / "index.html").read_text(encoding="utf-8")
    assert "/v1/modules/{namespace}/{name}/{provider}/versions" in api_page
    plugins_page = (site / "plugins" / "index.html").read_text(encoding="utf-8")
    assert "put_file" in plugins_page and "publish_version" in plugins_page
    for page in site.rglob("*.html"):
        assert "<!-- generated:" not in page.read_text(encoding="utf-8"), page


def test_every_package_path_the_docs_name_exists() -> None:
    missing = []
    for page in sorted([*DOCS.glob("*.md"), ROOT / "README.md"]):
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for path in PACKAGE_PATH.findall(line):
                if not (ROOT / path).exists():
                    missing.append(f"{page.relative_to(ROOT)}:{number}: {path}")
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


def test_the_events_page_lists_every_event_type() -> None:
    from mirror.domain import events

    types = {value for name, value in vars(events).items() if name.isupper() and isinstance(value, str) and "." in value}
    assert types, "no event types found in mirror.domain.events"
    page = (DOCS / "events.md").read_text(encoding="utf-8")
    assert sorted(kind for kind in types if f"`{kind}`" not in page) == []


def test_the_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the rest belongs in docs/"
