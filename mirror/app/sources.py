"""Sources: where modules come from besides publishing (GitHub today), built-in or plug-in.

A source is an object with ``setup(app) -> Iterable[aiohttp.web.RouteDef]`` (``Source``): it
adds its cleanup contexts to the application (after the stores and services, before the job
queue, so the job handlers it puts in ``app[JOB_HANDLERS]`` are registered before the workers
start, and its contexts stop after the queue has), and returns the HTTP routes it serves, such as
a webhook receiver. The built-in ``github`` source (``mirror.app.github``) runs when ``[github]``
is configured; a plug-in source of the entry-point group ``mirror.sources`` runs when the config
has its ``[plugins.NAME]`` table (see ``mirror.app.plugins``).

A source may also have ``check(config) -> list[CheckLine]`` for ``mirror sources check``: it
verifies its credentials, permissions, webhook reachability hints and naming against the real
service, and says what it would import (a dry run), one line each, changing nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from aiohttp import web

from mirror.app import plugins
from mirror.app.checks import CheckLine
from mirror.app.github import GitHubSource
from mirror.config import Config
from mirror.http.keys import CONFIG


class Source(Protocol):
    def setup(self, app: web.Application) -> Iterable[web.RouteDef]:
        """Add the source's cleanup contexts and job handlers; return its routes."""


class CheckedSource(Source, Protocol):
    async def check(self, config: Config) -> list[CheckLine]:
        """Verify the source's set-up against the real service and list what it would import,
        changing nothing; a problem is a ``fail`` line, never an exception."""


#: name -> (is it configured?, the source)
BUILTIN_SOURCES: dict[str, tuple[Callable[[Config], bool], Source]] = {
    "github": (lambda config: config.github.enabled, GitHubSource()),
}


def setup_sources(app: web.Application) -> list[web.RouteDef]:
    """Set up every configured source, built-ins first; the routes they serve."""
    config = app[CONFIG]
    chosen: list[Source] = [source for configured, source in BUILTIN_SOURCES.values() if configured(config)]
    chosen += plugins.enabled(plugins.SOURCE_GROUP, config).values()
    routes: list[web.RouteDef] = []
    for source in chosen:
        routes.extend(source.setup(app))
    return routes
