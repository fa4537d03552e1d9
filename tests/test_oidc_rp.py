"""The OpenID Connect relying party (``mirror.services.oidc``) against a stand-in provider over
HTTP that answers what each test sets: every check of the ID token, the discovery document and
the bounds on what a provider sends. The whole sign-in through a real OpenID Provider and a
browser is in ``tests/test_oidc_signin.py``."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from mirror.domain.errors import UpstreamError, UpstreamUnavailable
from mirror.domain.oidc import GrantRule, claim_values, grants_for, parse_rules, person_of
from mirror.domain.sessions import Grant
from mirror.services.oidc import MAX_RESPONSE_BYTES, Pending, RelyingParty

CLIENT = "mirror-ui"
SECRET = "s3cret/with+chars"


class StandIn:
    """A provider whose answers the test changes: ``claims`` of the next ID token, its ``key``
    and ``alg``, and raw overrides of any endpoint."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self.alg = "RS256"
        self.claims: dict[str, Any] = {}
        self.overrides: dict[str, web.Response] = {}
        self.token_requests: list[tuple[dict[str, str], str | None]] = []
        self.userinfo: dict[str, Any] | None = None
        self.jwks_fetches = 0
        self.issuer = ""
        self.discovery: dict[str, Any] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/token", self._token)
        app.router.add_get("/userinfo", self._userinfo)
        return app

    async def _discovery(self, request: web.Request) -> web.StreamResponse:
        if "discovery" in self.overrides:
            return self.overrides["discovery"]
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/auth",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                **self.discovery,
            }
        )

    async def _jwks(self, request: web.Request) -> web.StreamResponse:
        self.jwks_fetches += 1
        if "jwks" in self.overrides:
            return self.overrides["jwks"]
        return web.json_response({"keys": [self.key.as_dict(private=False)]})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = dict(await request.post())
        self.token_requests.append(({k: str(v) for k, v in form.items()}, request.headers.get("Authorization")))
        if "token" in self.overrides:
            return self.overrides["token"]
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT, "sub": "u-1", "iat": now, "exp": now + 300, **self.claims}
        claims = {k: v for k, v in claims.items() if v is not None}
        header = {"alg": self.alg, "kid": self.key.kid} if self.alg != "none" else {"alg": "none"}
        if self.alg == "none":
            token = _b64(json.dumps(header)) + "." + _b64(json.dumps(claims)) + "."
        else:
            token = jwt.encode(header, claims, self.key, algorithms=[self.alg])
        return web.json_response({"access_token": "at-1", "token_type": "Bearer", "id_token": token})

    async def _userinfo(self, request: web.Request) -> web.StreamResponse:
        if self.userinfo is None or request.headers.get("Authorization") != "Bearer at-1":
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response(self.userinfo)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.fixture
async def provider(aiohttp_server):
    stand_in = StandIn()
    server = await aiohttp_server(stand_in.app())
    stand_in.issuer = str(server.make_url("")).rstrip("/")
    return stand_in


RULES = (
    GrantRule("groups", "platform", "platform", "publish"),
    GrantRule("groups", "readers", "platform", "read"),
    GrantRule("email", "root@example.com", "*", "admin"),
)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def party(provider, clock):
    async with aiohttp.ClientSession() as session:
        yield RelyingParty(
            clock=clock,
            issuer=provider.issuer,
            client_id=CLIENT,
            client_secret=SECRET,
            scopes=("openid", "email", "groups"),
            redirect_uri="http://127.0.0.1:9/oidc/callback",
            rules=RULES,
            groups_claim="groups",
            session=session,
        )


async def _sign_in(party: RelyingParty, provider: StandIn, **claims: Any):
    pending = Pending.new()
    provider.claims = {"nonce": pending.nonce, **claims}
    return await party.sign_in("code-1", pending)


async def test_a_valid_sign_in_gives_the_person_and_their_grants(party, provider):
    identity = await _sign_in(party, provider, email="ana@example.com", name="Ana", groups=["platform", "readers", "x"])
    assert (identity.subject, identity.person, identity.name) == ("u-1", "ana@example.com", "Ana")
    assert identity.grants == (Grant("platform", "publish"),)  # the highest scope per namespace
    form, authorization = provider.token_requests[-1]
    assert form["grant_type"] == "authorization_code" and form["code"] == "code-1"
    assert form["redirect_uri"] == "http://127.0.0.1:9/oidc/callback" and len(form["code_verifier"]) >= 43
    assert "client_secret" not in form
    # client_secret_basic, the id and secret form-encoded first (RFC 6749 section 2.3.1)
    user, _, password = base64.b64decode(authorization.split(" ")[1]).decode().partition(":")
    assert (user, password) == (CLIENT, "s3cret%2Fwith%2Bchars")


async def test_the_authorization_url_carries_pkce_state_and_nonce(party, provider):
    pending = Pending.new()
    url = await party.authorization_url(pending)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{provider.issuer}/auth?")
    assert params["code_challenge_method"] == "S256" and params["code_challenge"] == pending.challenge
    assert params["state"] == pending.state and params["nonce"] == pending.nonce
    assert params["scope"] == "openid email groups" and params["client_id"] == CLIENT


async def test_client_secret_post_when_the_provider_supports_only_that(party, provider):
    provider.discovery = {"token_endpoint_auth_methods_supported": ["client_secret_post"]}
    await _sign_in(party, provider)
    form, authorization = provider.token_requests[-1]
    assert authorization is None and form["client_id"] == CLIENT and form["client_secret"] == SECRET


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iss": "https://elsewhere.example.com"}, "another issuer"),
        ({"aud": "someone-else"}, "not for this client"),
        ({"aud": [CLIENT, "other"]}, "authorized party"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": int(time.time()) + 3600}, "future"),
        ({"nonce": "another"}, "nonce"),
        ({"sub": ""}, "subject"),
        ({"exp": None}, "expired"),
    ],
)
async def test_an_id_token_failing_a_check_is_refused(party, provider, claims, message):
    pending = Pending.new()
    provider.claims = {"nonce": pending.nonce, **claims}
    with pytest.raises(UpstreamError, match=message):
        await party.sign_in("code-1", pending)


async def test_unsigned_and_shared_secret_tokens_are_refused(party, provider):
    provider.alg = "none"
    with pytest.raises(UpstreamError, match="signature"):
        await _sign_in(party, provider)
    provider.alg = "HS256"
    provider.key = OctKey.import_key(SECRET.encode() * 4, parameters={"kid": "k1"})
    with pytest.raises(UpstreamError):
        await _sign_in(party, provider)


async def test_a_token_signed_by_another_key_is_refused(party, provider):
    await _sign_in(party, provider)  # the keys are cached now
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})  # same kid, other key
    with pytest.raises(UpstreamError, match="signature"):
        await _sign_in(party, provider)


async def test_a_new_key_id_fetches_the_keys_again_at_most_once_a_minute(party, provider, clock):
    await _sign_in(party, provider)
    assert provider.jwks_fetches == 1
    await _sign_in(party, provider)
    assert provider.jwks_fetches == 1
    provider.key = ECKey.generate_key("P-256", parameters={"kid": "k2", "use": "sig"})  # rotated
    provider.alg = "ES256"
    with pytest.raises(UpstreamError, match="signature"):  # a minute has not passed: no new fetch
        await _sign_in(party, provider)
    assert provider.jwks_fetches == 1
    clock.now += 61
    assert (await _sign_in(party, provider)).subject == "u-1"
    assert provider.jwks_fetches == 2


async def test_groups_come_from_userinfo_when_the_id_token_lacks_them(party, provider):
    provider.userinfo = {"sub": "u-1", "groups": ["platform"]}
    identity = await _sign_in(party, provider)
    assert identity.grants == (Grant("platform", "publish"),)
    provider.userinfo = {"sub": "somebody-else", "groups": ["platform"]}  # not the same person: ignored
    assert (await _sign_in(party, provider)).grants == ()


async def test_a_discovery_document_naming_another_issuer_is_refused(party, provider):
    provider.overrides["discovery"] = web.json_response({"issuer": "https://evil.example.com"})
    with pytest.raises(UpstreamError, match="names issuer"):
        await party.authorization_url(Pending.new())


async def test_answers_too_large_or_not_json_are_refused(party, provider):
    provider.overrides["discovery"] = web.Response(body=b"x" * (MAX_RESPONSE_BYTES + 10), content_type="application/json")
    with pytest.raises(UpstreamError, match="larger than"):
        await party.metadata()
    provider.overrides["discovery"] = web.Response(text="<html>", content_type="text/html")
    with pytest.raises(UpstreamError, match="not a JSON object"):
        await party.metadata()


async def test_a_refused_code_names_the_providers_error(party, provider):
    provider.overrides["token"] = web.json_response(
        {"error": "invalid_grant", "error_description": "grant request is invalid"}, status=400
    )
    with pytest.raises(UpstreamError, match="invalid_grant: grant request is invalid"):
        await _sign_in(party, provider)
    provider.overrides["token"] = web.json_response({"error": "temporarily_unavailable"}, status=503)
    with pytest.raises(UpstreamUnavailable, match="503"):
        await _sign_in(party, provider)


async def test_an_unreachable_provider_is_unavailable():
    async with aiohttp.ClientSession() as session:
        party = RelyingParty(
            issuer="http://127.0.0.1:9", client_id=CLIENT, client_secret=None, scopes=("openid",),
            redirect_uri="http://127.0.0.1:9/cb", rules=(), groups_claim="groups", session=session,
        )  # fmt: skip
        with pytest.raises(UpstreamUnavailable, match="could not be reached"):
            await party.metadata()


# -- the grant rules -----------------------------------------------------------------------------


def test_rules_are_read_strictly():
    rules, problems = parse_rules(
        [
            {"group": "platform", "namespace": "platform", "scope": "publish"},
            {"claim": "realm_access.roles", "value": "registry-admin", "namespace": "*", "scope": "admin"},
            {"group": "x", "namespace": "bad namespace!"},
            {"group": "x", "claim": "email", "value": "a", "namespace": "ns"},
            {"namespace": "ns"},
            {"group": "x", "namespace": "ns", "scope": "owner"},
            {"group": "x", "namespace": "ns", "colour": "blue"},
            {"group": 3, "namespace": "ns"},
        ],
        "groups",
    )
    assert rules == (
        GrantRule("groups", "platform", "platform", "publish"),
        GrantRule("realm_access.roles", "registry-admin", "*", "admin"),
    )
    assert [p.split(":")[0] for p in problems] == [f"[[oidc.grants]] #{n}" for n in (3, 4, 5, 6, 7, 8)]


def test_claims_match_strings_lists_and_nested_objects():
    claims = {"groups": ["a", "b"], "email": "ana@example.com", "realm_access": {"roles": ["registry-admin"]}, "n": 7}
    assert claim_values(claims, "groups") == {"a", "b"}
    assert claim_values(claims, "realm_access.roles") == {"registry-admin"}
    assert claim_values(claims, "n") == {"7"}
    assert claim_values(claims, "missing.path") == frozenset()
    assert claim_values({"groups": ["x"] * 5000}, "groups") == frozenset()  # bounded
    rules = (GrantRule("realm_access.roles", "registry-admin", "*", "admin"), GrantRule("groups", "a", "ns", "read"))
    assert grants_for(claims, rules) == (Grant("*", "admin"), Grant("ns", "read"))
    assert grants_for({"groups": "a"}, rules) == (Grant("ns", "read"),)


def test_the_person_is_their_email_else_user_name_else_subject():
    assert person_of({"sub": "s", "email": "a@b.c", "preferred_username": "ana"}) == "a@b.c"
    assert person_of({"sub": "s", "preferred_username": "ana\u202e\n"}) == "ana"
    assert person_of({"sub": "s", "email": 5}) == "s"
