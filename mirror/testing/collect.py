"""How a contract plug-in's suite gets collected: under the test module that enables it.

A test module that names a plug-in in ``pytest_plugins`` gets that plug-in's suite modules as
collectors beneath it (``tests/test_x.py::suite_module::test_y[backend]``), so fixtures of that
module and of the conftests above it apply to the suite, overriding the plug-in's own. Loaded with
``-p`` instead, with no module naming it, the plug-in collects its suite under the session (then
only a root conftest's fixtures override the plug-in's).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

#: the suites collected under a test module so far (the ``-p`` fallback collects the others)
_ANCHORED = pytest.StashKey[set[str]]()


class ContractSuite(pytest.Module):
    """A module of contract tests, imported by name (it lives in the package, not the test tree)."""

    def _getobj(self) -> Any:
        return importlib.import_module(self.name)


def _suite(parent: pytest.Collector | pytest.Session, module_name: str) -> ContractSuite:
    module = importlib.import_module(module_name)
    nodeid = f"{parent.nodeid}::{module_name}" if parent.nodeid else module_name
    return ContractSuite.from_parent(parent, path=Path(module.__file__ or ""), name=module_name, nodeid=nodeid)


def _names_plugin(value: Any, plugin: str) -> bool:
    return value == plugin if isinstance(value, str) else isinstance(value, Sequence) and plugin in value


def suites_under(collector: pytest.Collector, name: str, obj: Any, plugin: str, suites: Iterable[str]) -> list[ContractSuite] | None:
    """``pytest_pycollect_makeitem`` of a plug-in: its suites, when ``collector`` is a test module
    whose ``pytest_plugins`` names ``plugin``."""
    if name != "pytest_plugins" or not isinstance(collector, pytest.Module) or not _names_plugin(obj, plugin):
        return None
    collector.config.stash.setdefault(_ANCHORED, set()).add(plugin)
    return [_suite(collector, module_name) for module_name in suites]


def collect_unanchored(session: pytest.Session, items: list[pytest.Item], plugin: str, suites: Iterable[str]) -> None:
    """``pytest_collection_modifyitems`` of a plug-in loaded with ``-p``: when no test module
    named it, its suites are collected under the session."""
    if plugin in session.config.stash.setdefault(_ANCHORED, set()):
        return
    session.config.stash[_ANCHORED].add(plugin)
    for module_name in suites:
        items.extend(session.genitems(_suite(session, module_name)))


def parametrize_backends(
    metafunc: pytest.Metafunc, argname: str, names: Iterable[str], marks: Mapping[str, Sequence[str]] = {}
) -> None:
    """Run a test once per backend name; ``marks`` (backend -> marker names) mark some runs."""
    if argname in metafunc.fixturenames:
        params = [pytest.param(n, marks=[getattr(pytest.mark, m) for m in marks.get(n, ())], id=n) for n in names]
        metafunc.parametrize(argname, params)


def anchor_marks(metafunc: pytest.Metafunc, attribute: str) -> Mapping[str, Sequence[str]]:
    """``attribute`` of the test module the suite is collected under (backend -> marker names)."""
    node: Any = metafunc.definition.parent
    while node is not None and not (isinstance(node, pytest.Module) and not isinstance(node, ContractSuite)):
        node = node.parent
    return getattr(node.obj, attribute, {}) if node is not None else {}


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write config sections (``{"metadata": {...}, "plugins.NAME": {...}}``) as TOML."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items() if value is not None]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
