"""A stand-in GitLab for tests: the REST API v4 routes the mirror uses, as an aiohttp app, plus
group webhook builders.

Start it with ``aiohttp_server`` (or ``run_in_thread`` for a live ``mirror serve``); its base URL
is the ``url`` of ``[plugins.gitlab]``::

    fake = FakeGitLab()
    server = await aiohttp_server(fake.app)
    url = str(server.make_url("")).rstrip("/")

Like GitLab, every API route wants ``PRIVATE-TOKEN`` (or ``Authorization: Bearer``) with one of
``tokens`` (401 ``{"message": "401 Unauthorized"}`` otherwise); ``:id`` is a numeric id or a
URL-encoded full path (``acme%2Fplatform``); lists are paginated with ``per_page``/``page`` and
answer ``X-Page``, ``X-Per-Page``, ``X-Next-Page``, ``X-Total`` and a ``Link`` header; and the
archive route answers a ``tar.gz`` whose members sit under one ``PROJECT-REF-SHA/`` directory,
as GitLab's ``git archive`` produces them.
"""

from __future__ import annotations

import collections
import itertools
import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from tests.fake_github import build_tarball
from tests.live import serve_in_thread

ZERO_SHA = "0" * 40


@dataclass
class FakeGroup:
    id: int
    full_path: str

    def json(self, base: str) -> dict[str, Any]:
        name = self.full_path.rsplit("/", 1)[-1]
        parent = self.full_path.rpartition("/")[0]
        return {
            "id": self.id, "name": name, "path": name, "full_name": self.full_path.replace("/", " / "),
            "full_path": self.full_path, "web_url": f"{base}/groups/{self.full_path}", "visibility": "private",
            "parent_id": None if not parent else -1,
        }


@dataclass
class FakeProject:
    id: int
    path: str
    namespace_path: str
    tags: dict[str, str] = field(default_factory=dict)  # tag -> commit sha, newest last
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files

    @property
    def path_with_namespace(self) -> str:
        return f"{self.namespace_path}/{self.path}"

    def json(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.path, "path": self.path, "path_with_namespace": self.path_with_namespace,
            "name_with_namespace": self.path_with_namespace.replace("/", " / "),
            "namespace": {"id": abs(hash(self.namespace_path)) % 10_000, "kind": "group",
                          "path": self.namespace_path.rsplit("/", 1)[-1], "full_path": self.namespace_path},
            "web_url": f"{base}/{self.path_with_namespace}", "default_branch": "main", "archived": False,
            "http_url_to_repo": f"{base}/{self.path_with_namespace}.git", "visibility": "private",
        }


class FakeGitLab:
    def __init__(self, *, scopes: tuple[str, ...] = ("read_api", "read_repository")) -> None:
        self.tokens: dict[str, tuple[str, ...]] = {"glpat-" + secrets.token_urlsafe(16): scopes}
        self.groups: dict[str, FakeGroup] = {}
        self.projects: dict[int, FakeProject] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        #: answer 404 for personal_access_tokens/self, as GitLab before 16.0 does for some tokens
        self.no_token_self = False
        self._ids = itertools.count(100)
        self.app = web.Application()
        self.app.router.add_get("/api/v4/{tail:.*}", self._dispatch)
        self.base = "http://gitlab.invalid"  # web URLs; set to the server's when known

    @property
    def token(self) -> str:
        return next(iter(self.tokens))

    # -- state ----------------------------------------------------------------------------------

    def add_group(self, full_path: str) -> FakeGroup:
        parent = full_path.rpartition("/")[0]
        if parent and parent not in self.groups:
            self.add_group(parent)
        group = self.groups.setdefault(full_path, FakeGroup(next(self._ids), full_path))
        return group

    def add_project(self, namespace_path: str, path: str) -> FakeProject:
        self.add_group(namespace_path)
        project = FakeProject(next(self._ids), path, namespace_path)
        self.projects[project.id] = project
        return project

    def add_tag(self, project: FakeProject, tag: str, files: dict[str, bytes]) -> str:
        sha = secrets.token_hex(20)
        project.commits[sha] = files
        project.tags.pop(tag, None)
        project.tags[tag] = sha
        return sha

    def delete_tag(self, project: FakeProject, tag: str) -> str:
        return project.tags.pop(tag)

    def rename(self, project: FakeProject, new_path: str) -> None:
        project.path = new_path

    def transfer(self, project: FakeProject, namespace_path: str) -> None:
        self.add_group(namespace_path)
        project.namespace_path = namespace_path

    def remove(self, project: FakeProject) -> None:
        del self.projects[project.id]

    # -- routes ---------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("PRIVATE-TOKEN") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return _json({"message": "401 Unauthorized"}, status=401)
        raw = request.raw_path.split("?", 1)[0].removeprefix("/api/v4/")
        parts = [unquote(part) for part in raw.split("/")]
        match parts:
            case ["personal_access_tokens", "self"]:
                self.calls["token_self"] += 1
                if self.no_token_self:
                    return _json({"message": "404 Not Found"}, status=404)
                return _json({"id": 1, "name": "mirror", "scopes": list(self.tokens[token]), "active": True,
                              "revoked": False, "expires_at": "2099-01-01"})
            case ["user"]:
                return _json({"id": 1, "username": "project_100_bot", "name": "mirror"})
            case ["groups", ref]:
                group = self._group(ref)
                return _json(group.json(self.base)) if group else _not_found("Group")
            case ["groups", ref, "projects"]:
                self.calls["group_projects"] += 1
                group = self._group(ref)
                if group is None:
                    return _not_found("Group")
                subgroups = request.query.get("include_subgroups") == "true"
                found = [p for p in sorted(self.projects.values(), key=lambda p: p.id)
                         if p.namespace_path == group.full_path
                         or (subgroups and p.namespace_path.startswith(group.full_path + "/"))]
                return _paginate(request, [p.json(self.base) for p in found])
            case ["projects", ref]:
                project = self._project(ref)
                return _json(project.json(self.base)) if project else _not_found("Project")
            case ["projects", ref, "repository", "tags"]:
                self.calls["tags"] += 1
                project = self._project(ref)
                if project is None:
                    return _not_found("Project")
                items = [_tag_json(name, sha) for name, sha in reversed(project.tags.items())]
                return _paginate(request, items)
            case ["projects", ref, "repository", "archive.tar.gz"]:
                self.calls["archive"] += 1
                project = self._project(ref)
                if project is None:
                    return _not_found("Project")
                wanted = request.query.get("sha", "")
                sha = project.tags.get(wanted) or (wanted if wanted in project.commits else None)
                if sha is None:
                    return _not_found("Ref")
                top = f"{project.path}-{wanted.replace('/', '-')}-{sha}"  # GitLab's: a ref's "/" as "-"
                return web.Response(body=build_archive(top, sha, project.commits[sha]),
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Disposition": f'attachment; filename="{top}.tar.gz"'})
        return _not_found("")

    def _group(self, ref: str) -> FakeGroup | None:
        if ref.isdigit():
            return next((g for g in self.groups.values() if g.id == int(ref)), None)
        return self.groups.get(ref)

    def _project(self, ref: str) -> FakeProject | None:
        if ref.isdigit():
            return self.projects.get(int(ref))
        return next((p for p in self.projects.values() if p.path_with_namespace == ref), None)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json", headers=headers)


def _not_found(what: str) -> web.Response:
    return _json({"message": f"404 {what} Not Found".replace("  ", " ")}, status=404)


def _paginate(request: web.Request, items: list[Any]) -> web.Response:
    per_page = max(1, min(100, int(request.query.get("per_page", "20"))))
    page = max(1, int(request.query.get("page", "1")))
    chunk = items[(page - 1) * per_page : page * per_page]
    pages = max(1, -(-len(items) // per_page))
    headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
               "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "",
               "X-Prev-Page": str(page - 1) if page > 1 else ""}
    links = []
    if page < pages:
        links.append(f'<{request.url.update_query(page=str(page + 1))}>; rel="next"')
    links.append(f'<{request.url.update_query(page="1")}>; rel="first"')
    headers["Link"] = ", ".join(links)
    return _json(chunk, headers=headers)


def _tag_json(name: str, sha: str) -> dict[str, Any]:
    return {"name": name, "message": "", "target": sha, "protected": False, "release": None,
            "commit": {"id": sha, "short_id": sha[:8], "title": f"release {name}", "created_at": "2024-01-01T00:00:00Z"}}


def build_archive(top: str, sha: str, files: dict[str, bytes]) -> bytes:
    """A ``tar.gz`` as GitLab's archive API serves it: ``git archive``'s shape, as GitHub's tarball
    (a pax global header naming the commit, then everything under the one directory ``top``)."""
    return build_tarball(top, sha, files)


# Group webhooks -------------------------------------------------------------------------------


def delivery(event: str, payload: dict[str, Any], token: str | None) -> tuple[dict[str, str], bytes]:
    """The (headers, body) GitLab sends a group webhook for ``payload``."""
    headers = {"Content-Type": "application/json", "User-Agent": "GitLab/17.0.0", "X-Gitlab-Event": event,
               "X-Gitlab-Event-UUID": str(uuid.uuid4()), "X-Gitlab-Instance": "https://gitlab.example.com"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return headers, json.dumps(payload).encode()


def tag_push_payload(fake: FakeGitLab, project: FakeProject, tag: str, *, deleted_sha: str | None = None) -> dict[str, Any]:
    """A ``Tag Push Hook`` body: a tag created (``before`` zeros) or, with ``deleted_sha``, deleted
    (``after`` and ``checkout_sha`` zeros / null)."""
    sha = deleted_sha or project.tags[tag]
    web_url = f"{fake.base}/{project.path_with_namespace}"
    return {
        "object_kind": "tag_push", "event_name": "tag_push",
        "before": sha if deleted_sha else ZERO_SHA, "after": ZERO_SHA if deleted_sha else sha,
        "ref": f"refs/tags/{tag}", "ref_protected": False, "checkout_sha": None if deleted_sha else sha,
        "message": None, "user_id": 1, "user_name": "Jane", "user_username": "jane", "user_avatar": None,
        "project_id": project.id,
        "project": {"id": project.id, "name": project.path, "web_url": web_url, "namespace": project.namespace_path,
                    "path_with_namespace": project.path_with_namespace, "default_branch": "main",
                    "git_http_url": f"{web_url}.git", "visibility_level": 0},
        "commits": [], "total_commits_count": 0, "push_options": {},
        "repository": {"name": project.path, "url": f"{web_url}.git", "homepage": web_url},
    }


def project_event_payload(project: FakeProject, event_name: str, *, old_path: str | None = None) -> dict[str, Any]:
    """A ``Project Hook`` body (``project_create``, ``project_destroy``; a system hook's
    ``project_rename`` and ``project_transfer`` carry ``old_path_with_namespace``)."""
    data = {"event_name": event_name, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "name": project.path, "path": project.path, "path_with_namespace": project.path_with_namespace,
            "project_id": project.id, "project_namespace_id": 1, "owners": [], "project_visibility": "private"}
    if old_path is not None:
        data["old_path_with_namespace"] = old_path
    return data


@contextmanager
def run_in_thread(fake: FakeGitLab) -> Iterator[str]:
    """Serve ``fake`` on 127.0.0.1 in a thread of its own (for a live ``mirror serve``); its URL."""
    with serve_in_thread(fake.app, "the fake GitLab") as url:
        fake.base = url
        yield url


def encoded(path: str) -> str:
    return quote(path, safe="")
