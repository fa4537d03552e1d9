"""Files and start-up: private file modes, one server per database and spool, ``serving`` only
once the port is bound, unknown ``MIRROR_*`` variables, deeply nested bundle manifests, and
``/healthz`` (liveness) beside ``/readyz`` (the stores answer), on real ``mirror serve`` processes,
real moto behind TCP proxies, and the real CLI."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mirror.services.bundles import MAX_MANIFEST_DEPTH, BundleError, parse_manifest
from mirror.cli.bundles import KEY_ENV
from mirror.cli.common import CONFIG_ENV
from mirror.cli.sync import TOKEN_ENV
from mirror.config import NON_CONFIG_VARIABLES, load_config
from mirror.domain.errors import ConfigError
from tests.live import MirrorServer, eventually, free_port, run_cli, stop_process, wait_until, write_config
from tests.moto_server import MotoServer
from tests.tcp_proxy import TcpProxy


def data_config(root: Path, port: int, **extra: dict[str, Any]) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "server": {"port": port, "spool_dir": str(root / "spool")},
        "metadata": {"path": str(root / "mirror.db")},
        "blobs": {"path": str(root / "blobs")},
        "events": {"log_path": str(root / "events.jsonl"), "log_max_bytes": 1024},
        "logging": {"format": "json"},
    }
    for name, values in extra.items():
        sections.setdefault(name, {}).update(values)
    root.mkdir(parents=True, exist_ok=True)
    return write_config(root / "mirror.toml", sections)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mirror:")]


# -- file modes ----------------------------------------------------------------------------------


async def test_database_wal_event_log_and_spool_are_private(tmp_path: Path, module_archive) -> None:
    old_umask = os.umask(0o022)  # the usual umask: without explicit modes, files would be 0644
    try:
        root = tmp_path / "data"
        port = free_port()
        config = data_config(root, port)
        server = await asyncio.to_thread(MirrorServer(config, port, tmp_path).start)
    finally:
        os.umask(old_umask)
    try:
        created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config), cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            for number in range(4):  # enough events to rotate the 1 KiB event log
                url = f"{server.url}/api/v1/modules/acme/net{number}/aws/1.0.0"
                async with session.put(url, data=module_archive(f"m{number}")) as response:
                    assert response.status == 201, await response.text()
        names = ("mirror.db", "mirror.db-wal", "mirror.db-shm", "mirror.db.lock", "events.jsonl",
                 "events.jsonl.1", "events.jsonl.lock")
        # the rotated log, and the new one (a rotation renames the log, then opens a new one)
        await eventually(lambda: _all_exist(root, names), "a rotated event log", timeout=10, logs=server.logs)
        for name in names:
            assert mode(root / name) == 0o600, name
        assert mode(root / "spool") == 0o700
    finally:
        assert server.stop() == 0, server.logs()


async def _all_exist(root: Path, names: tuple[str, ...]) -> bool:
    return all((root / name).exists() for name in names)


# -- one server per database and spool -------------------------------------------------------------


@pytest.mark.slow
def test_a_second_serve_on_the_same_database_exits_at_once_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    config = data_config(tmp_path / "data", port)
    first = MirrorServer(config, port, tmp_path).start()
    try:
        started = time.monotonic()
        # the same config on another port: before, it logged an error and hung on its open database
        second = run_cli("serve", "--config", str(config), cwd=tmp_path, env={"MIRROR_SERVER_PORT": str(free_port())},
                         timeout=30)
        elapsed = time.monotonic() - started
        assert second.returncode == 1, second.stderr
        assert second.stderr.splitlines() == [
            f"mirror: error: another mirror serve is using the database {tmp_path / 'data' / 'mirror.db'} "
            f"(pid {first.process.pid})"
        ]
        assert elapsed < 5, elapsed

        # another database, the same spool: refused too
        other = run_cli("serve", "--config", str(config), cwd=tmp_path, timeout=30, env={
            "MIRROR_SERVER_PORT": str(free_port()),
            "MIRROR_METADATA_PATH": str(tmp_path / "other" / "mirror.db"),
            "MIRROR_EVENTS_LOG_PATH": str(tmp_path / "other" / "events.jsonl"),
        })
        assert other.returncode == 1, other.stderr
        assert other.stderr.splitlines() == [
            f"mirror: error: another mirror serve is using the spool directory {tmp_path / 'data' / 'spool'} "
            f"(pid {first.process.pid})"
        ]
    finally:
        assert first.stop() == 0, first.logs()
    # the lock goes with the process: the same config starts again
    again = MirrorServer(config, port, tmp_path).start()
    assert again.stop() == 0, again.logs()


def test_a_failed_start_closes_what_it_opened_and_exits(tmp_path: Path) -> None:
    """The event log is locked by someone else: the store was already open when that is found,
    and the process used to stay alive on the database's threads after printing its error."""
    root = tmp_path / "data"
    config = data_config(root, free_port())
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "events.jsonl.lock", "w") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        result = run_cli("serve", "--config", str(config), cwd=tmp_path, timeout=30)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 10
    assert error_lines(result.stderr) == [f"mirror: error: another process is writing the event log {root / 'events.jsonl'}"]
    assert '"serving"' not in result.stderr


# -- serving only once the port is bound -----------------------------------------------------------


def test_a_taken_port_is_one_line_and_no_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = data_config(tmp_path / "data", port)
        started = time.monotonic()
        result = run_cli("serve", "--config", str(config), cwd=tmp_path, timeout=30)
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 10
    assert '"serving"' not in result.stderr  # it was logged at start-up, before the bind failed
    assert error_lines(result.stderr) == [f"mirror: error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_serving_names_the_bound_port_and_the_port_accepts_by_then(tmp_path: Path) -> None:
    config = data_config(tmp_path / "data", 0)  # port 0: the system picks one; the line says which
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        env = {key: value for key, value in os.environ.items() if not key.startswith("MIRROR_")}
        process = subprocess.Popen([sys.executable, "-m", "mirror", "serve", "--config", str(config)],
                                   cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:

        def serving_line() -> dict | None:
            assert process.poll() is None, log.read_text()
            lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
            return next((line for line in lines if line.get("event") == "serving"), None)

        serving = wait_until(serving_line, "the serving line", timeout=30, logs=log.read_text)
        host, port = serving["url"].removeprefix("http://").rsplit(":", 1)
        assert int(port) != 0
        with socket.create_connection((host, int(port)), timeout=2):
            pass
    finally:
        assert stop_process(process) == 0, log.read_text()


# -- MIRROR_* variables ----------------------------------------------------------------------------


def test_an_unknown_mirror_variable_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    result = run_cli("serve", cwd=tmp_path, env={"MIRROR_SERVER_PROT": "9000", "MIRROR_EVENTS_LOGPATH": ""}, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "mirror: config: unknown variable MIRROR_EVENTS_LOGPATH (did you mean MIRROR_EVENTS_LOG_PATH?)",
        "mirror: config: unknown variable MIRROR_SERVER_PROT (did you mean MIRROR_SERVER_PORT?)",
    ]
    assert not (tmp_path / "mirror-data").exists()  # nothing was started


def test_variables_the_cli_reads_and_variables_named_by_env_keys_are_allowed(tmp_path: Path) -> None:
    assert {CONFIG_ENV, KEY_ENV, TOKEN_ENV, "MIRROR_TOKEN", "MIRROR_REGISTRY"} <= NON_CONFIG_VARIABLES
    config = tmp_path / "mirror.toml"
    config.write_text('[[upstreams]]\nhost = "registry.example.com"\ntoken_env = "MIRROR_EXAMPLE_TOKEN"\n')
    environ = {name: "x" for name in NON_CONFIG_VARIABLES} | {"MIRROR_EXAMPLE_TOKEN": "secret", "MIRROR_SERVER_PORT": "9"}
    loaded = load_config(config, environ=environ)
    assert loaded.upstreams[0].token == "secret" and loaded.server.port == 9
    with pytest.raises(ConfigError) as refused:
        load_config(None, environ={"MIRROR_EXAMPLE_TOKEN": "secret"})  # no token_env names it here
    assert [problem.split(" (")[0] for problem in refused.value.problems] == ["unknown variable MIRROR_EXAMPLE_TOKEN"]


def test_an_unknown_toml_key_gets_a_suggestion_too(tmp_path: Path) -> None:
    config = tmp_path / "mirror.toml"
    config.write_text("[server]\nprot = 1\n[metadta]\npath = 'x.db'\n")
    with pytest.raises(ConfigError) as refused:
        load_config(config, environ={})
    assert refused.value.problems == [
        "unknown key [server] prot (did you mean port?)",
        "unknown section [metadta] (did you mean metadata?)",
    ]


# -- bundle manifests -------------------------------------------------------------------------------


def _bundle(path: Path, manifest: bytes) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return path


@pytest.mark.parametrize("depth", [MAX_MANIFEST_DEPTH + 1, 200_000])
def test_a_deeply_nested_manifest_is_a_one_line_refusal(tmp_path: Path, depth: int) -> None:
    config = data_config(tmp_path / "data", free_port())
    manifest = b'{"format": "mirror-bundle", "modules": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    bundle = _bundle(tmp_path / "deep.tar", manifest)
    result = run_cli("import", str(bundle), "--config", str(config), cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"mirror: error: bundle refused: manifest.json is nested too deeply (the limit is {MAX_MANIFEST_DEPTH} levels)"
    ]


def test_the_depth_limit_is_on_nesting_not_on_size() -> None:
    at_limit = b"[" * MAX_MANIFEST_DEPTH + b"]" * MAX_MANIFEST_DEPTH
    with pytest.raises(BundleError, match="not a mirror-bundle manifest"):
        parse_manifest(at_limit)
    wide = json.dumps({"format": "x", "list": [[[1]]] * 100_000}).encode()
    with pytest.raises(BundleError, match="not a mirror-bundle manifest"):
        parse_manifest(wide)


# -- /healthz and /readyz ---------------------------------------------------------------------------


async def test_readyz_follows_the_local_blob_store_and_healthz_stays_up(start_registry, tmp_path: Path) -> None:
    registry = await start_registry()
    client = registry.client
    assert (await client.get("/readyz")).status == 200
    assert await (await client.get("/readyz")).json() == {"status": "ready"}
    blobs = tmp_path / "data" / "blobs"
    shutil.rmtree(blobs)
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"errors": ["the blob store (local) is unreachable"]}
    health = await client.get("/healthz")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    blobs.mkdir()
    assert (await client.get("/readyz")).status == 200


async def test_readyz_answers_503_while_a_store_is_down_and_healthz_stays_200(
    tmp_path: Path, moto: MotoServer, aws_env: None
) -> None:
    host, port = moto.endpoint_url.removeprefix("http://").split(":")
    s3, dynamodb = TcpProxy(host, int(port)), TcpProxy(host, int(port))
    await s3.up()
    await dynamodb.up()
    bucket = await moto.create_bucket("mirror-readyz")
    table = f"mirror-readyz-{os.urandom(4).hex()}"
    server_port = free_port()
    config = data_config(
        tmp_path / "data",
        server_port,
        metadata={"backend": "dynamodb", "table": table, "region": moto.region, "endpoint_url": dynamodb.url},
        blobs={"backend": "s3"},
        s3={"bucket": bucket, "region": moto.region, "endpoint_url": s3.url},
    )
    created = await asyncio.to_thread(run_cli, "dynamodb", "create-table", "--config", str(config), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    server = await asyncio.to_thread(MirrorServer(config, server_port, tmp_path).start)
    try:
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, Any, float]:
                started = time.monotonic()
                async with session.get(server.url + path) as response:
                    return response.status, await response.json(), time.monotonic() - started

            assert (await get("/readyz"))[:2] == (200, {"status": "ready"})
            for proxy, store in ((s3, "the blob store (s3)"), (dynamodb, "the metadata store (dynamodb)")):
                await proxy.down()
                status, body, seconds = await get("/readyz")
                assert status == 503, body
                assert len(body["errors"]) == 1 and body["errors"][0].startswith(store), body
                assert seconds < 3.5  # each store has 2 s
                assert (await get("/healthz"))[:2] == (200, {"status": "ok"})
                await proxy.up()
                assert (await eventually(lambda: _ready(get), "ready again", timeout=10, logs=server.logs))
            assert (await get("/healthz"))[:2] == (200, {"status": "ok"})
    finally:
        assert await asyncio.to_thread(server.stop) == 0, server.logs()
        await s3.down()
        await dynamodb.down()


async def _ready(get) -> bool:
    status, body, _ = await get("/readyz")
    return status == 200 and body == {"status": "ready"}
