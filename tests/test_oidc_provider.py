"""The tests' OpenID Provider itself (``tests/oidc_provider.py``): its discovery document, and a whole
authorization-code flow with PKCE through its sign-in and consent screens in a real headless
Chromium, to a small relying party here that exchanges the code at the token endpoint.

Marked ``browser`` as a whole: like the web UI's tests, it needs what ``scripts/test.sh`` installs
beside Python (node and oidc-provider in ``.oidc/``, Chromium).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import parse_qs, quote, urlencode, urlsplit
from urllib.request import Request, urlopen

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import launch_chromium
from tests.oidc_provider import jwt_payload, oidc_client, pkce_pair, run_oidc_provider, sign_in_at_provider

pytestmark = pytest.mark.browser

CLIENT_ID = "mirror-registry"
CLIENT_SECRET = "a-client-secret-for-the-tests-only"
ALICE = {
    "email": "alice@example.test",
    "name": "Alice Example",
    "preferred_username": "alice",
    "groups": ["platform", "registry-admins"],
}
SCOPE = "openid profile email groups"


class RelyingParty:
    """A redirect URI (``/cb``) on a free port of 127.0.0.1 that records the query of every request to it."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        received = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                if url.path == "/cb":
                    received.append({key: values[0] for key, values in parse_qs(url.query).items()})
                body = b"<!doctype html><title>Back</title><p>Back at the relying party</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RelyingParty:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_discovery_document(tmp_path: Path) -> None:
    client = oidc_client(CLIENT_ID, CLIENT_SECRET, ["http://127.0.0.1:1/cb"])
    with run_oidc_provider(tmp_path, clients=[client], accounts={"alice": ALICE}) as provider:
        assert provider.issuer.startswith("http://127.0.0.1:")
        discovery = provider.discovery()
    assert discovery["issuer"] == provider.issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        assert discovery[endpoint].startswith(provider.issuer + "/"), endpoint
    assert "S256" in discovery["code_challenge_methods_supported"]
    assert {"openid", "profile", "email", "groups"} <= set(discovery["scopes_supported"])
    assert "client_secret_basic" in discovery["token_endpoint_auth_methods_supported"]
    assert {"email", "name", "groups"} <= set(discovery["claims_supported"])


def _post_form(url: str, form: dict[str, str], *, client_id: str, client_secret: str) -> dict:
    basic = base64.b64encode(f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()).decode()
    request = Request(
        url,
        data=urlencode(form).encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urlopen(request, timeout=10) as response:
        return json.load(response)


def test_authorization_code_flow_with_pkce(tmp_path: Path, page: Page) -> None:
    """Signed in at a provider on another site ("localhost") than the relying party (127.0.0.1)
    (after an unknown login it refused), the code comes back with the state and the issuer, and
    buys an ID token holding the account's claims, with the code verifier only; a request without
    a PKCE challenge is refused."""
    with RelyingParty() as rp:
        client = oidc_client(CLIENT_ID, CLIENT_SECRET, [rp.redirect_uri])
        with run_oidc_provider(tmp_path, clients=[client], accounts={"alice": ALICE}, hostname="localhost") as provider:
            discovery = provider.discovery()
            verifier, challenge = pkce_pair()
            state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            request = {
                "client_id": CLIENT_ID,
                "redirect_uri": rp.redirect_uri,
                "response_type": "code",
                "scope": SCOPE,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
            page.goto(f"{discovery['authorization_endpoint']}?{urlencode(request)}")
            with pytest.raises(pytest.fail.Exception, match="refused the login 'mallory': Unknown login"):
                sign_in_at_provider(page, "mallory")
            sign_in_at_provider(page, "alice")
            page.wait_for_url(f"{rp.redirect_uri}?**")

            (callback,) = rp.queries
            assert callback["state"] == state
            assert callback["iss"] == provider.issuer
            with pytest.raises(HTTPError) as no_verifier:
                _post_form(
                    discovery["token_endpoint"],
                    {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": rp.redirect_uri},
                    client_id=CLIENT_ID,
                    client_secret=CLIENT_SECRET,
                )
            assert no_verifier.value.code == 400
            tokens = _post_form(
                discovery["token_endpoint"],
                {
                    "grant_type": "authorization_code",
                    "code": callback["code"],
                    "redirect_uri": rp.redirect_uri,
                    "code_verifier": verifier,
                },
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
            )
            claims = jwt_payload(tokens["id_token"])
            assert claims["iss"] == provider.issuer
            assert claims["aud"] == CLIENT_ID
            assert claims["nonce"] == nonce
            assert claims["sub"] == "alice"
            assert claims["email"] == ALICE["email"]
            assert claims["email_verified"] is True
            assert claims["name"] == ALICE["name"]
            assert claims["preferred_username"] == "alice"
            assert claims["groups"] == ALICE["groups"]

            with urlopen(
                Request(discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}),
                timeout=10,
            ) as response:
                userinfo = json.load(response)
            assert userinfo["sub"] == "alice" and userinfo["groups"] == ALICE["groups"]

            # PKCE is required of a confidential client too: no challenge, no code
            without_pkce = {key: value for key, value in request.items() if not key.startswith("code_challenge")}
            page.goto(f"{discovery['authorization_endpoint']}?{urlencode(without_pkce)}")
            page.wait_for_url(f"{rp.redirect_uri}?**")
            assert rp.queries[-1]["error"] == "invalid_request"
            assert "PKCE" in rp.queries[-1]["error_description"]
