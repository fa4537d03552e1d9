"""The web UI's token page, ``/tokens``: the tokens the signed-in principal may manage, a form to
make one, and a Revoke button on each active one.

It is the tokens API (``mirror.http.tokens_api``) behind forms: the same rules from
``mirror.services.tokens`` (``check_grant``, ``granted_expiry``, ``may_manage``), the same
fields and bounds (``NewToken``), the same listing (``token_to_json``). A new token's secret is
shown once, on the answer to the form, and never again. Every form is refused when posted from
another site (``session.same_origin``) or not as a urlencoded form; an anonymous visitor goes to
the login form.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mirror.domain.errors import BadRequest, Forbidden, MirrorError, NotFound, Unauthorized
from mirror.domain.models import SCOPES, TokenRecord
from mirror.domain.tokens import grants_of, is_registry_admin
from mirror.http.forms import read_form
from mirror.http.keys import AUTH, CONFIG, STORE
from mirror.http.models.base import validate
from mirror.http.models.tokens import MAX_DESCRIPTION, NewToken
from mirror.http.ui import session
from mirror.services.tokens import check_grant, create_token, creator_of, granted_expiry, may_manage, token_to_json

TOKENS_PATH = "/tokens"
#: the largest form read: a namespace, a scope, a description of 256 characters and an expiry
MAX_FORM_BYTES = 16 * 1024
DAY = 24 * 3600
#: the lifetimes offered besides the default (those beyond ``[auth] token_max_expiry_seconds`` are left out)
LIFETIMES = ((7 * DAY, "7 days"), (30 * DAY, "30 days"), (90 * DAY, "90 days"), (365 * DAY, "1 year"))
#: the expiry choices that are not a number of seconds
DEFAULT, NEVER = "default", "never"

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[..., web.Response]


def lifetime_label(seconds: int) -> str:
    """``seconds`` in words: "1 year", "30 days", "12 hours", "90 seconds"."""
    for size, unit in ((365 * DAY, "year"), (DAY, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def expiry_choices(default_seconds: int, max_seconds: int) -> list[tuple[str, str]]:
    """The expiry select's (value, label) pairs: the default first (what the API gives a request
    naming none), then the other lifetimes within the maximum, then "never" when there is no
    maximum."""
    default = lifetime_label(default_seconds) if default_seconds else "Never"
    choices = [(DEFAULT, f"{default} (the default)")]
    choices += [
        (str(seconds), label)
        for seconds, label in LIFETIMES
        if seconds != default_seconds and (not max_seconds or seconds <= max_seconds)
    ]
    if not max_seconds and default_seconds:
        choices.append((NEVER, "Never"))
    return choices


def describe_grant(namespace: str, scope: str) -> str:
    return f"{'every namespace (*)' if namespace == '*' else namespace}: {scope}"


def shown_time(rfc3339_text: str | None) -> str:
    """An RFC 3339 time as ``YYYY-MM-DD HH:MM UTC``, "" for None."""
    return "" if not rfc3339_text else rfc3339_text[:16].replace("T", " ") + " UTC"


@dataclass(frozen=True, slots=True)
class TokenForm:
    """What the create form holds (as sent, so an error shows it again)."""

    description: str = ""
    namespace: str = ""
    scope: str = "read"
    expiry: str = DEFAULT


class TokenPages:
    def __init__(self, render: Render) -> None:
        self._render = render

    def routes(self, page: Callable[[PageHandler], PageHandler]) -> list[web.RouteDef]:
        return [
            web.get(TOKENS_PATH, page(self.list_page)),
            web.post(TOKENS_PATH, page(self.create)),
            # any id: one that names no token the principal may manage is a 404 page
            web.post(f"{TOKENS_PATH}/{{id}}/revoke", page(self.revoke)),
        ]

    async def list_page(self, request: web.Request) -> web.Response:
        """``GET /tokens``: the list and the form."""
        principal = await _principal(request)
        return await self._page(request, principal, TokenForm(namespace=grants_of(principal)[0][0]))

    async def create(self, request: web.Request) -> web.Response:
        """``POST /tokens``: make the token and show its secret once; a refusal shows the form
        again with the message and its status."""
        principal = await _principal(request)
        fields = await _read_form(request)
        form = TokenForm(
            description=fields.get("description", ""),
            namespace=fields.get("namespace", "").strip(),
            scope=fields.get("scope", ""),
            expiry=fields.get("expiry", DEFAULT),
        )
        try:
            created = await self._create(request, principal, form)
        except MirrorError as exc:
            if exc.status >= 500:
                raise
            return await self._page(request, principal, form, error=exc.message, status=exc.status)
        return await self._page(request, principal, TokenForm(namespace=form.namespace), created=created, status=201)

    async def _create(self, request: web.Request, principal: TokenRecord, form: TokenForm) -> dict[str, Any]:
        auth = request.app[CONFIG].auth
        if form.expiry not in {value for value, _ in expiry_choices(auth.token_default_expiry_seconds, auth.token_max_expiry_seconds)}:
            raise BadRequest(f"choose an expiry from the list, not {form.expiry[:40]!r}")
        asked = int(form.expiry) if form.expiry.isdigit() else None
        body = validate(
            NewToken,
            {"namespace": form.namespace, "scope": form.scope, "description": form.description, "expires_in": asked},
        )
        check_grant(principal, body.namespace, body.scope)
        now = time.time()
        lifetime = granted_expiry(
            principal,
            body.expires_in,
            default_seconds=0 if form.expiry == NEVER else auth.token_default_expiry_seconds,
            max_seconds=auth.token_max_expiry_seconds,
            now=now,
        )
        if form.expiry == NEVER and lifetime is not None:  # cut to the principal's own expiry
            raise Forbidden(f"a token that never expires would outlive this token, which expires at {principal.expires_at}")
        record, secret = await create_token(
            request.app[STORE], body.namespace, body.scope, body.description,
            expires_in=lifetime, created_by=creator_of(principal), now=now,
        )  # fmt: skip
        return _row(token_to_json(record, now, {principal.id: principal})) | {"secret": secret}

    async def revoke(self, request: web.Request) -> web.Response:
        """``POST /tokens/{id}/revoke``: revoke it (as ``DELETE /api/v1/tokens/{id}``), back to the list."""
        principal = await _principal(request)
        await _read_form(request)
        token_id = request.match_info["id"]
        store = request.app[STORE]
        target = next((record for record in await store.list_tokens() if record.id == token_id), None)
        if target is None or not may_manage(principal, target) or not await store.revoke_token(token_id):
            raise NotFound(f"no active token with id {token_id[:64]!r} that you may revoke")
        request.app[AUTH].forget(token_id)
        return web.Response(status=303, headers={"Location": TOKENS_PATH})

    async def _page(
        self,
        request: web.Request,
        principal: TokenRecord,
        form: TokenForm,
        *,
        created: dict[str, Any] | None = None,
        error: str = "",
        status: int = 200,
    ) -> web.Response:
        records = await request.app[STORE].list_tokens()
        by_id = {record.id: record for record in records}
        now = time.time()
        tokens = [_row(token_to_json(record, now, by_id)) for record in records if may_manage(principal, record)]
        auth = request.app[CONFIG].auth
        capped = principal.expires_at is not None and not is_registry_admin(principal) and not principal.person
        return self._render(
            request,
            "tokens.html",
            status=status,
            tokens=tokens,
            own_id=principal.id,
            grants=[describe_grant(namespace, scope) for namespace, scope in grants_of(principal)],
            cap=principal.expires_at if capped else None,
            form=form,
            scopes=SCOPES,
            expiries=expiry_choices(auth.token_default_expiry_seconds, auth.token_max_expiry_seconds),
            max_description=MAX_DESCRIPTION,
            created=created,
            error=error,
        )


def _row(token: Mapping[str, Any]) -> dict[str, Any]:
    """A token as the page shows it: its fields, who made it in words, its times shortened."""
    made_by = token["created_by_description"] or token["created_by"] or "the server (mirror token create)"
    return dict(token) | {
        "made_by": made_by,
        "created": shown_time(token["created_at"]),
        "expires": shown_time(token["expires_at"]) or "never",
        "last_used": shown_time(token["last_used_at"]) or "never",
    }


async def _principal(request: web.Request) -> TokenRecord:
    """Who the page is for; anonymous goes to the login form (the page wrapper sends it there)."""
    record = await request.app[AUTH].identify(session.credential(request).authorization)
    if record is None:
        raise Unauthorized("log in to manage tokens")
    return record


async def _read_form(request: web.Request) -> dict[str, str]:
    """A form posted from this site (``mirror.http.forms.read_form``, at most ``MAX_FORM_BYTES``)."""
    if not session.same_origin(request, request.app[CONFIG].server.public_url):
        raise Forbidden("the form was sent from another site")
    return await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=16)
