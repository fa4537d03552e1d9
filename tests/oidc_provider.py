"""A real OpenID Provider for the tests: ``oidc-provider`` from npm, run by node (``tests/oidc/provider.mjs``).

``scripts/test.sh`` installs the pinned package in ``.oidc/`` (and a node in ``.oidc/bin/`` when
the system's is older than 20.18, which the package needs). A missing node or ``.oidc/`` fails
the test that needs the provider, with a message saying to run that script: sign-in through
OpenID Connect that was never tested must not pass silently.

::

    with run_oidc_provider(tmp_path, clients=[oidc_client("mirror", SECRET, [redirect_uri])],
                           accounts={"alice": {"email": "alice@example.test", "groups": ["ops"]}}) as op:
        op.issuer                       # http://127.0.0.1:PORT, the discovery document below it
        page.goto(the relying party's login URL)
        sign_in_at_provider(page, "alice")
        page.wait_for_url(...)          # back at the relying party

The provider's screens are oidc-provider's development ones: a sign-in form (inputs labelled
"Login" and "Password", button "Sign-in"; any password, the login is an account's key; an unknown
login shows the form again with an alert "Unknown login: no such account.") and a consent screen
(button "Continue") the first time a client asks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.live import stop_process

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "oidc" / "provider.mjs"
PACKAGE = ROOT / ".oidc" / "node_modules" / "oidc-provider" / "package.json"
#: the node scripts/test.sh installs from npm when the system's is older than oidc-provider needs
LOCAL_NODE = ROOT / ".oidc" / "bin" / "node"
#: seconds to wait for the provider's READY line (it generates an RSA key at start)
START_TIMEOUT = 20.0


@dataclass
class Provider:
    """A running provider: its issuer (the discovery document is below it) and its process."""

    issuer: str
    process: subprocess.Popen
    stdout_path: Path
    stderr_path: Path

    def logs(self) -> str:
        """What the provider wrote on stderr (warnings, errors of failed requests)."""
        return self.stderr_path.read_text(errors="replace")

    def discovery(self) -> dict[str, Any]:
        """The provider's ``/.well-known/openid-configuration``."""
        with urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=10) as response:
            return json.load(response)


def oidc_client(
    client_id: str,
    client_secret: str,
    redirect_uris: Sequence[str],
    *,
    token_endpoint_auth_method: str = "client_secret_basic",
    **metadata: Any,
) -> dict[str, Any]:
    """One client's registration (code flow; any other client metadata oidc-provider knows as keywords)."""
    return {
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uris": list(redirect_uris),
        "token_endpoint_auth_method": token_endpoint_auth_method,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        **metadata,
    }


def _node() -> str:
    """The node to run the provider with (``.oidc/bin/node`` when there is one, else the system's);
    fails the test when there is none or oidc-provider is not installed."""
    node = str(LOCAL_NODE) if os.access(LOCAL_NODE, os.X_OK) else shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: OpenID Connect sign-in is tested against a real provider "
            "(oidc-provider from npm). Run scripts/test.sh, which installs npm and node."
        )
    if not PACKAGE.is_file():
        pytest.fail(
            f"oidc-provider is not installed in {PACKAGE.parents[2]}: OpenID Connect sign-in is tested "
            "against a real provider. Run scripts/test.sh, which installs it."
        )
    return node


@contextmanager
def run_oidc_provider(
    tmp_path: Path,
    *,
    clients: Sequence[Mapping[str, Any]],
    accounts: Mapping[str, Mapping[str, Any]],
    hostname: str = "127.0.0.1",
    timeout: float = START_TIMEOUT,
) -> Iterator[Provider]:
    """Start a provider with ``clients`` (see ``oidc_client``) and ``accounts`` (login -> claims:
    ``email``, ``name``, ``preferred_username``, ``groups`` or any other; ``sub`` is the login unless
    given, ``email_verified`` true unless given) on a free port of 127.0.0.1, and stop it at the end.

    The issuer is ``http://<hostname>:PORT``; ``hostname="localhost"`` puts the provider on another
    site than a relying party on 127.0.0.1 (as a real one would be), so that cookies with
    ``SameSite=Strict`` are not sent on the redirect back from it."""
    node = _node()
    workdir = tmp_path / f"oidc-provider-{secrets.token_hex(4)}"
    workdir.mkdir()
    config_path = workdir / "config.json"
    config_path.write_text(
        json.dumps({"port": 0, "hostname": hostname, "clients": list(clients), "accounts": dict(accounts)})
    )
    stdout_path, stderr_path = workdir / "stdout.log", workdir / "stderr.log"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [node, str(SCRIPT), str(config_path)], stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=ROOT
        )
    try:
        issuer = _wait_ready(process, stdout_path, stderr_path, timeout)
        yield Provider(issuer=issuer, process=process, stdout_path=stdout_path, stderr_path=stderr_path)
    finally:
        stop_process(process, timeout=5)


def _wait_ready(process: subprocess.Popen, stdout_path: Path, stderr_path: Path, timeout: float) -> str:
    """The issuer of the ``READY <issuer>`` line; fails with the provider's stderr when it exits or
    takes longer than ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for line in stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return line.split(" ", 1)[1].strip()
        if process.poll() is not None:
            pytest.fail(
                f"the OpenID Provider exited with {process.returncode} before it was ready:\n"
                + stderr_path.read_text(errors="replace")
            )
        if time.monotonic() > deadline:
            stop_process(process, timeout=5)
            pytest.fail(
                f"the OpenID Provider was not ready after {timeout}s:\n" + stderr_path.read_text(errors="replace")
            )
        time.sleep(0.05)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def sign_in_at_provider(page: Page, login: str, password: str = "test", *, timeout: float = 10.0) -> None:
    """Sign in as ``login`` on the provider's screen ``page`` is at (or being sent to), accept the
    consent screen if one comes, and return once the browser has left the provider's origin (the
    caller then waits for its own URL). Fails at once when the provider refuses the login (no such
    account), and with the page's address and text when the browser is not at a screen of the
    provider's or still at the provider after ``timeout`` seconds."""
    ms = timeout * 1000
    login_box = page.get_by_label("Login", exact=True)
    consent = page.get_by_role("button", name="Continue")
    try:
        login_box.or_(consent).first.wait_for(timeout=ms)
        provider = _origin(page.url)
        if login_box.is_visible():
            login_box.fill(login)
            page.get_by_label("Password", exact=True).fill(password)
            with page.expect_navigation(timeout=ms):
                page.get_by_role("button", name="Sign-in").click()
            refused = page.get_by_role("alert")
            if _origin(page.url) == provider and refused.is_visible():
                pytest.fail(f"the OpenID Provider refused the login {login!r}: {refused.inner_text()}")
        if _origin(page.url) == provider and consent.is_visible():
            with page.expect_navigation(timeout=ms):
                consent.click()
        page.wait_for_url(lambda url: _origin(url) != provider, timeout=ms)
    except PlaywrightTimeoutError:
        try:
            text = page.inner_text("body", timeout=1000)
        except PlaywrightError:
            text = "(no page text)"
        pytest.fail(f"signing in as {login!r} at the OpenID Provider did not finish in {timeout}s: {page.url}\n{text}")


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``code_verifier`` and its S256 ``code_challenge``."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def jwt_payload(token: str) -> dict[str, Any]:
    """The payload of a JWT (an ID token), decoded without checking its signature."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


__all__ = [
    "Provider",
    "jwt_payload",
    "oidc_client",
    "pkce_pair",
    "run_oidc_provider",
    "sign_in_at_provider",
]
