"""moto in server mode on 127.0.0.1, for tests that talk to AWS services over real HTTP.

One in-process moto server (moto's WSGI app on a threaded werkzeug server, as in
``ThreadedMotoServer``) on a free port serves every service moto emulates (S3 and DynamoDB), so a
test session starts it once and gives each test its own bucket or table. Clients are pointed at ``endpoint_url`` with dummy credentials; call
``isolate_aws_environment`` in each test so the developer's AWS settings never leak in (a stale
``AWS_CA_BUNDLE`` breaks even plain-http clients, and a real profile could reach real AWS).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiobotocore.session import get_session
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

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
    """Serve moto on a free port of 127.0.0.1 until the block ends (a thread per request, as
    moto's ThreadedMotoServer does, with DynamoDB requests made atomic: see ``AtomicDynamoDB``)."""
    with _quiet_request_log():
        app = AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
        thread.start()
        try:
            host, port = server.server_address[:2]
            yield MotoServer(endpoint_url=f"http://{host}:{port}")
        finally:
            server.shutdown()
            thread.join()


class AtomicDynamoDB:
    """WSGI wrapper that runs one DynamoDB request at a time.

    DynamoDB applies every request atomically (a conditional write, a whole TransactWriteItems),
    but moto's backend has no lock: a transaction deep-copies a table while a request on another
    thread changes it. Tests of replicas racing each other need DynamoDB's guarantee, so
    DynamoDB requests (``X-Amz-Target: DynamoDB_...``) take turns; the races between requests
    stay real. S3 requests are passed through untouched."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:
            answer = self._app(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()


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
