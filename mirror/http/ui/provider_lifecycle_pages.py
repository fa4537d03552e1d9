"""A provider version's lifecycle from the web UI: the forms on a provider's page post here, and
these call what the API calls (``mirror.services.providers.ProviderRegistry``).

- ``POST /providers/{ns}/{type}/{version}/deprecate`` (``reason``, ``replacement`` optional):
  303 to the version's page, where the deprecated banner shows (and Terraform prints the
  deprecation on ``init``);
- ``POST /providers/{ns}/{type}/{version}/revoke`` (``confirm=yes``, the ticked box): 303 to the
  provider's page (to ``/providers`` when no version is left); without the tick, a 400 page;
- ``POST /providers/{ns}/{type}/delete`` (``confirm``, the provider's type typed again; admin):
  303 to ``/providers``.

The API's rules, as for modules (``mirror.http.ui.lifecycle_pages``): ``publish`` on the
namespace acts as uploads, ``admin`` for whatever owns the provider; the changes are recorded as
the principal's; a form from another site is a 403 page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from mirror.domain.errors import BadRequest
from mirror.domain.models import TokenRecord
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import LOCAL_HOST
from mirror.domain.providers import ProviderAddress
from mirror.domain.tokens import token_allows
from mirror.domain.versions import normalize
from mirror.http.keys import PROVIDERS, STORE
from mirror.http.ui.lifecycle_pages import CONFIRMED, LifecyclePages, _field, _see_other
from mirror.http.ui.provider_pages import provider_url

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProviderLifecyclePages:
    def routes(self, page: Callable[[PageHandler], PageHandler]) -> list[web.RouteDef]:
        base = "/providers/{namespace}/{type}"
        return [
            web.post(base + "/{version}/deprecate", page(self.deprecate)),
            web.post(base + "/{version}/revoke", page(self.revoke)),
            web.post(base + "/delete", page(self.delete)),
        ]

    @staticmethod
    def _target(request: web.Request) -> ProviderAddress:
        return ProviderAddress.parse_parts(request.match_info["namespace"], request.match_info["type"])

    @staticmethod
    def _owner(principal: TokenRecord, address: ProviderAddress) -> Owner | None:
        return None if token_allows(principal, address.namespace, "admin") else Owner.upload()

    async def deprecate(self, request: web.Request) -> web.Response:
        address, version = self._target(request), normalize(request.match_info["version"])
        principal = await LifecyclePages._principal(request, address, "publish")  # type: ignore[arg-type]
        form = await LifecyclePages._form(request)
        replacement = _field(form, "replacement").strip() or None
        await request.app[PROVIDERS].deprecate(
            address, version, _field(form, "reason"), replacement, owner=self._owner(principal, address)
        )
        return _see_other(provider_url(address.namespace, address.type, version))

    async def revoke(self, request: web.Request) -> web.Response:
        address, version = self._target(request), normalize(request.match_info["version"])
        principal = await LifecyclePages._principal(request, address, "publish")  # type: ignore[arg-type]
        form = await LifecyclePages._form(request)
        if _field(form, "confirm") != CONFIRMED:
            raise BadRequest(f"Tick the box to revoke version {version}; nothing was revoked.")
        await request.app[PROVIDERS].revoke(address, version, owner=self._owner(principal, address))
        left = await request.app[STORE].provider_versions(LOCAL_HOST, address)
        return _see_other(provider_url(address.namespace, address.type) if left else "/providers")

    async def delete(self, request: web.Request) -> web.Response:
        address = self._target(request)
        await LifecyclePages._principal(request, address, "admin")  # type: ignore[arg-type]
        form = await LifecyclePages._form(request)
        if _field(form, "confirm").strip() != address.type:
            raise BadRequest(f"Type the provider's type, {address.type}, to delete it; nothing was deleted.")
        await request.app[PROVIDERS].delete(address)
        return _see_other("/providers")
