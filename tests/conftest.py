"""Shared fixtures, and the markers that let a fast loop leave out the slow kinds of test.

Markers are given by what a test uses, so a new test gets them without anyone remembering:
``moto`` for a test whose fixtures include the session's moto server (or that runs on the
``dynamodb`` metadata backend, which opens moto through ``request.getfixturevalue``), ``browser``
for a test driving Chromium (the ``browser`` fixture), ``terraform`` for a test that names one of
the Terraform binaries of ``tests/terraform.py`` (in its body or as a parameter). ``replicas`` is
set by ``tests/test_replicas.py`` itself, and ``slow`` by hand on a test that takes seconds on its
own. The fast loop leaves all five out:
``pytest -m "not terraform and not browser and not replicas and not moto and not slow"``; the end of
a run names any test outside them whose body took longer than ``SLOW_SECONDS``, to be marked.
"""

from __future__ import annotations

import io
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from mirror.app.build import create_app
from mirror.config import Config, load_config
from mirror.formats.archive import pack_directory
from mirror.http.keys import STORE
from mirror.services.tokens import create_token
from tests import terraform
from tests.live import write_config
from tests.moto_server import MotoServer, isolate_aws_environment, run_moto_server
from tests.modules import write_module


#: a fixture a test uses -> the marker it gets
FIXTURE_MARKERS = {"moto": "moto", "browser": "browser"}
#: a parameter value -> the marker it gets (the dynamodb metadata backend runs on moto)
PARAMETER_MARKERS = {"dynamodb": "moto"}
#: the timeout (seconds) of a kind of test slower than pyproject's default allows; a test's own
#: ``pytest.mark.timeout`` wins
MARKER_TIMEOUTS = {"terraform": 300, "replicas": 300}
#: the markers the fast loop leaves out
SLOW_KINDS = frozenset({"terraform", "browser", "replicas", "moto", "slow"})
#: a test outside SLOW_KINDS whose call took longer than this is named at the end of the run
SLOW_SECONDS = 5.0
_unmarked_slow = pytest.StashKey[list[tuple[str, float]]]()


def _names(code: types.CodeType) -> Iterator[str]:
    """Every global or imported name a function's code (nested functions included) refers to."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _runs_terraform(item: pytest.Item) -> bool:
    params: Iterable[Any] = getattr(getattr(item, "callspec", None), "params", {}).values()
    if any(isinstance(value, terraform.Terraform) for value in params):
        return True
    code = getattr(getattr(item, "function", None), "__code__", None)
    return code is not None and any(isinstance(getattr(terraform, name, None), terraform.Terraform) for name in _names(code))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        wanted = {marker for fixture, marker in FIXTURE_MARKERS.items() if fixture in getattr(item, "fixturenames", ())}
        params = getattr(getattr(item, "callspec", None), "params", {})
        wanted |= {PARAMETER_MARKERS[value] for value in params.values() if isinstance(value, str) and value in PARAMETER_MARKERS}
        if _runs_terraform(item):
            wanted.add("terraform")
        for marker in sorted(wanted - {mark.name for mark in item.iter_markers()}):
            item.add_marker(marker)
        timeouts = [seconds for marker, seconds in MARKER_TIMEOUTS.items() if item.get_closest_marker(marker)]
        if timeouts and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(max(timeouts)))


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_unmarked_slow] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if call.when == "call" and call.duration > SLOW_SECONDS and not any(item.get_closest_marker(kind) for kind in SLOW_KINDS):
        item.config.stash[_unmarked_slow].append((item.nodeid, call.duration))
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    unmarked = config.stash[_unmarked_slow]
    if unmarked:
        terminalreporter.section(f"slower than {SLOW_SECONDS:g} s without a slow-kind marker (mark them `slow`)")
        for nodeid, seconds in unmarked:
            terminalreporter.line(f"{seconds:6.1f}s {nodeid}")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Build a validated Config from sections, with data under tmp_path."""

    def build(**sections: dict[str, Any]) -> Config:
        merged: dict[str, dict[str, Any]] = {
            "server": {"spool_dir": str(tmp_path / "data" / "spool")},
            "metadata": {"path": str(tmp_path / "data" / "mirror.db")},
            "blobs": {"path": str(tmp_path / "data" / "blobs")},
            "events": {"log_path": str(tmp_path / "data" / "events.jsonl")},
        }
        for name, values in sections.items():
            merged.setdefault(name, {}).update(values)
        return load_config(write_config(tmp_path / "mirror.toml", merged), environ={}, blob_backends=frozenset({"local", "s3"}))

    return build


class Registry:
    """An in-process registry app with an HTTP test client and a helper to mint tokens."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.app = client.server.app

    async def token(self, namespace: str = "*", scope: str = "admin") -> str:
        _, secret = await create_token(self.app[STORE], namespace, scope)  # type: ignore[arg-type]
        return secret

    async def auth(self, namespace: str = "*", scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(namespace, scope)}"}

    async def publish(self, address: str, version: str, body: bytes, headers: dict[str, str]):
        return await self.client.put(f"/api/v1/modules/{address}/{version}", data=body, headers=headers)


@pytest.fixture
def start_registry(aiohttp_client, make_config) -> Callable[..., Any]:
    async def start(config: Config | None = None) -> Registry:
        return Registry(await aiohttp_client(create_app(config or make_config())))

    return start


@pytest.fixture
async def registry(start_registry) -> Registry:
    return await start_registry()


@pytest.fixture
def module_archive(tmp_path: Path) -> Callable[..., bytes]:
    """Pack a fresh test module into .tar.gz bytes; ``marker`` changes the content."""
    counter = iter(range(1_000_000))

    def build(marker: str = "v1") -> bytes:
        root = write_module(tmp_path / f"module-src-{next(counter)}", marker=marker)
        out = io.BytesIO()
        pack_directory(root, out)
        return out.getvalue()

    return build


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto server (S3, DynamoDB) over real HTTP for the whole session."""
    with run_moto_server() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy AWS credentials for this test; the caller's AWS_* settings never leak in."""
    isolate_aws_environment(monkeypatch)


@pytest.fixture
async def bucket(moto: MotoServer, aws_env: None) -> str:
    return await moto.create_bucket()
