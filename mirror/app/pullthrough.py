"""The pull-through cache's setup: only when some ``[[upstreams]]`` has ``proxy_namespaces``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from mirror.config import Config
from mirror.http.keys import CATALOG, CONFIG, INGESTOR, PULLTHROUGH, STORE
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
