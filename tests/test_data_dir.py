"""``[server] data_dir``: every default path under one directory, and admin commands that never
create a new, empty registry (only ``serve``, ``import`` and ``sync`` make one)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mirror.config import Config, load_config
from tests.live import MirrorServer, free_port, run_cli, wait_until, write_config
from tests.modules import write_module

#: every file or directory a server's start and one publish leave under the data directory
PATHS = ("mirror.db", "spool", "blobs", "events.jsonl", "analysis-cache")


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 1, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == "", (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mirror: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")) if root.exists() else []


# -- the paths -------------------------------------------------------------------------------------


def test_only_data_dir_puts_every_path_under_it(tmp_path: Path):
    data = tmp_path / "registry-data"
    config = load_config(write_config(tmp_path / "mirror.toml", {"server": {"data_dir": str(data)}}), {})
    assert config.server.data_dir == data
    assert config.server.spool_dir == data / "spool"
    assert config.metadata.path == data / "mirror.db"
    assert config.blobs.path == data / "blobs"
    assert config.events.log_path == str(data / "events.jsonl")
    assert config.analysis.cache_dir == data / "analysis-cache"


def test_data_dir_from_the_environment_and_the_default():
    config = load_config(None, {"MIRROR_SERVER_DATA_DIR": "/srv/mirror"})
    assert (config.metadata.path, config.server.spool_dir) == (Path("/srv/mirror/mirror.db"), Path("/srv/mirror/spool"))
    assert config.events.log_path == "/srv/mirror/events.jsonl"
    default = load_config(None, {})
    assert default == Config() and default.server.data_dir == Path("mirror-data")
    assert (default.metadata.path, default.blobs.path) == (Path("mirror-data/mirror.db"), Path("mirror-data/blobs"))
    assert default.analysis.cache_dir == Path("mirror-data/analysis-cache")


def test_explicit_paths_win_and_stay_relative_to_the_working_directory(tmp_path: Path):
    path = write_config(
        tmp_path / "mirror.toml",
        {
            "server": {"data_dir": "/srv/mirror", "spool_dir": "scratch/spool"},
            "metadata": {"path": "db/mirror.db"},
            "events": {"log_path": ""},
        },
    )
    config = load_config(path, {"MIRROR_BLOBS_PATH": "/mnt/blobs"})
    assert config.metadata.path == Path("db/mirror.db")  # not under data_dir
    assert config.server.spool_dir == Path("scratch/spool")
    assert config.blobs.path == Path("/mnt/blobs")
    assert config.events.log_path == ""  # empty still turns the event log off
    assert config.analysis.cache_dir == Path("scratch/analysis-cache")  # beside the spool, as before
    explicit_cache = load_config(None, {"MIRROR_SERVER_DATA_DIR": "/srv/mirror", "MIRROR_ANALYSIS_CACHE_DIR": "/var/cache/m"})
    assert explicit_cache.analysis.cache_dir == Path("/var/cache/m")


def test_an_empty_data_dir_is_a_config_problem(tmp_path: Path):
    result = run_cli("token", "list", cwd=tmp_path, env={"MIRROR_SERVER_DATA_DIR": ""})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "MIRROR_SERVER_DATA_DIR: must be a path" in result.stderr


# -- admin commands never create a registry --------------------------------------------------------


ADMIN_COMMANDS = [
    ("token", "list"),
    ("token", "create", "--namespace", "*", "--scope", "admin"),
    ("token", "revoke", "tok_1"),
    ("jobs", "list"),
    ("jobs", "show", "1"),
    ("jobs", "retry", "1"),
    ("webhooks", "list"),
    ("github", "reconcile"),
    ("export", "out.tar"),
]


@pytest.mark.slow
def test_admin_commands_from_another_folder_create_nothing(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    github = {"MIRROR_GITHUB_TOKEN": "ghp_test", "MIRROR_GITHUB_WEBHOOK_SECRET": "a-webhook-secret"}  # for reconcile
    for command in ADMIN_COMMANDS:
        result = run_cli(*command, cwd=elsewhere, env=github)
        assert_one_line_error(
            result,
            "no registry database at mirror-data/mirror.db (from [server] data_dir = mirror-data)",
            "run the command where the server's files are, or pass --config FILE / set MIRROR_SERVER_DATA_DIR",
        )
        assert files_under(elsewhere) == [], command
    line = assert_one_line_error(run_cli("token", "list", cwd=elsewhere))
    assert line == (
        "mirror: error: no registry database at mirror-data/mirror.db (from [server] data_dir = mirror-data); "
        "run the command where the server's files are, or pass --config FILE / set MIRROR_SERVER_DATA_DIR"
    )


def test_an_explicit_database_path_is_named_as_such(tmp_path: Path):
    database = tmp_path / "db" / "mirror.db"
    config = write_config(tmp_path / "mirror.toml", {"metadata": {"path": str(database)}})
    result = run_cli("token", "list", "--config", str(config), cwd=tmp_path)
    assert_one_line_error(result, f"no registry database at {database} (from [metadata] path = {database})", "MIRROR_METADATA_PATH")
    assert not (tmp_path / "db").exists() and not (tmp_path / "mirror-data").exists()


# -- what creates: serve, import, sync -------------------------------------------------------------


@pytest.mark.slow
def test_serve_import_and_sync_make_their_registries_under_data_dir(tmp_path: Path):
    data = tmp_path / "data"
    workdir = tmp_path / "work"  # the server runs elsewhere: nothing may land in its folder
    workdir.mkdir()
    port = free_port()
    config = write_config(tmp_path / "mirror.toml", {"server": {"port": port, "data_dir": str(data)}})
    server = MirrorServer(config, port, workdir).start()
    try:
        assert (data / "mirror.db").is_file() and (data / "spool").is_dir()
        created = run_cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config), cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        published = run_cli(
            "publish", "acme/network/aws", "1.0.0", str(write_module(tmp_path / "module")), "--registry", server.url,
            cwd=tmp_path, env={"MIRROR_TOKEN": token},
        )
        assert published.returncode == 0, published.stderr

        def published_event_logged() -> bool:
            log = data / "events.jsonl"
            return log.is_file() and any(json.loads(line)["type"] == "module.version_released" for line in log.read_text().splitlines())

        wait_until(published_event_logged, "the event log to show the release", timeout=20, logs=server.logs)
        for name in PATHS:
            assert (data / name).exists(), (name, files_under(data))
        assert any(path.is_file() for path in (data / "blobs").rglob("*"))
        assert any(path.is_file() for path in (data / "analysis-cache").rglob("*"))
        assert [path.name for path in workdir.iterdir() if not path.name.endswith(".log")] == []

        # export reads the existing registry; import makes a new one from MIRROR_SERVER_DATA_DIR alone
        bundle = tmp_path / "bundle.tar"
        exported = run_cli("export", str(bundle), "--config", str(config), cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        imported = run_cli("import", str(bundle), cwd=workdir, env={"MIRROR_SERVER_DATA_DIR": str(tmp_path / "gap")})
        assert imported.returncode == 0, imported.stderr
        assert (tmp_path / "gap" / "mirror.db").is_file() and (tmp_path / "gap" / "blobs").is_dir()

        # sync starts a new mirror too
        synced = run_cli(
            "sync", "--from-mirror", server.url, cwd=workdir,
            env={"MIRROR_SERVER_DATA_DIR": str(tmp_path / "copy"), "MIRROR_UPSTREAM_TOKEN": token},
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert (tmp_path / "copy" / "mirror.db").is_file()
        listed = run_cli("token", "list", cwd=workdir, env={"MIRROR_SERVER_DATA_DIR": str(tmp_path / "copy")})
        assert listed.returncode == 0, listed.stderr
        assert [path.name for path in workdir.iterdir() if not path.name.endswith(".log")] == []
    finally:
        assert server.stop() == 0
