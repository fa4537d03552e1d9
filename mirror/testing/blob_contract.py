"""The BlobStore contract as a pytest plug-in: every test runs against every registered blob
store (the built-ins ``local`` and ``s3``, and each entry point of the group ``mirror.blob_stores``).

Enable it in a test module (the suite is collected under that module)::

    pytest_plugins = ["mirror.testing.blob_contract"]

or load it with ``pytest -p mirror.testing.blob_contract``. Stores are built from a validated
config through ``mirror.storage.factory``, as the app builds them, and opened (``open_client``).

Fixtures a plug-in author uses (override them in a conftest or in the module enabling the suite):

``blob_backend_name``
    The blob store under test; the plug-in parametrizes it over every registered name (the run's
    id is the name, so ``-k mystore`` selects one store's runs).

``blob_store_config(blob_backend_name, tmp_path)``
    The config sections (``{"blobs": {...}, "s3": {...}, "plugins.NAME": {...}}``) of a fresh,
    empty store for ``blob_backend_name``: a dict for ``load_config``. It may be async and is the
    place to provision what the store needs (a bucket, a server) and to skip a store it cannot set
    up. The default gives ``{"blobs": {"backend": NAME, "path": ...}}`` under ``tmp_path`` and
    skips ``s3``, which needs an endpoint: extend it with ``blob_store_defaults(name, tmp_path)``
    (see ``tests/test_blob_contract.py``, which points S3 at a moto bucket).

``blob_store``
    The opened store under test (defined by the suite; closed after the test).

The module enabling the suite may declare ``BLOB_BACKEND_MARKS = {"name": ["marker", ...]}`` to
mark one store's runs (for example the ones that need a server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirror.storage.factory import blob_backends
from mirror.testing.collect import anchor_marks, collect_unanchored, parametrize_backends, suites_under

PLUGIN = __name__
#: the suite's modules, collected under the module that enables the plug-in
SUITES = ("mirror.testing.blob_suite.behaviour",)


def blob_store_defaults(name: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Config sections of a fresh store of backend ``name`` that needs nothing outside (a
    directory under ``tmp_path`` for ``local``; other stores get their name and the same ``path``)."""
    return {"blobs": {"backend": name, "path": str(tmp_path / "contract-blobs")}}


@pytest.fixture
def blob_store_config(blob_backend_name: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Config sections of a fresh, empty store for the backend under test (override me)."""
    if blob_backend_name == "s3":
        pytest.skip("s3 needs an endpoint and a bucket: override blob_store_config to give them")
    return blob_store_defaults(blob_backend_name, tmp_path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marks = anchor_marks(metafunc, "BLOB_BACKEND_MARKS")
    parametrize_backends(metafunc, "blob_backend_name", blob_backends(), marks)


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> Any:
    return suites_under(collector, name, obj, PLUGIN, SUITES)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    collect_unanchored(session, items, PLUGIN, SUITES)
