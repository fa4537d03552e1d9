"""The ``mirror`` command line, run as a real subprocess."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import MirrorServer, assert_one_line_error, create_database, free_port, run_cli, write_config
from tests.modules import write_module


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    create_database(tmp_path / "data" / "mirror.db")  # as the server's first start would
    return write_config(
        tmp_path / "mirror.toml",
        {
            "server": {"port": free_port()},
            "metadata": {"path": str(tmp_path / "data" / "mirror.db")},
            "blobs": {"path": str(tmp_path / "data" / "blobs")},
        },
    )


@pytest.fixture
def server(config_file: Path, tmp_path: Path) -> Iterator[MirrorServer]:
    port = int(config_file.read_text().split("port = ")[1].splitlines()[0])
    running = MirrorServer(config_file, port, tmp_path).start()
    yield running
    assert running.stop() == 0


def mint(config_file: Path, namespace: str = "*", scope: str = "admin") -> str:
    result = run_cli("token", "create", "--namespace", namespace, "--scope", scope, "--config", str(config_file), cwd=config_file.parent)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_token_lifecycle(config_file: Path):
    created = run_cli(
        "token", "create", "--namespace", "acme", "--scope", "publish", "--description", "ci pipeline",
        "--config", str(config_file), cwd=config_file.parent,
    )
    assert created.returncode == 0
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("mirror_") and len(secret) > 40
    token_id = created.stdout.split("created token ")[1].split()[0]

    listing = run_cli("token", "list", "--config", str(config_file), cwd=config_file.parent)
    assert listing.returncode == 0
    assert token_id in listing.stdout and "acme" in listing.stdout and "ci pipeline" in listing.stdout
    assert secret not in listing.stdout  # only a hash is stored

    revoked = run_cli("token", "revoke", token_id, "--config", str(config_file), cwd=config_file.parent)
    assert revoked.returncode == 0
    listing = run_cli("token", "list", "--config", str(config_file), cwd=config_file.parent)
    assert "revoked" in listing.stdout
    again = run_cli("token", "revoke", token_id, "--config", str(config_file), cwd=config_file.parent)
    assert_one_line_error(again, 1, token_id)


def test_token_create_rejects_bad_input(config_file: Path):
    bad_ns = run_cli("token", "create", "--namespace", "no/slash", "--scope", "read", "--config", str(config_file), cwd=config_file.parent)
    assert_one_line_error(bad_ns, 2, "namespace")
    bad_scope = run_cli("token", "create", "--namespace", "acme", "--scope", "root", "--config", str(config_file), cwd=config_file.parent)
    assert bad_scope.returncode == 2 and "Traceback" not in bad_scope.stderr


def test_config_from_environment_variable(tmp_path: Path, config_file: Path):
    """MIRROR_CONFIG names the file when --config is not given."""
    result = run_cli("token", "list", cwd=tmp_path, env={"MIRROR_CONFIG": str(config_file)})
    assert result.returncode == 0
    assert (tmp_path / "data" / "mirror.db").exists()


@pytest.mark.slow
def test_publish_directory_and_archive(server: MirrorServer, config_file: Path, tmp_path: Path):
    token = mint(config_file, "acme", "publish")
    source = write_module(tmp_path / "module")
    env = {"MIRROR_TOKEN": token}
    first = run_cli("publish", "acme/network/aws", "v1.0.0", str(source), "--registry", server.url, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created: acme/network/aws/1.0.0")
    # Packing is deterministic, so publishing the same tree again is a no-op, not a conflict.
    (source / "main.tf").touch()
    again = run_cli("publish", "acme/network/aws", "1.0.0", str(source), "--registry", server.url, cwd=tmp_path, env=env)
    assert again.returncode == 0 and again.stdout.startswith("unchanged:"), again.stderr

    (source / "extra.tf").write_text("# changed\n")
    conflict = run_cli("publish", "acme/network/aws", "1.0.0", str(source), "--registry", server.url, cwd=tmp_path, env=env)
    assert_one_line_error(conflict, 1, "409", "immutable")

    import io
    import tarfile

    archive = tmp_path / "module.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b'output "x" { value = 1 }\n'
        info = tarfile.TarInfo("main.tf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    from_file = run_cli("publish", "acme/network/aws", "1.1.0", str(archive), "--registry", server.url, cwd=tmp_path, env=env)
    assert from_file.returncode == 0, from_file.stderr


@pytest.mark.slow
def test_publish_errors_are_one_line(server: MirrorServer, config_file: Path, tmp_path: Path):
    source = write_module(tmp_path / "module")
    token = {"MIRROR_TOKEN": mint(config_file, "acme", "read")}
    no_token = run_cli("publish", "acme/network/aws", "1.0.0", str(source), "--registry", server.url, cwd=tmp_path)
    assert_one_line_error(no_token, 2, "MIRROR_TOKEN")
    bad_address = run_cli("publish", "acme/network", "1.0.0", str(source), "--registry", server.url, cwd=tmp_path, env=token)
    assert_one_line_error(bad_address, 2, "NAMESPACE/NAME/PROVIDER")
    bad_version = run_cli("publish", "acme/network/aws", "one", str(source), "--registry", server.url, cwd=tmp_path, env=token)
    assert_one_line_error(bad_version, 2, "invalid version")
    missing = run_cli("publish", "acme/network/aws", "1.0.0", str(tmp_path / "nope"), "--registry", server.url, cwd=tmp_path, env=token)
    assert_one_line_error(missing, 1, "nope")
    forbidden = run_cli("publish", "acme/network/aws", "1.0.0", str(source), "--registry", server.url, cwd=tmp_path, env=token)
    assert_one_line_error(forbidden, 1, "403", "publish")
    unreachable = run_cli(
        "publish", "acme/network/aws", "1.0.0", str(source), "--registry", f"http://127.0.0.1:{free_port()}",
        cwd=tmp_path, env=token,
    )
    assert_one_line_error(unreachable, 1, "cannot reach the registry")
    not_a_module = tmp_path / "empty"
    not_a_module.mkdir()
    (not_a_module / "notes.txt").write_text("no terraform here")
    admin = {"MIRROR_TOKEN": mint(config_file)}
    refused = run_cli("publish", "acme/network/aws", "1.0.0", str(not_a_module), "--registry", server.url, cwd=tmp_path, env=admin)
    assert_one_line_error(refused, 1, ".tf")


def test_serve_reports_config_problems_one_per_line(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nport = "eighty"\nprot = 1\n[downloads]\nmode = "ftp"\n[nonsense]\n')
    result = run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, lines
    assert all(line.startswith("mirror: config: ") for line in lines)
    joined = "\n".join(lines)
    assert "port" in joined and "prot" in joined and "mode" in joined and "nonsense" in joined


def test_serve_fails_clearly_when_the_port_is_taken(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            tmp_path / "mirror.toml",
            {"server": {"port": port}, "metadata": {"path": str(tmp_path / "m.db")}, "blobs": {"path": str(tmp_path / "b")}},
        )
        result = run_cli("serve", "--config", str(config), cwd=tmp_path, env={"MIRROR_LOGGING_FORMAT": "json"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"mirror: error: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serve_fails_clearly_when_the_bucket_is_missing(tmp_path: Path, moto):
    from tests.moto_server import TEST_ENVIRONMENT

    config = write_config(
        tmp_path / "mirror.toml",
        {
            "server": {"port": free_port()},
            "metadata": {"path": str(tmp_path / "m.db")},
            "blobs": {"backend": "s3"},
            "s3": {"bucket": "no-such-bucket", "endpoint_url": moto.endpoint_url},
        },
    )
    result = run_cli("serve", "--config", str(config), cwd=tmp_path, env=dict(TEST_ENVIRONMENT))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "mirror: error: S3 bucket 'no-such-bucket' does not exist" in result.stderr


@pytest.mark.slow
def test_events_tail_replays_the_feed(server: MirrorServer, config_file: Path, tmp_path: Path):
    import json

    token = {"MIRROR_TOKEN": mint(config_file)}
    source = write_module(tmp_path / "module")
    for version in ("1.0.0", "1.1.0"):
        published = run_cli("publish", "acme/network/aws", version, str(source / ".." / "module"), "--registry", server.url, cwd=tmp_path, env=token)
        (source / "main.tf").write_text((source / "main.tf").read_text() + "\n# next\n")
        assert published.returncode == 0, published.stderr
    tail = run_cli("events", "tail", "--registry", server.url, cwd=tmp_path, env=token)
    assert tail.returncode == 0, tail.stderr
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [(e["serial"], e["type"]) for e in events] == [
        (1, "module.created"), (2, "module.version_released"), (3, "module.version_released")
    ]
    after = run_cli("events", "tail", "--after", "2", "--type", "module.version_released", "--registry", server.url, cwd=tmp_path, env=token)
    assert [json.loads(line)["serial"] for line in after.stdout.splitlines()] == [3]
    no_token = run_cli("events", "tail", "--registry", server.url, cwd=tmp_path)
    assert no_token.returncode == 2 and "Traceback" not in no_token.stderr
    # the server's own JSONL log holds the same events
    log = (tmp_path / "mirror-data" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in log] == events


# -- publish checks the archive before any request ---------------------------------------------


def write_tar_gz(path: Path, members: list[tuple[str, bytes | str]]) -> Path:
    """A .tar.gz of regular files (bytes) and symlinks (str: the link target)."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


@pytest.mark.slow
async def test_publish_checks_the_archive_locally_before_any_request(config_file: Path, tmp_path: Path):
    """A bad archive is one line and exit 1 without a request to the registry (a server here that
    records every request); a good one is still uploaded, whole, in one PUT."""
    import asyncio
    import hashlib

    from aiohttp import web

    requests: list[tuple[str, str, bytes]] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        requests.append((request.method, request.path, body))
        return web.json_response(
            {"status": "created", "id": "acme/network/aws/1.0.0", "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)},
            status=201,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {"MIRROR_TOKEN": "mirror_not_checked_by_the_recorder"}

    def publish(path: Path, *extra: str) -> subprocess.CompletedProcess:  # in a thread: the loop serves meanwhile
        return run_cli(
            "publish", "acme/network/aws", "1.0.0", str(path), "--registry", f"http://127.0.0.1:{port}",
            "--config", str(config_file), *extra, cwd=tmp_path, env=env,
        )

    main_tf = b'output "x" { value = 1 }\n'
    escaping_dir = write_module(tmp_path / "escaping")
    (escaping_dir / "up").symlink_to("../../etc")
    no_tf_dir = tmp_path / "no-tf"
    no_tf_dir.mkdir()
    (no_tf_dir / "notes.txt").write_text("no terraform here")
    not_gzip = tmp_path / "plain.tar.gz"
    not_gzip.write_text("this is not a gzip stream\n")
    small_limits = write_config(
        tmp_path / "small.toml",
        {"server": {"port": free_port()}, "metadata": {"path": str(tmp_path / "small.db")}, "limits": {"max_archive_bytes": 64}},
    )
    bad = [
        ("tar-slip", write_tar_gz(tmp_path / "slip.tar.gz", [("main.tf", main_tf), ("../evil.tf", main_tf)]), (), "'..'"),
        ("symlink out", write_tar_gz(tmp_path / "link.tar.gz", [("main.tf", main_tf), ("up", "../../etc")]), (), "outside the module"),
        ("absolute path", write_tar_gz(tmp_path / "abs.tar.gz", [("main.tf", main_tf), ("/etc/evil.tf", main_tf)]), (), "/etc/evil.tf"),
        ("not gzip", not_gzip, (), "not a valid .tar.gz"),
        ("no .tf at the root", no_tf_dir, (), ".tf"),
        ("symlink out of a directory", escaping_dir, (), "outside the module"),
        ("over the config's size limit", write_module(tmp_path / "big"), ("--config", str(small_limits)), "the limit is"),
    ]
    try:
        for what, path, extra, fragment in bad:
            result = await asyncio.to_thread(publish, path, *extra)
            assert_one_line_error(result, 1, fragment)
            assert str(path) in result.stderr and "nothing was uploaded" in result.stderr, what
        assert requests == []

        good = write_tar_gz(tmp_path / "good.tar.gz", [("main.tf", main_tf)])
        published = await asyncio.to_thread(publish, good)
        assert published.returncode == 0, published.stderr
        assert published.stdout.startswith("created: acme/network/aws/1.0.0")
        assert requests == [("PUT", "/api/v1/modules/acme/network/aws/1.0.0", good.read_bytes())]
    finally:
        await runner.cleanup()


# -- jobs show -----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_jobs_show_prints_a_job_whole(config_file: Path, tmp_path: Path):
    import json
    import time

    from mirror.storage.sqlite import SqliteMetadataStore

    error = "InvalidArchive: archive member 'modules/x': " + "y" * 150 + "\nsecond line \x1b[31mred"
    payload = {"namespace": "acme", "tag": "v4", "repository": {"id": 7, "full_name": "acme/terraform-aws-network"}}
    store = SqliteMetadataStore(tmp_path / "data" / "mirror.db")
    await store.open()
    try:
        failed = await store.enqueue_job("ingest", payload)
        await store.claim_job(time.time(), 60)
        await store.fail_job(failed.id, error)
        expected = (await store.get_job(failed.id)).to_json()
    finally:
        await store.close()

    def jobs(*args: str) -> subprocess.CompletedProcess:  # the store is closed meanwhile
        return run_cli("jobs", *args, "--config", str(config_file), cwd=tmp_path)

    shown = jobs("show", str(failed.id))
    assert shown.returncode == 0, shown.stderr
    fields, _, payload_text = shown.stdout.partition("\npayload:\n")
    assert json.loads(payload_text) == payload and payload_text.startswith("{\n  ")  # pretty-printed
    values = {}
    for line in fields.splitlines():
        if line.startswith(" "):  # a continuation of the field above
            values[name] += "\n" + line.strip()
        else:
            name, _, value = line.partition(":")
            values[name] = value.strip()
    assert list(values) == [key for key in expected if key != "payload"]  # every field, in the API's order
    assert values["id"] == str(failed.id) and values["kind"] == "ingest" and values["state"] == "failed"
    assert values["attempts"] == "1" and values["created_at"] == expected["created_at"]
    assert values["claimed_by"] == "-" and values["dedupe_key"] == "-"
    # the whole error, not the 80 characters of `jobs list`, its control characters escaped
    assert values["last_error"] == error.replace("\x1b", "\\x1b")
    assert "\x1b" not in shown.stdout

    unknown = jobs("show", "424242")
    assert_one_line_error(unknown, 1, "no job with id 424242")
    for malformed in ("abc", "0", "1.5", "99999999999999999999"):
        refused = jobs("show", malformed)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert f"invalid job id {malformed!r}" in refused.stderr
