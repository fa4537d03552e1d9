"""``mirror sync``: copy modules from other registries, or follow another mirror's event feed.

Writes straight into the config's stores (as ``mirror import`` does), with no server needed; a
running server sees the new versions like another replica's writes.

* ``mirror sync``: every ``[[upstreams]]`` of the config, each with its ``modules``;
* ``mirror sync --upstream HOST [MODULE_SPEC ...]``: one upstream, with the specs given (else its
  configured ones);
* ``mirror sync MODULE_SPEC ...``: the specs from the one configured upstream;
* ``mirror sync --from-mirror URL [MODULE_SPEC ...]``: another mirror's released and revoked
  events after the cursor kept in this registry's store.

Tokens: ``--token``, else the configured upstream's (``token`` / ``token_env``), else, for the
one upstream named on the command line, ``$MIRROR_UPSTREAM_TOKEN``. One line per version on stdout, then a summary per module; the exit
code is 1 when a version failed or conflicts, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from mirror.cli.common import UsageError, config_of
from mirror.domain.addresses import valid_namespace
from mirror.domain.errors import BadRequest

if TYPE_CHECKING:  # the config models load with the config, not with `mirror --help`
    from mirror.config import Config, UpstreamConfig

TOKEN_ENV = "MIRROR_UPSTREAM_TOKEN"
MAX_JOBS = 64
#: a spool entry this old was left by a sync that was killed
STALE_SPOOL_SECONDS = 3600


@dataclass(frozen=True)
class Plan:
    """One upstream to copy from in this run."""

    host: str
    token: str | None
    specs: tuple[Any, ...]  # ModuleSpec
    namespace: str | None


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``sync`` to the top-level subparsers ``sub``; ``common`` carries ``--config``."""
    parser = sub.add_parser(
        "sync",
        parents=[common],
        help="copy modules from other registries, or follow another mirror's event feed",
        description="Copy module versions from other registries (the public one, another mirror, any "
        "registry speaking Terraform's protocol) into this registry, through the same checks as a "
        "publish. Versions already here are checked by sha256 and skipped; other bytes under the same "
        "version are reported as a conflict and never overwritten. Re-run to resume.",
    )
    parser.add_argument(
        "specs",
        nargs="*",
        metavar="MODULE_SPEC",
        help='"NAMESPACE/NAME/PROVIDER [CONSTRAINT]" (quoted), e.g. "hashicorp/consul/aws >= 0.1"',
    )
    parser.add_argument("--upstream", metavar="HOST", help="registry.example.com or http(s)://HOST:PORT")
    parser.add_argument("--from-mirror", metavar="URL", help="follow this mirror's event feed from the stored cursor")
    parser.add_argument("--namespace", metavar="NS", help="copy into this namespace instead of the upstream's")
    parser.add_argument("--token", metavar="TOKEN", help=f"the upstream's token (default: the configured one, else ${TOKEN_ENV})")
    parser.add_argument("--dry-run", action="store_true", help="show what would be copied; change nothing")
    parser.add_argument("--jobs", type=int, default=4, metavar="N", help=f"versions copied at once (1..{MAX_JOBS}, default 4)")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip versions already here without fetching them to compare sha256 (when the location does not name it)",
    )
    parser.set_defaults(handler=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    config = config_of(args)
    if not 1 <= args.jobs <= MAX_JOBS:
        raise UsageError(f"--jobs must be between 1 and {MAX_JOBS}, not {args.jobs}")
    if args.namespace is not None and not valid_namespace(args.namespace):
        raise UsageError(f"invalid namespace {args.namespace!r}")
    specs = _specs(args.specs)
    env_token = os.environ.get(TOKEN_ENV) or None
    if args.from_mirror:
        if args.upstream:
            raise UsageError("give --from-mirror or --upstream, not both")
        plan = _plan_for(config, args.from_mirror, args.token, env_token, specs, args.namespace)
        if not plan.token:
            raise UsageError(f"--from-mirror needs a token with the read scope: --token, or ${TOKEN_ENV}")
        work = _follow(config, plan, args)
    else:
        plans = plans_from(config, args.upstream, specs, args.token, env_token, args.namespace)
        work = _sync(config, plans, provider_plans(config, args.upstream, specs), args)
    _configure_logging(config)
    report = asyncio.run(work)
    for line in ["summary:", *report.summary()]:
        _out(line)
    return 0 if report.ok else 1


def plans_from(
    config: Config,
    upstream: str | None,
    specs: tuple[Any, ...],
    token: str | None,
    env_token: str | None,
    namespace: str | None,
) -> list[Plan]:
    """Which upstreams and modules this run copies, from the command line and the config."""
    if upstream is not None:
        if specs:
            return [_plan_for(config, upstream, token, env_token, specs, namespace)]
        configured = _configured(config, upstream)
        if not configured:
            raise UsageError(f"{upstream} is not an upstream in the config; give the modules to copy (MODULE_SPEC ...)")
        with_modules = [entry for entry in configured if entry.modules]
        if not with_modules and not any(entry.providers for entry in configured):
            raise UsageError(f"upstream {upstream} has no modules or providers in the config; give MODULE_SPEC ...")
        return [_from_config(entry, token, env_token, namespace) for entry in with_modules]
    if specs:
        if len(config.upstreams) != 1:
            raise UsageError(
                f"give --upstream HOST with module specs ({len(config.upstreams)} upstreams are configured)"
            )
        entry = config.upstreams[0]
        return [Plan(entry.host, token or _configured_token(entry, env_token), specs, namespace or entry.namespace)]
    syncing = [entry for entry in config.upstreams if entry.modules or not _serves_anything(entry)]
    if not syncing and not any(entry.providers for entry in config.upstreams):
        # none configured, or only pull-through proxies (which have nothing to copy)
        raise UsageError(
            "no upstreams with modules or providers to copy are configured: add [[upstreams]] modules = [...] "
            "or providers = [...] to the config, or give --upstream HOST MODULE_SPEC ..."
        )
    if token and len(syncing) > 1:
        raise UsageError("--token is one upstream's token: name that upstream with --upstream HOST")
    return [_from_config(entry, token, None, namespace) for entry in syncing]


def _serves_anything(entry: UpstreamConfig) -> bool:
    return bool(entry.proxy_namespaces or entry.providers or entry.proxy_providers)


def provider_plans(config: Config, upstream: str | None, specs: tuple[Any, ...]) -> list[UpstreamConfig]:
    """The upstreams whose configured providers this run copies: none when module specs are
    given on the command line; else the one named, or every one with ``providers``."""
    if specs:
        return []
    entries = _configured(config, upstream) if upstream is not None else list(config.upstreams)
    return [entry for entry in entries if entry.providers]


def _plan_for(
    config: Config, host: str, token: str | None, env_token: str | None, specs: tuple[Any, ...], namespace: str | None
) -> Plan:
    _base(host)
    configured = _configured(config, host)
    entry = configured[0] if configured else None
    return Plan(
        host,
        token or (_configured_token(entry, env_token) if entry else env_token),
        specs,
        namespace or (entry.namespace if entry else None),
    )


def _from_config(entry: UpstreamConfig, token: str | None, env_token: str | None, namespace: str | None) -> Plan:
    if not entry.modules:
        raise UsageError(f"upstream {entry.host} has no modules in the config; give MODULE_SPEC ...")
    return Plan(entry.host, token or _configured_token(entry, env_token), _specs(entry.modules), namespace or entry.namespace)


def _configured_token(entry: UpstreamConfig, fallback: str | None) -> str | None:
    """The upstream's token from the config, else ``fallback``; a ``token_env`` naming a variable
    that is not set is an error then (rather than asking anonymously)."""
    if entry.token or fallback:
        return entry.token or fallback
    if entry.token_env:
        raise UsageError(f"upstream {entry.host}: token_env names ${entry.token_env}, which is not set")
    return None


def _configured(config: Config, host: str) -> list[UpstreamConfig]:
    base = _base(host)
    return [entry for entry in config.upstreams if _base(entry.host) == base]


def _base(host: str) -> str:
    from mirror.domain.specs import registry_base_url

    try:
        return registry_base_url(host)
    except ValueError as exc:
        raise UsageError(f"upstream {exc}") from None


def _specs(texts: Any) -> tuple[Any, ...]:
    from mirror.domain.specs import ModuleSpec

    try:
        return tuple(ModuleSpec.parse(text) for text in texts)
    except BadRequest as exc:
        raise UsageError(str(exc)) from None


# -- running ---------------------------------------------------------------------------------


async def _sync(config: Config, plans: list[Plan], providers: list[UpstreamConfig], args: argparse.Namespace) -> Any:
    from mirror.integrations.upstream.client import RegistryClient

    async with _syncer(config, args) as (syncer, session, registry, fetcher):
        for plan in plans:
            client = RegistryClient(session, plan.host, token=plan.token)
            await syncer.sync_modules(client, plan.specs, namespace=plan.namespace)
        for entry in providers:
            await _sync_providers(config, entry, syncer, session, (registry.store, registry.blobs, fetcher), args)
        return syncer.report


async def _sync_providers(
    config: Config,
    entry: UpstreamConfig,
    syncer: Any,
    session: aiohttp.ClientSession,
    parts: tuple[Any, Any, Any],
    args: argparse.Namespace,
) -> None:
    """Copy one upstream's configured providers through the network mirror's pull-through path."""
    from mirror.config.upstreams import provider_hostname, reach_url
    from mirror.domain.providers import Platform
    from mirror.domain.sources import SourcePolicy
    from mirror.domain.specs import ProviderSpec
    from mirror.integrations.upstream.providers import ProviderClient
    from mirror.services.provider_mirror import ProviderMirror, UpstreamProviders
    from mirror.services.provider_sync import sync_providers

    store, blobs, fetcher = parts
    specs = [ProviderSpec.parse(text) for text in entry.providers]
    base = reach_url(entry)
    client = ProviderClient(
        session, base, fetcher=fetcher, policy=SourcePolicy.for_upstream(base, allow_private=entry.allow_private),
        token=args.token or entry.token,
    )
    upstream = UpstreamProviders(
        hostname=provider_hostname(entry),
        client=client,
        platforms=tuple(Platform.parse(p) for p in entry.platforms),
        patterns=tuple(str(spec.address) for spec in specs),
    )
    mirror = ProviderMirror(store, blobs, [upstream], spool_dir=config.server.spool_dir,
                            limits=config.limits.provider_zip_limits())
    await sync_providers(store=store, blobs=blobs, mirror=mirror, upstream=upstream, specs=specs,
                         report=syncer.report, dry_run=args.dry_run, on_line=_out)


async def _follow(config: Config, plan: Plan, args: argparse.Namespace) -> Any:
    """Follow another mirror's feed: its module events, and (without module specs) its provider
    events, each provider version read whole from it and verified before it is stored."""
    from mirror.domain.provenance import Owner
    from mirror.domain.sources import SourcePolicy
    from mirror.integrations.upstream.providers import ProviderClient
    from mirror.services.provider_follow import ProviderFollower

    async with _syncer(config, args) as (syncer, session, registry, fetcher):
        base = _base(plan.host)
        client = ProviderClient(session, plan.host, fetcher=fetcher, policy=SourcePolicy.for_upstream(base), token=plan.token)
        syncer.providers = ProviderFollower(
            store=registry.store,
            blobs=registry.blobs,
            source=client,
            owner=Owner.upstream(base),
            spool_dir=config.server.spool_dir,
            limits=config.limits.provider_zip_limits(),
            dry_run=args.dry_run,
        )
        await syncer.follow_mirror(client, namespace=plan.namespace, specs=plan.specs)
        return syncer.report


@asynccontextmanager
async def _syncer(config: Config, args: argparse.Namespace) -> AsyncIterator[tuple[Any, aiohttp.ClientSession, Any, Any]]:
    """The stores, one HTTP session (no cookie jar; no proxy or .netrc taken from the
    environment), a fetcher on the spool directory, and a Syncer printing to stdout."""
    from mirror.services.sync import Syncer
    from mirror.integrations.upstream.fetch import Fetcher, source_policies
    from mirror.domain.sources import SourcePolicy

    await asyncio.to_thread(_sweep_spool, config.server.spool_dir)
    from mirror.app.services import offline_registry  # the stores' modules, when used

    async with offline_registry(config, create=True) as registry, aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        fetcher = Fetcher(
            session,
            spool_dir=config.server.spool_dir,
            limits=config.limits.archive_limits(),
            # the configured upstreams' policies; an upstream named only on the command line
            # gets the strict default, with locations at its own origin allowed
            policies=[
                *source_policies(config.upstreams),
                *(SourcePolicy.for_upstream(_base(host)) for host in (args.upstream, args.from_mirror) if host),
            ],
        )
        try:
            yield (
                Syncer(
                    store=registry.store,
                    ingestor=registry.ingestor,
                    fetcher=fetcher,
                    jobs=args.jobs,
                    verify=not args.no_verify,
                    dry_run=args.dry_run,
                    on_line=_out,
                ),
                session,
                registry,
                fetcher,
            )
        finally:
            await fetcher.close()


def _sweep_spool(spool: Path) -> None:
    """Create the spool directory and remove what killed syncs left there (an hour old)."""
    spool.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - STALE_SPOOL_SECONDS
    for entry in spool.glob("sync-*"):
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
        except OSError:
            pass


def _configure_logging(config: Config) -> None:
    """Warnings and errors on stderr (the progress lines are on stdout); more with level debug."""
    from mirror.app.logs import configure_logging

    level = "debug" if config.logging.level.lower() == "debug" else "warning"
    configure_logging(level, "console")


def _out(line: str) -> None:
    print(line, flush=True)
