"""The BlobStore contract (``mirror.testing.blob_contract``) on the example plug-in's store, run
by tests/test_plugins.py with the plug-in installed (``pytest contract_check.py -k example``).

Not named ``test_*``: the main test run does not collect it (the plug-in is not installed there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirror.testing.blob_contract import blob_store_defaults

pytest_plugins = ["mirror.testing.blob_contract"]


@pytest.fixture
def blob_store_config(blob_backend_name: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    if blob_backend_name != "example":
        pytest.skip("this module checks the example plug-in's store")
    sections = blob_store_defaults(blob_backend_name, tmp_path)
    sections["plugins.example"] = {"root": str(tmp_path / "example-root")}
    return sections
