"""GitHub lists read with conditional requests, for polling.

Each page's ``ETag`` and ``Last-Modified`` are kept in a ``ListingCache`` with its body and sent
back as ``If-None-Match`` / ``If-Modified-Since``; GitHub's 304 (which costs no rate limit) reuses
the kept body, so a list whose pages all answer 304 is known unchanged. Every page is asked, so an
item that moves to another page is not missed.

GitHub's rate-limit headers are respected: after an answer whose ``x-ratelimit-remaining`` is 0,
no listing is sent before ``x-ratelimit-reset`` (``RateLimited`` is raised at once instead), and a
rate-limited answer (403 or 429, with ``retry-after`` for a secondary limit) is ``RateLimited``
with the time GitHub gives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from mirror.integrations.github.api import (
    GitHubClient,
    GitHubError,
    GitHubUnavailable,
    RateLimited,
    Repository,
    Tag,
    github_errors,
    parse_repository,
    header_number,
    status_error,
)

_T = TypeVar("_T")
_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class Listing(Generic[_T]):
    """A list read with conditional requests: ``changed`` is False when every page was a 304."""

    items: list[_T]
    changed: bool
    not_modified: int  # pages answered 304


@dataclass(frozen=True, slots=True)
class AppInstallation:
    id: int
    account: str  # login


@dataclass(frozen=True, slots=True)
class _Page:
    etag: str | None
    last_modified: str | None
    body: Any
    next_url: str | None


class ListingCache:
    """The validators and bodies of the pages read before, by URL, and which accounts are users."""

    def __init__(self) -> None:
        self.pages: dict[str, _Page] = {}
        self.users: set[str] = set()


class GitHubListings:
    """The lists polling reads, through ``client``'s session and credentials; ``cache`` None asks
    every page unconditionally (a full reconcile) without remembering it."""

    def __init__(self, client: GitHubClient, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._clock = clock
        #: epoch before which GitHub said no request would be answered (``x-ratelimit-reset``)
        self.exhausted_until = 0.0

    async def app(self) -> dict[str, Any]:
        """The App itself (``GET /app``, with its JWT): its ``permissions`` and ``events``."""
        what = "getting the GitHub App"
        page = await self._page(what, f"{self._client.api_url}/app", await self._client.auth_headers(None, app=True), None)
        if not isinstance(page.body, dict):
            raise GitHubUnavailable(f"{what}: unexpected answer from GitHub")
        return page.body

    async def app_installations(self, cache: ListingCache | None) -> Listing[AppInstallation]:
        """Every installation of the App (``GET /app/installations``, with its JWT)."""
        what = "listing the GitHub App's installations"
        listing = await self._listing(what, f"/app/installations?per_page={_PER_PAGE}", None, cache, app=True)
        return _parsed(what, listing, lambda i: AppInstallation(int(i["id"]), str(i["account"]["login"])))

    async def installation_repositories(self, installation_id: int, cache: ListingCache | None) -> Listing[Repository]:
        what = f"listing the repositories of installation {installation_id}"
        url = f"/installation/repositories?per_page={_PER_PAGE}"
        listing = await self._listing(what, url, installation_id, cache, iterable_key="repositories")
        return _parsed(what, listing, parse_repository)

    async def account_repositories(self, owner: str, cache: ListingCache | None) -> Listing[Repository]:
        """The repositories of an organization, or else of a user, that the token can see."""
        what = f"listing the repositories of {owner}"
        account = quote(owner, safe="")
        users = cache.users if cache is not None else set()
        if owner.lower() not in users:
            try:
                listing = await self._listing(what, f"/orgs/{account}/repos?per_page={_PER_PAGE}", None, cache)
                return _parsed(what, listing, parse_repository)
            except GitHubError as exc:
                if exc.status_code != 404:
                    raise
                users.add(owner.lower())
        listing = await self._listing(what, f"/users/{account}/repos?per_page={_PER_PAGE}", None, cache)
        return _parsed(what, listing, parse_repository)

    async def tags(self, owner: str, name: str, installation_id: int | None, cache: ListingCache | None) -> Listing[Tag]:
        what = f"listing the tags of {owner}/{name}"
        url = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/tags?per_page={_PER_PAGE}"
        listing = await self._listing(what, url, installation_id, cache)
        return _parsed(what, listing, lambda t: Tag(name=t["name"], commit_sha=t["commit"]["sha"]))

    async def _listing(
        self,
        what: str,
        path: str,
        installation_id: int | None,
        cache: ListingCache | None,
        *,
        app: bool = False,
        iterable_key: str | None = None,
    ) -> Listing[Any]:
        headers = await self._client.auth_headers(installation_id, app=app)
        items: list[Any] = []
        changed, not_modified, seen = False, 0, set()
        url: str | None = f"{self._client.api_url}{path}"
        while url is not None and url not in seen:
            seen.add(url)
            known = cache.pages.get(url) if cache is not None else None
            page = await self._page(what, url, headers, known)
            if page is known:
                not_modified += 1
            else:
                changed = True
                if cache is not None:
                    cache.pages[url] = page
            body = page.body.get(iterable_key) if iterable_key and isinstance(page.body, dict) else page.body
            if not isinstance(body, list):
                raise GitHubUnavailable(f"{what}: unexpected answer from GitHub (not a list)")
            items.extend(body)
            url = page.next_url
        return Listing(items, changed, not_modified)

    async def _page(self, what: str, url: str, headers: dict[str, str], known: _Page | None) -> _Page:
        if self._clock() < self.exhausted_until:
            raise RateLimited(f"{what}: GitHub's rate limit is used up", resume_at=self.exhausted_until)
        sent = dict(headers)
        if known is not None and known.etag:
            sent["If-None-Match"] = known.etag
        if known is not None and known.last_modified:
            sent["If-Modified-Since"] = known.last_modified
        timeout = aiohttp.ClientTimeout(total=self._client.timeout)
        with github_errors(what):
            async with self._client.session.get(URL(url, encoded=True), headers=sent, timeout=timeout) as response:
                self._note_rate(response.headers)
                if response.status == 304 and known is not None:
                    return known
                if response.status != 200:
                    raise status_error(what, response.status, response.headers, await _message(response))
                body = await response.json(content_type=None)
                link = response.headers.get("Link", "")
                return _Page(response.headers.get("ETag"), response.headers.get("Last-Modified"), body, _next_link(link))

    def _note_rate(self, headers: Mapping[str, str]) -> None:
        if headers.get("x-ratelimit-remaining") == "0":
            reset = header_number(headers.get("x-ratelimit-reset"), self._clock() + 60)
            self.exhausted_until = max(self.exhausted_until, reset)


def _parsed(what: str, listing: Listing[Any], parse: Callable[[Any], _T]) -> Listing[_T]:
    try:
        items = [parse(item) for item in listing.items]
    except (KeyError, TypeError, ValueError) as exc:
        raise GitHubUnavailable(f"{what}: unexpected answer from GitHub ({type(exc).__name__}: {exc})") from exc
    return Listing(items, listing.changed, listing.not_modified)


def _next_link(link: str) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header."""
    for part in link.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", ""):
            return target.strip().strip("<>")
    return None


async def _message(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return response.reason or "no reason"
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.reason or "no reason"
