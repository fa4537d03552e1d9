"""GitLab REST API v4 access: the token, groups, projects, tags and repository archives.

Every request carries the access token in ``PRIVATE-TOKEN`` and has a timeout; lists are read 100
a page, following ``Link: <...>; rel="next"`` (only to the same API) or else ``X-Next-Page``, and
stop at a bound. Failures come out as ``GitLabUnavailable`` for what may pass (5xx, 429,
timeouts, connection failures, unreadable answers), which callers retry, and ``GitLabError`` for a
permanent 4xx answer, whose ``status_code`` is GitLab's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from mirror.domain.errors import MirrorError, PayloadTooLarge

_T = TypeVar("_T")
_CHUNK = 64 * 1024
PER_PAGE = 100
#: the most bytes a JSON answer may have
_MAX_JSON = 16 * 1024 * 1024


class GitLabUnavailable(MirrorError):
    """GitLab could not answer now (5xx, 429, timeout, connection failure): retry later."""

    status = 502


class GitLabError(MirrorError):
    """GitLab refused a request for good: a 4xx answer, whose status is ``status_code``."""

    status = 502

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    path: str  # the project's own path (its slug)
    path_with_namespace: str
    namespace_path: str  # the full path of its group or user namespace
    web_url: str
    archived: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    full_path: str
    web_url: str


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    commit_sha: str


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What GitLab says of the token: its name and scopes (None when the instance cannot tell,
    as before GitLab 16.0), and the user it acts as."""

    name: str
    scopes: tuple[str, ...] | None
    user: str | None = None
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[Any]
    #: True when the bound stopped the listing before its end
    truncated: bool


class GitLabClient:
    def __init__(self, *, session: aiohttp.ClientSession, api_url: str, token: str, timeout: float = 30.0) -> None:
        self._session = session
        self._api_url = api_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    # -- the token --------------------------------------------------------------------------

    async def token_info(self) -> TokenInfo:
        """``GET /personal_access_tokens/self`` (any access token, GitLab 16.0+); else ``GET /user``."""
        what = "reading the access token's details"
        try:
            item = await self._get_json(what, "personal_access_tokens/self")
            return _parsed(what, _token_info, item)
        except GitLabError as exc:
            if exc.status_code not in (403, 404):
                raise
        item = await self._get_json("reading the token's user", "user")
        return _parsed(what, lambda u: TokenInfo(name="", scopes=None, user=str(u["username"])), item)

    # -- groups, projects, tags -------------------------------------------------------------

    async def group(self, path: str) -> Group:
        what = f"getting group {path}"
        item = await self._get_json(what, f"groups/{quote(path, safe='')}")
        return _parsed(what, _group, item)

    async def group_projects(self, group: Group, *, include_subgroups: bool, limit: int) -> tuple[list[Project], bool]:
        """The group's projects (and its subgroups' with ``include_subgroups``), at most ``limit``;
        and whether the bound cut the list."""
        what = f"listing the projects of group {group.full_path}"
        query = {"include_subgroups": "true" if include_subgroups else "false", "order_by": "id", "sort": "asc"}
        listing = await self._get_all(what, f"groups/{group.id}/projects", query, limit)
        return _parsed(what, lambda items: [_project(item) for item in items], listing.items), listing.truncated

    async def project(self, project_id: int) -> Project:
        what = f"getting project {project_id}"
        item = await self._get_json(what, f"projects/{int(project_id)}")
        return _parsed(what, _project, item)

    async def tags(self, project_id: int, *, limit: int) -> tuple[list[Tag], bool]:
        what = f"listing the tags of project {project_id}"
        listing = await self._get_all(what, f"projects/{int(project_id)}/repository/tags", {}, limit)
        parse = lambda items: [Tag(name=str(t["name"]), commit_sha=str(t["commit"]["id"])) for t in items]  # noqa: E731
        return _parsed(what, parse, listing.items), listing.truncated

    async def download_archive(self, project_id: int, ref: str, dst: BinaryIO, max_bytes: int) -> int:
        """Stream ``GET /projects/:id/repository/archive.tar.gz?sha=REF`` into ``dst``; the
        number of bytes written. ``PayloadTooLarge`` once the body passes ``max_bytes``."""
        what = f"downloading the archive of project {project_id} at {ref!r}"
        url = URL(f"{self._api_url}/projects/{int(project_id)}/repository/archive.tar.gz").with_query(sha=ref)
        # no total timeout: an archive takes as long as its size; a stalled read still times out
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=self._timeout)
        with _gitlab_errors(what):
            async with self._session.get(
                url, headers=self._headers(), timeout=timeout, auto_decompress=False, allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise _status_error(what, response.status, await _reason(response))
                written = 0
                async for chunk in response.content.iter_chunked(_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise PayloadTooLarge(f"{what}: the archive is larger than the limit of {max_bytes} bytes")
                    dst.write(chunk)
                return written

    # -- plumbing ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self._token, "User-Agent": "mirror-registry", "Accept": "application/json"}

    async def _get_json(self, what: str, path: str, query: Mapping[str, str] | None = None) -> Any:
        data, _ = await self._get(what, URL(f"{self._api_url}/{path}", encoded=True).with_query(query or {}))
        return data

    async def _get(self, what: str, url: URL) -> tuple[Any, Mapping[str, str]]:
        with _gitlab_errors(what):
            async with self._session.get(
                url, headers=self._headers(), timeout=aiohttp.ClientTimeout(total=self._timeout), allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise _status_error(what, response.status, await _reason(response))
                body = await response.content.read(_MAX_JSON + 1)
                if len(body) > _MAX_JSON:
                    raise GitLabUnavailable(f"{what}: GitLab's answer is larger than {_MAX_JSON} bytes")
                return json.loads(body), response.headers

    async def _get_all(self, what: str, path: str, query: Mapping[str, str], limit: int) -> Listing:
        """The items of a paginated list, at most ``limit`` (and at most ``limit / 100 + 1`` pages)."""
        url: URL | None = URL(f"{self._api_url}/{path}", encoded=True).with_query({**query, "per_page": str(PER_PAGE)})
        items: list[Any] = []
        pages = 0
        while url is not None and len(items) < limit and pages <= limit // PER_PAGE:
            data, headers = await self._get(what, url)
            if not isinstance(data, list):
                raise GitLabUnavailable(f"{what}: GitLab's answer is not a list")
            items.extend(data)
            pages += 1
            url = self._next_page(url, headers) if data else None
        return Listing(items[:limit], truncated=len(items) > limit or url is not None)

    def _next_page(self, current: URL, headers: Mapping[str, str]) -> URL | None:
        """The next page: the ``Link`` header's ``rel="next"`` on this same API, else ``X-Next-Page``."""
        for part in headers.get("Link", "").split(","):
            target, _, params = part.partition(";")
            if 'rel="next"' in params.replace(" ", ""):
                link = URL(target.strip().strip("<>"), encoded=True)
                base = URL(self._api_url)
                if link.origin() == base.origin() and link.path.startswith(base.path):
                    return link
        next_page = headers.get("X-Next-Page", "").strip()
        if next_page.isdigit():
            return current.update_query(page=next_page)
        return None


@contextmanager
def _gitlab_errors(what: str) -> Iterator[None]:
    """aiohttp failures and unreadable answers of ``what`` as GitLabUnavailable."""
    try:
        yield
    except TimeoutError as exc:
        raise GitLabUnavailable(f"{what}: GitLab did not answer in time") from exc
    except aiohttp.ClientError as exc:
        raise GitLabUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GitLabUnavailable(f"{what}: GitLab's answer is unreadable ({exc})") from exc


def _status_error(what: str, status: int, detail: str) -> MirrorError:
    message = f"{what}: GitLab answered {status}" + (f" ({detail})" if detail else "")
    if 400 <= status < 500 and status not in (408, 429):
        return GitLabError(message, status_code=status)
    return GitLabUnavailable(message)


async def _reason(response: aiohttp.ClientResponse) -> str:
    """GitLab's ``message`` or ``error`` of an error answer, short, else the status reason."""
    try:
        data = json.loads(await response.content.read(4096))
    except (ValueError, UnicodeDecodeError, aiohttp.ClientError):
        return response.reason or ""
    if isinstance(data, dict):
        found = data.get("message") or data.get("error")
        if found:
            return " ".join(str(found).split())[:200]
    return response.reason or ""


def _parsed(what: str, parse: Callable[[Any], _T], data: Any) -> _T:
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise GitLabUnavailable(f"{what}: unexpected answer from GitLab ({type(exc).__name__}: {exc})") from exc


def _token_info(item: Mapping[str, Any]) -> TokenInfo:
    scopes = item.get("scopes")
    return TokenInfo(
        name=str(item.get("name") or ""),
        scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else None,
        expires_at=item.get("expires_at"),
    )


def _group(item: Mapping[str, Any]) -> Group:
    return Group(id=int(item["id"]), full_path=str(item["full_path"]), web_url=str(item.get("web_url") or ""))


def _project(item: Mapping[str, Any]) -> Project:
    return Project(
        id=int(item["id"]),
        path=str(item["path"]),
        path_with_namespace=str(item["path_with_namespace"]),
        namespace_path=str(item["namespace"]["full_path"]),
        web_url=str(item.get("web_url") or ""),
        archived=bool(item.get("archived", False)),
    )
