"""``mirror export`` / ``mirror import``: verified bundles between two registries, run as real CLI
processes against real data directories (a live ``mirror serve`` publishes the source modules, and
a real ``terraform init`` installs a bundled module on the importing side)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mirror.cli.common import cli_config, offline_registry, with_store
from mirror.domain.addresses import ModuleAddress
from mirror.domain.provenance import Owner
from mirror.formats.archive import pack_directory
from mirror.services.ingest import Archive
from tests.live import MirrorServer, free_port, run_cli, write_config
from tests.modules import write_module, write_root_config
from tests.terraform import TERRAFORM_1_15, base_env, installed_modules
from tests.terraform import cli_config as terraform_cli_config

KEY = "a-shared-bundle-key-0123456789"
HOST = "registry.bundle.test"


# -- helpers ---------------------------------------------------------------------------------------


def data_config(root: Path, port: int | None = None) -> Path:
    """A registry config with everything under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return write_config(
        root / "mirror.toml",
        {
            "server": {"port": port or free_port(), "spool_dir": str(root / "spool")},
            "metadata": {"path": str(root / "mirror.db")},
            "blobs": {"path": str(root / "blobs")},
            "events": {"log_path": str(root / "events.jsonl")},
        },
    )


def cli(*args: str, cwd: Path, key: str | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, env={"MIRROR_BUNDLE_KEY": key} if key else None)


def cli_many(commands: Sequence[Sequence[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Run several ``mirror`` commands at once (each its own process), to keep the suite fast."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MIRROR_")}
    processes = [
        subprocess.Popen([sys.executable, "-m", "mirror", *args], cwd=cwd, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for args in commands
    ]
    results = []
    for args, process in zip(commands, processes, strict=True):
        stdout, stderr = process.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(list(args), process.returncode, stdout, stderr))
    return results


def assert_ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int = 1) -> str:
    assert result.returncode == code, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == "", (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mirror: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@dataclass(frozen=True)
class State:
    """What a registry holds: versions (revoked ones included), analyses, events, blob files."""

    versions: dict[tuple[str, str], dict[str, Any]]
    events: list[tuple[int, str, dict[str, Any]]]
    blobs: frozenset[str]


def state(config_file: Path) -> State:
    config = cli_config(config_file)

    async def read(store: Any) -> State:
        versions: dict[tuple[str, str], dict[str, Any]] = {}
        for summary in await store.latest_versions():
            address = summary.version.address
            for v in await store.all_versions(address):
                versions[(str(address), v.version)] = {
                    "raw_version": v.raw_version, "sha256": v.sha256, "size": v.size, "readme": v.readme,
                    "source": v.source, "commit_sha": v.commit_sha, "revoked": v.revoked_at is not None,
                    "analysis": await store.version_analysis(address, v.version),
                }
        events = [(e.serial, e.type, e.data) for e in await store.events_after(0, 100_000)]
        root = config.blobs.path
        blobs = frozenset(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else frozenset()
        return State(versions, events, blobs)

    return asyncio.run(with_store(config, read, create=True))  # an empty registry reads as empty


def live_versions(s: State) -> dict[tuple[str, str], dict[str, Any]]:
    return {k: v for k, v in s.versions.items() if not v["revoked"]}


def members(bundle: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(bundle) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def write_tar(path: Path, entries: Sequence[tuple[str, bytes]]) -> Path:
    """A tar written by Python's tarfile (not by mirror), for hand-made and tampered bundles."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def manifest_of(bundle: Path) -> dict[str, Any]:
    name, data = members(bundle)[0]
    assert name == "manifest.json"
    return json.loads(data)


def with_manifest(bundle: Path, out: Path, edit) -> Path:
    """``bundle`` with its manifest edited (its members otherwise as they were)."""
    entries = members(bundle)
    manifest = json.loads(entries[0][1])
    edit(manifest)
    return write_tar(out, [("manifest.json", json.dumps(manifest).encode()), *entries[1:]])


def pack(tmp: Path, marker: str) -> bytes:
    out = io.BytesIO()
    pack_directory(write_module(tmp / f"pack-{marker}", marker=marker), out)
    return out.getvalue()


# -- the source registry, published once through a live server -------------------------------------


@dataclass(frozen=True)
class Source:
    root: Path
    config: Path
    serial_a: int  # the latest serial after the first batch of releases
    bundle: Path  # a full, unsigned export
    signed: Path  # a full export signed with KEY
    state: State


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("source")
    config = data_config(root / "data")
    port = int(config.read_text().split("port = ")[1].splitlines()[0])
    server = MirrorServer(config, port, root).start()
    try:
        token = cli("token", "create", "--namespace", "*", "--scope", "admin", "--config", str(config), cwd=root)
        env = {"MIRROR_TOKEN": assert_ok(token).strip().splitlines()[-1]}

        def publish(address: str, version: str, marker: str) -> None:
            path = root / "src" / marker
            if not path.exists():
                write_module(path, marker=marker)
            assert_ok(run_cli("publish", address, version, str(path), "--registry", server.url, cwd=root, env=env))

        publish("acme/network/aws", "1.0.0", "net-1.0")
        publish("acme/network/aws", "v1.1", "net-1.1")  # stored as 1.1.0, raw "v1.1" kept
        publish("other/network/aws", "1.0.0", "net-1.0")  # the same bytes as acme/network/aws 1.0.0
        publish("acme/network/aws", "0.9.0", "net-0.9")  # revoked below: never exported
        serial_a = asyncio.run(with_store(cli_config(config), lambda store: store.latest_serial()))
        publish("acme/storage/aws", "2.0.0", "storage-2.0")
        publish("acme/network/aws", "1.2.0", "net-1.2")
    finally:
        assert server.stop() == 0, server.logs()
    address = ModuleAddress("acme", "network", "aws")
    assert asyncio.run(with_store(cli_config(config), lambda store: store.revoke_version(address, "0.9.0")))

    bundle, signed = root / "full.tar", root / "signed.tar"
    exported = cli_many(
        [("export", str(bundle), "--config", str(config)),
         ("export", str(signed), "--config", str(config), "--signing-key-file", str(key_file(root, KEY)))],
        cwd=root,
    )
    for result in exported:
        assert_ok(result)
    return Source(root, config, serial_a, bundle, signed, state(config))


def key_file(directory: Path, key: str) -> Path:
    path = directory / f"key-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    path.write_text(key + "\n")
    return path


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """An empty registry's config (a different data directory)."""
    return data_config(tmp_path / "target")


# -- round trip --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_export_then_import_round_trip_and_is_idempotent(source: Source, target: Path, tmp_path: Path):
    # the bundle: manifest first, then each archive once (two versions share one), live versions only
    entries = members(source.bundle)
    names = [name for name, _ in entries]
    assert names[0] == "manifest.json" and "manifest.sig" not in names
    manifest = json.loads(entries[0][1])
    live = live_versions(source.state)
    assert len(live) == 5 and ("acme/network/aws", "0.9.0") not in live
    assert sorted(names[1:]) == sorted(f"archives/{sha}.tar.gz" for sha in {v["sha256"] for v in live.values()})
    assert len(names) - 1 == 4  # five versions, four distinct archives
    for name, data in entries[1:]:
        assert name == f"archives/{hashlib.sha256(data).hexdigest()}.tar.gz"
    assert {k: manifest[k] for k in ("format", "format_version", "source", "namespace", "since")} == {
        "format": "mirror-bundle", "format_version": 1, "source": None, "namespace": None, "since": None
    }
    assert manifest["events"] == {"from": 1, "to": source.state.events[-1][0]}
    listed = {
        (f"{m['namespace']}/{m['name']}/{m['provider']}", v["version"]): v for m in manifest["modules"] for v in m["versions"]
    }
    assert set(listed) == set(live)
    for key, version in listed.items():
        expected = live[key]
        assert {f: version[f] for f in ("raw_version", "sha256", "size", "readme", "source", "analysis")} == {
            f: expected[f] for f in ("raw_version", "sha256", "size", "readme", "source", "analysis")
        }
    assert listed[("acme/network/aws", "1.1.0")]["raw_version"] == "v1.1"
    assert [v["version"] for m in manifest["modules"] if m["name"] == "network" and m["namespace"] == "acme"
            for v in m["versions"]] == ["1.0.0", "1.1.0", "1.2.0"]  # SemVer order

    first = assert_ok(cli("import", str(source.bundle), "--config", str(target), cwd=tmp_path))
    lines = first.splitlines()
    assert lines[0] == "signature: none (unsigned bundle)"
    assert sorted(line for line in lines if line.startswith("imported ") and "/" in line) == sorted(
        f"imported {address} {version}" for address, version in live
    )
    assert lines[-1].startswith("imported 5, unchanged 0 (5 versions of 3 modules; events 1..")

    after = state(target)
    assert after.versions == live  # raw versions, READMEs, analysis, sha256, sizes, sources
    assert all(v["readme"] and v["analysis"]["root"]["inputs"] for v in after.versions.values())
    created = sorted((d["namespace"], d["name"], d["provider"]) for _, t, d in after.events if t == "module.created")
    assert created == [("acme", "network", "aws"), ("acme", "storage", "aws"), ("other", "network", "aws")]
    released = sorted((f"{d['namespace']}/{d['name']}/{d['provider']}", d["version"]) for _, t, d in after.events
                      if t == "module.version_released")
    assert released == sorted(live)
    assert [serial for serial, _, _ in after.events] == list(range(1, len(after.events) + 1))
    assert len(after.blobs) == 4

    again = assert_ok(cli("import", str(source.bundle), "--config", str(target), cwd=tmp_path))
    assert "imported 0, unchanged 5" in again and all(not line.startswith("imported acme") for line in again.splitlines())
    assert state(target) == after  # no new versions, events or blobs
    assert not any((target.parent / "spool").iterdir())  # the spool is cleaned up


@pytest.mark.slow
def test_namespace_and_since_make_partial_and_incremental_bundles(source: Source, target: Path, tmp_path: Path):
    config = str(source.config)
    latest = source.state.events[-1][0]
    other, since, empty, beyond, bad_ns = tmp_path / "other.tar", tmp_path / "since.tar", tmp_path / "empty.tar", tmp_path / "x.tar", tmp_path / "y.tar"
    results = cli_many(
        [
            ("export", str(other), "--namespace", "other", "--config", config),
            ("export", str(since), "--since", str(source.serial_a), "--config", config),
            ("export", str(empty), "--since", str(latest), "--config", config),
            ("export", str(beyond), "--since", str(latest + 1), "--config", config),
            ("export", str(bad_ns), "--namespace", "no/slash", "--config", config),
        ],
        cwd=tmp_path,
    )
    assert f"next increment: mirror export --since {latest}" in assert_ok(results[0])
    assert [m["namespace"] for m in manifest_of(other)["modules"]] == ["other"]
    assert manifest_of(other)["namespace"] == "other"

    since_out = assert_ok(results[1])
    assert f"events {source.serial_a + 1}..{latest}" in since_out and f"--since {latest}" in since_out
    increment = manifest_of(since)
    assert increment["since"] == source.serial_a and increment["events"] == {"from": source.serial_a + 1, "to": latest}
    assert sorted((f"{m['namespace']}/{m['name']}", v["version"]) for m in increment["modules"] for v in m["versions"]) == [
        ("acme/network", "1.2.0"), ("acme/storage", "2.0.0")
    ]

    assert "exported 0 versions of 0 modules" in assert_ok(results[2])
    assert manifest_of(empty)["modules"] == [] and len(members(empty)) == 1
    assert_one_line_error(results[3], "--since", "latest event serial")
    assert_one_line_error(results[4], "invalid namespace", code=2)
    assert not beyond.exists() and not bad_ns.exists() and not list(tmp_path.glob("*.part"))

    # increments apply in turn: the first batch, then the increment, then an empty one
    first = with_manifest(source.bundle, tmp_path / "first.tar", lambda m: None)  # rewritten by Python's tarfile
    assert "imported 2, unchanged 0" in assert_ok(cli("import", str(since), "--config", str(target), cwd=tmp_path))
    assert "imported 3, unchanged 2" in assert_ok(cli("import", str(first), "--config", str(target), cwd=tmp_path))
    assert "imported 0, unchanged 0" in assert_ok(cli("import", str(empty), "--config", str(target), cwd=tmp_path))
    assert live_versions(state(target)).keys() == live_versions(source.state).keys()


def test_dry_run_verifies_and_writes_nothing(source: Source, target: Path, tmp_path: Path):
    before = state(target)
    out = assert_ok(cli("import", str(source.bundle), "--dry-run", "--config", str(target), cwd=tmp_path))
    assert "would import acme/network/aws 1.2.0" in out and "dry run: 5 would be imported, 0 unchanged, nothing written" in out
    assert state(target) == before


# -- signatures --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_signed_bundles(source: Source, target: Path, tmp_path: Path):
    entries = members(source.signed)
    assert [name for name, _ in entries[:2]] == ["manifest.json", "manifest.sig"]
    expected = hmac.new(KEY.encode(), entries[0][1], hashlib.sha256).hexdigest()
    assert entries[1][1].decode().strip() == expected

    before = state(target)
    bundle, signed, config = str(source.bundle), str(source.signed), str(target)
    wrong = key_file(tmp_path, "another-key-of-enough-length")
    refused = cli_many(
        [
            ("import", signed, "--config", config, "--signing-key-file", str(wrong)),
            ("import", bundle, "--config", config, "--signing-key-file", str(key_file(tmp_path, KEY))),
            ("import", signed, "--config", config, "--signing-key-file", str(key_file(tmp_path, "short"))),
            ("import", signed, "--config", config, "--signing-key-file", str(tmp_path / "no-such-key")),
        ],
        cwd=tmp_path,
    )
    assert_one_line_error(refused[0], "signature does not match")
    assert_one_line_error(refused[1], "not signed")
    assert_one_line_error(refused[2], "too short", code=2)
    assert_one_line_error(refused[3], "no-such-key", code=2)
    assert state(target) == before

    # the key from the environment; a valid signature is verified and said so
    verified = assert_ok(cli("import", signed, "--config", config, cwd=tmp_path, key=KEY))
    assert verified.splitlines()[0] == "signature: verified (HMAC-SHA256 of manifest.json)"
    assert "imported 5, unchanged 0" in verified
    # without a key, a signed bundle is accepted, and the output says the signature was not checked
    unchecked = assert_ok(cli("import", signed, "--config", config, cwd=tmp_path))
    assert "signature: present but NOT checked" in unchecked and "imported 0, unchanged 5" in unchecked

    # a signed bundle whose manifest was edited (a README) fails its signature
    edited = with_manifest(source.signed, tmp_path / "edited.tar",
                           lambda m: m["modules"][0]["versions"][0].update(readme="# changed"))
    fresh = data_config(tmp_path / "fresh")
    assert_one_line_error(cli("import", str(edited), "--config", str(fresh), cwd=tmp_path, key=KEY), "signature does not match")
    assert state(fresh).versions == {} and state(fresh).events == []


# -- refusals: nothing written -------------------------------------------------------------------------


def test_tampered_archive_byte_is_refused(source: Source, target: Path, tmp_path: Path):
    tampered = tmp_path / "tampered.tar"
    shutil.copy(source.bundle, tampered)
    with tarfile.open(tampered) as tar:
        member = tar.getmembers()[-1]  # the last archive, so the ones before it verify fine first
    with tampered.open("r+b") as handle:
        handle.seek(member.offset_data + member.size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    before = state(target)
    line = assert_one_line_error(cli("import", str(tampered), "--config", str(target), cwd=tmp_path), "does not match its sha256")
    assert member.name.removeprefix("archives/").removesuffix(".tar.gz") in line
    assert state(target) == before and before.versions == {} and before.blobs == frozenset()
    assert not any((target.parent / "spool").iterdir())


@pytest.mark.slow
def test_edited_manifest_is_refused(source: Source, target: Path, tmp_path: Path):
    archives = [name for name, _ in members(source.bundle)[1:]]

    def other_sha(manifest: dict[str, Any]) -> None:
        manifest["modules"][-1]["versions"][0]["sha256"] = "0" * 64

    def other_size(manifest: dict[str, Any]) -> None:
        for module in manifest["modules"]:
            for version in module["versions"]:
                version["size"] += 1

    def newer_format(manifest: dict[str, Any]) -> None:
        manifest["format_version"] = 3

    def bad_version(manifest: dict[str, Any]) -> None:
        manifest["modules"][0]["versions"][0]["raw_version"] = "not-semver"

    def bad_name(manifest: dict[str, Any]) -> None:
        manifest["modules"][0]["name"] = "../../etc"

    cases = {
        "sha": (other_sha, "0" * 64),
        "size": (other_size, "the manifest says"),
        "format": (newer_format, "format version is 3"),
        "version": (bad_version, "invalid version"),
        "name": (bad_name, "invalid module name"),
    }
    bundles = {name: with_manifest(source.bundle, tmp_path / f"{name}.tar", edit) for name, (edit, _) in cases.items()}
    before = state(target)
    results = cli_many([("import", str(path), "--config", str(target)) for path in bundles.values()], cwd=tmp_path)
    for (_, fragment), result in zip(cases.values(), results, strict=True):
        assert_one_line_error(result, "bundle refused", fragment)
    assert state(target) == before and before.versions == {}
    assert len(archives) == 4


@pytest.mark.slow
def test_truncated_bundle_is_refused_wherever_it_is_cut(source: Source, target: Path, tmp_path: Path):
    data = source.bundle.read_bytes()
    with tarfile.open(source.bundle) as tar:
        archives = tar.getmembers()[1:]
    first, last = archives[0], archives[-1]
    cuts = {
        "inside the first header": 100,
        "inside the manifest": 512 + 10,
        "after the manifest": first.offset,  # a clean member boundary
        "inside an archive": first.offset_data + first.size // 2,
        "after an archive": last.offset,  # a clean member boundary: later archives are missing
        "without the end marker": len(data) - 1024,
        "inside the end marker": len(data) - 512,
        "one byte short": len(data) - 1,
    }
    paths = {}
    for name, size in cuts.items():
        paths[name] = tmp_path / f"cut-{size}.tar"
        paths[name].write_bytes(data[:size])
    before = state(target)
    results = cli_many([("import", str(path), "--config", str(target)) for path in paths.values()], cwd=tmp_path)
    for name, result in zip(cuts, results, strict=True):
        line = assert_one_line_error(result, "bundle refused")
        assert any(word in line for word in ("truncated", "missing", "end-of-archive")), (name, line)
    assert state(target) == before and before.versions == {} and before.events == []
    assert not any((target.parent / "spool").iterdir())


@pytest.mark.slow
def test_unexpected_members_are_refused(source: Source, target: Path, tmp_path: Path):
    entries = members(source.bundle)
    evil = write_tar(tmp_path / "evil.tar", [*entries, ("../evil", b"boom")])
    twice = write_tar(tmp_path / "twice.tar", [*entries, entries[1]])
    unlisted = write_tar(tmp_path / "unlisted.tar", [*entries, (f"archives/{'a' * 64}.tar.gz", b"x")])
    no_manifest = write_tar(tmp_path / "no-manifest.tar", entries[1:])
    gzip_bundle = tmp_path / "bundle.tar.gz"
    with tarfile.open(gzip_bundle, "w:gz") as tar:
        tar.add(source.bundle, "full.tar")
    trailing = tmp_path / "trailing.tar"
    trailing.write_bytes(source.bundle.read_bytes() + b"\0" * 10240 + b"junk")
    padded = tmp_path / "padded.tar"  # trailing zeros (media padding) are fine
    padded.write_bytes(source.bundle.read_bytes() + b"\0" * 10240)
    missing = tmp_path / "missing.tar"

    cases = [
        (evil, "unexpected member '../evil'"),
        (twice, "appears twice"),
        (unlisted, "not listed in the manifest"),
        (no_manifest, "does not start with manifest.json"),
        (gzip_bundle, "not a mirror bundle"),
        (trailing, "unexpected data after the end"),
        (missing, "cannot read the bundle"),
    ]
    before = state(target)
    results = cli_many(
        [("import", str(path), "--config", str(target)) for path, _ in cases]
        + [("import", str(padded), "--dry-run", "--config", str(target))],
        cwd=tmp_path,
    )
    for (_, fragment), result in zip(cases, results[:-1], strict=True):
        assert_one_line_error(result, fragment)
    assert "dry run: 5 would be imported" in assert_ok(results[-1])
    assert state(target) == before


def test_bundle_with_an_archive_a_publish_would_refuse_is_refused_whole(source: Source, target: Path, tmp_path: Path):
    """The archive checks run in phase 1: a good version listed first is not stored either."""
    good = pack(tmp_path, "good")
    bad_buffer = io.BytesIO()
    with tarfile.open(fileobj=bad_buffer, mode="w:gz") as tar:  # no .tf file at the root
        info = tarfile.TarInfo("docs/README.md")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    bad = bad_buffer.getvalue()

    def entry(version: str, data: bytes) -> dict[str, Any]:
        return {"version": version, "raw_version": version, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                "published_at": "2026-01-01T00:00:00Z", "readme": None, "source": None, "commit_sha": None, "analysis": None}

    manifest = {
        "format": "mirror-bundle", "format_version": 1, "created_at": "2026-01-01T00:00:00Z", "source": None,
        "namespace": None, "since": None, "events": {"from": 1, "to": 2},
        "modules": [{"namespace": "acme", "name": "mixed", "provider": "aws",
                     "versions": [entry("1.0.0", good), entry("1.1.0", bad)]}],
    }
    bundle = write_tar(tmp_path / "mixed.tar", [
        ("manifest.json", json.dumps(manifest).encode()),
        (f"archives/{hashlib.sha256(good).hexdigest()}.tar.gz", good),
        (f"archives/{hashlib.sha256(bad).hexdigest()}.tar.gz", bad),
    ])
    before = state(target)
    assert_one_line_error(cli("import", str(bundle), "--config", str(target), cwd=tmp_path), "fails the archive checks", ".tf", "acme/mixed/aws 1.1.0")
    assert state(target) == before and before.versions == {}


def test_existing_version_with_other_bytes_is_refused(source: Source, target: Path, tmp_path: Path):
    other = pack(tmp_path, "a-different-1.2.0")
    spooled = tmp_path / "other.tar.gz"
    spooled.write_bytes(other)

    async def publish() -> None:
        async with offline_registry(cli_config(target), create=True) as registry:
            outcome = await registry.ingestor.publish(
                ModuleAddress("acme", "network", "aws"), "1.2.0",
                Archive(spooled, hashlib.sha256(other).hexdigest(), len(other)), owner=Owner.upload(), source="upload",
            )
            assert outcome.status == "created"

    asyncio.run(publish())
    before = state(target)
    line = assert_one_line_error(cli("import", str(source.bundle), "--config", str(target), cwd=tmp_path),
                                 "acme/network/aws 1.2.0 already exists", "immutable")
    assert hashlib.sha256(other).hexdigest() in line
    assert state(target) == before and len(before.versions) == 1


def test_export_never_leaves_a_half_bundle(source: Source, tmp_path: Path):
    """A blob that is damaged or gone fails the export, and neither OUT nor OUT.part is left."""
    damaged_root, gone_root = tmp_path / "damaged", tmp_path / "gone"
    for root in (damaged_root, gone_root):
        shutil.copytree(source.config.parent, root, ignore=shutil.ignore_patterns("*.lock"))
        data_config(root)  # the copy's own config, pointing into the copy
    sha = live_versions(source.state)[("acme/storage/aws", "2.0.0")]["sha256"]
    blob = Path("blobs") / "modules" / sha[:2] / f"{sha}.tar.gz"
    (damaged_root / blob).write_bytes((damaged_root / blob).read_bytes()[:-1] + b"X")
    (gone_root / blob).unlink()
    results = cli_many(
        [("export", str(tmp_path / "damaged.tar"), "--config", str(damaged_root / "mirror.toml")),
         ("export", str(tmp_path / "gone.tar"), "--config", str(gone_root / "mirror.toml")),
         ("export", str(tmp_path / "no-dir" / "x.tar"), "--config", str(source.config))],
        cwd=tmp_path,
    )
    assert_one_line_error(results[0], "acme/storage/aws 2.0.0", "does not match")
    assert_one_line_error(results[1], "acme/storage/aws 2.0.0", "missing from the blob store")
    assert_one_line_error(results[2], "cannot write the bundle")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == []


# -- end to end: terraform init installs a module that came by bundle -----------------------------------


@pytest.mark.terraform
def test_terraform_init_installs_a_bundled_module(source: Source, tmp_path: Path):
    port = free_port()
    target = data_config(tmp_path / "airgap", port=port)
    assert "imported 5" in assert_ok(cli("import", str(source.signed), "--config", str(target), cwd=tmp_path, key=KEY))
    server = MirrorServer(target, port, tmp_path).start()
    try:
        token = assert_ok(cli("token", "create", "--namespace", "acme", "--scope", "read", "--config", str(target), cwd=tmp_path))
        rc = terraform_cli_config(tmp_path / "terraform.rc", host=HOST, port=port, token=token.strip().splitlines()[-1])
        root = write_root_config(tmp_path / "root", f"{HOST}/acme/network/aws", "~> 1.1.0")
        init = TERRAFORM_1_15.run(root, "init", "-no-color", env=base_env(rc, tmp_path))
        assert init.returncode == 0, init.stdout + init.stderr
        assert f"Downloading {HOST}/acme/network/aws 1.1.0" in init.stdout
        assert installed_modules(root)["net"]["Version"] == "1.1.0"
        assert '"net-1.1-${var.name}"' in (root / ".terraform/modules/net/main.tf").read_text()
        assert (root / ".terraform/modules/net/modules/subnets/main.tf").is_file()
    finally:
        assert server.stop() == 0, server.logs()


def test_since_carries_a_renamed_modules_versions_under_the_new_name(source: Source, tmp_path: Path):
    root = tmp_path / "renamed"
    shutil.copytree(source.config.parent, root, ignore=shutil.ignore_patterns("*.lock", "spool"))
    config = data_config(root)
    before_rename = source.state.events[-1][0]
    address = ModuleAddress("acme", "storage", "aws")
    assert asyncio.run(with_store(cli_config(config), lambda store: store.rename_module(address, "objects")))
    bundle = tmp_path / "renamed.tar"
    assert_ok(cli("export", str(bundle), "--since", str(before_rename), "--config", str(config), cwd=tmp_path))
    modules = manifest_of(bundle)["modules"]
    assert [(m["name"], [v["version"] for v in m["versions"]]) for m in modules] == [("objects", ["2.0.0"])]
