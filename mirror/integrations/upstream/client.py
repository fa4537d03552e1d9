"""A client for Terraform's module registry protocol, spoken by any registry: the public one,
another mirror, a peer product. Also reads mirror's own event feed (``/api/v1/events``).

One ``RegistryClient`` per upstream host, on a shared ``aiohttp.ClientSession`` (the CLI makes
one per run; a server would make one in a ``cleanup_ctx`` and keep clients per host). Every call
is a coroutine and safe to run concurrently; discovery is asked once and remembered.

What it does as Terraform does (see PROTOCOL.md):

* discovery: ``GET /.well-known/terraform.json`` on the host, ``modules.v1`` relative to it or
  absolute, a ``/`` appended when missing; at most 3 redirects;
* ``versions``: ``modules[0].versions[].version``;
* ``download``: the ``X-Terraform-Get`` header of a 200 or 204 answer, else a 200 answer's JSON
  ``location`` (what OpenTofu reads first);
* the bearer token goes to discovery, ``/versions``, ``/download`` and the event feed, that is to
  the host itself and to the ``modules.v1`` service it names, and never anywhere else: not to a
  redirect onto another origin, never to a download location (the fetcher's requests carry no
  credentials at all).

Failures: ``UpstreamUnavailable`` for what may pass (no connection, timeouts, 5xx, 429),
``UpstreamError`` for the rest, with the upstream's status (404: no such module or version).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from yarl import URL

from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import BadRequest
from mirror.domain.errors import UpstreamError, UpstreamUnavailable
from mirror.services.upstream import DownloadLocation, EventPage
from mirror.domain.specs import registry_base_url

DISCOVERY_PATH = "/.well-known/terraform.json"
#: discovery answers are small (Terraform reads at most 1 MiB); version lists can be long
MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRYABLE_STATUSES = frozenset({408, 425, 429})


class RegistryClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        user_agent: str = "mirror-registry",
    ) -> None:
        try:
            self.base_url = registry_base_url(host)
        except ValueError as exc:
            raise BadRequest(f"upstream {exc}") from None
        self._session = session
        self._token = token
        self._timeout = timeout
        self._user_agent = user_agent
        self._services: dict[str, str] = {}  # service name -> its base URL, once discovered
        self._discovery: tuple[dict[str, Any], str] | None = None  # (the document, its final URL)
        self._token_origins = {_origin(self.base_url)}
        self._discovery_lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the token
        return f"RegistryClient({self.base_url!r})"

    @property
    def host(self) -> str:
        """The upstream as people name it: the bare host for https, else the URL."""
        parts = urlsplit(self.base_url)
        return parts.netloc if parts.scheme == "https" else self.base_url

    async def modules_url(self) -> str:
        """The ``modules.v1`` base URL, ending in ``/`` (discovered once)."""
        return await self.service_url("modules.v1", "a module registry")

    async def service_url(self, name: str, offers: str) -> str:
        """The base URL of service ``name`` (``providers.v1``), ending in ``/``; discovery is
        asked once. ``offers`` names the service in the error when the host has none."""
        async with self._discovery_lock:
            if name not in self._services:
                if self._discovery is None:
                    self._discovery = await self._discover()
                document, final_url = self._discovery
                url = _service_url(document, final_url, name, offers, f"discovering the services of {self.host}")
                self._services[name] = url
                self._token_origins.add(_origin(url))
        return self._services[name]

    async def versions(self, address: ModuleAddress) -> list[str]:
        """The module's versions as the upstream spells them (``modules[0]`` only, as Terraform)."""
        what = f"listing the versions of {address} at {self.host}"
        url = await self.modules_url() + _module_path(address) + "/versions"
        status, _, body, _ = await self._get(url, what)
        _raise_for_status(status, body, what, self.host)
        data = _json_object(body, what)
        try:
            modules = data["modules"]
            if not modules:
                raise UpstreamError(f"{what}: the answer lists no modules (Terraform calls that an invalid response)")
            return [str(item["version"]) for item in modules[0]["versions"]]
        except (KeyError, TypeError, IndexError) as exc:
            raise UpstreamError(f"{what}: unexpected answer ({type(exc).__name__}: {exc})") from None

    async def download(self, address: ModuleAddress, version: str) -> DownloadLocation:
        """Where the version's files are: ``X-Terraform-Get``, else the JSON ``location``."""
        what = f"asking {self.host} where {address} {version} is"
        url = await self.modules_url() + _module_path(address) + "/" + quote(version, safe="") + "/download"
        status, headers, body, final_url = await self._get(url, what)
        if status not in (200, 204):
            _raise_for_status(status, body, what, self.host)
            raise UpstreamError(f"{what}: unexpected status {status}", status_code=status)
        location = headers.get("X-Terraform-Get")
        if not location and status == 200 and body.strip():
            value = _json_object(body, what).get("location")
            location = value if isinstance(value, str) else None
        if not location:
            raise UpstreamError(f"{what}: the answer has neither an X-Terraform-Get header nor a JSON location")
        return DownloadLocation(location, final_url)

    async def events(self, after: int, *, types: Sequence[str] = (), limit: int = 100) -> EventPage:
        """A page of a mirror's event feed after serial ``after`` (needs a token with read scope)."""
        what = f"reading the event feed of {self.host}"
        query = "&".join(
            [f"after={after}", f"limit={limit}"] + [f"type={quote(item, safe='')}" for item in types]
        )
        status, _, body, _ = await self._get(f"{self.base_url}/api/v1/events?{query}", what)
        _raise_for_status(status, body, what, self.host)
        data = _json_object(body, what)
        try:
            events = data["events"]
            if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
                raise TypeError("events is not a list of objects")
            return EventPage(events, int(data["next_after"]), int(data["latest"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"{what}: unexpected answer ({exc}); is {self.host} a mirror registry?") from None

    # -- HTTP ------------------------------------------------------------------------------------

    async def _discover(self) -> tuple[dict[str, Any], str]:
        what = f"discovering the services of {self.host}"
        status, _, body, final_url = await self._get(self.base_url + DISCOVERY_PATH, what)
        if status == 404:
            raise UpstreamError(f"{what}: {DISCOVERY_PATH} is missing; is it a Terraform registry?", status_code=404)
        _raise_for_status(status, body, what, self.host)
        return _json_object(body, what), final_url

    async def _get(self, url: str, what: str) -> tuple[int, Any, bytes, str]:
        """GET ``url`` (redirects followed by hand, so the token never follows one onto another
        origin); (status, headers, body of at most MAX_JSON_BYTES, final URL)."""
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                for _ in range(MAX_REDIRECTS + 1):
                    headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
                    if self._token and _origin(url) in self._token_origins:
                        headers["Authorization"] = f"Bearer {self._token}"
                    async with self._session.get(
                        URL(url, encoded=True), headers=headers, allow_redirects=False, timeout=timeout
                    ) as response:
                        if response.status in _REDIRECT_STATUSES and "Location" in response.headers:
                            url = str(response.url.join(URL(response.headers["Location"])))
                            continue
                        body = await _read_limited(response, what)
                        return response.status, response.headers, body, str(response.url)
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: no answer within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{what}: cannot reach {self.base_url} ({_reason(exc)})") from None
        raise UpstreamError(f"{what}: more than {MAX_REDIRECTS} redirects")


def _service_url(document: dict[str, Any], final_url: str, name: str, offers: str, what: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise UpstreamError(f"{what}: it offers no {offers} (no {name} service)")
    url = urljoin(final_url, value)
    if urlsplit(url).scheme not in ("http", "https"):
        raise UpstreamError(f"{what}: {name} {value!r} is not an http(s) URL")
    return url if url.endswith("/") else url + "/"


def _module_path(address: ModuleAddress) -> str:
    return "/".join(quote(part, safe="") for part in (address.namespace, address.name, address.provider))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, f"{(parts.hostname or '').lower()}:{port}"


async def _read_limited(response: aiohttp.ClientResponse, what: str) -> bytes:
    if response.content_length is not None and response.content_length > MAX_JSON_BYTES:
        raise UpstreamError(f"{what}: the answer is larger than {MAX_JSON_BYTES} bytes")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise UpstreamError(f"{what}: the answer is larger than {MAX_JSON_BYTES} bytes")
    return bytes(body)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UpstreamError(f"{what}: the answer is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{what}: the answer is not a JSON object")
    return data


def _raise_for_status(status: int, body: bytes, what: str, host: str) -> None:
    if 200 <= status < 300:
        return
    detail = _error_detail(body)
    if status >= 500 or status in _RETRYABLE_STATUSES:
        raise UpstreamUnavailable(f"{what}: {host} answered {status}{detail}")
    if status in (401, 403):
        raise UpstreamError(f"{what}: {host} refused the request ({status}{detail}); check the upstream's token", status_code=status)
    if status == 404:
        raise UpstreamError(f"{what}: {detail[2:] + ' (404)' if detail else 'not found (404)'}", status_code=404)
    raise UpstreamError(f"{what}: {host} answered {status}{detail}", status_code=status)


def _error_detail(body: bytes) -> str:
    """``: first error`` from a ``{"errors": [...]}`` body, else ""."""
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return ""
    if isinstance(errors, list) and errors:
        return ": " + "; ".join(str(error) for error in errors)[:300]
    return ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error) if exc.os_error else str(exc)
    return str(exc) or type(exc).__name__
