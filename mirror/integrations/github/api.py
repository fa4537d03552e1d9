"""GitHub access: installation tokens, repositories, tags, tag tarballs, releases and their assets.

JSON calls go through gidgethub's aiohttp ``GitHubAPI`` on the shared session; tarballs and
release assets are streamed with the session itself (gidgethub decodes and buffers bodies). Every request has a
timeout.

Failures come out as one of two errors: ``GitHubUnavailable`` for what may pass (5xx answers, rate
limits, timeouts, connection failures, unreadable answers), which callers retry, and
``GitHubError`` for a permanent 4xx answer, whose ``status_code`` is GitHub's. A rate limit is
``RateLimited``, a ``GitHubUnavailable`` that says when GitHub will answer again. The conditional
listings of polling are in ``mirror.integrations.github.listings``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol, TypeVar
from urllib.parse import quote

import aiohttp
import gidgethub
import gidgethub.aiohttp
import gidgethub.apps
from yarl import URL

from mirror.domain.errors import MirrorError, PayloadTooLarge

_T = TypeVar("_T")
_CHUNK = 64 * 1024
_PER_PAGE = 100
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class GitHubUnavailable(MirrorError):
    """GitHub could not answer now (5xx, rate limit, timeout, connection failure): retry later."""

    status = 502


class GitHubError(MirrorError):
    """GitHub refused a request for good: a 4xx answer, whose status is ``status_code``."""

    status = 502

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class RateLimited(GitHubUnavailable):
    """GitHub's rate limit (primary, or secondary with ``retry-after``): no answer before ``resume_at`` (epoch)."""

    def __init__(self, message: str, *, resume_at: float) -> None:
        super().__init__(message)
        self.resume_at = resume_at


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    owner: str  # account login
    name: str
    full_name: str
    html_url: str
    description: str | None
    default_branch: str
    archived: bool


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    commit_sha: str


@dataclass(frozen=True, slots=True)
class ReleaseAsset:
    id: int
    name: str
    size: int  # bytes, as GitHub reports it
    state: str  # "uploaded" once the asset is complete


@dataclass(frozen=True, slots=True)
class Release:
    id: int
    tag_name: str
    draft: bool
    prerelease: bool
    html_url: str
    assets: tuple[ReleaseAsset, ...]


class GitHubCredentials(Protocol):
    async def token_for(self, installation_id: int | None) -> str: ...


class AppCredentials:
    """A GitHub App's installation access tokens.

    A token is fetched with an RS256 JWT (gidgethub's ``get_jwt``: ``iat`` backdated 60 s, ``exp``
    ten minutes after that) and cached per installation until ``refresh_margin`` seconds before its
    ``expires_at``, as told by ``clock``. Concurrent callers for one installation share one request.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_url: str,
        app_id: str,
        private_key: str,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 300.0,
        timeout: float = 30.0,
        user_agent: str = "mirror-registry",
    ) -> None:
        self._session = session
        self._api_url = api_url
        self._app_id = app_id
        self._private_key = private_key
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._timeout = timeout
        self._user_agent = user_agent
        self._tokens: dict[int, tuple[str, float]] = {}  # installation id -> (token, expires_at epoch)
        self._locks: dict[int, asyncio.Lock] = {}

    async def token_for(self, installation_id: int | None) -> str:
        if installation_id is None:
            raise ValueError("a GitHub App needs an installation id to get an access token")
        async with self._locks.setdefault(installation_id, asyncio.Lock()):
            cached = self._tokens.get(installation_id)
            if cached is None or self._clock() >= cached[1] - self._refresh_margin:
                cached = await self._fetch(installation_id)
                self._tokens[installation_id] = cached
            return cached[0]

    async def _fetch(self, installation_id: int) -> tuple[str, float]:
        what = f"getting an access token for GitHub App installation {installation_id}"
        gh = _TimedGitHubAPI(self._session, self._user_agent, timeout=self._timeout, base_url=self._api_url)
        with github_errors(what):
            answer = await gidgethub.apps.get_installation_access_token(
                gh, installation_id=str(installation_id), app_id=self._app_id, private_key=self._private_key
            )
        return _parsed(what, _installation_token, answer)

    def jwt(self) -> str:
        """A fresh App JWT, for the App's own endpoints (``/app``, ``/app/installations``)."""
        return gidgethub.apps.get_jwt(app_id=self._app_id, private_key=self._private_key)


class TokenCredentials:
    """One plain token (a PAT or fine-grained token) for every request, whatever the installation."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token_for(self, installation_id: int | None) -> str:
        return self._token


class GitHubClient:
    """The GitHub REST calls the mirror makes, authenticated by ``credentials``."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_url: str,
        credentials: GitHubCredentials,
        timeout: float = 30.0,
        user_agent: str = "mirror-registry",
    ) -> None:
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._credentials = credentials
        self._timeout = timeout
        self._user_agent = user_agent

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session

    @property
    def api_url(self) -> str:
        return self._api_url

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def is_app(self) -> bool:
        return isinstance(self._credentials, AppCredentials)

    async def auth_headers(self, installation_id: int | None, *, app: bool = False) -> dict[str, str]:
        """The headers of a JSON request: as the App itself (its JWT) with ``app``, else with the
        installation's token (or the plain token)."""
        if app:
            if not isinstance(self._credentials, AppCredentials):
                raise GitHubError("this call needs a GitHub App ([github] app_id)", status_code=401)
            authorization = f"Bearer {self._credentials.jwt()}"
        else:
            authorization = f"token {await self._credentials.token_for(installation_id)}"
        return {"User-Agent": self._user_agent, "Accept": "application/vnd.github+json", "Authorization": authorization}

    async def installation_repositories(self, installation_id: int | None) -> list[Repository]:
        """The repositories an App installation may access (with a plain token, use
        ``account_repositories``: this endpoint needs an installation token)."""
        what = f"listing the repositories of installation {installation_id}"
        url = f"/installation/repositories?per_page={_PER_PAGE}"
        items = await self._get_all(what, url, {}, installation_id, iterable_key="repositories")
        return _parsed(what, _repositories, items)

    async def account_repositories(self, owner: str) -> list[Repository]:
        """The repositories of an organization, or else of a user, that the token can see."""
        what = f"listing the repositories of {owner}"
        try:
            items = await self._get_all(what, f"/orgs/{{owner}}/repos?per_page={_PER_PAGE}", {"owner": owner}, None)
        except GitHubError as exc:
            if exc.status_code != 404:
                raise
            items = await self._get_all(what, f"/users/{{owner}}/repos?per_page={_PER_PAGE}", {"owner": owner}, None)
        return _parsed(what, _repositories, items)

    async def repository(self, owner: str, name: str, installation_id: int | None) -> Repository:
        what = f"getting repository {owner}/{name}"
        gh = await self._api(installation_id)
        with github_errors(what):
            item = await gh.getitem("/repos/{owner}/{repo}", {"owner": owner, "repo": name})
        return _parsed(what, parse_repository, item)

    async def tags(self, owner: str, name: str, installation_id: int | None) -> list[Tag]:
        what = f"listing the tags of {owner}/{name}"
        url = f"/repos/{{owner}}/{{repo}}/tags?per_page={_PER_PAGE}"
        items = await self._get_all(what, url, {"owner": owner, "repo": name}, installation_id)
        return _parsed(what, lambda tags: [Tag(name=t["name"], commit_sha=t["commit"]["sha"]) for t in tags], items)

    async def release(self, owner: str, name: str, release_id: int, installation_id: int | None) -> Release:
        """One release with its assets (``GET /repos/{owner}/{repo}/releases/{release_id}``)."""
        what = f"getting release {release_id} of {owner}/{name}"
        gh = await self._api(installation_id)
        with github_errors(what):
            item = await gh.getitem(
                "/repos/{owner}/{repo}/releases/{release_id}",
                {"owner": owner, "repo": name, "release_id": str(int(release_id))},
            )
        return _parsed(what, _release, item)

    async def download_tarball(
        self, owner: str, name: str, ref: str, installation_id: int | None, dst: BinaryIO, max_bytes: int
    ) -> int:
        """Stream the tarball of ``ref`` into ``dst`` and return the number of bytes written.

        GitHub answers the API request with a redirect to a short-lived URL on another host, which
        is followed without the Authorization header. Raises ``PayloadTooLarge`` once the body
        passes ``max_bytes`` (``dst`` then holds a partial tarball).
        """
        what = f"downloading the tarball of {owner}/{name} at {ref!r}"
        path = ("repos", owner, name, "tarball", ref)
        return await self._download(what, "the tarball", path, installation_id, dst, max_bytes, accept=None)

    async def download_release_asset(
        self, owner: str, name: str, asset: ReleaseAsset, installation_id: int | None, dst: BinaryIO, max_bytes: int
    ) -> int:
        """Stream a release asset's bytes into ``dst`` and return how many were written, as
        ``download_tarball`` does: ``GET /repos/{owner}/{repo}/releases/assets/{id}`` with
        ``Accept: application/octet-stream``, whose redirect to the storage URL is followed without
        the Authorization header. ``PayloadTooLarge`` once the body passes ``max_bytes``."""
        what = f"downloading release asset {asset.name!r} of {owner}/{name}"
        path = ("repos", owner, name, "releases", "assets", str(int(asset.id)))
        return await self._download(
            what, asset.name, path, installation_id, dst, max_bytes, accept="application/octet-stream"
        )

    async def _download(
        self,
        what: str,
        noun: str,
        path_parts: tuple[str, ...],
        installation_id: int | None,
        dst: BinaryIO,
        max_bytes: int,
        *,
        accept: str | None,
    ) -> int:
        token = await self._credentials.token_for(installation_id)
        path = "/".join(quote(part, safe="") for part in path_parts)
        headers = {"User-Agent": self._user_agent, "Authorization": f"token {token}"}
        if accept:
            headers["Accept"] = accept
        # no total timeout: a tarball takes as long as its size; a stalled read still times out
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=self._timeout)
        with github_errors(what):
            async with self._session.get(
                URL(f"{self._api_url}/{path}", encoded=True),
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
                auto_decompress=False,
            ) as response:
                if response.status not in _REDIRECT_STATUSES:
                    return await _copy_body(what, noun, response, dst, max_bytes)
                target = _redirect_target(what, response)
            follow = {"User-Agent": self._user_agent} | ({"Accept": accept} if accept else {})
            async with self._session.get(target, headers=follow, timeout=timeout, auto_decompress=False) as response:
                return await _copy_body(what, noun, response, dst, max_bytes)

    async def _api(self, installation_id: int | None) -> gidgethub.aiohttp.GitHubAPI:
        token = await self._credentials.token_for(installation_id)
        return _TimedGitHubAPI(
            self._session, self._user_agent, timeout=self._timeout, oauth_token=token, base_url=self._api_url
        )

    async def _get_all(
        self,
        what: str,
        url: str,
        url_vars: Mapping[str, str],
        installation_id: int | None,
        *,
        iterable_key: str | None = None,
    ) -> list[Any]:
        """Every item of a paginated list, following ``Link: <...>; rel="next"``."""
        gh = await self._api(installation_id)
        with github_errors(what):
            return [item async for item in gh.getiter(url, url_vars, iterable_key=iterable_key)]


class _TimedGitHubAPI(gidgethub.aiohttp.GitHubAPI):
    """gidgethub's aiohttp backend, with a timeout on each request (gidgethub sets none)."""

    def __init__(self, session: aiohttp.ClientSession, requester: str, *, timeout: float, **kwargs: Any) -> None:
        super().__init__(session, requester, **kwargs)
        self._timeout = timeout

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        async with asyncio.timeout(self._timeout):
            return await super()._request(method, url, headers, body)


@contextmanager
def github_errors(what: str) -> Iterator[None]:
    """Translate gidgethub and aiohttp failures of ``what`` into GitHubError / GitHubUnavailable."""
    try:
        yield
    except gidgethub.HTTPException as exc:
        raise status_error(what, int(exc.status_code), exc.headers, str(exc)) from exc
    except TimeoutError as exc:
        raise GitHubUnavailable(f"{what}: GitHub did not answer in time") from exc
    except aiohttp.ClientError as exc:
        raise GitHubUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GitHubUnavailable(f"{what}: GitHub's answer is unreadable ({exc})") from exc


def status_error(what: str, status: int, headers: Mapping[str, str], detail: str) -> MirrorError:
    """The error for an unsuccessful HTTP answer: rate limits and 5xx may pass, other 4xx will not."""
    message = f"{what}: GitHub answered {status} ({detail})"
    rate_limited = status == 429 or (
        status == 403 and (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers)
    )
    if rate_limited:
        if "retry-after" in headers:
            resume_at = time.time() + header_number(headers.get("retry-after"), 60.0)
        else:
            resume_at = header_number(headers.get("x-ratelimit-reset"), time.time() + 60)
        return RateLimited(message, resume_at=resume_at)
    if 400 <= status < 500:
        return GitHubError(message, status_code=status)
    return GitHubUnavailable(message)


def header_number(text: str | None, default: float) -> float:
    """A header's non-negative number (``retry-after``, ``x-ratelimit-reset``), else ``default``."""
    try:
        return max(0.0, float(text)) if text is not None else default
    except ValueError:
        return default


def _parsed(what: str, parse: Callable[[Any], _T], data: Any) -> _T:
    """``parse(data)``, with a body not shaped as expected reported as GitHubUnavailable."""
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise GitHubUnavailable(f"{what}: unexpected answer from GitHub ({type(exc).__name__}: {exc})") from exc


def _installation_token(answer: Mapping[str, Any]) -> tuple[str, float]:
    """(token, expires_at as an epoch) from POST /app/installations/{id}/access_tokens."""
    return answer["token"], datetime.fromisoformat(answer["expires_at"]).timestamp()


def _repositories(items: list[Any]) -> list[Repository]:
    return [parse_repository(item) for item in items]


def parse_repository(item: Mapping[str, Any]) -> Repository:
    """A repository from GitHub's JSON."""
    return Repository(
        id=int(item["id"]),
        owner=item["owner"]["login"],
        name=item["name"],
        full_name=item["full_name"],
        html_url=item["html_url"],
        description=item.get("description"),
        default_branch=item["default_branch"],
        archived=bool(item.get("archived", False)),
    )


def _release(item: Mapping[str, Any]) -> Release:
    return Release(
        id=int(item["id"]),
        tag_name=str(item["tag_name"]),
        draft=bool(item.get("draft", False)),
        prerelease=bool(item.get("prerelease", False)),
        html_url=str(item.get("html_url") or ""),
        assets=tuple(
            ReleaseAsset(id=int(a["id"]), name=str(a["name"]), size=int(a["size"]), state=str(a.get("state", "uploaded")))
            for a in item.get("assets") or ()
        ),
    )


def _redirect_target(what: str, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise GitHubUnavailable(f"{what}: GitHub answered {response.status} without a Location")
    return response.url.join(URL(location, encoded=True))


async def _copy_body(what: str, noun: str, response: aiohttp.ClientResponse, dst: BinaryIO, max_bytes: int) -> int:
    """Stream a 200 answer's body into ``dst``, at most ``max_bytes`` of it; return its size."""
    if response.status != 200:
        raise status_error(what, response.status, response.headers, response.reason or "no reason")
    written = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        written += len(chunk)
        if written > max_bytes:
            raise PayloadTooLarge(f"{what}: {noun} is larger than the limit of {max_bytes} bytes")
        dst.write(chunk)
    return written
