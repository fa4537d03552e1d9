"""moto in server mode on 127.0.0.1, for tests that talk to AWS services over real HTTP.

One in-process ``ThreadedMotoServer`` on a free port serves every service moto emulates (S3
now, DynamoDB too), so a test session starts it once and gives each test its own bucket or
table. Clients are pointed at ``endpoint_url`` with dummy credentials; call
``isolate_aws_environment`` in each test so the developer's AWS settings never leak in (a stale
``AWS_CA_BUNDLE`` breaks even plain-http clients, and a real profile could reach real AWS).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"

#: what tests see instead of the caller's AWS_* variables
TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True, slots=True)
class MotoServer:
    """A running moto server: where it listens and the dummy credentials it accepts."""

    endpoint_url: str
    region: str = REGION
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY

    def client(self, service: str) -> AbstractAsyncContextManager[Any]:
        """An aiobotocore client for ``service`` on this server; use with ``async with``."""
        return get_session().create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    async def create_bucket(self, name_prefix: str = "mirror-test") -> str:
        """Create a bucket no other test uses and return its name."""
        name = f"{name_prefix}-{uuid.uuid4().hex[:16]}"
        async with self.client("s3") as s3:
            await s3.create_bucket(Bucket=name)
        return name


@contextmanager
def run_moto_server() -> Iterator[MotoServer]:
    """Serve moto on a free port of 127.0.0.1 until the block ends."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    with _quiet_request_log():
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield MotoServer(endpoint_url=f"http://{host}:{port}")
        finally:
            server.stop()


def isolate_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every AWS_* variable and set dummy credentials, for the rest of one test."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@contextmanager
def _quiet_request_log() -> Iterator[None]:
    """werkzeug logs one line per request at INFO; keep only its warnings."""
    logger = logging.getLogger("werkzeug")
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)
