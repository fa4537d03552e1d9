"""Plug-ins: the example package in tests/plugins/mirror_example_plugin, installed with pip,
gives a real registry its blob store, an event sink and a command; its store passes the blob
store contract; a bad value in its config table is one line and a non-zero exit.

The package is installed with ``pip install --target`` into a directory of this test module's
own, put on ``PYTHONPATH`` for the processes it starts: entry points are found there exactly as
in site-packages, and the shared virtual environment (other test runs, other commands) never sees
the plug-in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.live import MirrorServer, assert_one_line_error, eventually, free_port, run_cli, write_config
from tests.modules import write_module

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tests" / "plugins" / "mirror_example_plugin"

pytestmark = pytest.mark.slow  # installs a package and runs a server and the CLI


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example plug-in installed (offline, no dependencies: its own in-tree build backend);
    the environment that puts it on the path of a ``mirror`` process."""
    target = tmp_path_factory.mktemp("plugin-site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(target), str(PACKAGE)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "mirror_example_plugin-0.1.0.dist-info" / "entry_points.txt").is_file()
    return {"PYTHONPATH": os.pathsep.join([str(target), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def plugin_config(tmp_path: Path, port: int, **plugins: dict) -> Path:
    sections = {
        "server": {"host": "127.0.0.1", "port": port, "data_dir": str(tmp_path / "data")},
        "blobs": {"backend": "example"},
    }
    sections.update({f"plugins.{name}": table for name, table in plugins.items()})
    return write_config(tmp_path / "mirror.toml", sections)


async def test_a_registry_runs_on_the_plugin_store_and_sink(plugin_env: dict[str, str], tmp_path: Path):
    root, events = tmp_path / "example-blobs", tmp_path / "example-events.jsonl"
    port = free_port()
    config = plugin_config(tmp_path, port, example={"root": str(root)}, example_events={"path": str(events)})
    server = MirrorServer(config, port, tmp_path, env=plugin_env).start()
    try:
        created = run_cli("token", "create", "--namespace", "acme", "--scope", "publish", "--config", str(config),
                          cwd=tmp_path, env=plugin_env)
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        source = write_module(tmp_path / "network")
        published = run_cli("publish", "acme/network/aws", "1.0.0", str(source), "--registry", server.url,
                            cwd=tmp_path, env={**plugin_env, "MIRROR_TOKEN": token})
        assert published.returncode == 0, published.stderr
        sha256 = re.search(r"sha256=([0-9a-f]{64})", published.stdout).group(1)

        stored = [path for path in root.rglob("*.tar.gz") if path.is_file()]  # in the plug-in's store
        assert len(stored) == 1 and hashlib.sha256(stored[0].read_bytes()).hexdigest() == sha256

        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(server.url) as client:
            async with client.get("/v1/modules/acme/network/aws/1.0.0/download", headers=headers) as response:
                assert response.status == 200, await response.text()
                location = (await response.json())["location"]
            async with client.get(location) as archive:  # served from the store's local path
                assert archive.status == 200
                assert hashlib.sha256(await archive.read()).hexdigest() == sha256

        async def released() -> list[dict]:
            lines = events.read_text().splitlines() if events.exists() else []
            return [event for event in map(json.loads, lines) if event["type"] == "module.version_released"]

        [event] = await eventually(released, "the sink's file to get the release", timeout=15, logs=server.logs)
        assert event["data"]["version"] == "1.0.0" and event["data"]["namespace"] == "acme"

        counted = run_cli("example-blobs", "--config", str(config), cwd=tmp_path, env=plugin_env)  # the plug-in's command
        assert counted.returncode == 0, counted.stderr
        assert counted.stdout.strip() == f"example store {root}: 1 archive"
    finally:
        assert server.stop() == 0, server.logs()


def test_a_bad_plugin_table_is_one_line_and_a_non_zero_exit(plugin_env: dict[str, str], tmp_path: Path):
    config = plugin_config(tmp_path, free_port(), example={"root": 5})
    for command in (["token", "list"], ["serve"]):
        result = run_cli(*command, "--config", str(config), cwd=tmp_path, env=plugin_env)
        assert_one_line_error(result, 2, "[plugins.example] root must be a directory path (a string), not 5")
    assert not (tmp_path / "data").exists()  # nothing was created


def test_plugin_problems_come_with_the_other_config_problems(plugin_env: dict[str, str], tmp_path: Path):
    config = plugin_config(tmp_path, 70000, example={"root": str(tmp_path / "blobs"), "colour": "blue"}, nosuch={})
    result = run_cli("token", "list", "--config", str(config), cwd=tmp_path, env=plugin_env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "mirror: config: [server] port must be between 0 and 65535, not 70000",
        "mirror: config: [plugins.nosuch] no installed plug-in is named 'nosuch'",
        "mirror: config: [plugins.example] unknown key 'colour' (the table takes: root)",
    ]


def test_the_plugin_store_passes_the_blob_store_contract(plugin_env: dict[str, str]):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(PACKAGE / "contract_check.py"), "-v", "-p", "no:cacheprovider"],
        cwd=ROOT, env={**os.environ, **plugin_env}, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ran = re.findall(r"::(\w+)\[example\] PASSED", result.stdout)  # the other stores' runs are skipped there
    assert len(ran) >= 10 and "test_a_local_path_when_given_holds_the_bytes" in ran, result.stdout


def test_without_the_plugin_its_table_is_reported(tmp_path: Path):
    config = plugin_config(tmp_path, free_port(), example={"root": str(tmp_path / "blobs")})
    result = run_cli("token", "list", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "mirror: config: [plugins.example] no installed plug-in is named 'example'" in result.stderr.splitlines()
