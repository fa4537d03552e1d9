"""``[plugins.gitlab]``: the GitLab source's table, checked strictly (pure; the environment is given).

Keys (every one optional but ``token``/``token_env`` and ``groups``):

- ``url``: the GitLab instance, ``https://gitlab.com`` by default (a self-managed one at its base
  URL, a path prefix included: ``https://git.example.com/gitlab``); the API is ``URL/api/v4``.
- ``token`` or ``token_env``: a project, group or personal access token with ``read_api`` and
  ``read_repository``, or the environment variable holding it (read when the config is loaded).
- ``groups``: the groups (or subgroups) to watch, each a full path (``"acme"``,
  ``"acme/platform"``) or a table ``{ path = "acme/platform", namespace = "platform",
  include_subgroups = true }``.
- ``module_prefix``: projects whose path is ``PREFIX<provider>-<name>`` are modules
  (``terraform-`` by default, the GitHub convention ``terraform-PROVIDER-NAME``).
- ``webhook_token``: the secret GitLab sends in ``X-Gitlab-Token`` (required unless ``mode`` is
  ``poll``).
- ``mode``: ``webhook`` (deliveries, and polling as a reconcile every ``poll_interval``),
  ``poll`` (no webhook: polling finds every project and tag) or ``both``.
- ``poll_interval``: seconds between polls, 10 to 86400 (300 by default); ``0`` in webhook mode
  turns the reconcile off.
- ``timeout``: seconds for each API request (30), ``max_projects`` (1000) and ``max_tags``
  (1000): the most projects one poll lists and tags one project lists.
- ``monorepos``: projects that release several modules (``mirror.domain.monorepo``), each a table
  ``{ project = "acme/infra", modules = [{ path, name, provider, tag_prefix }, ...] }``; without
  ``modules``, each tag's ``.mirror.toml`` is read. The project must be inside a watched group.

A group maps to a registry namespace, which cannot hold ``/``: by default the group's full path
with each ``/`` turned into ``-`` (``acme/platform`` -> ``acme-platform``), or the group's explicit
``namespace``. A project in a subgroup below a watched group goes to the namespace of the deepest
watched group above it, followed by the rest of its path the same way: with ``acme`` watched as
``acme-corp``, a project of ``acme/platform/net`` lives in ``acme-corp-platform-net``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mirror.domain import monorepo
from mirror.domain.addresses import valid_namespace
from mirror.domain.monorepo import Monorepo
from mirror.domain.urls import http_url

DEFAULT_URL = "https://gitlab.com"
MODES = ("webhook", "poll", "both")
KEYS = (
    "url",
    "token",
    "token_env",
    "groups",
    "module_prefix",
    "webhook_token",
    "mode",
    "poll_interval",
    "timeout",
    "max_projects",
    "max_tags",
    "monorepos",
)
MONOREPO_KEYS = ("project", "modules")
GROUP_KEYS = ("path", "namespace", "include_subgroups")
#: GitLab's group paths: letters, digits, ``_``, ``-`` and ``.``, not starting with ``-`` or ``.``
_GROUP_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}\Z")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")


@dataclass(frozen=True, slots=True)
class WatchedGroup:
    path: str  # the full path, as GitLab spells it
    namespace: str
    include_subgroups: bool = True


@dataclass(frozen=True, slots=True)
class GitLabSettings:
    url: str
    token: str
    groups: tuple[WatchedGroup, ...]
    module_prefix: str = "terraform-"
    webhook_token: str | None = None
    mode: str = "webhook"
    poll_interval: int = 300
    timeout: float = 30.0
    max_projects: int = 1000
    max_tags: int = 1000
    monorepos: tuple[Monorepo, ...] = ()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    @property
    def webhooks(self) -> bool:
        return self.mode in ("webhook", "both")


def default_namespace(group_path: str) -> str:
    """The registry namespace of a group without an explicit one: ``/`` becomes ``-``."""
    return group_path.replace("/", "-")


def parse_settings(table: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[GitLabSettings | None, list[str]]:
    """The settings of ``table``, or None and one readable line per problem."""
    problems: list[str] = []
    for key in table:
        if key not in KEYS:
            problems.append(f"unknown key {key!r} (the table takes: {', '.join(KEYS)})")
    url = _url(table.get("url", DEFAULT_URL), problems)
    token = _token(table, environ, problems)
    groups = _groups(table.get("groups"), problems)
    prefix = table.get("module_prefix", "terraform-")
    if not (isinstance(prefix, str) and _PREFIX.fullmatch(prefix)):
        problems.append(
            f"module_prefix must be 1 to 64 letters, digits, '_', '-' or '.' (projects PREFIX<provider>-<name> are modules), not {prefix!r}"
        )
    mode = table.get("mode", "webhook")
    if mode not in MODES:
        problems.append(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    webhook_token = table.get("webhook_token")
    if webhook_token is not None and not (isinstance(webhook_token, str) and 16 <= len(webhook_token) <= 256):
        problems.append("webhook_token must be a string of 16 to 256 characters (the secret GitLab sends in X-Gitlab-Token)")
    elif webhook_token is None and mode in ("webhook", "both"):
        problems.append(f'webhook_token is required in mode {mode!r} (or set mode = "poll")')
    interval = table.get("poll_interval", 300)
    if not _whole(interval) or not (10 <= interval <= 86400 or (interval == 0 and mode == "webhook")):
        problems.append(f"poll_interval must be whole seconds from 10 to 86400 (0 only in webhook mode: no reconcile), not {interval!r}")
    timeout = table.get("timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 600:
        problems.append(f"timeout must be seconds from 1 to 600, not {timeout!r}")
    bounds = {}
    for key in ("max_projects", "max_tags"):
        value = table.get(key, 1000)
        if not _whole(value) or not 1 <= value <= 100_000:
            problems.append(f"{key} must be a whole number from 1 to 100000, not {value!r}")
        bounds[key] = value
    monorepos = _monorepos(table.get("monorepos", []), groups, problems)
    if problems or url is None or token is None:
        return None, problems
    settings = GitLabSettings(
        url=url,
        token=token,
        groups=groups,
        module_prefix=prefix,
        webhook_token=webhook_token,
        mode=mode,
        poll_interval=interval,
        timeout=float(timeout),
        max_projects=bounds["max_projects"],
        max_tags=bounds["max_tags"],
        monorepos=monorepos,
    )
    return settings, []


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _url(value: Any, problems: list[str]) -> str | None:
    parts = http_url(value)
    if parts is None or parts.query or parts.fragment or parts.username or parts.password:
        problems.append(f"url must be the http(s) URL of the GitLab instance (e.g. {DEFAULT_URL}), not {value!r}")
        return None
    return str(value).rstrip("/")


def _token(table: Mapping[str, Any], environ: Mapping[str, str], problems: list[str]) -> str | None:
    token, env = table.get("token"), table.get("token_env")
    if token is not None and env is not None:
        problems.append("set token or token_env, not both")
        return None
    if token is not None:
        if not isinstance(token, str) or not token.strip() or len(token) > 1024:
            problems.append("token must be a non-empty string (a project, group or personal access token)")
            return None
        return token.strip()
    if env is not None:
        if not isinstance(env, str) or not _ENV_NAME.fullmatch(env):
            problems.append(f"token_env must name an environment variable, not {env!r}")
            return None
        value = environ.get(env, "").strip()
        if not value:
            problems.append(f"token_env: the environment variable {env} is not set or empty")
            return None
        return value
    problems.append("token or token_env is required: an access token with the read_api and read_repository scopes")
    return None


def _groups(raw: Any, problems: list[str]) -> tuple[WatchedGroup, ...]:
    if raw is None:
        problems.append('groups is required: the groups to watch, e.g. groups = ["acme", "acme/platform"]')
        return ()
    if not isinstance(raw, list) or not raw:
        problems.append('groups must be a non-empty array of group paths or tables { path = "...", namespace = "..." }')
        return ()
    built: list[WatchedGroup] = []
    for number, item in enumerate(raw, start=1):
        group = _group(number, item, problems)
        if group is not None:
            built.append(group)
    seen_paths: dict[str, int] = {}
    seen_namespaces: dict[str, str] = {}
    for group in built:
        if group.path.lower() in seen_paths:
            problems.append(f"groups: {group.path!r} is listed twice")
        seen_paths[group.path.lower()] = 1
        other = seen_namespaces.get(group.namespace.lower())
        if other is not None:
            problems.append(f"groups: {other!r} and {group.path!r} both map to namespace {group.namespace!r}")
        seen_namespaces[group.namespace.lower()] = group.path
    return tuple(built)


def _group(number: int, item: Any, problems: list[str]) -> WatchedGroup | None:
    where = f"groups #{number}"
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict):
        problems.append(f'{where}: must be a group path or a table {{ path = "...", namespace = "..." }}, not {item!r}')
        return None
    for key in item:
        if key not in GROUP_KEYS:
            problems.append(f"{where}: unknown key {key!r} (a group takes: {', '.join(GROUP_KEYS)})")
    path = item.get("path")
    if not isinstance(path, str) or not path or not all(_GROUP_SEGMENT.fullmatch(part) for part in path.split("/")):
        problems.append(f"{where}: path must be a group's full path (e.g. acme or acme/platform), not {path!r}")
        return None
    namespace = item.get("namespace", default_namespace(path))
    if not isinstance(namespace, str) or not valid_namespace(namespace):
        hint = "" if "namespace" in item else "; set an explicit namespace for this group"
        problems.append(
            f"{where} ({path}): namespace {namespace!r} is not a valid registry namespace "
            f"(letters, digits, '-' and '_', at most 64){hint}"
        )
        return None
    include = item.get("include_subgroups", True)
    if not isinstance(include, bool):
        problems.append(f"{where} ({path}): include_subgroups must be true or false, not {include!r}")
        return None
    return WatchedGroup(path=path, namespace=namespace, include_subgroups=include)


def _monorepos(raw: Any, groups: tuple[WatchedGroup, ...], problems: list[str]) -> tuple[Monorepo, ...]:
    """``monorepos``: each entry's project (a full project path inside a watched group) and its
    modules, checked by ``mirror.domain.monorepo`` as ``[[github.monorepos]]`` are."""
    if not isinstance(raw, list):
        problems.append('monorepos must be an array of tables { project = "group/path", modules = [...] }')
        return ()
    built: list[Monorepo] = []
    seen: set[str] = set()
    for number, item in enumerate(raw, start=1):
        where = f"monorepos #{number}"
        if not isinstance(item, dict):
            problems.append(f'{where}: must be a table {{ project = "group/path", modules = [...] }}, not {item!r}')
            continue
        unknown = [key for key in item if key not in MONOREPO_KEYS]
        if unknown:
            problems.append(f"{where}: unknown key {unknown[0]!r} (a monorepo takes: {', '.join(MONOREPO_KEYS)})")
            continue
        project = item.get("project")
        parts = project.split("/") if isinstance(project, str) else []
        if len(parts) < 2 or not all(_GROUP_SEGMENT.fullmatch(part) for part in parts):
            problems.append(f"{where}: project must be a project's full path (e.g. acme/infra), not {project!r}")
            continue
        where = f"{where} ({project})"
        if groups and not any(_inside(group, project.rpartition("/")[0]) for group in groups):
            problems.append(f"{where}: the project is not inside a watched group (groups)")
            continue
        if project.lower() in seen:
            problems.append(f"{where}: listed twice")
            continue
        seen.add(project.lower())
        try:
            mapping = None if "modules" not in item else monorepo.parse_modules(item["modules"], where)
        except monorepo.MappingError as exc:
            problems.append(str(exc))
            continue
        built.append(Monorepo(project, mapping))
    return tuple(built)


def _inside(group: WatchedGroup, namespace_path: str) -> bool:
    path, lowered = group.path.lower(), namespace_path.lower()
    return lowered == path or (group.include_subgroups and lowered.startswith(path + "/"))
