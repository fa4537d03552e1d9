"""Schemathesis against the live registry's own ``/openapi.json``: every documented operation,
fed generated (valid and invalid) input, never answers with a server error, and its answers
match the document (status codes, content types, response schemas)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import MirrorServer, create_database, free_port, run_cli, write_config
from tests.modules import write_module

#: what the run asserts; the checks left out judge how strictly input is validated beyond the
#: document (an archive is any bytes to the schema, and only the server can tell a .tar.gz)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
MAX_SECONDS = 40

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]  # the schemathesis run alone may take MAX_SECONDS + 120


def test_no_server_error_and_answers_match_the_document(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "mirror.toml",
        {
            "server": {"port": port},
            "metadata": {"path": str(tmp_path / "data" / "mirror.db")},
            "blobs": {"path": str(tmp_path / "data" / "blobs")},
            # GitHub configured (token mode, nothing listening) so that /github/webhook exists
            "github": {
                "webhook_secret": "s" * 32,
                "token": "ghp_unused",
                "api_url": f"http://127.0.0.1:{free_port()}",
                "reconcile_interval": 0,
            },
            "logging": {"format": "json"},
        },
    )
    create_database(tmp_path / "data" / "mirror.db")  # as the server's first start would
    created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    server = MirrorServer(config, port, tmp_path).start()
    try:
        source = write_module(tmp_path / "module")
        for version in ("1.0.0", "1.1.0"):  # something for the module operations to find
            published = run_cli(
                "publish", "acme/network/aws", version, str(source), "--registry", server.url,
                cwd=tmp_path, env={"MIRROR_TOKEN": token},
            )  # fmt: skip
            assert published.returncode == 0, published.stderr
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run", f"{server.url}/openapi.json",
                "--header", f"Authorization: Bearer {token}",
                "--checks", ",".join(CHECKS),
                "--max-time", str(MAX_SECONDS),
                # one worker: with threads, Hypothesis's lambda descriptions (ast.parse) can trip
                # CPython 3.11's "AST constructor recursion depth mismatch" and end the run
                "--workers", "1",
                "--request-timeout", "10",
                "--no-color",
            ],
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            capture_output=True,
            text=True,
            timeout=MAX_SECONDS + 120,
        )  # fmt: skip
        (tmp_path / "schemathesis.txt").write_text(result.stdout + result.stderr)  # kept for a failed run
        assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
        assert "Server error" not in result.stdout
    finally:
        assert server.stop() == 0, server.logs()[-5_000:]
    assert '"status": 500' not in server.logs() and '"status":500' not in server.logs()
