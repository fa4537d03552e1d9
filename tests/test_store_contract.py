"""The MetadataStore contract (``mirror.testing.store_contract``) on every registered backend:
SQLite on a temporary file, DynamoDB on a table of its own on the session's moto server (made by
``mirror dynamodb create-table``'s code)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from mirror.testing.store_contract import metadata_store_defaults
from mirror.testing.store_suite.support import addr, mv, released  # noqa: F401  (records other tests build)

pytest_plugins = ["mirror.testing.store_contract"]


@pytest.fixture
async def metadata_store_config(
    request: pytest.FixtureRequest, metadata_backend_name: str, tmp_path: Path
) -> dict[str, dict[str, Any]]:
    sections = metadata_store_defaults(metadata_backend_name, tmp_path)
    if metadata_backend_name == "dynamodb":
        from mirror.storage.dynamodb import DynamoMetadataStore

        moto = request.getfixturevalue("moto")  # only the DynamoDB runs start (and are marked for) moto
        request.getfixturevalue("aws_env")  # dummy credentials through the standard AWS chain
        table = f"mirror-{uuid.uuid4().hex[:12]}"
        sections["metadata"].update(table=table, region=moto.region, endpoint_url=moto.endpoint_url)
        store = DynamoMetadataStore(table=table, region=moto.region, endpoint_url=moto.endpoint_url)
        assert await store.create_table() is True
    return sections
