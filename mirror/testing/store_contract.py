"""The MetadataStore contract as a pytest plug-in: every test runs against every registered
metadata backend (the built-ins ``sqlite`` and ``dynamodb``, and each entry point of the group
``mirror.metadata_stores``).

Enable it in a test module (the suite is collected under that module)::

    pytest_plugins = ["mirror.testing.store_contract"]

or load it with ``pytest -p mirror.testing.store_contract``. Stores are built from a validated
config through ``mirror.storage.factory``, as the app builds them; tests that speak of replicas
open a second store on the same database (two processes sharing it).

Fixtures a plug-in author uses (override them in a conftest or in the module enabling the suite):

``metadata_backend_name``
    The backend under test; the plug-in parametrizes it over every registered name (the run's id
    is the name, so ``-k mybackend`` selects one backend's runs).

``metadata_store_config(metadata_backend_name, tmp_path)``
    The config sections (``{"metadata": {...}, "plugins.NAME": {...}}``) of a fresh, empty
    database for ``metadata_backend_name``: a dict for ``load_config``. It may be async and is the
    place to provision what the backend needs (a table, a server) and to skip a backend it cannot
    set up. The default gives ``{"metadata": {"backend": NAME}}`` (with a ``path`` under
    ``tmp_path``) and skips ``dynamodb``, which needs an endpoint: extend it with
    ``metadata_store_defaults(name, tmp_path)`` (see ``tests/test_store_contract.py``, which
    points DynamoDB at a moto server and creates its table).

The module enabling the suite may declare ``METADATA_BACKEND_MARKS = {"name": ["marker", ...]}``
to mark one backend's runs (for example the ones that need a server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirror.storage.factory import metadata_backends
from mirror.testing.collect import anchor_marks, collect_unanchored, parametrize_backends, suites_under

PLUGIN = __name__
#: the suite's modules, collected under the module that enables the plug-in
SUITES = (
    "mirror.testing.store_suite.publishing",
    "mirror.testing.store_suite.admin",
    "mirror.testing.store_suite.records",
    "mirror.testing.store_suite.sessions",
    "mirror.testing.store_suite.jobs",
    "mirror.testing.store_suite.providers",
)


def metadata_store_defaults(name: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Config sections of a fresh database of backend ``name`` that needs nothing outside (a
    SQLite file under ``tmp_path``; other backends get their name and the same ``path``)."""
    return {"metadata": {"backend": name, "path": str(tmp_path / "contract" / "mirror.db")}}


@pytest.fixture
def metadata_store_config(metadata_backend_name: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Config sections of a fresh, empty database for the backend under test (override me)."""
    if metadata_backend_name == "dynamodb":
        pytest.skip("dynamodb needs an endpoint: override metadata_store_config to give one")
    return metadata_store_defaults(metadata_backend_name, tmp_path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marks = anchor_marks(metafunc, "METADATA_BACKEND_MARKS")
    parametrize_backends(metafunc, "metadata_backend_name", metadata_backends(), marks)


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> Any:
    return suites_under(collector, name, obj, PLUGIN, SUITES)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    collect_unanchored(session, items, PLUGIN, SUITES)
