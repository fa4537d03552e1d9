"""OpenID Connect sign-in in process: ``/oidc/login`` and ``/oidc/callback`` against the stand-in
provider of ``tests/test_oidc_rp.py`` over HTTP, the sessions they make (the cookie, what a
session may do, who its changes are recorded as), sign-out, the ``/sessions`` page and
``/api/v1/sessions``, and every refusal of the callback as an HTML page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from mirror.app.build import create_app
from mirror.config import load_config
from mirror.domain.sessions import hash_secret
from mirror.http.keys import STORE
from tests.test_oidc_rp import CLIENT, StandIn

PUBLIC = "http://registry.example.test"


@pytest.fixture
async def provider(aiohttp_server):
    stand_in = StandIn()
    server = await aiohttp_server(stand_in.app())
    stand_in.issuer = str(server.make_url("")).rstrip("/")
    return stand_in


@pytest.fixture
async def site(provider, aiohttp_client, tmp_path: Path):
    config = tmp_path / "mirror.toml"
    config.write_text(
        f"""[server]
public_url = "{PUBLIC}"
spool_dir = "{tmp_path / 'spool'}"
[metadata]
path = "{tmp_path / 'mirror.db'}"
[blobs]
path = "{tmp_path / 'blobs'}"
[events]
log_path = ""
[oidc]
issuer = "{provider.issuer}"
client_id = "{CLIENT}"
display_name = "Stand-in"
[[oidc.grants]]
group = "platform"
namespace = "platform"
scope = "publish"
[[oidc.grants]]
group = "admins"
namespace = "*"
scope = "admin"
"""
    )
    client = await aiohttp_client(create_app(load_config(config, {"MIRROR_OIDC_CLIENT_SECRET": "s3cret"})))
    return client


async def _start(site) -> dict[str, str]:
    """``/oidc/login``: the provider's authorization request's parameters."""
    response = await site.get("/oidc/login?next=/providers", allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith("http://127.0.0.1") and "/auth?" in location
    cookie = response.cookies["mirror_oidc"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/oidc/"
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def _sign_in(site, provider: StandIn, **claims) -> str:
    """A whole sign-in; the new session's secret."""
    params = await _start(site)
    assert params["redirect_uri"] == f"{PUBLIC}/oidc/callback"
    provider.claims = {"nonce": params["nonce"], **claims}
    response = await site.get(f"/oidc/callback?code=c1&state={params['state']}", allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/providers"
    cookie = response.cookies["mirror_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    return cookie.value


async def test_a_sign_in_makes_a_session_that_pages_and_changes_use(site, provider):
    secret = await _sign_in(site, provider, email="ana@example.com", name="Ana Lima", groups=["platform"])
    assert secret.startswith("mirrorsession_")
    stored = await site.server.app[STORE].find_session(hash_secret(secret))
    assert stored is not None and stored.person == "ana@example.com" and stored.subject == "u-1"
    page = await site.get("/providers")
    text = await page.text()
    assert page.status == 200 and "Ana Lima" in text and 'id="sessions-link"' in text and "no-access" not in text
    login = await site.get("/login")
    assert "Sign in with Stand-in" in await login.text()


async def test_a_person_no_rule_matches_is_told_so(site, provider):
    await _sign_in(site, provider, email="bo@example.com", groups=["visitors"])
    page = await site.get("/modules/platform/x/aws")
    text = await page.text()
    assert page.status == 403 and 'id="no-access"' in text and "bo@example.com" in text


async def test_sign_out_revokes_the_session_in_the_store(site, provider):
    secret = await _sign_in(site, provider, email="ana@example.com", groups=["platform"])
    response = await site.post("/logout", allow_redirects=False)
    assert response.status == 303
    stored = await site.server.app[STORE].find_session(hash_secret(secret))
    assert stored is not None and stored.revoked_at is not None
    site.session.cookie_jar.clear()
    again = await site.get("/providers", headers={"Cookie": f"mirror_session={secret}"}, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"].startswith("/login")


async def test_the_sessions_page_and_api(site, provider):
    first = await _sign_in(site, provider, email="root@example.com", groups=["admins"])
    site.session.cookie_jar.clear()
    second = await _sign_in(site, provider, email="root@example.com", groups=["admins"])
    page = await site.get("/sessions")
    assert page.status == 200 and (await page.text()).count("<tr") == 3  # a header row and two sessions
    mine = await site.server.app[STORE].find_session(hash_secret(first))
    cross = await site.post(f"/sessions/{mine.id}/revoke", headers={"Origin": "https://evil.example.com"})
    assert cross.status == 403
    ended = await site.post(f"/sessions/{mine.id}/revoke", allow_redirects=False)
    assert ended.status == 303 and ended.headers["Location"] == "/sessions"  # another browser's: this one stays
    # the API: registry-wide admins only; a session's secret is no API credential of a lesser person
    listed = await site.get("/api/v1/sessions", headers={"Authorization": f"Bearer {second}"})
    body = await listed.json()
    states = {s["id"]: (s["state"], s["current"]) for s in body["sessions"]}
    assert listed.status == 200 and states.pop(mine.id) == ("revoked", False)
    ((current, (state, is_current)),) = states.items()
    assert state == "active" and is_current and "secret_hash" not in body["sessions"][0]
    gone = await site.delete(f"/api/v1/sessions/{current}", headers={"Authorization": f"Bearer {second}"})
    assert gone.status == 204
    again = await site.delete(f"/api/v1/sessions/{current}", headers={"Authorization": f"Bearer {second}"})
    assert again.status == 401  # it was this very session


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("error=access_denied&error_description=The+user+cancelled", 403, "access_denied: The user cancelled"),
        ("code=c1&state=WRONG", 400, "not for the sign-in this browser started"),
        ("state={state}", 400, "no authorization code"),
        ("code=c1&state={state}&iss=https://evil.example.com", 400, "another OpenID Provider"),
    ],
)
async def test_a_callback_that_fails_a_check_is_an_error_page(site, provider, query, status, message):
    params = await _start(site)
    provider.claims = {"nonce": params["nonce"]}
    response = await site.get("/oidc/callback?" + query.format(state=params["state"]), allow_redirects=False)
    text = await response.text()
    assert response.status == status and response.content_type == "text/html" and message in text
    assert "mirror_session" not in response.cookies


async def test_a_callback_without_a_sign_in_under_way_or_with_a_bad_id_token(site, provider):
    response = await site.get("/oidc/callback?code=c1&state=s")
    assert response.status == 400 and "no sign-in under way" in await response.text()
    params = await _start(site)
    provider.claims = {"nonce": "not-this-sign-ins"}
    response = await site.get(f"/oidc/callback?code=c1&state={params['state']}")
    assert response.status == 502 and "nonce" in await response.text()
    assert await site.server.app[STORE].list_sessions() == []


async def test_without_oidc_the_routes_are_not_found_pages(registry):
    for path in ("/oidc/login", "/oidc/callback?code=x&state=y"):
        response = await registry.client.get(path)
        assert response.status == 404 and "not configured" in await response.text()
    login = await registry.client.get("/login")
    assert "oidc-login" not in await login.text()


async def test_terraform_login_for_a_person_takes_a_grant_of_theirs(site, provider):
    oauth = {
        "client_id": "terraform-cli", "redirect_uri": "http://localhost:10000/login", "response_type": "code",
        "code_challenge": "A" * 43, "code_challenge_method": "S256", "state": "xyz",
    }  # fmt: skip
    await _sign_in(site, provider, email="bo@example.com", groups=["visitors"])
    page = await site.get("/oauth/authorize", params=oauth)
    assert page.status == 200 and "with no access to any namespace" in await page.text()
    refused = await site.post("/oauth/authorize", data={**oauth, "decision": "allow"}, allow_redirects=False)
    assert refused.status == 403 and "has no grant on this registry" in await refused.text()
    site.session.cookie_jar.clear()
    await _sign_in(site, provider, email="ana@example.com", groups=["platform"])
    beyond = await site.post(
        "/oauth/authorize", data={**oauth, "decision": "allow", "namespace": "other", "scope": "read"}, allow_redirects=False
    )
    assert beyond.status == 403
    allowed = await site.post("/oauth/authorize", data={**oauth, "decision": "allow"}, allow_redirects=False)
    assert allowed.status == 303 and allowed.headers["Location"].startswith("http://localhost:10000/login?code=")
