"""``terraform login``'s endpoints in process: the authorize page and its refusals, the code,
PKCE, and the token endpoint's refusals (the real ``terraform login`` is in test_terraform_login)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from mirror.http.keys import STORE
from mirror.services import login as login_service
from mirror.services.tokens import create_token

REDIRECT = "http://localhost:10003/login"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(challenge: str, **changes: str | None) -> dict[str, str]:
    params = {
        "client_id": "terraform-cli",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "state": "a-state-1234",
    }
    params.update(changes)  # type: ignore[arg-type]
    return {name: value for name, value in params.items() if value is not None}


async def sign_in(registry, challenge: str, token: str, **fields: str):
    form = authorize_params(challenge) | {"token": token, **fields}
    return await registry.client.post("/oauth/authorize", data=form, allow_redirects=False)


async def code_for(registry, challenge: str, token: str, **fields: str) -> str:
    response = await sign_in(registry, challenge, token, **fields)
    assert response.status == 303, await response.text()
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["a-state-1234"]
    return query["code"][0]


async def exchange(registry, code: str, verifier: str, **changes: str):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "terraform-cli",
        "code_verifier": verifier,
    } | changes
    return await registry.client.post("/oauth/token", data=form)


async def test_the_whole_flow_issues_a_token_within_the_grant_with_an_expiry(registry) -> None:
    record, signing = await create_token(registry.app[STORE], "acme", "publish", "laptop")
    verifier, challenge = pkce()
    page = await registry.client.get("/oauth/authorize", params=authorize_params(challenge))
    assert page.status == 200 and page.content_type == "text/html"
    text = await page.text()
    assert 'name="token"' in text and "a-state-1234" in text
    assert "form-action 'self' http://localhost:10003" in page.headers["Content-Security-Policy"]

    code = await code_for(registry, challenge, signing, scope="read")
    answer = await exchange(registry, code, verifier)
    assert answer.status == 200, await answer.text()
    assert answer.headers["Cache-Control"] == "no-store"
    body = await answer.json()
    assert body["token_type"] == "bearer" and body["access_token"].startswith("mirror_")
    assert 90 * 86400 - 5 <= body["expires_in"] <= 90 * 86400
    listed = await registry.client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {signing}"})
    made = [token for token in (await listed.json())["tokens"] if token["id"] != record.id]
    assert len(made) == 1 and made[0]["namespace"] == "acme" and made[0]["scope"] == "read"
    assert made[0]["created_by"] == record.id and made[0]["description"].startswith("terraform login 20")
    assert made[0]["expires_at"]
    new = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await registry.client.get("/v1/modules/acme/x/aws/versions", headers=new)).status == 404  # read ok
    assert (await registry.client.get("/v1/modules/other/x/aws/versions", headers=new)).status == 403


async def test_a_ui_session_confirms_without_pasting_a_token(registry) -> None:
    _, signing = await create_token(registry.app[STORE], "acme", "read")
    verifier, challenge = pkce()
    registry.client.session.cookie_jar.update_cookies({"mirror_token": signing})
    page = await registry.client.get("/oauth/authorize", params=authorize_params(challenge))
    assert "Signed in with the token" in await page.text()
    code = await code_for(registry, challenge, "")
    assert (await exchange(registry, code, verifier)).status == 200


async def test_deny_goes_back_to_terraform_with_access_denied(registry) -> None:
    _, challenge = pkce()
    response = await sign_in(registry, challenge, "", decision="deny")
    assert response.status == 303
    assert parse_qs(urlsplit(response.headers["Location"]).query) == {"error": ["access_denied"], "state": ["a-state-1234"]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"client_id": "other-cli"}, "client_id"),
        ({"client_id": None}, "client_id is required"),
        ({"redirect_uri": "https://evil.example/login"}, "redirect_uri"),
        ({"redirect_uri": "http://evil.example:10003/login"}, "redirect_uri"),
        ({"redirect_uri": "http://localhost:9999/login"}, "redirect_uri"),
        ({"redirect_uri": "http://localhost:10010/login"}, "redirect_uri"),
        ({"redirect_uri": "http://localhost:10003/elsewhere"}, "redirect_uri"),
        ({"redirect_uri": "http://user@localhost:10003/login"}, "redirect_uri"),
        ({"redirect_uri": "http://localhost:10003/login?x=1"}, "redirect_uri"),
        ({"redirect_uri": "http://localhost.evil.example:10003/login"}, "redirect_uri"),
        ({"code_challenge_method": "plain"}, "S256"),
        ({"code_challenge_method": None}, "code_challenge_method is required"),
        ({"code_challenge": "short"}, "code_challenge"),
        ({"response_type": "token"}, "response_type"),
        ({"state": None}, "state is required"),
        ({"state": "x" * 501}, "state"),
        ({"state": "bad\nstate"}, "state"),
    ],
)
async def test_bad_authorize_requests_get_an_error_page_and_no_redirect(registry, changes, message) -> None:
    _, signing = await create_token(registry.app[STORE], "*", "admin")
    _, challenge = pkce()
    params = authorize_params(challenge, **changes)
    page = await registry.client.get("/oauth/authorize", params=params, allow_redirects=False)
    assert page.status == 400 and page.content_type == "text/html"
    assert message in await page.text()
    posted = await registry.client.post("/oauth/authorize", data=params | {"token": signing}, allow_redirects=False)
    assert posted.status == 400 and "Location" not in posted.headers


async def test_a_repeated_parameter_is_refused(registry) -> None:
    _, challenge = pkce()
    query = "&".join(f"{name}={value}" for name, value in authorize_params(challenge).items())
    page = await registry.client.get(f"/oauth/authorize?{query}&state=other")
    assert page.status == 400 and "state is required" in await page.text()


async def test_the_127_0_0_1_loopback_is_accepted() -> None:
    _, challenge = pkce()
    checked = login_service.check_authorize(authorize_params(challenge, redirect_uri="http://127.0.0.1:10000/cb"))
    assert checked.redirect_uri == "http://127.0.0.1:10000/cb"


async def test_sign_in_refusals_show_the_form_again(registry) -> None:
    _, signing = await create_token(registry.app[STORE], "acme", "publish")
    _, challenge = pkce()
    missing = await sign_in(registry, challenge, "")
    assert missing.status == 401 and "Enter a token." in await missing.text()
    wrong = await sign_in(registry, challenge, "mirror_nope")
    assert wrong.status == 401 and "not valid" in await wrong.text()
    for fields in ({"namespace": "other"}, {"namespace": "*"}, {"scope": "admin"}):
        beyond = await sign_in(registry, challenge, signing, **fields)
        assert beyond.status == 403 and "Location" not in beyond.headers, fields
    bad = await sign_in(registry, challenge, signing, namespace="no spaces")
    assert bad.status == 400


async def test_a_post_from_another_site_is_refused(registry) -> None:
    _, signing = await create_token(registry.app[STORE], "acme", "publish")
    _, challenge = pkce()
    response = await registry.client.post(
        "/oauth/authorize", data=authorize_params(challenge) | {"token": signing},
        headers={"Origin": "https://evil.example"}, allow_redirects=False,
    )  # fmt: skip
    assert response.status == 403 and "Location" not in response.headers


async def _oauth_error(response, error: str, words: str) -> None:
    assert response.status == 400
    body = await response.json()
    assert body["error"] == error and words in body["error_description"]
    assert body["errors"] == [body["error_description"]]


async def test_a_code_is_usable_once_and_its_token_is_revoked_on_reuse(registry) -> None:
    _, signing = await create_token(registry.app[STORE], "acme", "read")
    verifier, challenge = pkce()
    code = await code_for(registry, challenge, signing)
    first = await (await exchange(registry, code, verifier)).json()
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    assert (await registry.client.get("/api/v1/tokens", headers=headers)).status == 200
    await _oauth_error(await exchange(registry, code, verifier), "invalid_grant", "already used")
    assert (await registry.client.get("/api/v1/tokens", headers=headers)).status == 401


async def test_token_endpoint_refusals(registry) -> None:
    _, signing = await create_token(registry.app[STORE], "acme", "read")
    verifier, challenge = pkce()
    code = await code_for(registry, challenge, signing)
    await _oauth_error(await exchange(registry, code, pkce()[0]), "invalid_grant", "code_verifier")
    await _oauth_error(await exchange(registry, code, "short"), "invalid_grant", "code_verifier")
    await _oauth_error(
        await exchange(registry, code, verifier, redirect_uri="http://localhost:10004/login"), "invalid_grant", "redirect_uri"
    )
    await _oauth_error(await exchange(registry, code, verifier, client_id="other"), "invalid_client", "client_id")
    await _oauth_error(await exchange(registry, code, verifier, grant_type="password"), "unsupported_grant_type", "grant_type")
    await _oauth_error(await exchange(registry, code + "x", verifier), "invalid_grant", "not one this registry issued")
    await _oauth_error(await exchange(registry, "garbage", verifier), "invalid_grant", "not one this registry issued")
    await _oauth_error(await exchange(registry, "", verifier), "invalid_request", "code is required")
    as_json = await registry.client.post("/oauth/token", json={"code": code})
    assert as_json.status == 400 and (await as_json.json())["error"] == "invalid_request"
    # none of those used the code up
    assert (await exchange(registry, code, verifier)).status == 200


async def test_an_expired_code_is_refused(registry) -> None:
    record, _ = await create_token(registry.app[STORE], "acme", "read")
    verifier, challenge = pkce()
    codes = login_service.Codes(await login_service.code_key(registry.app[STORE]))
    request = login_service.check_authorize(authorize_params(challenge))
    code = codes.issue(request, record, "acme", "read", now=time.time() - login_service.CODE_SECONDS - 1)
    await _oauth_error(await exchange(registry, code, verifier), "invalid_grant", "expired")
    fresh = codes.issue(request, record, "acme", "read", now=time.time())
    assert (await exchange(registry, fresh, verifier)).status == 200  # the same key: issued as the server does


async def test_a_code_beyond_the_signing_tokens_grant_or_life_is_refused(registry) -> None:
    store = registry.app[STORE]
    record, _ = await create_token(store, "acme", "read")
    verifier, challenge = pkce()
    codes = login_service.Codes(await login_service.code_key(store))
    request = login_service.check_authorize(authorize_params(challenge))
    beyond = codes.issue(request, record, "acme", "admin", now=time.time())
    await _oauth_error(await exchange(registry, beyond, verifier), "invalid_grant", "cannot make")
    elsewhere = codes.issue(request, record, "other", "read", now=time.time())
    await _oauth_error(await exchange(registry, elsewhere, verifier), "invalid_grant", "cannot make")
    revoked = codes.issue(request, record, "acme", "read", now=time.time())
    assert await store.revoke_token(record.id)
    await _oauth_error(await exchange(registry, revoked, verifier), "invalid_grant", "no longer valid")


async def test_the_new_token_never_outlives_the_signing_one(registry) -> None:
    _, signing = await create_token(registry.app[STORE], "acme", "read", expires_in=600)
    verifier, challenge = pkce()
    code = await code_for(registry, challenge, signing)
    body = await (await exchange(registry, code, verifier)).json()
    assert 0 < body["expires_in"] <= 600


async def test_another_key_does_not_make_valid_codes(registry) -> None:
    record, _ = await create_token(registry.app[STORE], "acme", "read")
    verifier, challenge = pkce()
    forged = login_service.Codes(b"k" * 32).issue(
        login_service.check_authorize(authorize_params(challenge)), record, "acme", "read", now=time.time()
    )
    await _oauth_error(await exchange(registry, forged, verifier), "invalid_grant", "not one this registry issued")
