"""Options the whole command line shares: ``--config`` anywhere, ``serve --host/--port``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest

from tests.live import assert_one_line_error, create_database, free_port, run_cli, stop_process, wait_until, write_config


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    create_database(tmp_path / "data" / "mirror.db")
    return write_config(
        tmp_path / "mirror.toml",
        {
            "server": {"port": free_port()},
            "metadata": {"path": str(tmp_path / "data" / "mirror.db")},
            "blobs": {"path": str(tmp_path / "data" / "blobs")},
        },
    )


def token_ids(listing: subprocess.CompletedProcess) -> list[str]:
    assert listing.returncode == 0, listing.stderr
    return [line.split()[0] for line in listing.stdout.strip().splitlines()[1:]]


@pytest.mark.slow  # several CLI runs of half a second each
def test_config_before_after_and_between_the_command(config_file: Path):
    cwd = config_file.parent.parent  # elsewhere: a store found by a default path would be another one
    created = run_cli(
        "--config", str(config_file), "token", "create", "--namespace", "acme", "--scope", "read", cwd=cwd
    )
    assert created.returncode == 0, created.stderr
    token_id = created.stdout.split("created token ")[1].split()[0]

    before = run_cli("--config", str(config_file), "token", "list", cwd=cwd)
    after = run_cli("token", "list", "--config", str(config_file), cwd=cwd)
    between = run_cli("token", "--config", str(config_file), "list", cwd=cwd)
    assert token_ids(before) == token_ids(after) == token_ids(between) == [token_id]
    assert before.stdout == after.stdout == between.stdout

    # a command group of __main__ and one added by a command module
    jobs = run_cli("--config", str(config_file), "jobs", "list", cwd=cwd)
    assert jobs.returncode == 0, jobs.stderr
    webhooks = run_cli("webhooks", "--config", str(config_file), "list", cwd=cwd)
    assert webhooks.returncode == 0, webhooks.stderr


@pytest.mark.slow  # several CLI runs of half a second each
def test_the_last_config_given_wins(config_file: Path, tmp_path: Path):
    missing = str(tmp_path / "missing.toml")
    created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config_file), cwd=tmp_path)
    assert created.returncode == 0, created.stderr

    assert len(token_ids(run_cli("--config", missing, "token", "list", "--config", str(config_file), cwd=tmp_path))) == 1
    assert len(token_ids(run_cli("--config", missing, "token", "--config", str(config_file), "list", cwd=tmp_path))) == 1
    assert_one_line_error(
        run_cli("--config", str(config_file), "token", "list", "--config", missing, cwd=tmp_path), 2, "missing.toml"
    )
    assert_one_line_error(
        run_cli("token", "--config", str(config_file), "list", "--config", missing, cwd=tmp_path), 2, "missing.toml"
    )


@pytest.mark.slow  # several CLI runs of half a second each
def test_the_environment_variable_is_the_fallback_wherever_config_may_go(config_file: Path, tmp_path: Path):
    missing = {"MIRROR_CONFIG": str(tmp_path / "missing.toml")}
    good = {"MIRROR_CONFIG": str(config_file)}
    created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", cwd=tmp_path, env=good)
    assert created.returncode == 0, created.stderr

    assert len(token_ids(run_cli("token", "list", cwd=tmp_path, env=good))) == 1
    # --config given anywhere wins over the variable
    for args in (
        ("--config", str(config_file), "token", "list"),
        ("token", "list", "--config", str(config_file)),
        ("token", "--config", str(config_file), "list"),
    ):
        assert len(token_ids(run_cli(*args, cwd=tmp_path, env=missing))) == 1, args
    assert_one_line_error(run_cli("token", "list", cwd=tmp_path, env=missing), 2, "missing.toml")


def test_help_mentions_the_options():
    top = run_cli("--help", cwd=Path.cwd())
    assert top.returncode == 0
    assert "--config FILE" in top.stdout and "last one wins" in top.stdout and "MIRROR_CONFIG" in top.stdout
    serve = run_cli("serve", "--help", cwd=Path.cwd())
    assert serve.returncode == 0
    for fragment in ("--config FILE", "--host HOST", "--port PORT", "MIRROR_SERVER_PORT"):
        assert fragment in serve.stdout, fragment
    group = run_cli("token", "--help", cwd=Path.cwd())
    assert group.returncode == 0 and "--config FILE" in group.stdout


@contextmanager
def serving(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("MIRROR_")}
    full_env.update(env or {})
    log = cwd / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "mirror", *args], cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        yield process
    finally:
        assert stop_process(process) == 0, log.read_text(errors="replace")


def wait_healthy(process: subprocess.Popen, port: int, timeout: float = 30) -> None:
    def healthy() -> bool:
        assert process.poll() is None, f"mirror serve exited with {process.returncode}"
        try:
            with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                assert response.status == 200
                return True
        except (URLError, ConnectionError):
            return False

    wait_until(healthy, f"an answer on port {port}", timeout=timeout)


def refused(port: int) -> bool:
    try:
        urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
    except (URLError, ConnectionError):
        return True
    return False


def test_serve_port_and_host_win_over_the_file_and_the_environment(config_file: Path, tmp_path: Path):
    file_port = int(config_file.read_text().split("port = ")[1].splitlines()[0])
    env_port, cli_port = free_port(), free_port()
    env = {"MIRROR_SERVER_PORT": str(env_port), "MIRROR_SERVER_HOST": "0.0.0.0"}
    with serving(
        "serve", "--config", str(config_file), "--host", "127.0.0.1", "--port", str(cli_port), cwd=tmp_path, env=env
    ) as process:
        wait_healthy(process, cli_port)
        assert refused(file_port) and refused(env_port)


def test_serve_port_with_config_before_the_command(config_file: Path, tmp_path: Path):
    port = free_port()
    with serving("--config", str(config_file), "serve", "--port", str(port), cwd=tmp_path) as process:
        wait_healthy(process, port)


@pytest.mark.parametrize("port", ["70000", "abc", "", "-1", "8080.0", "١٢٣"])
def test_a_bad_port_is_one_line(config_file: Path, tmp_path: Path, port: str):
    result = run_cli("serve", "--config", str(config_file), "--port", port, cwd=tmp_path)
    assert_one_line_error(result, 2, "--port", "between 0 and 65535")


@pytest.mark.parametrize("host", ["", "bad host", "tab\there"])
def test_a_bad_host_is_one_line(config_file: Path, tmp_path: Path, host: str):
    result = run_cli("serve", "--config", str(config_file), "--host", host, cwd=tmp_path)
    assert_one_line_error(result, 2, "--host")
