"""``load_config``: the TOML file, then ``MIRROR_<SECTION>_<KEY>`` variables, then the paths that
derive from ``[server] data_dir``, then every check; all problems reported together.

Nothing here reads the environment later: ``load_config`` is called once by the CLI and the
result is passed down. A key that cannot be read keeps its default, so the checks still report
the rest (one line per problem, never a problem that only follows from another).

The variables are read here rather than by pydantic-settings, which would add its import to
every command, name the field instead of the variable in an error, read a list only as JSON (not
``a, b``) and ignore a ``MIRROR_*`` variable that is no key (``docs/architecture.md``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mirror.config.checks import check
from mirror.config.fields import message
from mirror.config.sections import SECTIONS, Config
from mirror.config.upstreams import UpstreamConfig, build_upstreams
from mirror.domain.errors import ConfigError

ENV_PREFIX = "MIRROR_"
#: ``MIRROR_*`` variables that are not config keys: read by the command line (the config file,
#: ``publish``'s token and registry, the bundle signing key, ``sync``'s upstream token)
NON_CONFIG_VARIABLES = frozenset(
    {"MIRROR_CONFIG", "MIRROR_TOKEN", "MIRROR_REGISTRY", "MIRROR_BUNDLE_KEY", "MIRROR_UPSTREAM_TOKEN"}
)


def env_name(section: str, key: str) -> str:
    """The variable that sets ``[section] key``."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    metadata_backends: frozenset[str] = frozenset({"sqlite"}),
    blob_backends: frozenset[str] = frozenset({"local", "s3"}),
    extra_checks: Callable[[Config], Iterable[str]] | None = None,
) -> Config:
    """Read ``path`` (if any), apply ``MIRROR_*`` overrides from ``environ``, validate.

    ``extra_checks`` is given the config as built (every key that could not be read left at its
    default) and returns more problems, reported with the others: the plug-ins' checks of their
    ``[plugins.NAME]`` tables (``mirror.app.plugins``). Raises ConfigError listing every problem
    found.
    """
    environ = os.environ if environ is None else environ
    raw = _read_file(path) if path is not None else {}
    problems: list[str] = []
    upstreams = build_upstreams(raw.pop("upstreams", []), environ, problems)
    plugins = _plugin_tables(raw.pop("plugins", {}), problems)
    chosen: dict[str, dict[str, Any]] = {}  # section -> key -> value, of every key the file or the environment set
    sources: dict[tuple[str, str], str] = {}  # (section, key) -> "[section] key" or the variable's name
    by_section: dict[str, list[str]] = {}
    for name, model in SECTIONS.items():
        values = raw.pop(name, {})
        by_section[name] = found = []
        if not isinstance(values, dict):
            found.append(f"[{name}] must be a table")
            values = {}
        chosen[name] = _section_values(name, model, values, environ, found, sources)
    for unknown in raw:
        by_section.setdefault("", []).append(
            f"unknown section [{unknown}]" + _did_you_mean(unknown, list(Config.__pydantic_fields__))
        )

    config = _validated(chosen, sources, by_section, upstreams, plugins)
    derived = _derived_paths(config, chosen)
    if derived:  # the checked values and the derived paths, checked again (quick: the schema is built)
        config = _validated(
            {name: chosen[name] | derived.get(name, {}) for name in chosen}, sources, by_section, upstreams, plugins
        )
    problems.extend(problem for found in by_section.values() for problem in found)
    problems.extend(_unknown_variables(environ, config))
    problems.extend(check(config, metadata_backends, blob_backends))
    if extra_checks is not None:
        try:
            problems.extend(extra_checks(config))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return config


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"config file {path} does not exist"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"config file {path} cannot be read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {path} is not valid TOML: {exc}"]) from None


def _plugin_tables(raw: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    """``[plugins.NAME]`` tables, kept as written for each plug-in to validate."""
    if not isinstance(raw, dict):
        problems.append("[plugins] must be a table of tables, one [plugins.NAME] per plug-in")
        return {}
    tables: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if isinstance(table, dict):
            tables[name] = table
        else:
            problems.append(f"[plugins.{name}] must be a table")
    return tables


def _section_values(
    name: str,
    model: type,
    values: dict[str, Any],
    environ: Mapping[str, str],
    problems: list[str],
    sources: dict[tuple[str, str], str],
) -> dict[str, Any]:
    """One section's keys from its table and its variables (a variable wins), with the source of each."""
    keys = model.__pydantic_fields__  # type: ignore[attr-defined]
    for key in values:
        if key not in keys:
            problems.append(f"unknown key [{name}] {key}" + _did_you_mean(key, list(keys)))
    chosen: dict[str, Any] = {}
    for key in keys:
        variable = env_name(name, key)
        if variable in environ:
            chosen[key], sources[name, key] = environ[variable], variable
        elif key in values:
            chosen[key], sources[name, key] = values[key], f"[{name}] {key}"
    return chosen


def _validated(
    chosen: dict[str, dict[str, Any]],
    sources: dict[tuple[str, str], str],
    by_section: dict[str, list[str]],
    upstreams: tuple[UpstreamConfig, ...],
    plugins: dict[str, dict[str, Any]],
) -> Config:
    """The config of ``chosen``, validated as a whole (one schema); a key that cannot be read is
    reported after its source (``[server] port:`` or ``MIRROR_SERVER_PORT:``), dropped from
    ``chosen`` and left at its default."""
    try:
        return Config(**chosen, upstreams=upstreams, plugins=plugins)
    except ValidationError as exc:
        for error in exc.errors():
            name, key = str(error["loc"][0]), str(error["loc"][1]) if len(error["loc"]) > 1 else ""
            by_section.setdefault(name, []).append(f"{sources.get((name, key), f'[{name}] {key}')}: {message(error)}")
            chosen[name].pop(key, None)
    return Config(**chosen, upstreams=upstreams, plugins=plugins)


def _derived_paths(config: Config, chosen: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every path the file and the environment left unset, under ``[server] data_dir``; the
    analysis cache beside the spool directory (which is under ``data_dir`` unless set)."""
    data_dir = config.server.data_dir
    spool_dir = config.server.spool_dir if "spool_dir" in chosen["server"] else data_dir / "spool"
    wanted = {
        ("server", "spool_dir"): spool_dir,
        ("metadata", "path"): data_dir / "mirror.db",
        ("blobs", "path"): data_dir / "blobs",
        ("events", "log_path"): str(data_dir / "events.jsonl"),  # set empty, it stays empty: the log is off
        ("analysis", "cache_dir"): spool_dir.parent / "analysis-cache",
    }
    derived: dict[str, dict[str, Any]] = {}
    for (name, key), value in wanted.items():
        unset = key not in chosen[name] or (key == "cache_dir" and config.analysis.cache_dir is None)
        if unset and getattr(getattr(config, name), key) != value:
            derived.setdefault(name, {})[key] = value
    return derived


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def config_variables() -> frozenset[str]:
    """Every ``MIRROR_<SECTION>_<KEY>`` variable that sets a key."""
    return frozenset(env_name(name, key) for name, model in SECTIONS.items() for key in model.__pydantic_fields__)  # type: ignore[attr-defined]


def _unknown_variables(environ: Mapping[str, str], config: Config) -> list[str]:
    """A ``MIRROR_*`` variable that is no config key (a typo would otherwise be ignored silently),
    not one the command line reads, and not named by a ``*_env`` key of the config."""
    known = config_variables()
    allowed = known | NON_CONFIG_VARIABLES | _named_variables(config)
    return [
        f"unknown variable {name}" + _did_you_mean(name.upper(), sorted(known | NON_CONFIG_VARIABLES))
        for name in sorted(environ)
        if name.startswith(ENV_PREFIX) and name not in allowed
    ]


def _named_variables(value: Any) -> set[str]:
    """Every string value of a key ending in ``_env`` anywhere in the config (the variables a
    ``token_env`` and the like name)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if dataclasses.is_dataclass(item):
            item = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and key.endswith("_env") and isinstance(child, str):
                    found.add(child)
                else:
                    stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found
