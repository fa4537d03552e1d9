"""The DynamoDB backend beyond the store contract: configuration, ``mirror dynamodb create-table``,
start-up errors, and the registry app running on it (moto server over real HTTP)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.main import main
from mirror.app.build import create_app
from mirror.config import Config, load_config
from mirror.domain.errors import ConfigError, StorageUnavailable
from mirror.storage.dynamodb import INDEX, DynamoMetadataStore
from mirror.storage.factory import make_metadata_store, metadata_backends
from tests.live import write_config
from tests.moto_server import MotoServer


def dynamodb_config(tmp_path: Path, moto: MotoServer, table: str, **sections: dict[str, Any]) -> tuple[Path, Config]:
    merged: dict[str, dict[str, Any]] = {
        "metadata": {"backend": "dynamodb", "table": table, "region": moto.region, "endpoint_url": moto.endpoint_url},
        "server": {"spool_dir": str(tmp_path / "spool")},
        "blobs": {"path": str(tmp_path / "blobs")},
        "events": {"log_path": str(tmp_path / "events.jsonl")},
    }
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    path = write_config(tmp_path / "mirror.toml", merged)
    return path, load_config(path, environ={}, metadata_backends=frozenset(metadata_backends()))


def test_config_needs_a_table_and_a_url(tmp_path: Path):
    backends = frozenset(metadata_backends())
    path = write_config(tmp_path / "a.toml", {"metadata": {"backend": "dynamodb", "endpoint_url": "localhost:8000"}})
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={}, metadata_backends=backends)
    assert caught.value.problems == [
        '[metadata] table is required when [metadata] backend = "dynamodb"',
        "[metadata] endpoint_url must be an http(s) URL, not 'localhost:8000'",
    ]
    config = load_config(
        path,
        environ={"MIRROR_METADATA_TABLE": "mirror", "MIRROR_METADATA_ENDPOINT_URL": ""},
        metadata_backends=backends,
    )
    assert (config.metadata.table, config.metadata.region, config.metadata.endpoint_url) == (
        "mirror",
        "us-east-1",
        None,
    )
    assert type(make_metadata_store(config)).__name__ == "DynamoMetadataStore"


def test_create_table_command(tmp_path: Path, moto: MotoServer, aws_env: None, capsys: pytest.CaptureFixture[str]):
    table = f"mirror-cli-{uuid.uuid4().hex[:8]}"
    path, _ = dynamodb_config(tmp_path, moto, table)
    assert main(["dynamodb", "create-table", "--config", str(path)]) == 0
    assert capsys.readouterr().out == f"created DynamoDB table '{table}' in us-east-1 at {moto.endpoint_url}\n"
    assert main(["dynamodb", "create-table", "--config", str(path)]) == 0  # idempotent
    assert "already exists; nothing to do" in capsys.readouterr().out

    import asyncio

    async def describe() -> dict[str, Any]:
        async with moto.client("dynamodb") as client:
            return (await client.describe_table(TableName=table))["Table"]

    described = asyncio.run(describe())
    assert {k["AttributeName"]: k["KeyType"] for k in described["KeySchema"]} == {"PK": "HASH", "SK": "RANGE"}
    assert [i["IndexName"] for i in described["GlobalSecondaryIndexes"]] == [INDEX]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    sqlite = write_config(tmp_path / "sqlite.toml", {"metadata": {"path": str(tmp_path / "m.db")}})
    assert main(["dynamodb", "create-table", "--config", str(sqlite)]) == 2
    assert 'set backend = "dynamodb"' in capsys.readouterr().err


async def test_a_missing_table_is_one_clear_error(moto: MotoServer, aws_env: None):
    store = DynamoMetadataStore(table="no-such-table", endpoint_url=moto.endpoint_url)
    with pytest.raises(StorageUnavailable, match="does not exist: create it with `mirror dynamodb create-table`"):
        await store.open()


async def test_an_unreachable_endpoint_is_storage_unavailable(aws_env: None):
    store = DynamoMetadataStore(table="t", endpoint_url="http://127.0.0.1:9", connect_timeout=0.5, max_attempts=1)
    with pytest.raises(StorageUnavailable, match="DynamoDB"):
        await store.open()


async def test_the_registry_runs_on_dynamodb(
    tmp_path: Path, moto: MotoServer, aws_env: None, aiohttp_client, module_archive
):
    table = f"mirror-app-{uuid.uuid4().hex[:8]}"
    _, config = dynamodb_config(tmp_path, moto, table)
    assert await DynamoMetadataStore.from_config(config).create_table() is True
    client = await aiohttp_client(create_app(config))
    from mirror.http.keys import STORE
    from mirror.services.tokens import create_token

    _, secret = await create_token(client.server.app[STORE], "*", "admin")
    auth = {"Authorization": f"Bearer {secret}"}
    for version, marker in (("1.0.0", "one"), ("v1.1.0", "two")):
        response = await client.put(
            f"/api/v1/modules/acme/network/aws/{version}", data=module_archive(marker), headers=auth
        )
        assert response.status == 201, await response.text()
    response = await client.put("/api/v1/modules/acme/network/aws/1.0.0", data=module_archive("other"), headers=auth)
    assert response.status == 409

    versions = await (await client.get("/v1/modules/acme/Network/aws/versions", headers=auth)).json()
    assert sorted(v["version"] for v in versions["modules"][0]["versions"]) == ["1.0.0", "1.1.0"]
    download = await client.get("/v1/modules/acme/network/aws/1.1.0/download", headers=auth)
    assert download.status == 200 and download.headers["X-Terraform-Get"]
    archive = await client.get(download.headers["X-Terraform-Get"])
    assert archive.status == 200 and (await archive.read())[:2] == b"\x1f\x8b"
    listed = await (await client.get("/v1/modules", headers=auth)).json()
    assert [m["id"] for m in listed["modules"]] == ["acme/network/aws/1.1.0"]
    found = await (await client.get("/v1/modules/search?q=network", headers=auth)).json()
    assert [m["id"] for m in found["modules"]] == ["acme/network/aws/1.1.0"]
    feed = await (await client.get("/api/v1/events?after=0", headers=auth)).json()
    assert [(e["serial"], e["type"]) for e in feed["events"]] == [
        (1, "module.created"),
        (2, "module.version_released"),
        (3, "module.version_released"),
    ]
    assert (await client.get("/healthz")).status == 200
