"""What ``mirror sources check`` says of the GitLab source: read-only, one line each.

The token (does GitLab take it, has it ``read_api`` and ``read_repository``), each watched group,
which projects are modules and which are skipped and why, the webhook to set, and each tag that
would become a new version now (an ``import`` line), all within bounds. Nothing is written, to
GitLab or to the store; a problem is a ``fail`` line, never an exception.
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from mirror.domain.errors import MirrorError
from mirror.domain.provenance import Owner
from mirror.integrations.gitlab.api import GitLabClient, GitLabError, Project
from mirror.integrations.gitlab.naming import GitLabNaming
from mirror.integrations.gitlab.settings import GitLabSettings
from mirror.storage.protocols import MetadataStore

Status = Literal["ok", "warn", "fail", "import"]
Line = tuple[Status, str]
#: the most ``import`` lines one check prints (a count of the rest follows)
MAX_IMPORT_LINES = 200
REQUIRED_SCOPES = ("read_api", "read_repository")
WEBHOOK_PATH = "/gitlab/webhook"


async def check_gitlab(
    settings: GitLabSettings, client: GitLabClient, store: MetadataStore | None, public_url: str | None
) -> list[Line]:
    lines: list[Line] = []
    if not await _token(client, settings, lines):
        return lines
    lines.extend(webhook_lines(settings, public_url))
    naming = GitLabNaming(settings.groups, settings.module_prefix)
    projects = await _projects(client, settings, naming, lines)
    imports: list[str] = []
    for project in projects:
        await _project_imports(client, settings, naming, store, project, lines, imports)
    lines.extend(("import", text) for text in imports[:MAX_IMPORT_LINES])
    if len(imports) > MAX_IMPORT_LINES:
        lines.append(("ok", f"and {len(imports) - MAX_IMPORT_LINES} more versions would be imported"))
    if not imports:
        lines.append(("ok", "no tag would become a new version now"))
    return lines


async def _token(client: GitLabClient, settings: GitLabSettings, lines: list[Line]) -> bool:
    try:
        info = await client.token_info()
    except GitLabError as exc:
        hint = ": check token (or token_env) and url" if exc.status_code == 401 else ""
        lines.append(("fail", f"token: {exc}{hint}"))
        return False
    except MirrorError as exc:
        lines.append(("fail", f"GitLab at {settings.url} cannot be reached: {exc}"))
        return False
    who = f" {info.name!r}" if info.name else (f" of user {info.user}" if info.user else "")
    if info.scopes is None:
        lines.append(("ok", f"token{who} accepted by {settings.url}"))
        lines.append(("warn", "GitLab did not tell the token's scopes: it needs read_api and read_repository"))
        return True
    missing = [scope for scope in REQUIRED_SCOPES if scope not in info.scopes and "api" not in info.scopes]
    expires = f", expires {info.expires_at}" if info.expires_at else ""
    lines.append(("ok", f"token{who} accepted by {settings.url} (scopes {', '.join(info.scopes) or 'none'}{expires})"))
    if missing:
        lines.append(("fail", f"token lacks the scope{'s' if len(missing) > 1 else ''} {', '.join(missing)}: give it read_api and read_repository"))
    return True


def webhook_lines(settings: GitLabSettings, public_url: str | None) -> list[Line]:
    if not settings.webhooks:
        return [("ok", f"mode poll: the groups are polled every {settings.poll_interval} s; no webhook is needed")]
    reconcile = f", polled every {settings.poll_interval} s as a reconcile" if settings.poll_interval else ""
    if public_url is None:
        return [("warn", f"mode {settings.mode}{reconcile}: [server] public_url is unset, so the group webhook URL "
                         f"is unknown: set it, then add a group webhook to PUBLIC_URL{WEBHOOK_PATH}")]
    url = public_url.rstrip("/") + WEBHOOK_PATH
    lines: list[Line] = [
        ("ok", f"mode {settings.mode}{reconcile}: add a group webhook to {url} with secret token = webhook_token, "
               "triggers Tag push events (and Project events)")
    ]
    if _private(public_url):
        lines.append(("warn", f"public_url {public_url} is a private address: a GitLab outside this network cannot "
                              'deliver webhooks to it (set mode = "poll" there)'))
    return lines


def _private(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost",) or host.endswith((".localhost", ".local", ".internal", ".lan")) or "." not in host:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


async def _projects(client: GitLabClient, settings: GitLabSettings, naming: GitLabNaming, lines: list[Line]) -> list[Project]:
    """Each group's line and each of its projects' (a module or skipped, and why); the modules."""
    modules: dict[int, Project] = {}
    seen: set[int] = set()
    budget = settings.max_projects
    for watched in settings.groups:
        try:
            group = await client.group(watched.path)
        except GitLabError as exc:
            lines.append(("fail", f"group {watched.path}: not found or not visible to the token ({exc.status_code})"))
            continue
        except MirrorError as exc:
            lines.append(("fail", f"group {watched.path}: {exc}"))
            continue
        if budget <= 0:
            lines.append(("warn", f"group {watched.path}: not listed, max_projects ({settings.max_projects}) reached"))
            continue
        try:
            projects, truncated = await client.group_projects(group, include_subgroups=watched.include_subgroups, limit=budget)
        except MirrorError as exc:
            lines.append(("fail", f"group {watched.path}: cannot list its projects: {exc}"))
            continue
        fresh = [project for project in projects if project.id not in seen]
        seen.update(project.id for project in fresh)
        budget -= len(fresh)
        subgroups = "with its subgroups" if watched.include_subgroups else "without subgroups"
        lines.append(("ok", f"group {group.full_path} (id {group.id}, {subgroups}) -> namespace {watched.namespace}: {len(fresh)} projects"))
        if truncated:
            lines.append(("warn", f"group {watched.path}: more projects than max_projects ({settings.max_projects}); the rest are not read"))
        for project in fresh:
            reason = naming.skip_reason(project.namespace_path, project.path)
            address = naming.module_for(project.namespace_path, project.path)
            if address is not None:
                modules[project.id] = project
                lines.append(("ok", f"project {project.path_with_namespace} is module {address}"))
            elif reason is not None:
                likely = project.path.startswith(settings.module_prefix) and not reason.startswith("a provider's")
                lines.append(("warn" if likely else "ok", f"project {project.path_with_namespace} skipped: {reason}"))
    return list(modules.values())


async def _project_imports(
    client: GitLabClient,
    settings: GitLabSettings,
    naming: GitLabNaming,
    store: MetadataStore | None,
    project: Project,
    lines: list[Line],
    imports: list[str],
) -> None:
    try:
        tags, truncated = await client.tags(project.id, limit=settings.max_tags)
    except MirrorError as exc:
        lines.append(("fail", f"project {project.path_with_namespace}: cannot list its tags: {exc}"))
        return
    if truncated:
        lines.append(("warn", f"project {project.path_with_namespace}: more tags than max_tags ({settings.max_tags}); the rest are not read"))
    source = Owner.gitlab(project.id)
    refused: set[str] = set()
    for tag in tags:
        for release in naming.releases_for_tag(project.namespace_path, project.path, tag.name):
            if store is not None:
                module = await store.get_module(release.address)
                if module is not None and module.owner != source:
                    if str(release.address) not in refused:
                        refused.add(str(release.address))
                        lines.append(("fail", f"{release.address} belongs to owner source {module.owner} "
                                              f"({module.owner.describe(module.source_url)}): tags of "
                                              f"{project.path_with_namespace} would be refused"))
                    continue
                existing = await store.get_version(release.address, release.version)
                if existing is not None and existing.revoked_at is None:
                    continue
            imports.append(f"{release.address} {release.version} from tag {tag.name} of {project.path_with_namespace}")
