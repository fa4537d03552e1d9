"""The BlobStore contract (``mirror.testing.blob_contract``) on every registered blob store: the
local store in a temporary directory, S3 on a bucket of its own on the session's moto server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mirror.testing.blob_contract import blob_store_defaults

pytest_plugins = ["mirror.testing.blob_contract"]

#: the S3 runs talk to moto (the fast loop leaves them out)
BLOB_BACKEND_MARKS = {"s3": ["moto"]}


@pytest.fixture
def blob_store_config(request: pytest.FixtureRequest, blob_backend_name: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    sections = blob_store_defaults(blob_backend_name, tmp_path)
    if blob_backend_name == "s3":
        moto = request.getfixturevalue("moto")  # only the S3 runs start moto
        bucket = request.getfixturevalue("bucket")  # a fresh bucket, dummy credentials through the AWS chain
        sections["s3"] = {"bucket": bucket, "region": moto.region, "endpoint_url": moto.endpoint_url}
    return sections
