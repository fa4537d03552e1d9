"""A real headless Chromium for the web UI's tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser downloads are never used (``playwright install`` needs the network).
A missing Chromium fails the tests that need it, with a message saying how to install it: a UI
that was never tested must not pass silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The system Chromium; fails the test when there is none."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.fail(
            "Chromium is not installed: the web UI is tested in a real headless browser. "
            "Install Debian's chromium (apt-get install chromium), or run scripts/test.sh, which does."
        )
    return path


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """One headless Chromium, closed at the end of the block."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, token: str, next_path: str = "/") -> None:
    """Log in through the form, as a person would, and wait to be sent on to ``next_path``."""
    page.goto(f"/login?next={quote(next_path, safe='')}")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: not url.split("?")[0].endswith("/login"))
