"""The OpenID Connect relying party of ``[oidc]``, with its own HTTP client, while the server runs.

The client talks to the configured provider only. It is not the guarded client of upstream
registries: an OpenID Provider (Keycloak, an in-house Dex...) is often on a private network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from mirror.domain.oidc import parse_rules
from mirror.http.keys import CONFIG, OIDC
from mirror.http.ui.oidc_pages import CALLBACK_PATH
from mirror.services.oidc import RelyingParty


async def oidc_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    oidc = config.oidc
    if not oidc.enabled or config.server.public_url is None or oidc.issuer is None or oidc.client_id is None:
        yield
        return
    rules, _ = parse_rules(oidc.grants, oidc.groups_claim)  # the config's checks refused any problem
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        app[OIDC] = RelyingParty(
            issuer=oidc.issuer,
            client_id=oidc.client_id,
            client_secret=oidc.client_secret,
            scopes=oidc.scopes,
            redirect_uri=config.server.public_url.rstrip("/") + CALLBACK_PATH,
            rules=rules,
            groups_claim=oidc.groups_claim,
            session=client,
        )
        yield
