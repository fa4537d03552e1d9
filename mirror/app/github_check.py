"""``mirror sources check`` for the built-in GitHub source: read-only, one line per finding.

It checks the credentials (the App's JWT and each installation's token, or the plain token), the
App's permissions (contents and metadata read), the webhook set-up for the mode (the secret, and
the URL GitHub must reach), lists the accounts, installations and repositories it sees with the
naming decision for each, and, comparing GitHub's tags with the store, the versions it would
import now. Nothing is written, nothing is queued. At most ``MAX_LINES`` lines of repositories
and versions are listed, then one summary line.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from typing import Literal
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from mirror.app.checks import CheckLine, Status
from mirror.app.stores import metadata_store
from mirror.config import Config, GitHubConfig
from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import ConfigError, MirrorError
from mirror.domain.providers import BINARY_PREFIX
from mirror.integrations.github.api import AppCredentials, GitHubClient, GitHubCredentials, Repository, TokenCredentials
from mirror.integrations.github.listings import GitHubListings
from mirror.domain.monorepo import parse_monorepos
from mirror.integrations.github.naming import Naming, version_for_tag
from mirror.storage.protocols import MetadataStore

#: repository and version lines listed before the rest is only counted
MAX_LINES = 200
_WANTED_PERMISSIONS = {"contents": ("read", "write", "admin"), "metadata": ("read", "write", "admin")}


@dataclass
class _Report:
    lines: list[CheckLine] = field(default_factory=list)
    listed: int = 0  # repository and version lines
    left_out: int = 0
    repositories: int = 0
    modules: int = 0
    imports: int = 0

    def add(self, status: Status, text: str) -> None:
        self.lines.append(CheckLine(status, text))

    def item(self, status: Status, text: str) -> None:
        """A repository or version line, within ``MAX_LINES``; a ``fail`` is always shown."""
        if self.listed < MAX_LINES or status == "fail":
            self.listed += 1
            self.add(status, text)
        else:
            self.left_out += 1


async def check_github(config: Config) -> list[CheckLine]:
    github = config.github
    report = _Report()
    _webhook_lines(config, report)
    naming = Naming(github.module_prefix, tuple(github.namespaces.items()), parse_monorepos(github.monorepos))
    async with contextlib.AsyncExitStack() as stack:
        store = await _store(config, stack, report)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        try:
            credentials = _credentials(github, session)
        except ConfigError as exc:
            report.add("fail", "; ".join(exc.problems))
            return report.lines
        client = GitHubClient(session=session, api_url=github.api_url, credentials=credentials, timeout=github.timeout)
        listings = GitHubListings(client)
        try:
            if client.is_app:
                await _app(github, listings, client, naming, store, report)
            else:
                await _token(github, listings, naming, store, report)
        except MirrorError as exc:
            report.add("fail", f"{exc}")
    if report.left_out:
        report.add("ok", f"... {report.left_out} more repository and version lines not listed")
    report.add(
        "ok",
        f"summary: {report.repositories} repositories seen, {report.modules} modules, "
        f"{report.imports} versions would be imported now",
    )
    return report.lines


def _webhook_lines(config: Config, report: _Report) -> None:
    github = config.github
    report.add("ok", f"mode {github.mode}, GitHub API {github.api_url}")
    if github.mode != "webhook":
        report.add("ok", f"polling every {github.poll_interval} s; a full reconcile every {github.reconcile_interval} s")
    if github.mode == "poll":
        report.add("ok", "no webhook is served: GitHub need not reach this registry")
        return
    secret = github.webhook_secret or github.webhook_secret_file
    report.add("ok" if secret else "fail", "webhook secret is set" if secret else "no webhook secret is set")
    public = config.server.public_url
    if public is None:
        report.add(
            "warn",
            "[server] public_url is not set: GitHub must reach PUBLIC_URL/github/webhook "
            '(or use mode = "poll" where GitHub cannot reach the registry)',
        )
        return
    target = public.rstrip("/") + "/github/webhook"
    if _private_host(urlsplit(public).hostname or ""):
        report.add("warn", f"GitHub must reach {target}, but it is a loopback or private address: consider mode = \"poll\"")
    else:
        report.add("ok", f"GitHub must reach {target} (the App's or webhook's URL)")


def read_secret(value: str | None, path: Path | None, key: str) -> str:
    """``[github] KEY``, else the contents of ``KEY_file``; a file that cannot be read is a ConfigError."""
    if value:
        return value
    if path is None:
        raise ConfigError([f"[github] {key} or {key}_file is required"])
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([f"[github] {key}_file: cannot read {path}: {exc.strerror}"]) from None
    if not text:
        raise ConfigError([f"[github] {key}_file: {path} is empty"])
    return text


def _private_host(host: str) -> bool:
    if host in ("localhost",) or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


async def _store(config: Config, stack: contextlib.AsyncExitStack, report: _Report) -> MetadataStore | None:
    try:
        return await stack.enter_async_context(metadata_store(config, create=False))
    except MirrorError as exc:
        report.add("warn", f"the registry's store cannot be read ({exc}): every version is counted as new")
        return None


def _credentials(github: GitHubConfig, session: aiohttp.ClientSession) -> GitHubCredentials:
    if github.app_id:
        key = read_secret(github.private_key, github.private_key_file, "private_key")
        return AppCredentials(session=session, api_url=github.api_url, app_id=github.app_id, private_key=key, timeout=github.timeout)
    return TokenCredentials(github.token or "")


async def _app(
    github: GitHubConfig,
    listings: GitHubListings,
    client: GitHubClient,
    naming: Naming,
    store: MetadataStore | None,
    report: _Report,
) -> None:
    app = await listings.app()
    report.add("ok", f"GitHub App {app.get('slug') or app.get('name') or github.app_id} (id {github.app_id}): its JWT is accepted")
    permissions = app.get("permissions") or {}
    for name, levels in _WANTED_PERMISSIONS.items():
        level = permissions.get(name)
        if level in levels:
            report.add("ok", f"permission {name}: {level}")
        else:
            report.add("fail", f"permission {name}: {level or 'none'}; the App needs {name}: read")
    installations = (await listings.app_installations(None)).items
    wanted = {a.lower() for a in github.accounts}
    if not installations:
        report.add("warn", "the App has no installations: install it on an organization or user")
    for installation in installations:
        if wanted and installation.account.lower() not in wanted:
            report.add("ok", f"installation {installation.id} ({installation.account}) skipped: not in [github] accounts")
            continue
        try:
            repositories = (await listings.installation_repositories(installation.id, None)).items
        except MirrorError as exc:
            report.add("fail", f"installation {installation.id} ({installation.account}): {exc}")
            continue
        report.add(
            "ok",
            f"installation {installation.id} ({installation.account} -> namespace "
            f"{naming.namespace_for(installation.account)}): token issued, {len(repositories)} repositories",
        )
        await _repositories(listings, naming, store, installation.id, repositories, report)


async def _token(
    github: GitHubConfig, listings: GitHubListings, naming: Naming, store: MetadataStore | None, report: _Report
) -> None:
    if not github.accounts:
        report.add(
            "warn" if github.mode == "webhook" else "fail",
            "no [github] accounts: a plain token sees only what repository webhooks deliver",
        )
        return
    for account in github.accounts:
        try:
            repositories = (await listings.account_repositories(account, None)).items
        except MirrorError as exc:
            report.add("fail", f"account {account}: {exc}")
            continue
        report.add(
            "ok", f"account {account} (namespace {naming.namespace_for(account)}): the token lists {len(repositories)} repositories"
        )
        await _repositories(listings, naming, store, None, repositories, report)


async def _repositories(
    listings: GitHubListings,
    naming: Naming,
    store: MetadataStore | None,
    installation_id: int | None,
    repositories: list[Repository],
    report: _Report,
) -> None:
    for repository in repositories:
        report.repositories += 1
        address = naming.module_for(repository.owner, repository.name)
        if address is None:
            status, reason = _skipped(naming, repository)
            report.item(status, f"{repository.full_name}: skipped, {reason}")
            continue
        report.modules += 1
        try:
            tags = (await listings.tags(repository.owner, repository.name, installation_id, None)).items
        except MirrorError as exc:
            report.item("fail", f"{repository.full_name} -> {address}: {exc}")
            continue
        stored = {v.version: v for v in await store.all_versions(address)} if store is not None else {}
        new = []
        for tag in tags:
            version = version_for_tag(tag.name)
            current = stored.get(version) if version else None
            if version is not None and (current is None or current.revoked_at is not None):
                new.append((version, tag.name))
        semver = sum(1 for tag in tags if version_for_tag(tag.name))
        report.item("ok", f"{repository.full_name} -> {address}: {semver} version tags, {len(new)} new")
        for version, tag in new:
            report.imports += 1
            report.item("import", f"{_module(address)} {version} (tag {tag} of {repository.full_name})")


def _module(address: ModuleAddress) -> str:
    return f"{address.namespace}/{address.name}/{address.provider}"


def _skipped(naming: Naming, repository: Repository) -> tuple[Literal["ok", "warn"], str]:
    """Why a repository is no module: ``warn`` when it looks meant to be one."""
    name = repository.name
    if name.startswith(BINARY_PREFIX):
        return "ok", "a provider's repository (its releases are provider versions)"
    if not name.startswith(naming.prefix):
        return "ok", f"its name does not start with {naming.prefix!r}"
    rest = name[len(naming.prefix) :]
    provider, _, module = rest.partition("-")
    if not module:
        return "warn", f"no module name after the provider: name it {naming.prefix}PROVIDER-NAME"
    return "warn", (
        f"{provider!r} is not a valid provider (lowercase letters and digits), or namespace "
        f"{naming.namespace_for(repository.owner)!r} or name {module!r} is not valid"
    )
