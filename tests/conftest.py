from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from mirror.app import create_app
from mirror.config import Config, load_config
from mirror.domain.archive import pack_directory
from mirror.keys import STORE
from mirror.services.tokens import create_token
from tests.live import write_config
from tests.moto_server import MotoServer, isolate_aws_environment, run_moto_server
from tests.modules import write_module


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
