"""The JSONL event log (a consumer of the events table), the event feed API and `mirror events tail`."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import itertools
from pathlib import Path

import pytest

from mirror.app.build import create_app
from mirror.cli.common import UsageError
from mirror.cli.events import add_commands, tail
from mirror.domain.errors import MirrorError, StorageUnavailable
from mirror.domain.models import NewVersion
from mirror.http.keys import STORE
from mirror.services.eventlog import CONSUMER_NAME, EventLogWriter, log_files, rotated_files
from mirror.storage.protocols import MetadataStore
from tests.conftest import Registry
from tests.live import eventually
from tests.test_store_contract import mv

MiB = 1024 * 1024


@pytest.fixture
async def registry(aiohttp_client, make_config) -> Registry:
    """The app with its own file log off: each test runs its own writers."""
    return Registry(await aiohttp_client(create_app(make_config(events={"log_path": ""}))))


async def publish(registry: Registry, module_archive, address: str, *versions: str) -> None:
    admin = await registry.auth()
    for version in versions:
        response = await registry.publish(address, version, module_archive(f"{address}-{version}"), admin)
        assert response.status == 201, await response.text()


async def table(registry: Registry) -> list[dict]:
    return [event.to_json() for event in await registry.app[STORE].events_after(0, 100_000)]


def read_lines(path: Path) -> list[dict]:
    """Every event of the log, the rotated files first; each line must be complete JSON."""
    events = []
    for file in log_files(path):
        data = file.read_bytes()
        assert not data or data.endswith(b"\n"), f"{file} ends in a torn line"
        events += [json.loads(line) for line in data.splitlines()]
    return events


async def write_log(registry: Registry, path: Path, max_bytes: int = MiB) -> int:
    writer = EventLogWriter(registry.app[STORE], path, max_bytes=max_bytes)
    await writer.start()
    serial = await writer.catch_up()
    await writer.stop()
    return serial


_carriers = itertools.count(1)


async def append_events(store: MetadataStore, namespace: str, *events: tuple[str, dict]) -> None:
    """``events`` and one ``module.created`` (``namespace``), through the store's API: a version of a
    new module whose publish carries them, in one transaction (quicker than publishing thousands
    of versions)."""
    carrier = mv(f"{namespace}/carrier{next(_carriers)}/test", "0.0.1")
    assert (await store.publish_version(NewVersion(carrier, list(events)))).status == "created"


async def insert_events(store: MetadataStore, count: int, namespace: str = "bulk") -> None:
    """``count`` events of ``namespace``: ``module.created`` and ``count - 1`` of type ``test.bulk``."""
    await append_events(store, namespace, *(("test.bulk", {"namespace": namespace, "n": n}) for n in range(count - 1)))


# -- the JSONL log ---------------------------------------------------------------------------------


async def test_log_equals_events_table(registry, module_archive, tmp_path):
    await publish(registry, module_archive, "acme/network/aws", "1.0.0", "1.1.0")
    await publish(registry, module_archive, "other/vpc/aws", "0.1.0")
    path = tmp_path / "log" / "events.jsonl"
    expected = await table(registry)
    assert [e["type"] for e in expected].count("module.version_released") == 3

    assert await write_log(registry, path) == expected[-1]["serial"]

    assert read_lines(path) == expected
    assert rotated_files(path) == []
    consumer = await registry.app[STORE].consumer(CONSUMER_NAME)
    assert consumer.serial == expected[-1]["serial"]  # mirrored for lag reporting


async def test_running_writer_follows_new_events_and_stop_writes_pending(registry, module_archive, tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventLogWriter(registry.app[STORE], path, max_bytes=MiB, poll_interval=0.05)
    await writer.start()
    await publish(registry, module_archive, "acme/network/aws", "1.0.0")
    writer.wake()

    async def written() -> bool:
        return len(read_lines(path)) == len(await table(registry))

    await eventually(written, "the writer to follow the new events", timeout=5)
    assert read_lines(path) == await table(registry)
    await publish(registry, module_archive, "acme/network/aws", "1.1.0")
    await writer.stop()  # writes what is pending before it returns
    assert read_lines(path) == await table(registry)


async def test_restart_writes_nothing_twice(registry, module_archive, tmp_path):
    path = tmp_path / "events.jsonl"
    await publish(registry, module_archive, "acme/network/aws", "1.0.0")
    await write_log(registry, path)
    await publish(registry, module_archive, "acme/network/aws", "1.1.0", "1.2.0")

    await write_log(registry, path)  # a new writer on the same file continues after its last line
    assert read_lines(path) == await table(registry)
    size = path.stat().st_size
    await write_log(registry, path)
    assert path.stat().st_size == size  # nothing new, nothing written


async def test_file_is_the_cursor_not_the_store(registry, module_archive, tmp_path):
    """The store's cursor is only a mirror: a log moved away is written again from the start."""
    await publish(registry, module_archive, "acme/network/aws", "1.0.0")
    first = tmp_path / "one" / "events.jsonl"
    await write_log(registry, first)
    second = tmp_path / "two" / "events.jsonl"
    await write_log(registry, second)
    assert read_lines(second) == await table(registry)
    assert (await registry.app[STORE].consumer(CONSUMER_NAME)).serial == (await table(registry))[-1]["serial"]


async def test_torn_last_line_is_repaired(registry, module_archive, tmp_path):
    path = tmp_path / "events.jsonl"
    await publish(registry, module_archive, "acme/network/aws", "1.0.0", "1.1.0")
    await write_log(registry, path)
    data = path.read_bytes()
    path.write_bytes(data[:-15])  # a crash in the middle of the last line
    await publish(registry, module_archive, "acme/network/aws", "1.2.0")

    await write_log(registry, path)

    assert read_lines(path) == await table(registry)  # the torn event is written again, once


async def test_torn_line_alone_in_the_file(registry, module_archive, tmp_path):
    path = tmp_path / "events.jsonl"
    await publish(registry, module_archive, "acme/network/aws", "1.0.0")
    path.write_bytes(b'{"serial":1,"ty')
    await write_log(registry, path)
    assert read_lines(path) == await table(registry)


async def test_batches_of_many_events(registry, tmp_path):
    await insert_events(registry.app[STORE], 2500)
    path = tmp_path / "events.jsonl"
    assert await write_log(registry, path) == 2500
    lines = read_lines(path)
    assert [e["serial"] for e in lines] == list(range(1, 2501))
    assert lines == await table(registry)


async def test_rotation_keeps_every_event_once_in_order(registry, module_archive, tmp_path):
    path = tmp_path / "events.jsonl"
    await publish(registry, module_archive, "acme/network/aws", "1.0.0", "1.1.0", "1.2.0")
    max_bytes = 500  # two or three events per file
    await write_log(registry, path, max_bytes)
    await publish(registry, module_archive, "other/vpc/aws", "0.1.0", "0.2.0")
    await write_log(registry, path, max_bytes)  # rotation goes on after a restart

    rotated = rotated_files(path)
    assert len(rotated) >= 2
    assert [number for number, _ in rotated] == list(range(1, len(rotated) + 1))
    for file in log_files(path):
        assert 0 < file.stat().st_size <= max_bytes
    assert read_lines(path) == await table(registry)


async def test_restart_after_rotation_left_no_current_file(registry, module_archive, tmp_path):
    """A crash between renaming the full file and the first write to the new one."""
    path = tmp_path / "events.jsonl"
    await publish(registry, module_archive, "acme/network/aws", "1.0.0", "1.1.0")
    await write_log(registry, path, 500)
    number = rotated_files(path)[-1][0] + 1 if rotated_files(path) else 1
    path.rename(path.with_name(f"{path.name}.{number}"))
    await publish(registry, module_archive, "acme/network/aws", "1.2.0")

    await write_log(registry, path, 500)  # learns the last serial from the newest rotated file

    assert read_lines(path) == await table(registry)


async def test_oversized_event_gets_a_file_of_its_own(registry, tmp_path):
    await append_events(registry.app[STORE], "acme", ("test.big", {"namespace": "acme", "blob": "x" * 3000}))
    await insert_events(registry.app[STORE], 3)
    path = tmp_path / "events.jsonl"
    await write_log(registry, path, max_bytes=1024)
    assert read_lines(path) == await table(registry)
    assert all(f.read_bytes().endswith(b"\n") for f in log_files(path))


async def test_second_writer_on_the_same_file_is_refused(registry, tmp_path):
    path = tmp_path / "events.jsonl"
    first = EventLogWriter(registry.app[STORE], path, max_bytes=MiB)
    await first.start()
    second = EventLogWriter(registry.app[STORE], path, max_bytes=MiB)
    with pytest.raises(StorageUnavailable, match="another process"):
        await second.start()
    await first.stop()
    await second.start()  # the lock went with the first writer
    await second.stop()


# -- the feed API ----------------------------------------------------------------------------------


async def get_events(registry: Registry, headers: dict[str, str], query: str = ""):
    response = await registry.client.get(f"/api/v1/events{query}", headers=headers)
    return response.status, await response.json()


async def test_feed_pages_with_after_and_limit(registry, module_archive):
    await publish(registry, module_archive, "acme/network/aws", "1.0.0", "1.1.0", "1.2.0")
    expected = await table(registry)
    reader = await registry.auth("*", "read")

    status, body = await get_events(registry, reader)
    assert status == 200
    assert body == {"events": expected, "next_after": expected[-1]["serial"], "latest": expected[-1]["serial"]}

    seen, after = [], 0
    while True:
        status, body = await get_events(registry, reader, f"?after={after}&limit=2")
        assert status == 200 and len(body["events"]) <= 2
        if not body["events"]:
            assert body["next_after"] == after
            break
        seen += body["events"]
        after = body["next_after"]
    assert seen == expected


async def test_feed_type_filter(registry, module_archive):
    await publish(registry, module_archive, "acme/network/aws", "1.0.0", "1.1.0")
    reader = await registry.auth("*", "read")
    _, body = await get_events(registry, reader, "?type=module.version_released")
    assert [e["data"]["version"] for e in body["events"]] == ["1.0.0", "1.1.0"]
    _, body = await get_events(registry, reader, "?type=module.version_released&type=module.created")
    assert body["events"] == await table(registry)
    _, body = await get_events(registry, reader, "?type=no.such.type")
    assert body["events"] == [] and body["next_after"] == 0


async def test_namespace_token_sees_only_its_namespace(registry, module_archive):
    await publish(registry, module_archive, "acme/network/aws", "1.0.0")
    await publish(registry, module_archive, "other/vpc/aws", "0.1.0", "0.2.0")
    await insert_events(registry.app[STORE], 2500, namespace="other")  # pages of nothing for acme
    await publish(registry, module_archive, "acme/network/aws", "1.1.0")
    everything = await table(registry)
    latest = everything[-1]["serial"]
    acme_events = [e for e in everything if e["data"]["namespace"] == "acme"]

    status, body = await get_events(registry, await registry.auth("ACME", "read"), "?limit=1000")
    assert status == 200
    assert body["events"] == acme_events and body["latest"] == latest and body["next_after"] == latest

    # a page of one: next_after is that event; then the scan walks over other namespaces' events
    reader = await registry.auth("acme", "read")
    seen, after = [], 0
    for _ in range(20):
        _, body = await get_events(registry, reader, f"?after={after}&limit=1")
        seen += body["events"]
        after = body["next_after"]
        if after >= body["latest"]:
            break
    assert seen == acme_events

    _, body = await get_events(registry, await registry.auth("other", "read"), "?type=module.version_released")
    assert [e["data"]["version"] for e in body["events"]] == ["0.1.0", "0.2.0"]
    _, body = await get_events(registry, await registry.auth("nobody", "read"))
    assert body["events"] == [] and body["next_after"] == latest


@pytest.mark.parametrize(
    "query",
    ["?limit=0", "?limit=1001", "?limit=abc", "?limit=", "?after=-1", "?after=x", "?after=1_0", "?type="],
)
async def test_feed_rejects_bad_parameters(registry, query):
    status, body = await get_events(registry, await registry.auth("*", "read"), query)
    assert status == 400 and body["errors"], body


async def test_feed_requires_a_valid_token(registry):
    status, body = await get_events(registry, {})
    assert status == 401 and body["errors"]
    status, body = await get_events(registry, {"Authorization": "Bearer mirror_not-a-token"})
    assert status == 401 and body["errors"]
    status, body = await get_events(registry, {"Authorization": "Basic abc"})
    assert status == 401


# -- mirror events tail (its client, against the in-process registry) ---------------------------


def registry_url(registry: Registry) -> str:
    return str(registry.client.make_url("/"))


async def test_tail_prints_every_event_once_and_stops_when_caught_up(registry, module_archive):
    await publish(registry, module_archive, "acme/network/aws", "1.0.0", "1.1.0")
    await publish(registry, module_archive, "other/vpc/aws", "0.1.0")
    out = io.StringIO()
    last = await tail(registry_url(registry), await registry.token("*", "read"), limit=2, out=out)
    expected = await table(registry)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == expected
    assert last == expected[-1]["serial"]

    out = io.StringIO()
    await tail(registry_url(registry), await registry.token("other", "read"), after=0, limit=1,
               types=["module.version_released"], out=out)
    assert [json.loads(line)["data"]["version"] for line in out.getvalue().splitlines()] == ["0.1.0"]


async def test_tail_follow_prints_new_events(registry, module_archive):
    out = io.StringIO()
    task = asyncio.create_task(
        tail(registry_url(registry), await registry.token("*", "read"), follow=True, out=out, interval=0.05)
    )
    await publish(registry, module_archive, "acme/network/aws", "1.0.0")

    async def printed() -> bool:
        return len(out.getvalue().splitlines()) == len(await table(registry))

    await eventually(printed, "tail to print the new events", timeout=5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [json.loads(line) for line in out.getvalue().splitlines()] == await table(registry)


async def test_tail_errors_carry_the_registry_message(registry):
    with pytest.raises(MirrorError, match=r"\(401\).*token"):
        await tail(registry_url(registry), "mirror_wrong", out=io.StringIO())
    with pytest.raises(MirrorError, match="cannot reach the registry"):
        await tail("http://127.0.0.1:9", "mirror_wrong", out=io.StringIO())


# -- the `events tail` command, through the argparse parser it adds ---------------------------------


def events_parser() -> argparse.ArgumentParser:
    """The same shape as mirror.cli.main: top-level subparsers, a common parent with --config."""
    parser = argparse.ArgumentParser(prog="mirror")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=None)
    add_commands(parser.add_subparsers(dest="command", required=True), common)
    return parser


def events_printed(stdout: str) -> list[dict]:
    # the in-process server's own log lines (structlog, unconfigured in tests) share stdout
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"')]


async def test_events_tail_command(registry, module_archive, monkeypatch, capsys):
    await publish(registry, module_archive, "acme/network/aws", "1.0.0")
    await publish(registry, module_archive, "other/vpc/aws", "0.1.0")
    monkeypatch.setenv("MIRROR_TOKEN", await registry.token("acme", "read"))
    args = events_parser().parse_args(
        ["events", "tail", "--registry", registry_url(registry), "--type", "module.version_released", "--limit", "5"]
    )
    assert await asyncio.to_thread(args.handler, args) == 0
    printed = events_printed(capsys.readouterr().out)
    assert [(e["data"]["namespace"], e["data"]["version"]) for e in printed] == [("acme", "1.0.0")]

    monkeypatch.setenv("MIRROR_REGISTRY", registry_url(registry))  # the registry from the environment
    args = events_parser().parse_args(["events", "tail", "--after", str(printed[0]["serial"])])
    assert await asyncio.to_thread(args.handler, args) == 0
    assert events_printed(capsys.readouterr().out) == []

    monkeypatch.delenv("MIRROR_TOKEN")
    with pytest.raises(UsageError, match="set MIRROR_TOKEN"):  # `main` prints it as one line, exit 2
        await asyncio.to_thread(args.handler, args)


@pytest.mark.parametrize("argv", [["--limit", "0"], ["--limit", "1001"], ["--after", "-1"], ["--after", "x"]])
def test_events_tail_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        events_parser().parse_args(["events", "tail", *argv])
    assert exit_info.value.code == 2
