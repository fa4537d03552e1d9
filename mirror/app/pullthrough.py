"""The pull-through caches' setup: modules only when some ``[[upstreams]]`` has
``proxy_namespaces``; the network mirror's upstream providers only when one has ``providers`` or
``proxy_providers``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from mirror.config import Config, UpstreamConfig
from mirror.config.upstreams import provider_hostname, reach_url, serves_providers
from mirror.domain.providers import Platform
from mirror.domain.sources import SourcePolicy
from mirror.http.keys import BLOBS, CATALOG, CONFIG, INGESTOR, PROVIDER_MIRROR, PULLTHROUGH, STORE
from mirror.services.provider_mirror import ProviderMirror, UpstreamProviders
from mirror.services.pullthrough import ProxiedUpstream, PullThrough

#: seconds an upstream registry has to answer a pull-through look-up (Terraform waits 10 s for us)
PULLTHROUGH_TIMEOUT = 8.0


def proxied_namespaces(config: Config) -> frozenset[str]:
    """The namespaces (lowercase) that some ``[[upstreams]]`` proxies."""
    return frozenset(namespace.lower() for upstream in config.upstreams for namespace in upstream.proxy_namespaces)


async def pull_through_context(app: web.Application) -> AsyncIterator[None]:
    """The pull-through cache: one HTTP session (no cookie jar; no proxy settings or .netrc from
    the environment), a registry client per proxied upstream, and a fetcher on the spool directory."""
    from mirror.integrations.upstream.client import RegistryClient
    from mirror.integrations.upstream.fetch import Fetcher, source_policies

    config = app[CONFIG]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        fetcher = Fetcher(
            session,
            spool_dir=config.server.spool_dir,
            limits=config.limits.archive_limits(),
            policies=source_policies(config.upstreams),
        )
        upstreams = [
            ProxiedUpstream(
                RegistryClient(session, upstream.host, token=upstream.token, timeout=PULLTHROUGH_TIMEOUT),
                frozenset(namespace.lower() for namespace in upstream.proxy_namespaces),
                float(upstream.proxy_ttl_seconds),
            )
            for upstream in config.upstreams
            if upstream.proxy_namespaces
        ]
        pull_through = PullThrough(
            upstreams, store=app[STORE], catalog=app[CATALOG], ingestor=app[INGESTOR], fetcher=fetcher
        )
        app[PULLTHROUGH] = pull_through
        try:
            yield
        finally:
            await pull_through.close()
            await fetcher.close()


def provider_upstreams(config: Config) -> list[UpstreamConfig]:
    """The upstreams whose providers the network mirror serves."""
    return [upstream for upstream in config.upstreams if serves_providers(upstream)]


async def provider_mirror_context(app: web.Application) -> AsyncIterator[None]:
    """The network mirror's upstream providers: one HTTP session, a ``providers.v1`` client per
    upstream (reached at its ``url``), and a fetcher for the files their answers point to."""
    from mirror.integrations.upstream.fetch import Fetcher, source_policies
    from mirror.integrations.upstream.providers import ProviderClient

    config = app[CONFIG]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        fetcher = Fetcher(
            session,
            spool_dir=config.server.spool_dir,
            limits=config.limits.archive_limits(),
            policies=source_policies(config.upstreams),
        )
        upstreams = []
        for upstream in provider_upstreams(config):
            base = reach_url(upstream)
            policy = SourcePolicy.for_upstream(base, allow_private=upstream.allow_private)
            client = ProviderClient(
                session, base, fetcher=fetcher, policy=policy, token=upstream.token, timeout=PULLTHROUGH_TIMEOUT
            )
            upstreams.append(
                UpstreamProviders(
                    hostname=provider_hostname(upstream),
                    client=client,
                    platforms=tuple(Platform.parse(p) for p in upstream.platforms),
                    patterns=upstream.proxy_providers,
                    ttl_seconds=float(upstream.proxy_ttl_seconds),
                )
            )
        app[PROVIDER_MIRROR] = ProviderMirror(
            app[STORE],
            app[BLOBS],
            upstreams,
            spool_dir=config.server.spool_dir,
            limits=config.limits.provider_zip_limits(),
        )
        try:
            yield
        finally:
            await fetcher.close()
