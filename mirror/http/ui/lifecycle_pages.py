"""A module version's lifecycle from the web UI: the forms on a module page's Versions tab post
here, and these call what the API calls (``mirror.services.lifecycle.ModuleLifecycle``).

- ``POST /modules/{ns}/{name}/{provider}/{version}/deprecate`` (``reason``, ``replacement``
  optional): deprecate the version, or replace its deprecation; 303 to the version's page, where
  the deprecated banner shows.
- ``POST /modules/{ns}/{name}/{provider}/{version}/revoke`` (``confirm=yes``, the ticked box):
  take the version out of service; 303 to the module's Versions tab (to ``/`` when no version is
  left). Without the tick nothing happens: a 400 page asks again.
- ``POST /modules/{ns}/{name}/{provider}/delete`` (``confirm``, the module's name typed again):
  delete the module, its versions and the archives no other version uses; 303 to ``/``. A
  different name: a 400 page asks again.

The API's rules: deprecate and revoke take the ``publish`` scope on the namespace and act as
uploads (the owner of modules published over the API), or the ``admin`` scope for whatever owns
the module; another owner's module is a 409 page naming it. Delete takes ``admin``. The changes
are recorded as the principal's (``mirror.domain.audit``), as an API call's are. A form posted
from another site (its ``Origin`` names another host) is a 403 page, as for ``/login``; bad input
(a reason over 1000 characters, a replacement that is not printable text) a 400 page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from mirror.domain import provenance
from mirror.domain.addresses import ModuleAddress
from mirror.domain.audit import set_actor
from mirror.domain.errors import BadRequest, Forbidden, MirrorError, PayloadTooLarge
from mirror.domain.models import ModuleRecord, Scope, TokenRecord
from mirror.domain.provenance import Owner
from mirror.domain.tokens import token_allows
from mirror.domain.versions import normalize
from mirror.http.common import actor_of
from mirror.http.keys import AUTH, BLOBS, CATALOG, CONFIG, STORE
from mirror.http.lifecycle_api import MAX_LIFECYCLE_BODY
from mirror.http.ui import session
from mirror.services.lifecycle import ModuleLifecycle

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[..., web.Response]
#: the form types a browser sends
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: the value of the ticked "revoke" box
CONFIRMED = "yes"


@dataclass(frozen=True, slots=True)
class Allowed:
    """The lifecycle forms a reader may use on a module: deprecate and revoke its versions,
    delete it."""

    change: bool = False
    delete: bool = False


def allowed(principal: TokenRecord | None, address: ModuleAddress, record: ModuleRecord | None) -> Allowed:
    """What the API would let ``principal`` do to the module: ``admin`` on its namespace allows
    everything; ``publish`` deprecating and revoking when uploads own the module."""
    return allowed_on(principal, address, None if record is None else record.owner)


def allowed_on(principal: TokenRecord | None, address: Any, owner: Owner | None) -> Allowed:
    """``allowed`` for anything with a namespace that ``owner`` owns (a module, a provider; None:
    there is no such thing)."""
    if principal is None or owner is None:
        return Allowed()
    if token_allows(principal, address.namespace, "admin"):
        return Allowed(change=True, delete=True)
    if not token_allows(principal, address.namespace, "publish"):
        return Allowed()
    try:
        provenance.check(address, owner, Owner.upload(), "revoke versions of")
    except MirrorError:
        return Allowed()
    return Allowed(change=True)


def page_url(address: ModuleAddress, version: str | None = None, tab: str | None = None) -> str:
    """The module's page (``module_url`` of the pages), optionally a version's and a tab."""
    parts = [address.namespace, address.name, address.provider] + ([version] if version else [])
    url = "/modules/" + "/".join(quote(part, safe="") for part in parts)
    return f"{url}?tab={tab}" if tab else url


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


class LifecyclePages:
    def __init__(self, render: Render) -> None:
        self._render = render

    def routes(self, page: Callable[[PageHandler], PageHandler]) -> list[web.RouteDef]:
        base = "/modules/{namespace}/{name}/{provider}"
        return [
            web.post(base + "/{version}/deprecate", page(self.deprecate)),
            web.post(base + "/{version}/revoke", page(self.revoke)),
            web.post(base + "/delete", page(self.delete)),
        ]

    # -- the checks every form goes through -----------------------------------------------------

    @staticmethod
    async def _principal(request: web.Request, address: ModuleAddress, scope: Scope) -> TokenRecord:
        """The form's sender, who must hold ``scope`` on the namespace; their changes are recorded
        as theirs, as ``mirror.http.common.authorize`` records an API call's."""
        if not session.same_origin(request, request.app[CONFIG].server.public_url):
            raise Forbidden("the form was sent from another site")
        record = await request.app[AUTH].authorize(session.credential(request).authorization, address.namespace, scope)
        assert record is not None  # nobody holds more than "read" anonymously
        set_actor(actor_of(record))
        return record

    @staticmethod
    async def _form(request: web.Request) -> Mapping[str, Any]:
        if request.content_type not in FORM_TYPES:
            raise BadRequest("send the form as application/x-www-form-urlencoded")
        if request.content_length is not None and request.content_length > MAX_LIFECYCLE_BODY:
            raise PayloadTooLarge(f"the form is larger than {MAX_LIFECYCLE_BODY} bytes")
        try:
            return await request.post()
        except ValueError as exc:  # a malformed body (a multipart one without its boundary...)
            raise BadRequest(f"the form could not be read: {exc}") from None

    @staticmethod
    def _lifecycle(request: web.Request) -> ModuleLifecycle:
        app = request.app
        return ModuleLifecycle(app[STORE], app[BLOBS], app[CATALOG])

    @staticmethod
    def _target(request: web.Request) -> tuple[ModuleAddress, str]:
        info = request.match_info
        return ModuleAddress.parse_parts(info["namespace"], info["name"], info["provider"]), normalize(info["version"])

    @staticmethod
    def _owner(principal: TokenRecord, address: ModuleAddress) -> Owner | None:
        """As the API: admin scope acts for whatever owns the module (None), publish as uploads."""
        return None if token_allows(principal, address.namespace, "admin") else Owner.upload()

    def _confirm(
        self, request: web.Request, action: str, address: ModuleAddress, version: str, message: str
    ) -> web.Response:
        return self._render(
            request, "lifecycle_confirm.html", status=400, action=action, address=address, version=version,
            message=message, page_url=page_url,
        )  # fmt: skip

    # -- the forms --------------------------------------------------------------------------------

    async def deprecate(self, request: web.Request) -> web.Response:
        """``POST .../{version}/deprecate``: reason and replacement as the API takes them."""
        address, version = self._target(request)
        principal = await self._principal(request, address, "publish")
        form = await self._form(request)
        replacement = _field(form, "replacement").strip() or None
        await self._lifecycle(request).deprecate(
            address, version, _field(form, "reason"), replacement, owner=self._owner(principal, address)
        )
        return _see_other(page_url(address, version))

    async def revoke(self, request: web.Request) -> web.Response:
        """``POST .../{version}/revoke`` with the box ticked."""
        address, version = self._target(request)
        principal = await self._principal(request, address, "publish")
        form = await self._form(request)
        if _field(form, "confirm") != CONFIRMED:
            return self._confirm(
                request, "revoke", address, version, f"Tick the box to revoke version {version}; nothing was revoked."
            )
        await self._lifecycle(request).revoke(address, version, owner=self._owner(principal, address))
        left = (await request.app[CATALOG].module(address)).latest
        return _see_other(page_url(address, tab="versions") if left else "/")

    async def delete(self, request: web.Request) -> web.Response:
        """``POST .../delete`` with the module's name typed again (admin scope)."""
        info = request.match_info
        address = ModuleAddress.parse_parts(info["namespace"], info["name"], info["provider"])
        await self._principal(request, address, "admin")
        form = await self._form(request)
        if _field(form, "confirm").strip() != address.name:
            message = f"Type the module's name, {address.name}, to delete it; nothing was deleted."
            return self._confirm(request, "delete", address, "", message)
        await self._lifecycle(request).delete(address)
        return _see_other("/")
