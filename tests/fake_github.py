"""A fake GitHub for tests: the REST routes the mirror uses, as an aiohttp app, plus webhook builders.

Start it with aiohttp's ``aiohttp_server`` fixture; the server's base URL is the ``api_url``::

    fake = FakeGitHub()
    server = await aiohttp_server(fake.app)
    api_url = str(server.make_url("")).rstrip("/")

and drive it through its state: ``add_repository``, ``add_tag``, ``add_release``, ``plain_tokens``, ``fail_next``,
``delay``, ``calls``... Route names (the keys of ``calls``, ``fail_next``, ``rate_limit_next`` and
``delay``, ``together``) are listed in ``ROUTES``.

The list routes (``CONDITIONAL_ROUTES``) send an ``ETag`` and answer a matching ``If-None-Match``
with 304, counted in ``not_modified`` and free of rate limit. With ``rate_limit_remaining`` set,
every other API answer spends one and carries GitHub's ``x-ratelimit-*`` headers; at 0 the API
answers 403 "API rate limit exceeded" until ``rate_limit_reset`` (epoch seconds), then the budget
is ``rate_limit`` again. ``GET /app`` and ``GET /app/installations`` answer the App's JWT.

Like GitHub, the API routes want ``Authorization: token X`` (or ``Bearer X``) with an installation
token the fake issued or one of ``plain_tokens``, answer 404 for repositories the token cannot
see, and paginate lists with ``per_page`` / ``page`` and a ``Link`` header. The tarball route
redirects to a short-lived ``/_codeload/...`` URL on the same server, which refuses requests that
carry an Authorization header. Release assets are served as GitHub documents them: the release route
lists them, and the asset route with ``Accept: application/octet-stream`` redirects to a short-lived
``/_storage/...`` URL on the same server (which refuses an Authorization header too) that serves
the bytes; without that Accept it answers the asset's JSON. Installation tokens are issued for an RS256 JWT signed with the app's
private key, with ``iss`` the app id and a lifetime of at most ten minutes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import gzip
import hashlib
import hmac
import io
import json
import math
import secrets
import tarfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROUTES = (
    "access_tokens",
    "repositories",
    "org_repos",
    "user_repos",
    "repository",
    "tags",
    "tarball",
    "codeload",
    "release",
    "release_asset",
    "asset_storage",
    "app",
    "app_installations",
)
#: list routes that answer ``If-None-Match`` with 304 (no rate limit spent), as GitHub does
CONDITIONAL_ROUTES = frozenset({"repositories", "org_repos", "user_repos", "tags", "app_installations"})
#: routes outside the REST API's rate limit (the archive and asset hosts)
_UNMETERED = frozenset({"codeload", "asset_storage"})
ZERO_SHA = "0" * 40
#: what git archive stamps on members: the commit time (fixed here, so tarballs are reproducible)
_COMMIT_TIME = 1_700_000_000
_TOKEN_TTL = 3600.0
_CODELOAD_TTL = 300.0
_STORAGE_TTL = 300.0
_JWT_MAX_LIFETIME = 600
_SENDER = {"login": "octocat", "id": 583231, "type": "User"}

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.cache
def rsa_key_pair() -> tuple[str, str]:
    """A 2048-bit RSA key pair as (private PEM, public PEM), generated once per process."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


@dataclass(frozen=True, slots=True)
class Account:
    login: str
    id: int
    type: str  # "Organization" or "User"

    def to_json(self) -> dict[str, Any]:
        return {
            "login": self.login,
            "id": self.id,
            "node_id": f"MDQ6{self.id}",
            "type": self.type,
            "site_admin": False,
            "html_url": f"https://github.com/{self.login}",
            "url": f"https://api.github.com/users/{self.login}",
        }


@dataclass(eq=False)
class FakeAsset:
    id: int
    name: str
    data: bytes
    content_type: str = "application/octet-stream"
    state: str = "uploaded"

    def to_json(self, repo: FakeRepo, tag: str) -> dict[str, Any]:
        """A release asset as GitHub's REST API and webhook payloads show it."""
        return {
            "url": f"https://api.github.com/repos/{repo.full_name}/releases/assets/{self.id}",
            "browser_download_url": f"https://github.com/{repo.full_name}/releases/download/{tag}/{self.name}",
            "id": self.id,
            "node_id": f"RA_{self.id}",
            "name": self.name,
            "label": "",
            "state": self.state,
            "content_type": self.content_type,
            "size": len(self.data),
            "download_count": 0,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "uploader": _SENDER,
        }


@dataclass(eq=False)
class FakeRelease:
    id: int
    tag: str
    assets: list[FakeAsset] = field(default_factory=list)
    draft: bool = False
    prerelease: bool = False

    def to_json(self, repo: FakeRepo) -> dict[str, Any]:
        """The release object of GitHub's REST API and ``release`` deliveries."""
        api = f"https://api.github.com/repos/{repo.full_name}"
        return {
            "url": f"{api}/releases/{self.id}",
            "assets_url": f"{api}/releases/{self.id}/assets",
            "upload_url": f"https://uploads.github.com/repos/{repo.full_name}/releases/{self.id}/assets{{?name,label}}",
            "html_url": f"https://github.com/{repo.full_name}/releases/tag/{self.tag}",
            "id": self.id,
            "node_id": f"RE_{self.id}",
            "tag_name": self.tag,
            "target_commitish": repo.default_branch,
            "name": self.tag,
            "body": "",
            "draft": self.draft,
            "prerelease": self.prerelease,
            "created_at": "2024-01-01T00:00:00Z",
            "published_at": None if self.draft else "2024-01-01T00:00:00Z",
            "author": _SENDER,
            "tarball_url": f"{api}/tarball/{self.tag}",
            "zipball_url": f"{api}/zipball/{self.tag}",
            "assets": [asset.to_json(repo, self.tag) for asset in self.assets],
        }


@dataclass(eq=False)
class FakeRepo:
    id: int
    account: Account
    name: str
    installation_id: int | None
    description: str | None = None
    archived: bool = False
    default_branch: str = "main"
    tags: dict[str, str] = field(default_factory=dict)  # tag name -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> files
    #: pushes so far (tags added, moved or deleted): GitHub's ``pushed_at`` moves with each one,
    #: so the delivery of a tag deleted and pushed back is not byte-identical to the first one
    pushes: int = 0
    releases: dict[int, FakeRelease] = field(default_factory=dict)  # release id -> release

    @property
    def owner(self) -> str:
        return self.account.login

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        """The repository object of GitHub's REST API and webhook payloads."""
        api = f"https://api.github.com/repos/{self.full_name}"
        return {
            "id": self.id,
            "node_id": f"R_{self.id}",
            "name": self.name,
            "full_name": self.full_name,
            "private": True,
            "owner": self.account.to_json(),
            "html_url": f"https://github.com/{self.full_name}",
            "description": self.description,
            "fork": False,
            "url": api,
            "tags_url": f"{api}/tags",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "pushed_at": datetime.fromtimestamp(1704067200 + self.pushes, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "default_branch": self.default_branch,
            "archived": self.archived,
            "disabled": False,
            "visibility": "private",
            "topics": [],
        }

    def resolve(self, ref: str) -> str | None:
        """The commit sha that ``ref`` (a tag name or a full commit sha) names, if any."""
        if ref in self.tags:
            return self.tags[ref]
        return ref if ref in self.commits else None

    def release_of(self, tag: str) -> FakeRelease | None:
        return next((release for release in self.releases.values() if release.tag == tag), None)


class _Refusal(Exception):
    """An error answer, rendered by the middleware as GitHub's ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class _Grant:
    """What a token may see: one installation's repositories, or (``None``) every repository."""

    installation_id: int | None

    def sees(self, repo: FakeRepo) -> bool:
        return self.installation_id is None or repo.installation_id == self.installation_id


class FakeGitHub:
    """GitHub's state (accounts, installations, repositories, tags, tokens) and its REST routes in ``app``."""

    def __init__(
        self,
        *,
        app_id: str = "1234",
        private_key_pem: str | None = None,
        public_key_pem: str | None = None,
        plain_tokens: Iterable[str] = (),
    ) -> None:
        """The app's keys default to ``rsa_key_pair()``; ``private_key_pem`` is kept for callers
        that configure the code under test from the fake."""
        default_private, default_public = rsa_key_pair()
        self.app_id = app_id
        self.private_key_pem = private_key_pem or default_private
        self.public_key_pem = public_key_pem or default_public
        self.plain_tokens: set[str] = set(plain_tokens)
        self.installations: dict[int, Account] = {}
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.installation_tokens: dict[str, tuple[int, float]] = {}  # token -> (installation id, expires epoch)
        self.tokens_issued = 0
        self.fail_next: dict[str, int] = {}  # route -> answer 500 this many times
        self.rate_limit_next: dict[str, int] = {}  # route -> answer 403 "rate limit exceeded" this many times
        self.delay: dict[str, float] = {}  # route -> seconds to wait before answering
        #: route -> hold its calls until this many are waiting, then answer them together (once)
        self.together: dict[str, int] = {}
        self._gathered: dict[str, tuple[asyncio.Event, list[None]]] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.not_modified: collections.Counter[str] = collections.Counter()  # route -> 304 answers
        self.rate_limit = 5000
        self.rate_limit_remaining: int | None = None  # None: no budget kept
        self.rate_limit_reset = 0.0
        self.app_permissions: dict[str, str] = {"contents": "read", "metadata": "read"}
        self._accounts: dict[str, Account] = {}
        self._codeload_tickets: dict[str, tuple[str, str, str, float]] = {}  # token -> (owner, repo, sha, expires)
        self._storage_tickets: dict[str, tuple[FakeAsset, float]] = {}  # token -> (asset, expires)
        self._ids = iter(range(1000, 10**9))
        self._closing = asyncio.Event()
        self.app = self._build_app()

    # State -------------------------------------------------------------------------------------

    def add_installation(self, installation_id: int, account: str, *, account_type: str = "Organization") -> None:
        """Register an installation (``add_repository`` does it for the repository's owner)."""
        self.installations.setdefault(installation_id, self._account(account, account_type))

    def add_repository(
        self,
        owner: str,
        name: str,
        *,
        installation_id: int | None = 1,
        description: str | None = None,
        archived: bool = False,
        owner_type: str = "Organization",
        default_branch: str = "main",
    ) -> FakeRepo:
        account = self._account(owner, owner_type)
        if installation_id is not None:
            self.installations.setdefault(installation_id, account)
        repo = FakeRepo(
            id=next(self._ids),
            account=account,
            name=name,
            installation_id=installation_id,
            description=description,
            archived=archived,
            default_branch=default_branch,
        )
        self.repos[(owner, name)] = repo
        return repo

    def remove_repository(self, owner: str, name: str) -> FakeRepo:
        return self.repos.pop((owner, name))

    def rename_repository(self, owner: str, name: str, new_name: str) -> FakeRepo:
        repo = self.repos.pop((owner, name))
        repo.name = new_name
        self.repos[(owner, new_name)] = repo
        return repo

    def add_tag(
        self, owner: str, name: str, tag: str, files: dict[str, bytes], *, commit_sha: str | None = None
    ) -> str:
        """Tag a new commit holding ``files`` (paths relative to the repository root); return its sha."""
        repo = self.repos[(owner, name)]
        sha = commit_sha or secrets.token_hex(20)
        repo.commits[sha] = dict(files)
        repo.tags[tag] = sha
        repo.pushes += 1
        return sha

    def move_tag(
        self, owner: str, name: str, tag: str, files: dict[str, bytes], *, commit_sha: str | None = None
    ) -> str:
        """Point an existing tag at a new commit holding ``files``; return its sha."""
        if tag not in self.repos[(owner, name)].tags:
            raise KeyError(f"{owner}/{name} has no tag {tag!r}")
        return self.add_tag(owner, name, tag, files, commit_sha=commit_sha)

    def delete_tag(self, owner: str, name: str, tag: str) -> None:
        del self.repos[(owner, name)].tags[tag]
        self.repos[(owner, name)].pushes += 1

    def add_release(
        self,
        owner: str,
        name: str,
        tag: str,
        assets: dict[str, bytes],
        *,
        draft: bool = False,
        prerelease: bool = False,
    ) -> FakeRelease:
        """Publish a release of ``tag`` with ``assets`` (file name -> bytes), in that order."""
        repo = self.repos[(owner, name)]
        release = FakeRelease(id=next(self._ids), tag=tag, draft=draft, prerelease=prerelease)
        for asset_name, data in assets.items():
            release.assets.append(FakeAsset(id=next(self._ids), name=asset_name, data=data, content_type=_media(asset_name)))
        repo.releases[release.id] = release
        return release

    def tarball(self, owner: str, name: str, ref: str) -> bytes:
        """The exact bytes the fake serves for ``ref``'s tarball."""
        repo = self.repos[(owner, name)]
        sha = repo.resolve(ref)
        if sha is None:
            raise KeyError(f"{owner}/{name} has no ref {ref!r}")
        return build_tarball(f"{owner}-{name}-{sha[:7]}", sha, repo.commits[sha])

    def _account(self, login: str, account_type: str) -> Account:
        return self._accounts.setdefault(login, Account(login=login, id=next(self._ids), type=account_type))

    # App ---------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(
            "/app/installations/{installation_id}/access_tokens", self._access_tokens, name="access_tokens"
        )
        app.router.add_get("/installation/repositories", self._installation_repositories, name="repositories")
        app.router.add_get("/orgs/{owner}/repos", self._org_repos, name="org_repos")
        app.router.add_get("/users/{owner}/repos", self._user_repos, name="user_repos")
        app.router.add_get("/repos/{owner}/{repo}", self._repository, name="repository")
        app.router.add_get("/repos/{owner}/{repo}/tags", self._tags, name="tags")
        app.router.add_get("/repos/{owner}/{repo}/tarball/{ref:.+}", self._tarball, name="tarball")
        app.router.add_get("/_codeload/{owner}/{repo}/legacy.tar.gz/{ref:.+}", self._codeload, name="codeload")
        app.router.add_get("/repos/{owner}/{repo}/releases/{release_id:[0-9]+}", self._release, name="release")
        app.router.add_get(
            "/repos/{owner}/{repo}/releases/assets/{asset_id:[0-9]+}", self._release_asset, name="release_asset"
        )
        app.router.add_get("/_storage/{ticket}/{file_name}", self._asset_storage, name="asset_storage")
        app.router.add_get("/app", self._app, name="app")
        app.router.add_get("/app/installations", self._app_installations, name="app_installations")
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()  # ends pending delays, so that the server stops at once

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Count calls and apply the configured delays and failures; render refusals as GitHub does."""
        route = request.match_info.route.name
        if route:
            self.calls[route] += 1
            await self._sleep(self.delay.get(route, 0.0))
            await self._gather(route)
            if _take(self.fail_next, route):
                return _error_response(500, "Server Error")
            if _take(self.rate_limit_next, route):
                reset = str(int(time.time()) + 60)
                headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
                return _error_response(403, "API rate limit exceeded", headers)
            if route not in _UNMETERED and self._rate_limited():
                return _error_response(403, "API rate limit exceeded", self._rate_headers())
        try:
            response = await handler(request)
        except _Refusal as refusal:
            response = _error_response(refusal.status, refusal.message)
        if route in CONDITIONAL_ROUTES and response.status == 200 and isinstance(response, web.Response):
            body = response.body if isinstance(response.body, bytes) else b""
            etag = '"' + hashlib.sha256(body + response.headers.get("Link", "").encode()).hexdigest()[:32] + '"'
            response.headers["ETag"] = etag
            if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
                self.not_modified[route] += 1
                return web.Response(status=304, headers={"ETag": etag} | self._rate_headers())
        if route and route not in _UNMETERED and self.rate_limit_remaining is not None:
            self.rate_limit_remaining = max(0, self.rate_limit_remaining - 1)
            response.headers.update(self._rate_headers())
        return response

    def _rate_limited(self) -> bool:
        if self.rate_limit_remaining is None:
            return False
        if self.rate_limit_remaining <= 0 and time.time() >= self.rate_limit_reset:
            self.rate_limit_remaining = self.rate_limit
        return self.rate_limit_remaining <= 0

    def _rate_headers(self) -> dict[str, str]:
        if self.rate_limit_remaining is None:
            return {}
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(self.rate_limit_remaining),
            "x-ratelimit-reset": str(math.ceil(self.rate_limit_reset)),
            "x-ratelimit-resource": "core",
        }

    async def _gather(self, route: str) -> None:
        """Hold this call until ``together[route]`` calls wait, then let them all go at once."""
        wanted = self.together.get(route)
        if not wanted:
            return
        released, waiting = self._gathered.setdefault(route, (asyncio.Event(), []))
        waiting.append(None)
        if len(waiting) >= wanted:
            del self.together[route], self._gathered[route]
            released.set()
            return
        wait = asyncio.ensure_future(released.wait())
        closing = asyncio.ensure_future(self._closing.wait())
        await asyncio.wait((wait, closing), return_when=asyncio.FIRST_COMPLETED)
        wait.cancel()
        closing.cancel()

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _access_tokens(self, request: web.Request) -> web.Response:
        self._verify_app_jwt(request)
        installation_id = int(request.match_info["installation_id"])
        if installation_id not in self.installations:
            raise _Refusal(404, "Not Found")
        token = "ghs_" + secrets.token_hex(18)
        expires = float(int(time.time() + _TOKEN_TTL))
        self.installation_tokens[token] = (installation_id, expires)
        self.tokens_issued += 1
        body = {
            "token": token,
            "expires_at": _rfc3339(expires),
            "permissions": {"contents": "read", "metadata": "read"},
            "repository_selection": "selected",
        }
        return web.json_response(body, status=201)

    def _verify_app_jwt(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise _Refusal(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["RS256"],
                issuer=self.app_id,
                options={"require": ["iat", "exp", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise _Refusal(401, f"A JSON web token could not be decoded: {exc}") from None
        if claims["exp"] - claims["iat"] > _JWT_MAX_LIFETIME:
            raise _Refusal(401, "'Expiration time' claim ('exp') is too far in the future")

    async def _app(self, request: web.Request) -> web.Response:
        self._verify_app_jwt(request)
        body = {
            "id": int(self.app_id),
            "slug": "mirror-registry",
            "name": "mirror registry",
            "owner": _SENDER,
            "permissions": dict(self.app_permissions),
            "events": ["create", "delete", "push", "release", "repository"],
            "installations_count": len(self.installations),
        }
        return web.json_response(body)

    async def _app_installations(self, request: web.Request) -> web.Response:
        self._verify_app_jwt(request)
        items = [
            {
                "id": installation_id,
                "account": account.to_json(),
                "app_id": int(self.app_id),
                "target_type": account.type,
                "repository_selection": "selected",
                "permissions": dict(self.app_permissions),
                "events": ["create", "delete", "push", "release", "repository"],
                "suspended_at": None,
            }
            for installation_id, account in sorted(self.installations.items())
        ]
        page, headers = _paginate(request, items)
        return web.json_response(page, headers=headers)

    def remove_installation(self, installation_id: int) -> None:
        """Uninstall the App from an account (its repositories stay, unseen by the App)."""
        del self.installations[installation_id]
        for repo in self.repos.values():
            if repo.installation_id == installation_id:
                repo.installation_id = None

    async def _installation_repositories(self, request: web.Request) -> web.Response:
        grant = self._grant(request)
        if grant.installation_id is None:
            raise _Refusal(403, "This endpoint requires you to be authenticated as a GitHub App installation")
        repos = [repo.to_json() for repo in self._visible(grant)]
        page, headers = _paginate(request, repos)
        body = {"total_count": len(repos), "repository_selection": "selected", "repositories": page}
        return web.json_response(body, headers=headers)

    async def _org_repos(self, request: web.Request) -> web.Response:
        account = self._accounts.get(request.match_info["owner"])
        if account is None or account.type != "Organization":
            raise _Refusal(404, "Not Found")
        return self._account_repos(request, account)

    async def _user_repos(self, request: web.Request) -> web.Response:
        account = self._accounts.get(request.match_info["owner"])
        if account is None:
            raise _Refusal(404, "Not Found")
        return self._account_repos(request, account)

    def _account_repos(self, request: web.Request, account: Account) -> web.Response:
        repos = [repo.to_json() for repo in self._visible(self._grant(request)) if repo.account == account]
        page, headers = _paginate(request, repos)
        return web.json_response(page, headers=headers)

    async def _repository(self, request: web.Request) -> web.Response:
        return web.json_response(self._visible_repo(request).to_json())

    async def _tags(self, request: web.Request) -> web.Response:
        repo = self._visible_repo(request)
        tags = [_tag_json(repo, tag, repo.tags[tag]) for tag in sorted(repo.tags, reverse=True)]
        page, headers = _paginate(request, tags)
        return web.json_response(page, headers=headers)

    async def _tarball(self, request: web.Request) -> web.Response:
        repo = self._visible_repo(request)
        ref = request.match_info["ref"]
        sha = repo.resolve(ref)
        if sha is None:
            raise _Refusal(404, "Not Found")
        ticket = secrets.token_urlsafe(16)
        self._codeload_tickets[ticket] = (repo.owner, repo.name, sha, time.time() + _CODELOAD_TTL)
        location = request.url.with_path(f"/_codeload/{repo.owner}/{repo.name}/legacy.tar.gz/{ref}").with_query(
            token=ticket
        )
        raise web.HTTPFound(location)

    async def _codeload(self, request: web.Request) -> web.StreamResponse:
        if "Authorization" in request.headers:
            raise _Refusal(400, "Authorization header is not allowed on a codeload URL")
        owner, name = request.match_info["owner"], request.match_info["repo"]
        ticket = self._codeload_tickets.get(request.query.get("token", ""))
        if ticket is None or ticket[:2] != (owner, name) or ticket[3] < time.time():
            raise _Refusal(404, "Not Found")
        sha = ticket[2]
        body = build_tarball(f"{owner}-{name}-{sha[:7]}", sha, self.repos[(owner, name)].commits[sha])
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-gzip",
                "Content-Disposition": f"attachment; filename={owner}-{name}-{sha[:7]}.tar.gz",
            }
        )
        response.enable_chunked_encoding()  # codeload generates archives on the fly: no Content-Length
        await response.prepare(request)
        for start in range(0, len(body), 64 * 1024):
            await response.write(body[start : start + 64 * 1024])
        await response.write_eof()
        return response

    async def _release(self, request: web.Request) -> web.Response:
        repo = self._visible_repo(request)
        release = repo.releases.get(int(request.match_info["release_id"]))
        if release is None:
            raise _Refusal(404, "Not Found")
        return web.json_response(release.to_json(repo))

    async def _release_asset(self, request: web.Request) -> web.Response:
        """The asset's JSON, or with ``Accept: application/octet-stream`` a 302 to its bytes."""
        repo = self._visible_repo(request)
        asset_id = int(request.match_info["asset_id"])
        for release in repo.releases.values():
            for asset in release.assets:
                if asset.id != asset_id:
                    continue
                if request.headers.get("Accept") != "application/octet-stream":
                    return web.json_response(asset.to_json(repo, release.tag))
                ticket = secrets.token_urlsafe(16)
                self._storage_tickets[ticket] = (asset, time.time() + _STORAGE_TTL)
                raise web.HTTPFound(request.url.with_path(f"/_storage/{ticket}/{asset.name}").with_query(None))
        raise _Refusal(404, "Not Found")

    async def _asset_storage(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            raise _Refusal(400, "Only one auth mechanism allowed")
        found = self._storage_tickets.get(request.match_info["ticket"])
        if found is None or found[1] < time.time() or found[0].name != request.match_info["file_name"]:
            raise _Refusal(403, "Request has expired")
        asset = found[0]
        headers = {"Content-Disposition": f"attachment; filename={asset.name}"}
        return web.Response(body=asset.data, content_type="application/octet-stream", headers=headers)

    def _grant(self, request: web.Request) -> _Grant:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() in ("token", "bearer"):
            if token in self.plain_tokens:
                return _Grant(None)
            installation = self.installation_tokens.get(token)
            if installation is not None and installation[1] > time.time():
                return _Grant(installation[0])
        raise _Refusal(401, "Bad credentials")

    def _visible(self, grant: _Grant) -> list[FakeRepo]:
        return sorted((repo for repo in self.repos.values() if grant.sees(repo)), key=lambda repo: repo.id)

    def _visible_repo(self, request: web.Request) -> FakeRepo:
        grant = self._grant(request)
        repo = self.repos.get((request.match_info["owner"], request.match_info["repo"]))
        if repo is None or not grant.sees(repo):
            raise _Refusal(404, "Not Found")
        return repo


def _take(budget: dict[str, int], route: str) -> bool:
    """Spend one of ``route``'s remaining answers in ``budget``, if any is left."""
    if budget.get(route, 0) <= 0:
        return False
    budget[route] -= 1
    return True


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)}
    return web.json_response(body, status=status, headers=headers)


def _int_param(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query[name])
    except (KeyError, ValueError):
        return default


def _paginate(request: web.Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items`` (``per_page`` default 30, at most 100) and its GitHub-style Link header."""
    per_page = min(max(_int_param(request, "per_page", 30), 1), 100)
    page = max(_int_param(request, "page", 1), 1)
    last = max(math.ceil(len(items) / per_page), 1)
    rels: list[tuple[int, str]] = []
    if page > 1:
        rels.append((min(page - 1, last), "prev"))
    if page < last:
        rels += [(page + 1, "next"), (last, "last")]
    if page > 1:
        rels.append((1, "first"))
    links = ", ".join(f'<{request.url.update_query(page=str(number))}>; rel="{rel}"' for number, rel in rels)
    return items[(page - 1) * per_page : page * per_page], ({"Link": links} if links else {})


def _tag_json(repo: FakeRepo, tag: str, sha: str) -> dict[str, Any]:
    api = f"https://api.github.com/repos/{repo.full_name}"
    return {
        "name": tag,
        "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
        "zipball_url": f"{api}/zipball/refs/tags/{tag}",
        "tarball_url": f"{api}/tarball/refs/tags/{tag}",
        "node_id": f"REF_{repo.id}_{tag}",
    }


def _media(file_name: str) -> str:
    if file_name.endswith(".zip"):
        return "application/zip"
    if file_name.endswith(".json"):
        return "application/json"
    if file_name.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    return "application/octet-stream"


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_tarball(top: str, sha: str, files: dict[str, bytes]) -> bytes:
    """A tarball shaped like ``git archive``'s: a pax global header whose comment is the commit sha,
    then everything under the one directory ``top``, directories before their contents."""
    split_paths = [path.split("/") for path in files]
    directories = {top} | {f"{top}/{'/'.join(parts[:n])}" for parts in split_paths for n in range(1, len(parts))}
    out = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": sha}) as tar,
    ):
        entries = [(name, None) for name in directories] + [(f"{top}/{path}", data) for path, data in files.items()]
        for name, data in sorted(entries, key=lambda entry: entry[0]):
            info = tarfile.TarInfo(name)
            info.mtime = _COMMIT_TIME
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# Webhooks -------------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_delivery(event: str, payload: dict[str, Any], secret: str) -> tuple[dict[str, str], bytes]:
    """The (headers, body) of a webhook delivery of ``payload``, signed with ``secret``."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/fake",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body),
    }
    return headers, body


def _installation_ref(repo: FakeRepo) -> dict[str, Any]:
    """The ``installation`` key of an App's repository-level deliveries (nothing for plain webhooks)."""
    if repo.installation_id is None:
        return {}
    return {"installation": {"id": repo.installation_id, "node_id": f"MDIz{repo.installation_id}"}}


def _short_repo_json(repo: FakeRepo) -> dict[str, Any]:
    return {"id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": repo.full_name, "private": True}


def installation_payload(fake: FakeGitHub, action: str, installation_id: int) -> dict[str, Any]:
    """``installation`` (created, deleted, suspend, unsuspend), listing the installation's repositories."""
    account = fake.installations[installation_id]
    repos = [repo for repo in fake.repos.values() if repo.installation_id == installation_id]
    return {
        "action": action,
        "installation": {
            "id": installation_id,
            "account": account.to_json(),
            "app_id": int(fake.app_id),
            "target_type": account.type,
            "repository_selection": "selected",
            "permissions": {"contents": "read", "metadata": "read"},
            "events": ["create", "delete", "push", "release", "repository"],
        },
        "repositories": [_short_repo_json(repo) for repo in repos],
        "sender": _SENDER,
    }


def installation_repositories_payload(
    fake: FakeGitHub, action: str, installation_id: int, repos: Iterable[FakeRepo]
) -> dict[str, Any]:
    """``installation_repositories`` added or removed ``repos``."""
    added = [_short_repo_json(repo) for repo in repos] if action == "added" else []
    removed = [_short_repo_json(repo) for repo in repos] if action == "removed" else []
    payload = installation_payload(fake, action, installation_id)
    del payload["repositories"]
    return payload | {"repository_selection": "selected", "repositories_added": added, "repositories_removed": removed}


def repository_payload(repo: FakeRepo, action: str, *, old_name: str | None = None) -> dict[str, Any]:
    """``repository`` (created, deleted, archived, renamed with ``old_name``, ...) for ``repo`` as it is now."""
    payload: dict[str, Any] = {"action": action, "repository": repo.to_json(), "sender": _SENDER}
    if old_name is not None:
        payload["changes"] = {"repository": {"name": {"from": old_name}}}
    return payload | _installation_ref(repo)


def create_tag_payload(repo: FakeRepo, tag: str) -> dict[str, Any]:
    """``create`` of a tag (``ref`` is the short tag name)."""
    payload = {
        "ref": tag,
        "ref_type": "tag",
        "master_branch": repo.default_branch,
        "description": repo.description,
        "pusher_type": "user",
        "repository": repo.to_json(),
        "sender": _SENDER,
    }
    return payload | _installation_ref(repo)


def delete_tag_payload(repo: FakeRepo, tag: str) -> dict[str, Any]:
    """``delete`` of a tag."""
    payload = {"ref": tag, "ref_type": "tag", "pusher_type": "user", "repository": repo.to_json(), "sender": _SENDER}
    return payload | _installation_ref(repo)


def push_tag_payload(repo: FakeRepo, tag: str, *, before: str | None, after: str | None) -> dict[str, Any]:
    """``push`` of ``refs/tags/<tag>`` from commit ``before`` to ``after`` (None: the tag did not /
    no longer exists, so ``created`` / ``deleted``)."""
    payload = {
        "ref": f"refs/tags/{tag}",
        "before": before or ZERO_SHA,
        "after": after or ZERO_SHA,
        "created": before is None,
        "deleted": after is None,
        "forced": before is not None and after is not None,
        "base_ref": None,
        "compare": f"https://github.com/{repo.full_name}/compare/{tag}",
        "commits": [],
        "head_commit": None if after is None else {"id": after, "tree_id": after, "distinct": True},
        "repository": repo.to_json(),
        "pusher": {"name": _SENDER["login"], "email": "octocat@example.com"},
        "sender": _SENDER,
    }
    return payload | _installation_ref(repo)


def release_payload(repo: FakeRepo, tag: str, action: str = "published") -> dict[str, Any]:
    """``release`` of the release of ``tag``: the one ``add_release`` made, with its assets, if
    there is one; else a release without assets."""
    made = repo.release_of(tag)
    if made is not None:
        payload = {"action": action, "release": made.to_json(repo), "repository": repo.to_json(), "sender": _SENDER}
        return payload | _installation_ref(repo)
    release = {
        "id": int(hashlib.sha256(f"{repo.id}/{tag}".encode()).hexdigest()[:8], 16),
        "tag_name": tag,
        "target_commitish": repo.default_branch,
        "name": tag,
        "draft": False,
        "prerelease": False,
        "html_url": f"https://github.com/{repo.full_name}/releases/tag/{tag}",
        "tarball_url": f"https://api.github.com/repos/{repo.full_name}/tarball/{tag}",
        "created_at": "2024-01-01T00:00:00Z",
        "published_at": "2024-01-01T00:00:00Z",
        "author": _SENDER,
    }
    payload = {"action": action, "release": release, "repository": repo.to_json(), "sender": _SENDER}
    return payload | _installation_ref(repo)
