"""Plug-ins: other packages extend mirror through entry points, found here.

A plug-in is an installed distribution that declares entry points in one of these groups (in its
``pyproject.toml``: ``[project.entry-points."mirror.blob_stores"] NAME = "package.module:object"``):

``mirror.metadata_stores``
    A callable ``factory(config: Config) -> MetadataStore``, the store not opened yet (the
    ``MetadataStore`` protocol of ``mirror.storage.protocols``). Chosen by
    ``[metadata] backend = "NAME"``.
``mirror.blob_stores``
    A callable ``factory(config: Config) -> BlobStore`` (``mirror.storage.protocols.BlobStore``;
    its ``local_path`` returns a file on this machine or None). Chosen by
    ``[blobs] backend = "NAME"``. The importable contract suite checks a new backend.
``mirror.sources``
    An object with ``setup(app: aiohttp.web.Application) -> Iterable[aiohttp.web.RouteDef]``
    (``mirror.app.sources.Source``): it adds its cleanup contexts to the application (they run
    after the stores and services are up, and stop before them), may add job handlers to
    ``app[JOB_HANDLERS]`` (``mirror.http.keys``) before the job queue starts, and returns the HTTP
    routes it serves (a webhook receiver). Runs when its ``[plugins.NAME]`` table is present.
    GitHub is the built-in source ``github`` (``mirror.app.github``), run when ``[github]`` is set.
``mirror.event_sinks``
    An object with ``create(context: SinkContext) -> EventSink`` (``mirror.services.sinks``,
    where ``ConsumerSink`` does the cursor work). Runs when its ``[plugins.NAME]`` table is
    present. The JSONL event log (``log``) and the outbound webhooks (``webhooks``) are the
    built-in sinks and run as they always have.
``mirror.cli_commands``
    A callable ``add_command(subparsers)`` given the ``mirror`` parser's subparsers object
    (``argparse``): it adds its command with ``subparsers.add_parser(...)`` and sets
    ``handler=function(args) -> int`` with ``set_defaults``. ``--config`` is added to its parser;
    ``mirror.cli.common.config_of(args)`` reads the config (its own table included). A
    ``MirrorError`` it raises is printed as one line, exit status 1.

Settings, the ``[plugins.NAME]`` rule: a plug-in's settings live in its own table of the config
file, ``[plugins.NAME]``, NAME being its entry point's name (a distribution that registers a
blob store and a sink under two names has two tables; entry points of several groups sharing one
name share its table). Mirror keeps the table as written (``config.plugins[NAME]``, a dict) and
asks the plug-in to check it: the entry point's object may have
``validate(table: dict) -> list[str]``, returning one readable problem per line (an empty list
when the table is fine); mirror prefixes each with ``[plugins.NAME]`` and reports them together
with every other config problem, in one error, when ``mirror serve`` starts and for every command
that reads the config. A table is checked when it is present; a store plug-in chosen as the
backend is checked even without one (with ``{}``). A table whose NAME no installed plug-in has
is itself a problem. A plug-in that cannot be imported is reported the same way.

Built-in names win: an entry point named like a built-in backend, source or sink is ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirror.domain.errors import ConfigError
from mirror.storage.factory import BLOB_BACKENDS, BLOB_GROUP, METADATA_BACKENDS, METADATA_GROUP, blob_backends, metadata_backends

if TYPE_CHECKING:  # the config models load with the config, not with `mirror --help`
    from mirror.config import Config

SOURCE_GROUP = "mirror.sources"
SINK_GROUP = "mirror.event_sinks"
CLI_GROUP = "mirror.cli_commands"
#: the groups whose entry points may have a ``[plugins.NAME]`` table
CONFIGURED_GROUPS = (METADATA_GROUP, BLOB_GROUP, SOURCE_GROUP, SINK_GROUP)
#: names taken by built-ins in each group
BUILTIN_NAMES: dict[str, frozenset[str]] = {
    METADATA_GROUP: frozenset(METADATA_BACKENDS),
    BLOB_GROUP: frozenset(BLOB_BACKENDS),
    SOURCE_GROUP: frozenset({"github"}),
    SINK_GROUP: frozenset({"log", "webhooks"}),
    CLI_GROUP: frozenset(),
}


def installed(group: str) -> dict[str, EntryPoint]:
    """The group's entry points by name (the first of each name), built-in names left out."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        if ep.name not in BUILTIN_NAMES[group]:
            found.setdefault(ep.name, ep)
    return found


def load(ep: EntryPoint) -> Any:
    """The entry point's object; an import that fails is a ConfigError naming the plug-in."""
    try:
        return ep.load()
    except Exception as exc:  # whatever the plug-in's import raises
        raise ConfigError([f"[plugins.{ep.name}] the plug-in {ep.value} ({ep.group}) cannot be loaded: {_reason(exc)}"]) from None


def enabled(group: str, config: Config) -> dict[str, Any]:
    """The loaded plug-ins of ``group`` that have a ``[plugins.NAME]`` table (sources, sinks)."""
    if not config.plugins:
        return {}  # nothing to look for: no entry point is read
    return {name: load(ep) for name, ep in sorted(installed(group).items()) if name in config.plugins}


def load_app_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """The config at ``path`` (else the defaults) with ``MIRROR_*`` overrides, every installed
    backend allowed, and each plug-in's table checked by its plug-in: all problems, mirror's and
    the plug-ins', in one ConfigError (``load_config`` runs the plug-ins' checks with its own)."""
    from mirror.config import load_config

    return load_config(
        path,
        environ,
        metadata_backends=frozenset(metadata_backends()),
        blob_backends=frozenset(blob_backends()),
        extra_checks=config_problems,
    )


def config_problems(config: Config) -> list[str]:
    """What the plug-ins find wrong with ``config``: their tables, and the chosen store
    plug-ins (checked even without a table)."""
    chosen = []
    if config.metadata.backend not in METADATA_BACKENDS:
        chosen.append((METADATA_GROUP, config.metadata.backend))
    if config.blobs.backend not in BLOB_BACKENDS:
        chosen.append((BLOB_GROUP, config.blobs.backend))
    if not config.plugins and not chosen:
        return []
    return table_problems(config.plugins, chosen)


def table_problems(tables: Mapping[str, Mapping[str, Any]], chosen: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Each table checked by the plug-ins of its name; ``chosen`` (group, name) pairs are checked
    with ``{}`` when they have no table."""
    by_name: dict[str, list[EntryPoint]] = {}
    for group in CONFIGURED_GROUPS:
        for name, ep in installed(group).items():
            by_name.setdefault(name, []).append(ep)
    problems: list[str] = []
    for name in tables:
        if name not in by_name:
            problems.append(f"[plugins.{name}] no installed plug-in is named {name!r}" + _did_you_mean(name, list(by_name)))
    checks = {(ep.group, name): ep for name in tables for ep in by_name.get(name, [])}
    for group, name in chosen:
        ep = installed(group).get(name)
        if ep is not None:
            checks.setdefault((group, name), ep)
    for (_group, name), ep in checks.items():
        problems.extend(_check(ep, tables.get(name, {})))
    return list(dict.fromkeys(problems))  # one name in two groups, one object: said once


def _check(ep: EntryPoint, table: Mapping[str, Any]) -> list[str]:
    try:
        plugin = load(ep)
    except ConfigError as exc:
        return list(exc.problems)
    validate = getattr(plugin, "validate", None)
    if validate is None:
        return []
    try:
        found = list(validate(dict(table)))
    except Exception as exc:  # a plug-in's bug must not hide the other problems
        return [f"[plugins.{ep.name}] cannot be checked by {ep.value}: {_reason(exc)}"]
    return [f"[plugins.{ep.name}] {' '.join(str(problem).split())}" for problem in found]


def _reason(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
