"""The bad-input corpus, run against every endpoint of one in-process registry.

Every case in ``CASES`` is a request no client should send: bad signatures, malformed JSON,
oversize bodies, odd names and versions, tar-slip, links, absolute paths, devices, gzip bombs,
junk query parameters, wrong methods and unknown paths. For each one:

- the status is the expected 4xx (never a 5xx);
- the body is ``{"errors": [non-empty strings]}`` (an HTML page for the web UI's own handlers);
- ``X-Request-Id`` is set;
- NOTHING WAS WRITTEN: every table of the metadata store (and the store's own counts: latest
  serial, jobs, subscriptions, tokens, consumers, installations, modules and versions), the files
  under the blob, spool and event-log paths, and the calls the fake GitHub received are the same
  before and after.

``DOCUMENTED`` holds requests that look bad but have a documented non-error answer (a ping, an
event mirror ignores, a duplicate delivery, an unchanged re-publish, an off-site ``next``); they
also write nothing. ``test_junk_payloads_of_handled_events`` covers signed deliveries of events
mirror acts on whose payloads are junk: those are queued (documented), and must end as a done or
failed job that wrote nothing else. ``test_malformed_http_is_refused_before_routing`` sends bytes
aiohttp's HTTP parser refuses before any route runs (400, nothing written).

One registry (with GitHub configured against a fake GitHub, small ``[limits]``, tokens, a
published version, a done and a failed job, and a subscription from the config file) serves the
whole module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import tarfile
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from mirror.app.build import create_app
from mirror.app.services import SIGNING_KEY_SETTING
from mirror.config import load_config
from mirror.domain.addresses import valid_namespace, valid_provider
from mirror.domain.blobs import is_sha256
from mirror.domain.versions import Constraints, Version
from mirror.domain.errors import BadRequest
from mirror.domain.models import Event
from mirror.http.keys import JOBS, STORE
from mirror.services.tokens import create_token
from mirror.storage.protocols import MetadataStore
from tests.fake_github import FakeGitHub, sign
from tests.live import eventually, write_config

#: the async tests share the module-scoped registry, so they run in the module's event loop
in_module_loop = pytest.mark.asyncio(loop_scope="module")

SECRET = "bad-input-webhook-secret"
KiB = 1024
MiB = 1024 * KiB
LIMITS = {"max_archive_bytes": 64 * KiB, "max_unpacked_bytes": 256 * KiB, "max_files": 20}
WEBHOOK_MAX_BODY = 25 * 1024 * 1024
CONFIG_HOOK_URL = "http://127.0.0.1:9/config-hook"  # never reachable: loopback is refused anyway
DONE_DELIVERY = "done-delivery-1"  # the GitHub delivery of the done job
DONE_BODY = json.dumps({"ref": "main", "ref_type": "branch", "repository": {"id": 1}}).encode()  # and its body
HTML_ROUTES = ("/modules/", "/login", "/logout", "/static/")


# -- archives -----------------------------------------------------------------------------------

Member = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"") -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, None


def directory(name: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def main_tf(marker: str = "base") -> Member:
    return reg("main.tf", f'output "marker" {{\n  value = "{marker}"\n}}\n'.encode())


def raw_tar(members: list[Member], **kwargs: Any) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, **kwargs) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def tar_gz(members: list[Member], **kwargs: Any) -> bytes:
    return gzip.compress(raw_tar(members, **kwargs), mtime=0)


@functools.cache
def good_archive(marker: str = "base") -> bytes:
    return tar_gz([main_tf(marker), reg("README.md", f"# {marker}\n".encode())])


@functools.cache
def bomb() -> bytes:
    """Kilobytes compressed, 16 MiB unpacked (the limit is 256 KiB)."""
    return tar_gz([main_tf("bomb"), reg("zeros.bin", b"\0" * (16 * MiB))])


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("main.tf", main_tf()[1] or b"")
    return out.getvalue()


def damaged_crc() -> bytes:
    data = bytearray(good_archive("crc"))
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    return bytes(data)


ARCHIVES: dict[str, Callable[[], bytes]] = {
    "not-gzip": lambda: b"this is not a gzip stream, nor a tar",
    "gzip-of-text": lambda: gzip.compress(b"not a tar archive\n" * 100),
    "gzip-of-random": lambda: gzip.compress(hashlib.sha256(b"x").digest() * 400),
    "zip-file": zip_archive,
    "bzip2-tar": lambda: __import__("bz2").compress(raw_tar([main_tf()])),
    "plain-tar": lambda: raw_tar([main_tf()]),
    "truncated-gzip": lambda: good_archive("cut")[: len(good_archive("cut")) // 2],
    "bad-crc": damaged_crc,
    "garbage-after-gzip": lambda: good_archive("tail") + b"garbage after the gzip member",
    "data-after-tar-end": lambda: gzip.compress(raw_tar([main_tf()]) + b"hidden data after the end" + b"\0" * 1000),
    "tar-slip": lambda: tar_gz([main_tf(), reg("../x.tf", b"# escaped\n")]),
    "tar-slip-nested": lambda: tar_gz([main_tf(), reg("modules/../../x.tf", b"# escaped\n")]),
    "tar-slip-dot-dot-dir": lambda: tar_gz([main_tf(), directory(".."), reg("../../etc/x.tf", b"#\n")]),
    "absolute-path": lambda: tar_gz([main_tf(), reg("/etc/x.tf", b"# absolute\n")]),
    "windows-drive-path": lambda: tar_gz([main_tf(), reg("C:/x.tf", b"# drive\n")]),
    "backslash-slip": lambda: tar_gz([main_tf(), reg("..\\x.tf", b"# backslash\n")]),
    "symlink-leaves-tree": lambda: tar_gz([main_tf(), special("passwd", tarfile.SYMTYPE, "../../etc/passwd")]),
    "symlink-absolute": lambda: tar_gz([main_tf(), special("passwd", tarfile.SYMTYPE, "/etc/passwd")]),
    "symlink-chain-leaves-tree": lambda: tar_gz(
        [main_tf(), directory("d"), special("d/up", tarfile.SYMTYPE, ".."), special("out", tarfile.SYMTYPE, "d/up/..")]
    ),
    "symlink-loop": lambda: tar_gz([main_tf(), special("a", tarfile.SYMTYPE, "b"), special("b", tarfile.SYMTYPE, "a")]),
    "symlink-then-write-through": lambda: tar_gz(
        [main_tf(), special("evil", tarfile.SYMTYPE, "/tmp"), reg("evil/x.tf", b"# through the link\n")]
    ),
    "hardlink-leaves-tree": lambda: tar_gz([main_tf(), special("h.tf", tarfile.LNKTYPE, "../outside.tf")]),
    "hardlink-absolute": lambda: tar_gz([main_tf(), special("h.tf", tarfile.LNKTYPE, "/etc/passwd")]),
    "hardlink-to-missing": lambda: tar_gz([main_tf(), special("h.tf", tarfile.LNKTYPE, "missing.tf")]),
    "char-device": lambda: tar_gz([main_tf(), special("null", tarfile.CHRTYPE)]),
    "block-device": lambda: tar_gz([main_tf(), special("sda", tarfile.BLKTYPE)]),
    "fifo": lambda: tar_gz([main_tf(), special("pipe", tarfile.FIFOTYPE)]),
    "no-tf-at-root": lambda: tar_gz([reg("README.md", b"# r\n"), reg("modules/sub/main.tf", b"# sub\n")]),
    "only-a-directory": lambda: tar_gz([directory("modules")]),
    "empty-tar": lambda: tar_gz([]),
    "duplicate-member": lambda: tar_gz([main_tf("one"), main_tf("two")]),
    "huge-pax-header": lambda: tar_gz([main_tf()], pax_headers={"comment": "x" * (2 * MiB)}),
    "too-many-files": lambda: tar_gz([main_tf()] + [reg(f"f{i}.txt", b"x") for i in range(LIMITS["max_files"] + 5)]),
}
#: refused with 413 (a size limit), every other archive with 422
SIZE_REFUSALS = {
    "gzip-bomb": bomb,
    "unpacked-over-limit": lambda: tar_gz([main_tf(), reg("big.bin", hashlib.sha256(b"y").digest() * 9000)]),
}


# -- the registry under test -----------------------------------------------------------------------


@dataclass
class World:
    client: TestClient
    session: aiohttp.ClientSession  # keeps no cookies: no case is signed in by an earlier one
    fake: FakeGitHub
    data: Path
    tokens: dict[str, str] = field(default_factory=dict)
    done_job: int = 0
    failed_job: int = 0
    config_hook: str = ""

    @property
    def app(self) -> Any:
        return self.client.server.app

    def url(self, path: str) -> URL:
        """``path`` sent exactly as written (no normalization of ``..``, percent-escapes kept);
        characters that cannot go on a request line raw are percent-encoded."""
        safe = "/%?=&+:;,@!$'()*[]~"
        return URL(str(self.client.make_url("/")).rstrip("/") + quote(path, safe=safe), encoded=True)

    def authorization(self, auth: str | None) -> dict[str, str]:
        if auth is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens[auth]}" if auth in self.tokens else auth}


def registry_config(tmp: Path, fake: FakeGitHub, api_url: str) -> Any:
    (tmp / "app.pem").write_text(fake.private_key_pem)
    sections = {
        "server": {"spool_dir": str(tmp / "data" / "spool")},
        "metadata": {"path": str(tmp / "data" / "mirror.db")},
        "blobs": {"path": str(tmp / "data" / "blobs")},
        "events": {"log_path": str(tmp / "data" / "events.jsonl")},
        "limits": LIMITS,
        "github": {
            "app_id": fake.app_id,
            "private_key_file": str(tmp / "app.pem"),
            "webhook_secret": SECRET,
            "api_url": api_url,
            "workers": 2,
            "reconcile_interval": 0,
        },
        "jobs": {"lease_seconds": 5, "max_attempts": 1, "backoff_base": 0.01, "backoff_max": 0.05},
        "webhooks": {"max_attempts": 1, "backoff_base": 0.01, "backoff_max": 0.05, "timeout_seconds": 1},
    }
    path = write_config(tmp / "mirror.toml", sections)
    with path.open("a") as out:  # an array of tables, which write_config does not write
        out.write(f'\n[[webhooks.subscriptions]]\nurl = "{CONFIG_HOOK_URL}"\nsecret = "config-hook-secret-123"\n')
    return load_config(path, environ={}, blob_backends=frozenset({"local", "s3"}))


def signed(event: str, body: bytes, *, delivery: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
    }
    return headers | extra


async def settle(world: World) -> None:
    """Jobs drained, the config subscription's cursor and the event log caught up."""
    store = world.app[STORE]
    await world.app[JOBS].drain(15)

    async def caught_up() -> bool:
        latest = await store.latest_serial()
        consumers = {c.name: c for c in await store.list_consumers()}
        hook = consumers.get(f"webhook:{world.config_hook}")
        log = world.data / "events.jsonl"
        lines = log.read_bytes().count(b"\n") if log.exists() else 0
        return hook is not None and hook.serial >= latest and lines >= latest

    await eventually(caught_up, "the event log and the webhook consumer to catch up", timeout=15)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("bad-input")
    fake = FakeGitHub()
    async with TestServer(fake.app) as github:
        config = registry_config(tmp, fake, str(github.make_url("")).rstrip("/"))
        async with (
            TestClient(TestServer(create_app(config, access_log=None))) as client,
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session,
        ):
            world = World(client, session, fake, tmp / "data")
            store = world.app[STORE]
            for role, namespace, scope in (
                ("admin", "*", "admin"),
                ("read", "*", "read"),
                ("publish", "acme", "publish"),
                ("acme-read", "acme", "read"),
                ("acme-admin", "acme", "admin"),
                ("other-publish", "other", "publish"),
                ("other-read", "other", "read"),
            ):
                world.tokens[role] = (await create_token(store, namespace, scope))[1]
            world.config_hook = (await store.list_subscriptions())[0].id

            published = await client.put(
                "/api/v1/modules/acme/network/aws/1.0.0",
                data=good_archive(),
                headers=world.authorization("publish"),
            )
            assert published.status == 201, await published.text()

            # a done job (a branch was created: nothing to do) and a failed one (a tag of a
            # repository GitHub does not know)
            done = await client.post(
                "/github/webhook", data=DONE_BODY, headers=signed("create", DONE_BODY, delivery=DONE_DELIVERY)
            )
            assert done.status == 202, await done.text()
            world.done_job = (await done.json())["job"]
            tag = {
                "ref": "v9.0.0",
                "ref_type": "tag",
                "repository": {
                    "id": 424242,
                    "name": "terraform-aws-gone",
                    "full_name": "acme/terraform-aws-gone",
                    "owner": {"login": "acme", "type": "Organization"},
                },
                "installation": {"id": 999},
            }
            body = json.dumps(tag).encode()
            failed = await client.post("/github/webhook", data=body, headers=signed("create", body))
            assert failed.status == 202, await failed.text()
            await settle(world)
            states = {job.id: job.state for job in await store.list_jobs(None, 100)}
            assert states[world.done_job] == "done" and list(states.values()).count("failed") == 1, states
            world.failed_job = next(job for job, state in states.items() if state == "failed")
            yield world


# -- what "nothing was written" means --------------------------------------------------------------


def _files(data: Path) -> dict[str, int]:
    """Every file under the data directory but the SQLite files, with its size."""
    return {
        str(path.relative_to(data)): path.stat().st_size
        for path in sorted(data.rglob("*"))
        if path.is_file() and not path.name.startswith("mirror.db")
    }


async def _namespaces(store: MetadataStore, events: list[Event]) -> list[str]:
    """Every namespace the store shows a trace of (the API lists modules by namespace)."""
    found = {"acme", "other"}
    found |= {event.data["namespace"] for event in events if isinstance(event.data.get("namespace"), str)}
    found |= {token.namespace for token in await store.list_tokens() if token.namespace != "*"}
    found |= {installation.namespace for installation in await store.list_installations()}
    found |= {summary.version.address.namespace for summary in await store.latest_versions()}
    return sorted(found)


async def store_snapshot(store: MetadataStore) -> dict[str, Any]:
    """Everything the metadata store shows through its API, whole records: modules, every version
    (revoked ones too) with its analysis, the latest-version summaries with their downloads,
    tokens (without when each was last used, which a refused request may move: using a token is
    not a change), events, consumers (their records carry no lease, which moves by itself while
    the server idles), subscriptions with every delivery failure, installations, jobs, providers
    with their live versions and the namespaces' signing keys, and the download-signing setting."""
    events = await store.events_after(0, 100_000)
    modules = [record for namespace in await _namespaces(store, events) for record in await store.list_modules(namespace)]
    versions = {}
    for record in modules:
        for version in await store.all_versions(record.address):
            analysis = await store.version_analysis(record.address, version.version)
            versions[f"{record.address} {version.version}"] = (version, analysis)
    subscriptions = await store.list_subscriptions()
    return {
        "serial": await store.latest_serial(),
        "events": events,
        "modules": modules,
        "versions": versions,
        "latest": await store.latest_versions(),
        "jobs": await store.list_jobs(None, 100_000),
        "subscriptions": subscriptions,
        "failures": {s.id: await store.list_delivery_failures(s.id, pending_only=False) for s in subscriptions},
        "consumers": await store.list_consumers(),
        "tokens": sorted((replace(token, last_used_at=None) for token in await store.list_tokens()), key=lambda t: t.id),
        "providers": [(p, await store.provider_versions(p.hostname, p.address)) for p in await store.list_providers()],
        "provider_keys": {n: await store.list_provider_keys(n) for n in sorted(await _namespaces(store, events))},
        "installations": await store.list_installations(),
        # the server made it at its first start: reading it writes nothing
        "signing_key": await store.get_or_create_setting(SIGNING_KEY_SETTING, "not-made"),
    }


async def snapshot(world: World) -> dict[str, Any]:
    store = world.app[STORE]
    return {
        **await store_snapshot(store),
        "files": _files(world.data),
        "spool": sorted(p.name for p in (world.data / "spool").iterdir()),
        "github_calls": dict(world.fake.calls),
    }


# -- the corpus -------------------------------------------------------------------------------------

Body = bytes | Callable[[], bytes] | None


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str  # sent as written; percent-escapes stay escaped
    status: int
    body: Body = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: str | None = "admin"  # a role of World.tokens, a literal Authorization value, or None
    chunked: bool = False  # send the body without Content-Length
    sign_as: str | None = None  # sign the body as a GitHub delivery of this event
    html: bool | None = None  # None: decided by the path (the web UI's own routes answer pages)
    allow: frozenset[str] | None = None  # for 405: the methods the Allow header must list

    def is_html(self) -> bool:
        if self.html is not None:
            return self.html
        path = self.path.split("?", 1)[0]
        return path == "/" or path.startswith(HTML_ROUTES)

    def payload(self) -> bytes | None:
        return self.body() if callable(self.body) else self.body


def case(id: str, method: str, path: str, status: int, **kwargs: Any) -> Case:
    return Case(id, method, path, status, **kwargs)


PUT_PATH = "/api/v1/modules/{}/{}/{}/{}"
NEW = ("acme", "fresh", "aws", "2.0.0")  # an address and version that do not exist yet

#: names refused as a namespace and as a module name (the provider's rule is stricter still)
BAD_NAMES = {
    "dotdot": "..",
    "dot": ".",
    "leading-dash": "-a",
    "trailing-dash": "a-",
    "leading-underscore": "_a",
    "65-chars": "a" * 65,
    "unicode": "ünïcødé",
    "fullwidth": "ａｃｍｅ",
    "encoded-slash": "a%2Fb",
    "encoded-backslash": "a%5Cb",
    "encoded-newline-suffix": "acme%0A",
    "encoded-nul": "ac%00me",
    "encoded-space": "a%20b",
    "encoded-dotdot": "%2E%2E",
    "tab": "a%09b",
    "1000-chars": "a" * 1000,
}
BAD_PROVIDERS = {
    "uppercase": "AWS",
    "dash": "a-ws",
    "underscore": "a_ws",
    "newline-suffix": "aws%0A",
    "65-chars": "a" * 65,
}
BAD_VERSIONS = {
    "four-parts": "1.2.3.4",
    "leading-zero": "01.2.3",
    "leading-zero-minor": "1.02.3",
    "dangling-dash": "1.2.3-",
    "dangling-plus": "1.2.3+",
    "empty-prerelease-part": "1.0.0-beta..1",
    "200-chars": "1.2.3-" + "a" * 194,
    "v-only": "v",
    "dotdot": "..",
    "negative": "-1.0.0",
    "arabic-digits": "١.٢.٣",
    "arabic-digit-inside": "1٢.0.0",
    "fullwidth-digits": "１.２.３",
    "encoded-nul": "%00",
    "encoded-nul-suffix": "1.2.3%00",
    "encoded-newline-suffix": "1.2.3%0A",
    "encoded-space-suffix": "1.2.3%20",
    "encoded-slash": "1.2%2F3",
    "letters": "latest",
    "spaces-inside": "1.%202.3",
    "V-uppercase": "V1.2.3",
}


def _positions(value: str) -> dict[str, tuple[str, str, str]]:
    return {"namespace": (value, "network", "aws"), "name": ("acme", value, "aws")}


def publish_cases() -> list[Case]:
    good = functools.partial(good_archive, "new")
    cases = [
        case(f"publish-archive-{name}", "PUT", PUT_PATH.format(*NEW), 422, body=build, auth="publish")
        for name, build in ARCHIVES.items()
    ]
    cases += [
        case(f"publish-archive-{name}", "PUT", PUT_PATH.format(*NEW), 413, body=build, auth="publish")
        for name, build in SIZE_REFUSALS.items()
    ]

    # archives Python's tarfile and Terraform's Go reader would read differently, and modes kept as sent
    def pax(name: str, **records: str) -> Member:
        info, data = reg(name, b"# x\n")
        info.pax_headers = records
        return info, data

    def block(type_: bytes, name: str, body: bytes = b"", **patches: bytes) -> bytes:
        """A raw header and its data; ``patches`` overwrite header bytes (``at345=b"x"``)."""
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode = type_, len(body), 0o644
        header = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
        if patches:
            for at, value in patches.items():
                header[int(at[2:]) : int(at[2:]) + len(value)] = value
            header[148:156] = b" " * 8
            header[148:156] = b"%06o\0 " % sum(header)
        return bytes(header) + body + bytes(-len(body) % 512)

    def raw(*blocks: bytes) -> Callable[[], bytes]:
        return lambda: gzip.compress(block(tarfile.REGTYPE, "main.tf", b"# m\n") + b"".join(blocks) + bytes(1024))

    def with_mode(member: Member, mode: int) -> Member:
        member[0].mode = mode
        return member

    two_readings: dict[str, Callable[[], bytes]] = {
        "pax-gnu-sparse-name": lambda: tar_gz([main_tf(), pax("x.tf", **{"GNU.sparse.name": "y.tf"})]),
        "pax-gnu-sparse-realsize": lambda: tar_gz([main_tf(), pax("x.tf", **{"GNU.sparse.realsize": "99"})]),
        "pax-gnu-sparse-1-0": lambda: tar_gz(
            [main_tf(), pax("x.tf", **{"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})]
        ),
        "pax-unknown-key": lambda: tar_gz([main_tf(), pax("x.tf", **{"SUN.holesdata": "0 4"})]),
        "pax-empty-path": lambda: tar_gz([main_tf(), pax("x.tf", path="")]),
        "pax-size-underscore": lambda: tar_gz([main_tf(), pax("x.tf", size="4_0")]),
        "pax-global-linkpath": lambda: tar_gz([main_tf()], pax_headers={"linkpath": "main.tf"}),
        "pax-record-plus-length": raw(block(tarfile.XHDTYPE, "x", b"+17 path=evil.tf\n"), block(b"0", "x.tf")),
        "pax-two-headers": raw(
            block(tarfile.XHDTYPE, "x", b"13 path=a.tf\n"), block(tarfile.XHDTYPE, "x", b"13 path=b.tf\n"),
            block(b"0", "x.tf"),
        ),
        "pax-path-and-gnu-long-name": raw(
            block(tarfile.XHDTYPE, "x", b"13 path=a.tf\n"), block(tarfile.GNUTYPE_LONGNAME, "L", b"b.tf\0"),
            block(b"0", "x.tf"),
        ),
        "gnu-empty-long-name": raw(block(tarfile.GNUTYPE_LONGNAME, "L", b"\0"), block(b"0", "x.tf")),
        "solaris-extended-header": raw(block(tarfile.SOLARIS_XHDTYPE, "X", b"13 path=a.tf\n"), block(b"0", "x.tf")),
        "prefix-in-gnu-header": raw(block(b"0", "x.tf", at257=b"ustar  \0", at345=b"hidden")),
        "mode-says-directory": raw(block(b"0", "x.tf", at100=b"0040644\0")),
        "setuid-file": lambda: tar_gz([main_tf(), with_mode(reg("tool.sh", b"#!/bin/sh\n"), 0o4755)]),
        "setgid-directory": lambda: tar_gz([main_tf(), with_mode(directory("shared"), 0o2775)]),
        "sticky-directory": lambda: tar_gz([main_tf(), with_mode(directory("tmp"), 0o1777)]),
        "case-variant-symlink-escape": lambda: tar_gz(
            [main_tf(), directory("x"), special("x/L", tarfile.SYMTYPE, ".."), special("y", tarfile.SYMTYPE, "X/l/..")]
        ),
        "case-variant-hardlink": lambda: tar_gz([main_tf(), special("copy.tf", tarfile.LNKTYPE, "MAIN.TF")]),
        "case-variant-write-through-link": lambda: tar_gz(
            [main_tf(), directory("d"), special("d/Up", tarfile.SYMTYPE, ".."), reg("d/up/x.tf", b"# x\n")]
        ),
        "case-variant-duplicate": lambda: tar_gz([main_tf(), reg("MAIN.tf", b"# other\n")]),
    }
    cases += [
        case(f"publish-archive-{name}", "PUT", PUT_PATH.format(*NEW), 422, body=build, auth="publish")
        for name, build in two_readings.items()
    ]
    oversize = b"\x1f\x8b" + b"z" * (LIMITS["max_archive_bytes"] + 10 * KiB)
    cases += [
        case("publish-empty-body", "PUT", PUT_PATH.format(*NEW), 400, body=b"", auth="publish"),
        case("publish-no-body-chunked", "PUT", PUT_PATH.format(*NEW), 400, body=b"", auth="publish", chunked=True),
        case("publish-oversize-with-length", "PUT", PUT_PATH.format(*NEW), 413, body=oversize, auth="publish"),
        case(
            "publish-oversize-chunked", "PUT", PUT_PATH.format(*NEW), 413, body=oversize, auth="publish", chunked=True
        ),
        case(
            "publish-huge-content-length-tiny-body",
            "PUT",
            PUT_PATH.format(*NEW),
            413,
            body=b"x",
            headers={"Content-Length": str(10**15)},
            auth="publish",
        ),
        # tokens
        case("publish-no-token", "PUT", PUT_PATH.format(*NEW), 401, body=good, auth=None),
        case("publish-unknown-token", "PUT", PUT_PATH.format(*NEW), 401, body=good, auth="Bearer mirror_" + "0" * 64),
        case("publish-basic-auth", "PUT", PUT_PATH.format(*NEW), 401, body=good, auth="Basic YWRtaW46YWRtaW4="),
        case("publish-bearer-without-token", "PUT", PUT_PATH.format(*NEW), 401, body=good, auth="Bearer"),
        case("publish-huge-token", "PUT", PUT_PATH.format(*NEW), 401, body=good, auth="Bearer " + "t" * 6000),
        case("publish-read-token", "PUT", PUT_PATH.format(*NEW), 403, body=good, auth="read"),
        case("publish-namespace-read-token", "PUT", PUT_PATH.format(*NEW), 403, body=good, auth="acme-read"),
        case("publish-other-namespace-token", "PUT", PUT_PATH.format(*NEW), 403, body=good, auth="other-publish"),
        case("publish-no-token-bad-archive", "PUT", PUT_PATH.format(*NEW), 401, body=ARCHIVES["tar-slip"], auth=None),
        # versions are immutable
        case(
            "publish-same-version-other-bytes",
            "PUT",
            PUT_PATH.format("acme", "network", "aws", "1.0.0"),
            409,
            body=lambda: good_archive("other"),
            auth="publish",
        ),
        case(
            "publish-same-version-raw-spelling-other-bytes",
            "PUT",
            PUT_PATH.format("acme", "network", "aws", "v1.0"),
            409,
            body=lambda: good_archive("other"),
            auth="publish",
        ),
        case(
            "publish-same-version-other-case-other-bytes",
            "PUT",
            PUT_PATH.format("ACME", "Network", "aws", "1.0.0"),
            409,
            body=lambda: good_archive("other"),
            auth="publish",
        ),
        case(
            "publish-same-version-bad-archive",
            "PUT",
            PUT_PATH.format("acme", "network", "aws", "1.0.0"),
            409,
            body=ARCHIVES["tar-slip"],
            auth="publish",
        ),
        # the path itself
        case("publish-empty-segment", "PUT", "/api/v1/modules/acme//aws/2.0.0", 404, body=good, auth="publish"),
        case(
            "publish-missing-version",
            "PUT",
            "/api/v1/modules/acme/fresh/aws",
            405,  # the module's record is there (GET, PATCH, DELETE); a version is published one level down
            body=good,
            auth="publish",
            allow=frozenset({"GET", "HEAD", "PATCH", "DELETE"}),
        ),
        case("publish-extra-segment", "PUT", "/api/v1/modules/acme/fresh/aws/2.0.0/x", 404, body=good, auth="publish"),
    ]
    for label, value in BAD_NAMES.items():
        for position, parts in _positions(value).items():
            cases.append(
                case(
                    f"publish-{position}-{label}",
                    "PUT",
                    PUT_PATH.format(*parts, "2.0.0"),
                    400,
                    body=good,
                    auth="publish",
                )
            )
    for label, value in BAD_PROVIDERS.items():
        cases.append(
            case(
                f"publish-provider-{label}",
                "PUT",
                PUT_PATH.format("acme", "fresh", value, "2.0.0"),
                400,
                body=good,
                auth="publish",
            )
        )
    for label, value in BAD_VERSIONS.items():
        cases.append(
            case(
                f"publish-version-{label}",
                "PUT",
                PUT_PATH.format("acme", "fresh", "aws", value),
                400,
                body=good,
                auth="publish",
            )
        )
    return cases


MODULE = "/v1/modules/acme/network/aws"


def protocol_cases() -> list[Case]:
    cases = []
    for label, value in BAD_NAMES.items():
        for position, parts in _positions(value).items():
            cases.append(
                case(f"versions-{position}-{label}", "GET", "/v1/modules/{}/{}/{}/versions".format(*parts), 400)
            )
    for label, value in BAD_PROVIDERS.items():
        cases.append(case(f"versions-provider-{label}", "GET", f"/v1/modules/acme/network/{value}/versions", 400))
    for label, value in BAD_VERSIONS.items():
        cases.append(case(f"download-version-{label}", "GET", f"{MODULE}/{value}/download", 400))
        cases.append(case(f"detail-version-{label}", "GET", f"{MODULE}/{value}", 400))
    for label in ("leading-dash", "unicode", "encoded-newline-suffix", "65-chars"):
        value = BAD_NAMES[label]
        cases.append(
            case(f"download-latest-namespace-{label}", "GET", f"/v1/modules/{value}/network/aws/download", 400)
        )
        cases.append(case(f"latest-detail-namespace-{label}", "GET", f"/v1/modules/{value}/network/aws", 400))
        cases.append(case(f"providers-namespace-{label}", "GET", f"/v1/modules/{value}/network", 400))
        cases.append(case(f"providers-name-{label}", "GET", f"/v1/modules/acme/{value}", 400))
        cases.append(case(f"list-namespace-{label}", "GET", f"/v1/modules/{value}", 400))
    cases += [
        case("versions-unknown-module", "GET", "/v1/modules/acme/nope/aws/versions", 404),
        case("download-unknown-version", "GET", f"{MODULE}/9.9.9/download", 404),
        case("download-short-version-unknown", "GET", f"{MODULE}/9/download", 404),
        case("download-unknown-module", "GET", "/v1/modules/acme/nope/aws/1.0.0/download", 404),
        case("download-latest-unknown-module", "GET", "/v1/modules/acme/nope/aws/download", 404),
        case("detail-unknown-version", "GET", f"{MODULE}/9.9.9", 404),
        case("latest-detail-unknown-module", "GET", "/v1/modules/acme/nope/aws", 404),
        case("providers-unknown-module", "GET", "/v1/modules/acme/nope", 404),
        case("download-extra-segment", "GET", f"{MODULE}/1.0.0/download/more", 404),
        case("versions-empty-segment", "GET", "/v1/modules/acme//aws/versions", 404),
        case("versions-no-token", "GET", f"{MODULE}/versions", 401, auth=None),
        case("versions-unknown-token", "GET", f"{MODULE}/versions", 401, auth="Bearer mirror_" + "f" * 64),
        case("versions-non-ascii-token", "GET", f"{MODULE}/versions", 401, auth="Bearer tökén"),
        # malformed credentials: refused (401) before anything is hashed or looked up
        case("versions-header-over-1024", "GET", f"{MODULE}/versions", 401, auth="Bearer mirror_" + "a" * 2000),
        case("versions-token-over-512", "GET", f"{MODULE}/versions", 401, auth="Bearer " + "a" * 600),
        case("versions-bearer-alone", "GET", f"{MODULE}/versions", 401, auth="Bearer"),
        case("versions-bearer-blank", "GET", f"{MODULE}/versions", 401, auth="Bearer    "),
        case("versions-basic-auth", "GET", f"{MODULE}/versions", 401, auth="Basic dXNlcjpwYXNz"),
        case("versions-token-tab-inside", "GET", f"{MODULE}/versions", 401, auth="Bearer mirror_a\tb"),
        case("versions-token-quoted", "GET", f"{MODULE}/versions", 401, auth='Bearer "mirror_abc"'),
        case("versions-folded-headers", "GET", f"{MODULE}/versions", 401, auth="Bearer mirror_a, Bearer mirror_b"),
        case("versions-token-latin1-char", "GET", f"{MODULE}/versions", 401, auth="Bearer mirror_\xff\xfe"),
        case(
            "versions-cookie-is-not-read", "GET", f"{MODULE}/versions", 401, auth=None, headers={"Cookie": "mirror_token=x"}
        ),
        case("download-non-ascii-token", "GET", f"{MODULE}/1.0.0/download", 401, auth="Bearer tökén"),
        case("list-header-over-1024", "GET", "/v1/modules", 401, auth="Bearer " + "a" * 5000),
        case("versions-other-namespace", "GET", f"{MODULE}/versions", 403, auth="other-read"),
        case("download-other-namespace", "GET", f"{MODULE}/1.0.0/download", 403, auth="other-read"),
        case("download-no-token", "GET", f"{MODULE}/1.0.0/download", 401, auth=None),
        case("discovery-no-token", "GET", "/.well-known/terraform.json", 401, auth=None),
        case("discovery-unknown-token", "GET", "/.well-known/terraform.json", 401, auth="Bearer nope"),
        # list and search query parameters
        *[
            case(f"list-{param}-{label}", "GET", f"/v1/modules?{param}={value}", 400)
            for param in ("offset", "limit")
            for label, value in {
                "negative": "-1",
                "letters": "abc",
                "float": "1.5",
                "exponent": "1e3",
                "huge": "9" * 19,
                "5000-digits": "9" * 5000,
                "arabic-digits": "%D9%A1",
                "fullwidth-digit": "%EF%BC%91",
                "leading-space": "%201",
                "underscore": "1_0",
                "plus": "%2B1",
            }.items()
        ],
        case("list-offset-over-max", "GET", "/v1/modules?offset=1000000001", 400),
        case("list-limit-zero", "GET", "/v1/modules?limit=0", 400),
        case("list-limit-over-max", "GET", "/v1/modules?limit=101", 400),
        case("list-provider-uppercase", "GET", "/v1/modules?provider=AWS", 400),
        case("list-provider-junk", "GET", "/v1/modules?provider=a%00b", 400),
        case("list-verified-junk", "GET", "/v1/modules?verified=maybe", 400),
        case("list-slash-offset-junk", "GET", "/v1/modules/?offset=x", 400),
        case("list-namespace-offset-junk", "GET", "/v1/modules/acme?offset=-5", 400),
        case("providers-limit-junk", "GET", "/v1/modules/acme/network?limit=1000", 400),
        case("list-no-token", "GET", "/v1/modules", 401, auth=None),
        case("list-other-namespace", "GET", "/v1/modules/acme", 403, auth="other-read"),
        case("search-no-q", "GET", "/v1/modules/search", 400),
        case("search-blank-q", "GET", "/v1/modules/search?q=%20%20", 400),
        case("search-bad-namespace", "GET", "/v1/modules/search?q=x&namespace=-x", 400),
        case("search-bad-provider", "GET", "/v1/modules/search?q=x&provider=A", 400),
        case("search-offset-5000-digits", "GET", "/v1/modules/search?q=x&offset=" + "1" * 5000, 400),
        case("search-other-namespace", "GET", "/v1/modules/search?q=x&namespace=acme", 403, auth="other-read"),
        # signed archive URLs
        case("archive-no-signature", "GET", "/v1/archives/" + "a" * 64 + ".tar.gz", 401, auth=None),
        case(
            "archive-bad-signature",
            "GET",
            "/v1/archives/" + "a" * 64 + ".tar.gz?expires=9999999999&signature=00",
            401,
            auth=None,
        ),
        case("archive-expired", "GET", "/v1/archives/" + "a" * 64 + ".tar.gz?expires=1&signature=00", 401, auth=None),
        case(
            "archive-expires-junk",
            "GET",
            "/v1/archives/" + "a" * 64 + ".tar.gz?expires=" + "9" * 5000 + "&signature=x",
            401,
            auth=None,
        ),
        case(
            "archive-expires-unicode",
            "GET",
            "/v1/archives/" + "a" * 64 + ".tar.gz?expires=%D9%A1&signature=x",
            401,
            auth=None,
        ),
        case(
            "archive-not-hex",
            "GET",
            "/v1/archives/" + "z" * 64 + ".tar.gz?expires=9999999999&signature=00",
            401,
            auth=None,
        ),
        case("archive-short-sha", "GET", "/v1/archives/abc.tar.gz?expires=9999999999&signature=00", 401, auth=None),
        case(
            "archive-sha-newline",
            "GET",
            "/v1/archives/" + "a" * 64 + "%0A.tar.gz?expires=9999999999&signature=00",
            401,
            auth=None,
        ),
        case(
            "archive-traversal",
            "GET",
            "/v1/archives/..%2F..%2Fmirror.db.tar.gz?expires=9999999999&signature=00",
            401,
            auth=None,
        ),
    ]
    return cases


def events_cases() -> list[Case]:
    path = "/api/v1/events"
    junk = {
        "negative": "-1",
        "letters": "abc",
        "empty": "",
        "float": "1.0",
        "arabic-digits": "%D9%A1",
        "fullwidth-digit": "%EF%BC%91",
        "leading-space": "%201",
        "underscore": "1_0",
        "5000-digits": "9" * 5000,
    }
    cases = [
        case(f"events-{p}-{label}", "GET", f"{path}?{p}={v}", 400)
        for p in ("after", "limit")
        for label, v in junk.items()
    ]
    cases += [
        case("events-after-over-int64", "GET", f"{path}?after={2**63}", 400),
        case("events-after-20-digits", "GET", f"{path}?after=" + "1" * 20, 400),
        case("events-limit-zero", "GET", f"{path}?limit=0", 400),
        case("events-limit-over-max", "GET", f"{path}?limit=1001", 400),
        case("events-type-empty", "GET", f"{path}?type=", 400),
        case("events-type-101-chars", "GET", f"{path}?type=" + "t" * 101, 400),
        case("events-21-types", "GET", path + "?" + "&".join(f"type=t{i}" for i in range(21)), 400),
        case("events-namespace-token-bad-after", "GET", f"{path}?after=x", 400, auth="acme-read"),
        case("events-no-token", "GET", path, 401, auth=None),
        case("events-unknown-token", "GET", path, 401, auth="Bearer mirror_nope"),
        case("events-basic-auth", "GET", path, 401, auth="Basic eDp5"),
    ]
    return cases


def jobs_cases() -> list[Case]:
    cases = [
        case("jobs-state-unknown", "GET", "/api/v1/jobs?state=bogus", 400),
        case("jobs-state-empty", "GET", "/api/v1/jobs?state=", 400),
        case("jobs-state-uppercase", "GET", "/api/v1/jobs?state=FAILED", 400),
        case("jobs-state-nul", "GET", "/api/v1/jobs?state=failed%00", 400),
        case("jobs-limit-zero", "GET", "/api/v1/jobs?limit=0", 400),
        case("jobs-limit-negative", "GET", "/api/v1/jobs?limit=-1", 400),
        case("jobs-limit-over-max", "GET", "/api/v1/jobs?limit=1001", 400),
        case("jobs-limit-letters", "GET", "/api/v1/jobs?limit=abc", 400),
        case("jobs-limit-5000-digits", "GET", "/api/v1/jobs?limit=" + "9" * 5000, 400),
        case("jobs-limit-arabic-digit", "GET", "/api/v1/jobs?limit=%D9%A1", 400),
        case("jobs-limit-padded", "GET", "/api/v1/jobs?limit=%205%20", 400),
        case("jobs-limit-underscore", "GET", "/api/v1/jobs?limit=1_0", 400),
        case("jobs-no-token", "GET", "/api/v1/jobs", 401, auth=None),
        case("jobs-read-token", "GET", "/api/v1/jobs", 403, auth="read"),
        case("jobs-namespace-admin", "GET", "/api/v1/jobs", 403, auth="acme-admin"),
        case("retry-unknown-id", "POST", "/api/v1/jobs/987654321/retry", 404),
        case("retry-zero-id", "POST", "/api/v1/jobs/0/retry", 404),
        case("retry-letters-id", "POST", "/api/v1/jobs/abc/retry", 404),
        case("retry-negative-id", "POST", "/api/v1/jobs/-1/retry", 404),
        case("retry-19-digit-id", "POST", "/api/v1/jobs/" + "9" * 19 + "/retry", 404),
        case("retry-5000-digit-id", "POST", "/api/v1/jobs/" + "9" * 5000 + "/retry", 404),
        case("retry-arabic-digit-id", "POST", "/api/v1/jobs/%D9%A1/retry", 404),
        case("retry-no-token", "POST", "/api/v1/jobs/1/retry", 401, auth=None),
        case("retry-read-token", "POST", "/api/v1/jobs/1/retry", 403, auth="read"),
        case("retry-namespace-admin", "POST", "/api/v1/jobs/1/retry", 403, auth="acme-admin"),
    ]
    return cases


def webhooks_cases() -> list[Case]:
    path = "/api/v1/webhooks"
    good_secret = "a-good-secret-of-32-characters!!"

    def sub(**fields: Any) -> bytes:
        return json.dumps({"url": "https://hooks.example.com/x", "secret": good_secret} | fields).encode()

    json_type = {"Content-Type": "application/json"}
    cases = [
        case("webhooks-create-truncated-json", "POST", path, 400, body=sub()[:-5], headers=json_type),
        case("webhooks-create-empty-body", "POST", path, 400, body=b"", headers=json_type),
        case("webhooks-create-not-json", "POST", path, 400, body=b"url=x&secret=y", headers=json_type),
        case("webhooks-create-invalid-utf8", "POST", path, 400, body=b'{"url": "\xff\xfe"}', headers=json_type),
        case("webhooks-create-array", "POST", path, 400, body=b"[1, 2]", headers=json_type),
        case("webhooks-create-string", "POST", path, 400, body=b'"https://x"', headers=json_type),
        case("webhooks-create-null", "POST", path, 400, body=b"null", headers=json_type),
        case("webhooks-create-nan", "POST", path, 400, body=b'{"url": NaN}', headers=json_type),
        case(
            "webhooks-create-deeply-nested", "POST", path, 400, body=b"[" * 100_000 + b"]" * 100_000, headers=json_type
        ),
        case("webhooks-create-huge", "POST", path, 413, body=sub(pad="p" * (2 * MiB)), headers=json_type),
        case(
            "webhooks-create-huge-chunked",
            "POST",
            path,
            413,
            body=sub(pad="p" * (2 * MiB)),
            headers=json_type,
            chunked=True,
        ),
        case("webhooks-create-missing-url", "POST", path, 400, body=json.dumps({"secret": good_secret}).encode()),
        case(
            "webhooks-create-missing-secret", "POST", path, 400, body=json.dumps({"url": "https://x.example"}).encode()
        ),
        case("webhooks-create-url-number", "POST", path, 400, body=sub(url=5)),
        case("webhooks-create-url-list", "POST", path, 400, body=sub(url=["https://x"])),
        case("webhooks-create-secret-number", "POST", path, 400, body=sub(secret=12345678901234567890)),
        case("webhooks-create-short-secret", "POST", path, 400, body=sub(secret="short")),
        case("webhooks-create-empty-secret", "POST", path, 400, body=sub(secret="")),
        case("webhooks-create-events-string", "POST", path, 400, body=sub(events="module.created")),
        case("webhooks-create-events-numbers", "POST", path, 400, body=sub(events=[1, 2])),
        case("webhooks-create-events-empty-string", "POST", path, 400, body=sub(events=[""])),
        case("webhooks-create-events-object", "POST", path, 400, body=sub(events={"a": 1})),
        case("webhooks-create-namespaces-string", "POST", path, 400, body=sub(namespaces="acme")),
        case("webhooks-create-namespaces-nested", "POST", path, 400, body=sub(namespaces=[["acme"]])),
        case("webhooks-create-no-token", "POST", path, 401, body=sub(), auth=None),
        case("webhooks-create-read-token", "POST", path, 403, body=sub(), auth="read"),
        case("webhooks-create-namespace-admin", "POST", path, 403, body=sub(), auth="acme-admin"),
        case("webhooks-list-no-token", "GET", path, 401, auth=None),
        case("webhooks-get-unknown", "GET", f"{path}/wh-0000000000000000", 404),
        case("webhooks-get-bad-id", "GET", f"{path}/%00", 404),
        case("webhooks-get-long-id", "GET", f"{path}/" + "a" * 65, 404),
        case("webhooks-get-unicode-id", "GET", f"{path}/%C3%BC", 404),
        case("webhooks-delete-unknown", "DELETE", f"{path}/wh-0000000000000000", 404),
        case("webhooks-delete-bad-id", "DELETE", f"{path}/..", 404),
        case("webhooks-delete-no-token", "DELETE", f"{path}/wh-0000000000000000", 401, auth=None),
        case("webhooks-failures-unknown", "GET", f"{path}/wh-0000000000000000/failures", 404),
        case(
            "webhooks-redeliver-unknown-subscription", "POST", f"{path}/wh-0000000000000000/failures/1/redeliver", 404
        ),
        case("webhooks-redeliver-letters", "POST", f"{path}/wh-0000000000000000/failures/abc/redeliver", 404),
        case("webhooks-redeliver-negative", "POST", f"{path}/wh-0000000000000000/failures/-1/redeliver", 404),
        case("webhooks-redeliver-arabic-digit", "POST", f"{path}/wh-0000000000000000/failures/%D9%A1/redeliver", 404),
        case("webhooks-redeliver-19-digits", "POST", f"{path}/wh-0000000000000000/failures/{'9' * 19}/redeliver", 404),
        case("webhooks-redeliver-no-token", "POST", f"{path}/wh-0000000000000000/failures/1/redeliver", 401, auth=None),
    ]
    bad_urls = {
        "unbalanced-bracket": "http://[",
        "port-out-of-range": "http://x.example:99999/",
        "port-letters": "http://x.example:port/",
        "non-idna-host": "http://" + "a" * 64 + ".example/",
        "empty-label": "http://a..example/",
        "ftp-scheme": "ftp://files.example/x",
        "file-scheme": "file:///etc/passwd",
        "javascript-scheme": "javascript:alert(1)",
        "no-scheme": "hooks.example.com/x",
        "no-host": "http:///path",
        "empty": "",
        "loopback-v4": "http://127.0.0.1:8080/hook",
        "loopback-v4-other": "http://127.1.2.3/",
        "loopback-v6": "http://[::1]/hook",
        "v4-mapped-loopback": "http://[::ffff:127.0.0.1]/",
        "private-10": "http://10.0.0.1/",
        "private-192": "https://192.168.1.1/",
        "private-172": "http://172.16.0.5/",
        "link-local-metadata": "http://169.254.169.254/latest/meta-data/",
        "unspecified": "http://0.0.0.0/",
        "cgnat": "http://100.64.0.1/",
        "multicast": "http://224.0.0.1/",
        "ipv6-unique-local": "http://[fd00::1]/",
        "localhost-name": "http://localhost/",
        "decimal-ip": "http://2130706433/",
        "userinfo-loopback": "http://user:pw@127.0.0.1/",
        "6to4-loopback": "http://[2002:7f00:1::1]/hook",
        "6to4-private": "http://[2002:a00:1::1]/hook",
        "teredo": "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
        "nat64-loopback": "http://[64:ff9b::7f00:1]/hook",
        "nat64-metadata": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "nat64-local-use": "http://[64:ff9b:1::808:808]/hook",
        "v4-compatible": "http://[::808:808]/hook",
        "site-local-v6": "http://[fec0::1]/hook",
        "documentation-v4": "http://192.0.2.10/hook",
    }
    cases += [
        case(f"webhooks-create-url-{label}", "POST", path, 400, body=sub(url=url)) for label, url in bad_urls.items()
    ]
    return cases


def config_hook_cases() -> list[Case]:
    """Cases on the subscription from the config file; its id is known only at run time."""
    hook = "{hook}"
    return [
        case("webhooks-delete-config-subscription", "DELETE", f"/api/v1/webhooks/{hook}", 409),
        case("webhooks-redeliver-unknown-failure", "POST", f"/api/v1/webhooks/{hook}/failures/987654/redeliver", 404),
        case("webhooks-redeliver-zero-failure", "POST", f"/api/v1/webhooks/{hook}/failures/0/redeliver", 404),
        case("retry-done-job", "POST", "/api/v1/jobs/{done_job}/retry", 409),
    ]


def github_cases() -> list[Case]:
    path = "/github/webhook"
    installation = json.dumps({"action": "created", "installation": {"id": 7, "account": {"login": "acme"}}}).encode()
    tag = json.dumps({"ref": "v1.0.0", "ref_type": "tag", "repository": {"id": 1, "name": "terraform-aws-x"}}).encode()

    def headers(body: bytes, **extra: str) -> dict[str, str]:
        return signed("installation", body) | extra

    cases = [
        case(
            "github-no-signature",
            "POST",
            path,
            401,
            body=installation,
            headers={k: v for k, v in headers(installation).items() if k != "X-Hub-Signature-256"},
        ),
        case(
            "github-wrong-signature",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": "sha256=" + "0" * 64}),
        ),
        case(
            "github-signature-of-other-body",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": sign(SECRET, tag)}),
        ),
        case(
            "github-signature-other-secret",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": sign("not-the-secret", installation)}),
        ),
        case(
            "github-signature-uppercase-hex",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": sign(SECRET, installation).upper()}),
        ),
        case(
            "github-signature-no-prefix",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": sign(SECRET, installation)[7:]}),
        ),
        case(
            "github-signature-md5-prefix",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": "md5=" + "0" * 32}),
        ),
        case(
            "github-signature-empty",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": ""}),
        ),
        case(
            "github-signature-huge",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": "sha256=" + "a" * 6000}),
        ),
        case(
            "github-sha1-signature-only",
            "POST",
            path,
            401,
            body=installation,
            headers={
                **{k: v for k, v in headers(installation).items() if k != "X-Hub-Signature-256"},
                "X-Hub-Signature": "sha1=" + hashlib.sha1(installation).hexdigest(),
            },
        ),
        case(
            "github-bad-signature-tag-event",
            "POST",
            path,
            401,
            body=tag,
            headers=signed("create", tag) | {"X-Hub-Signature-256": sign(SECRET, tag + b" ")},
        ),
        case(
            "github-bad-signature-empty-body",
            "POST",
            path,
            401,
            body=b"",
            headers=headers(b"", **{"X-Hub-Signature-256": "sha256=" + "1" * 64}),
        ),
        case("github-unsigned-not-json", "POST", path, 401, body=b"junk", headers={"Content-Type": "text/plain"}),
        # a valid signature over bad content
        case("github-malformed-json", "POST", path, 400, body=b'{"action": "created", ', sign_as="installation"),
        case("github-json-array", "POST", path, 400, body=b"[1, 2, 3]", sign_as="installation"),
        case("github-json-string", "POST", path, 400, body=b'"created"', sign_as="installation"),
        case("github-json-null", "POST", path, 400, body=b"null", sign_as="installation"),
        case("github-empty-body", "POST", path, 400, body=b"", sign_as="installation"),
        case("github-invalid-utf8", "POST", path, 400, body=b'{"action": "\xff\xfe"}', sign_as="installation"),
        case("github-deeply-nested-json", "POST", path, 400, body=b"[" * 100_000 + b"]" * 100_000, sign_as="push"),
        case(
            "github-wrong-content-type",
            "POST",
            path,
            415,
            body=installation,
            sign_as="installation",
            headers={"Content-Type": "text/plain"},
        ),
        case(
            "github-no-content-type",
            "POST",
            path,
            415,
            body=installation,
            sign_as="installation",
            headers={"Content-Type": ""},
        ),
        case(
            "github-form-without-payload",
            "POST",
            path,
            415,
            body=b"x=1",
            sign_as="installation",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        case(
            "github-missing-event-header",
            "POST",
            path,
            400,
            body=installation,
            sign_as="installation",
            headers={"X-GitHub-Event": ""},
        ),
        case(
            "github-missing-delivery-header",
            "POST",
            path,
            400,
            body=installation,
            sign_as="installation",
            headers={"X-GitHub-Delivery": ""},
        ),
        case(
            "github-delivery-id-too-long",
            "POST",
            path,
            400,
            body=installation,
            sign_as="installation",
            headers={"X-GitHub-Delivery": "d" * 101},
        ),
        # sizes
        case(
            "github-oversize-with-length", "POST", path, 413, body=lambda: b" " * (WEBHOOK_MAX_BODY + 1), sign_as="push"
        ),
        case(
            "github-oversize-chunked",
            "POST",
            path,
            413,
            body=lambda: b" " * (WEBHOOK_MAX_BODY + 1),
            sign_as="push",
            chunked=True,
        ),
        case(
            "github-huge-content-length-tiny-body",
            "POST",
            path,
            413,
            body=b"{}",
            sign_as="push",
            headers={"Content-Length": str(10**12)},
        ),
        # refused from the headers alone, before the body is read
        case(
            "github-unsigned-huge-content-length",
            "POST",
            path,
            401,
            body=b"{}",
            headers={
                **{k: v for k, v in headers(tag).items() if k != "X-Hub-Signature-256"},
                "Content-Length": str(10**12),
            },
        ),
        case(
            "github-signature-63-hex",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": sign(SECRET, installation)[:-1]}),
        ),
        case(
            "github-signature-65-hex",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": sign(SECRET, installation) + "0"}),
        ),
        case(
            "github-signature-not-hex",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(installation, **{"X-Hub-Signature-256": "sha256=" + "g" * 64}),
        ),
        case(
            "github-signature-twice-in-one-header",
            "POST",
            path,
            401,
            body=installation,
            headers=headers(
                installation, **{"X-Hub-Signature-256": sign(SECRET, installation) + "," + sign(SECRET, installation)}
            ),
        ),
        case(
            "github-unknown-charset",
            "POST",
            path,
            415,
            body=installation,
            sign_as="installation",
            headers={"Content-Type": "application/json; charset=no-such-charset"},
        ),
        case(
            "github-charset-not-a-text-encoding",
            "POST",
            path,
            415,
            body=installation,
            sign_as="installation",
            headers={"Content-Type": "application/json; charset=rot13"},
        ),
        case(
            "github-form-field-flood",
            "POST",
            path,
            415,
            body=b"&".join([b"a=1"] * 10_000) + b"&payload=%7B%7D",
            sign_as="installation",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        # a large body with a signature of the right shape but the wrong HMAC: read (spooled
        # past 1 MB) and refused, with a length and chunked
        case(
            "github-large-body-wrong-signature",
            "POST",
            path,
            401,
            body=lambda: b" " * (3 * MiB),
            headers=signed("push", b"", **{"X-Hub-Signature-256": "sha256=" + "0" * 64}),
        ),
        case(
            "github-large-chunked-body-wrong-signature",
            "POST",
            path,
            401,
            body=lambda: b" " * (3 * MiB),
            headers=signed("push", b"", **{"X-Hub-Signature-256": "sha256=" + "0" * 64}),
            chunked=True,
        ),
    ]
    return [dataclasses.replace(c, auth=None) for c in cases]  # a signature, never a token


def ui_cases() -> list[Case]:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = []
    for label in ("leading-dash", "trailing-dash", "unicode", "65-chars", "encoded-newline-suffix", "encoded-slash"):
        value = BAD_NAMES[label]
        cases.append(case(f"ui-module-namespace-{label}", "GET", f"/modules/{value}/network/aws", 400))
        cases.append(case(f"ui-module-name-{label}", "GET", f"/modules/acme/{value}/aws", 400))
    for label in ("four-parts", "v-only", "arabic-digit-inside", "encoded-newline-suffix", "200-chars", "encoded-nul"):
        cases.append(case(f"ui-module-version-{label}", "GET", f"/modules/acme/network/aws/{BAD_VERSIONS[label]}", 400))
    cases += [
        case("ui-module-provider-uppercase", "GET", "/modules/acme/network/AWS", 400),
        case("ui-module-unknown", "GET", "/modules/acme/nope/aws", 404),
        case("ui-module-unknown-version", "GET", "/modules/acme/network/aws/9.9.9", 404),
        case("ui-module-other-namespace", "GET", "/modules/acme/network/aws", 403, auth="other-read"),
        case("ui-index-offset-negative", "GET", "/?offset=-1", 400),
        case("ui-index-offset-letters", "GET", "/?offset=abc", 400),
        case("ui-index-offset-arabic", "GET", "/?offset=%D9%A1", 400),
        case("ui-index-offset-5000-digits", "GET", "/?offset=" + "9" * 5000, 400),
        case("ui-index-offset-huge", "GET", "/?offset=" + "9" * 30, 400),
        case("ui-index-provider-dash", "GET", "/?provider=a-ws", 400),
        case("ui-index-provider-junk", "GET", "/?provider=%3Cscript%3E", 400),
        case("ui-static-encoded-traversal", "GET", "/static/..%2Fapp.py", 404),
        case("ui-static-encoded-traversal-upper", "GET", "/static/..%2F..%2Fmirror%2Fapp.py", 404),
        case("ui-static-encoded-dots", "GET", "/static/%2e%2e%2fpages.py", 404),
        case("ui-static-unknown", "GET", "/static/pages.py", 404),
        case("ui-static-template", "GET", "/static/..%2Ftemplates%2Findex.html", 404),
        case("ui-static-nul", "GET", "/static/mirror.css%00", 404),
        case("ui-static-newline", "GET", "/static/mirror.css%0A", 404),
        case("ui-static-backslash", "GET", "/static/..%5C..%5Capp.py", 404),
        case("ui-static-dotdot-segment", "GET", "/static/%2e%2e/", 404, html=False),
        case("ui-static-no-name", "GET", "/static/", 404, html=False),
        case(
            "ui-login-json", "POST", "/login", 400, body=b'{"token": "x"}', headers={"Content-Type": "application/json"}
        ),
        case("ui-login-text", "POST", "/login", 400, body=b"token=x", headers={"Content-Type": "text/plain"}),
        case("ui-login-no-content-type", "POST", "/login", 400, body=b"token=x", headers={"Content-Type": ""}),
        case(
            "ui-login-multipart-no-boundary",
            "POST",
            "/login",
            400,
            body=b"--x\r\n\r\n",
            headers={"Content-Type": "multipart/form-data"},
        ),
        case(
            "ui-login-multipart-bad-body",
            "POST",
            "/login",
            400,
            body=b"not multipart at all",
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        ),
        case("ui-login-empty-form", "POST", "/login", 400, body=b"", headers=form),
        case("ui-login-blank-token", "POST", "/login", 400, body=b"token=%20%20&next=/", headers=form),
        case(
            "ui-login-unknown-token", "POST", "/login", 401, body=b"token=mirror_nope&next=//evil.example", headers=form
        ),
        case("ui-login-invalid-utf8", "POST", "/login", 401, body=b"token=%ff%fe", headers=form),
        case("ui-login-huge-form", "POST", "/login", 413, body=b"token=" + b"t" * (2 * MiB), headers=form),
        case(
            "ui-login-huge-form-chunked",
            "POST",
            "/login",
            413,
            body=b"token=" + b"t" * (2 * MiB),
            headers=form,
            chunked=True,
        ),
        case(
            "ui-login-other-origin",
            "POST",
            "/login",
            403,
            body=b"token=x",
            headers=form | {"Origin": "https://evil.example"},
        ),
        case("ui-login-null-origin", "POST", "/login", 403, body=b"token=x", headers=form | {"Origin": "null"}),
        case("ui-logout-other-origin", "POST", "/logout", 403, headers={"Origin": "https://evil.example"}),
    ]
    return [dataclasses.replace(c, auth=None) if c.id.startswith(("ui-login", "ui-logout")) else c for c in cases]


def method_cases() -> list[Case]:
    wrong = [
        ("DELETE", f"{MODULE}/versions", {"GET", "HEAD"}),
        ("POST", f"{MODULE}/1.0.0/download", {"GET", "HEAD"}),
        ("PUT", f"{MODULE}/download", {"GET", "HEAD"}),
        ("POST", "/.well-known/terraform.json", {"GET", "HEAD"}),
        ("PUT", "/v1/archives/" + "a" * 64 + ".tar.gz", {"GET", "HEAD"}),
        ("POST", "/v1/modules", {"GET", "HEAD"}),
        ("DELETE", "/v1/modules/search", {"GET", "HEAD"}),
        ("PATCH", MODULE, {"GET", "HEAD"}),
        ("GET", "/api/v1/modules/acme/network/aws/1.0.0", {"PUT"}),
        ("POST", "/api/v1/modules/acme/network/aws/1.0.0", {"PUT"}),
        ("DELETE", "/api/v1/modules/acme/network/aws/1.0.0", {"PUT"}),
        ("GET", "/github/webhook", {"POST"}),
        ("PUT", "/github/webhook", {"POST"}),
        ("POST", "/api/v1/events", {"GET", "HEAD"}),
        ("DELETE", "/api/v1/jobs", {"GET", "HEAD"}),
        ("GET", "/api/v1/jobs/1/retry", {"POST"}),
        ("PUT", "/api/v1/webhooks", {"GET", "HEAD", "POST"}),
        ("PATCH", "/api/v1/webhooks/wh-1", {"GET", "HEAD", "DELETE"}),
        ("DELETE", "/api/v1/webhooks/wh-1/failures", {"GET", "HEAD"}),
        ("GET", "/api/v1/webhooks/wh-1/failures/1/redeliver", {"POST"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("POST", "/readyz", {"GET", "HEAD"}),
        ("DELETE", "/readyz", {"GET", "HEAD"}),
        ("POST", "/metrics", {"GET", "HEAD"}),
        ("DELETE", "/openapi.json", {"GET", "HEAD"}),
        ("PUT", "/", {"GET", "HEAD"}),
        ("DELETE", "/login", {"GET", "HEAD", "POST"}),
        ("GET", "/logout", {"POST"}),
        ("POST", "/static/mirror.css", {"GET", "HEAD"}),
        ("POST", "/modules/acme/network/aws", {"GET", "HEAD"}),
    ]
    cases = [
        case(
            f"method-{method}-{path.strip('/').replace('/', '-')[:60] or 'root'}",
            method,
            path,
            405,
            allow=frozenset(allow),
            html=False,
        )
        for method, path, allow in wrong
    ]
    unknown = {
        "plain": "/nope",
        "api-v2": "/api/v2/modules",
        "api-modules-root": "/api/v1/modules",
        "too-deep": "/v1/modules/a/b/c/d/e/f/g",
        "well-known-dir": "/.well-known/",
        "nul": "/%00",
        "nul-in-route": "/api/v1/jobs%00",
        "newline": "/x%0Ay",
        "crlf-injection": "/x%0D%0ASet-Cookie:%20a=b",
        "dotdot-above-root": "/../../etc/passwd",
        "encoded-dotdot-above-root": "/%2e%2e/%2e%2e/etc/passwd",
        "double-slash": "//api/v1/jobs",
        "unicode": "/ünï",
        "huge-path": "/" + "p" * 20_000,
        "trailing-slash": "/api/v1/jobs/",
        "github-subpath": "/github/webhook/x",
    }
    cases += [case(f"unknown-path-{label}", "GET", path, 404, html=False) for label, path in unknown.items()]
    return cases


def module_policy_cases() -> list[Case]:
    """``GET``/``PATCH /api/v1/modules/:ns/:name/:provider``: a module's owner source and upload
    allowance (admin only to change; nothing changes on a refusal)."""
    path = "/api/v1/modules/acme/network/aws"
    json_type = {"Content-Type": "application/json"}

    def patch(id: str, status: int, body: bytes, **kwargs: Any) -> Case:
        return case(f"module-policy-{id}", "PATCH", kwargs.pop("path", path), status, body=body, headers=json_type, **kwargs)

    return [
        case("module-record-unknown", "GET", "/api/v1/modules/acme/nothing/aws", 404),
        case("module-record-bad-name", "GET", "/api/v1/modules/acme/bad..name/aws", 400),
        case("module-record-no-token", "GET", path, 401, auth=None),
        case("module-record-other-namespace", "GET", path, 403, auth="other-publish"),
        patch("publish-token", 403, b'{"allow_uploads": true}', auth="publish"),
        patch("read-token", 403, b'{"allow_uploads": true}', auth="acme-read"),
        patch("no-token", 401, b'{"allow_uploads": true}', auth=None),
        patch("unknown-module", 404, b'{"allow_uploads": true}', path="/api/v1/modules/acme/nothing/aws"),
        patch("empty-object", 400, b"{}"),
        patch("empty-body", 400, b""),
        patch("not-json", 400, b"allow_uploads=true"),
        patch("array", 400, b"[true]"),
        patch("unknown-key", 400, b'{"allow_uploads": true, "owner": "upload"}'),
        patch("string-bool", 400, b'{"allow_uploads": "true"}'),
        patch("number-bool", 400, b'{"allow_uploads": 1}'),
        patch("owner-not-string", 400, b'{"owner_source": 42}'),
        patch("owner-unknown-kind", 400, b'{"owner_source": "gitea:1"}'),
        patch("owner-bad-repository", 400, b'{"owner_source": "github:one"}'),
        patch("owner-huge-repository", 400, b'{"owner_source": "github:123456789012345678901"}'),
        patch("owner-bad-host", 400, b'{"owner_source": "upstream:-bad-.example/x"}'),
        patch("owner-trailing-newline", 400, b'{"owner_source": "upload\\n"}'),
        patch("deeply-nested", 400, b"[" * 8000 + b"]" * 8000),  # under the size limit, too deep to parse
        patch("huge", 413, b'{"allow_uploads": true, "pad": "' + b"p" * (64 * KiB) + b'"}'),
        patch("huge-chunked", 413, b'{"pad": "' + b"p" * (64 * KiB) + b'"}', chunked=True),
        patch("invalid-utf8", 400, b'{"owner_source": "\xff"}'.replace(b"\\xff", b"\xff")),
    ]


CASES = [
    *module_policy_cases(),
    *publish_cases(),
    *protocol_cases(),
    *events_cases(),
    *jobs_cases(),
    *webhooks_cases(),
    *config_hook_cases(),
    *github_cases(),
    *ui_cases(),
    *method_cases(),
]
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
assert all(400 <= c.status < 500 for c in CASES)


# -- sending ----------------------------------------------------------------------------------------


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 * KiB):
        yield data[start : start + 64 * KiB]


async def send(world: World, c: Case) -> tuple[aiohttp.ClientResponse, bytes]:
    path = c.path.format(hook=world.config_hook, done_job=world.done_job)
    body = c.payload()
    headers = world.authorization(c.auth) | {"Connection": "close"}  # no case leaves a connection to the next
    if c.sign_as is not None:
        headers |= signed(c.sign_as, body or b"")
    headers |= c.headers
    skip = []
    if headers.get("Content-Type") == "":  # send none at all (aiohttp would add one)
        del headers["Content-Type"]
        skip.append("Content-Type")
    data: Any = body
    if c.chunked and body is not None:
        data = _chunks(body)
    try:
        response = await world.session.request(
            c.method, world.url(path), data=data, headers=headers, skip_auto_headers=skip, allow_redirects=False
        )
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:  # pragma: no cover - reported below
        raise AssertionError(f"the server dropped the connection instead of answering: {exc!r}") from exc
    async with response:
        return response, await response.read()


def check_answer(c: Case, response: aiohttp.ClientResponse, raw: bytes) -> None:
    described = f"{c.method} {c.path[:120]} -> {response.status} {raw[:300]!r}"
    assert response.status < 500, described
    assert response.status == c.status, described
    assert response.headers.get("X-Request-Id"), described
    if c.is_html():
        assert response.content_type == "text/html", described
        text = raw.decode()
        assert "<html" in text.lower() and "Traceback" not in text, described
        assert "Content-Security-Policy" in response.headers, described
    else:
        assert response.content_type == "application/json", described
        body = json.loads(raw)
        assert set(body) == {"errors"}, described
        assert body["errors"] and all(isinstance(e, str) and e.strip() for e in body["errors"]), described
        assert not any("Traceback" in e or "internal error" in e for e in body["errors"]), described
    if c.status == 401 and not c.is_html():
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), described
    if c.allow is not None:
        assert set(response.headers["Allow"].replace(" ", "").split(",")) == c.allow, described


@in_module_loop
@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_refused_and_writes_nothing(world: World, c: Case) -> None:
    before = await snapshot(world)
    response, raw = await send(world, c)
    check_answer(c, response, raw)
    await asyncio.sleep(0)  # let anything the request started in the background run
    after = await snapshot(world)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}


# -- documented answers to odd requests -------------------------------------------------------------


@dataclass(frozen=True)
class Documented:
    id: str
    method: str
    path: str
    status: int
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: str | None = None
    sign_as: str | None = None
    check: Callable[[aiohttp.ClientResponse, bytes], None] = lambda response, raw: None


def _json_status(expected: str) -> Callable[[aiohttp.ClientResponse, bytes], None]:
    def check(response: aiohttp.ClientResponse, raw: bytes) -> None:
        assert json.loads(raw)["status"] == expected

    return check


def _login_form_next_is_root(response: aiohttp.ClientResponse, raw: bytes) -> None:
    assert b'name="next" value="/"' in raw and b"evil" not in raw


def _redirects_home(response: aiohttp.ClientResponse, raw: bytes) -> None:
    assert response.headers["Location"] == "/"


def _to_login(response: aiohttp.ClientResponse) -> None:
    assert response.headers["Location"].startswith("/login?next=")


def _to_login_and_cookie_cleared(response: aiohttp.ClientResponse, raw: bytes) -> None:
    _to_login(response)
    assert 'mirror_token=""' in response.headers.get("Set-Cookie", "")


_PING = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
_STAR = json.dumps({"action": "created", "repository": {"id": 1}}).encode()
DOCUMENTED = [
    Documented("github-ping", "POST", "/github/webhook", 200, body=_PING, sign_as="ping", check=_json_status("pong")),
    Documented("github-ping-junk-payload", "POST", "/github/webhook", 200, body=b'{"junk": [1, {}]}', sign_as="ping"),
    Documented("github-unknown-event", "POST", "/github/webhook", 204, body=_STAR, sign_as="star"),
    Documented("github-unknown-event-junk", "POST", "/github/webhook", 204, body=b'{"a": null}', sign_as="x" * 300),
    Documented(
        "github-duplicate-delivery",
        "POST",
        "/github/webhook",
        200,
        body=DONE_BODY,
        sign_as="create",
        headers={"X-GitHub-Delivery": DONE_DELIVERY},
        check=_json_status("duplicate"),
    ),
    Documented(  # a captured delivery replayed under a new delivery id (which is not signed)
        "github-replay-new-delivery-id",
        "POST",
        "/github/webhook",
        200,
        body=DONE_BODY,
        sign_as="create",
        check=_json_status("duplicate"),
    ),
    Documented(
        "publish-same-bytes-again",
        "PUT",
        PUT_PATH.format("acme", "network", "aws", "1.0.0"),
        200,
        body=good_archive(),
        auth="publish",
        check=_json_status("unchanged"),
    ),
    Documented(
        "publish-same-bytes-raw-spelling",
        "PUT",
        PUT_PATH.format("acme", "network", "aws", "v1.0"),
        200,
        body=good_archive(),
        auth="publish",
        check=_json_status("unchanged"),
    ),
    Documented(
        "login-form-next-other-site", "GET", "/login?next=//evil.example/x", 200, check=_login_form_next_is_root
    ),
    Documented(
        "login-form-next-absolute", "GET", "/login?next=https://evil.example/", 200, check=_login_form_next_is_root
    ),
    Documented("login-form-next-backslash", "GET", "/login?next=/%5Cevil.example", 200, check=_login_form_next_is_root),
    Documented("login-form-next-tab", "GET", "/login?next=/%09/evil.example", 200, check=_login_form_next_is_root),
    Documented(
        "login-next-other-site",
        "POST",
        "/login",
        303,
        body=b"token={admin}&next=//evil.example/x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        check=_redirects_home,
    ),
    Documented(
        "login-next-javascript",
        "POST",
        "/login",
        303,
        body=b"token={admin}&next=javascript:alert(1)",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        check=_redirects_home,
    ),
    Documented(
        "page-with-unknown-token",
        "GET",
        "/modules/acme/network/aws",
        303,
        auth="Bearer mirror_nope",
        check=lambda response, raw: _to_login(response),
    ),
    Documented(
        "page-with-junk-cookie",
        "GET",
        "/modules/acme/network/aws",
        303,
        headers={"Cookie": "mirror_token=junk"},
        check=_to_login_and_cookie_cleared,
    ),
    Documented(
        "page-with-non-ascii-cookie",
        "GET",
        "/modules/acme/network/aws",
        303,
        headers={"Cookie": "mirror_token=tökén"},
        check=_to_login_and_cookie_cleared,
    ),
    Documented(
        "page-with-over-long-cookie",
        "GET",
        "/",
        303,
        headers={"Cookie": "mirror_token=" + "a" * 5000},
        check=_to_login_and_cookie_cleared,
    ),
    Documented(
        "page-with-basic-auth",
        "GET",
        "/modules/acme/network/aws",
        303,
        auth="Basic dXNlcjpwYXNz",
        check=lambda response, raw: _to_login(response),
    ),
    Documented(
        "versions-long-query-is-ignored",
        "GET",
        f"{MODULE}/versions?junk=" + "x" * 20_000,
        200,
        auth="read",
    ),
]


@in_module_loop
@pytest.mark.parametrize("d", DOCUMENTED, ids=[d.id for d in DOCUMENTED])
async def test_documented_answers_write_nothing(world: World, d: Documented) -> None:
    before = await snapshot(world)
    body = d.body.replace(b"{admin}", world.tokens["admin"].encode()) if d.body is not None else None
    headers = world.authorization(d.auth) | {"Connection": "close"}
    if d.sign_as is not None:
        headers |= signed(d.sign_as, body or b"")
    headers |= d.headers
    async with world.session.request(
        d.method, world.url(d.path), data=body, headers=headers, allow_redirects=False
    ) as response:
        raw = await response.read()
    assert response.status == d.status, raw[:300]
    assert response.headers.get("X-Request-Id")
    d.check(response, raw)
    await asyncio.sleep(0)
    assert await snapshot(world) == before


# -- signed junk of events mirror acts on -----------------------------------------------------------

JUNK_PAYLOADS = {
    "create-empty": ("create", {}),
    "create-tag-no-repository": ("create", {"ref": "v1.0.0", "ref_type": "tag"}),
    "create-tag-repository-string": ("create", {"ref": "v1.0.0", "ref_type": "tag", "repository": "acme/x"}),
    "create-tag-ref-number": (
        "create",
        {"ref": 5, "ref_type": "tag", "repository": {"name": "x", "owner": {"login": "acme"}}},
    ),
    "create-tag-bad-names": (
        "create",
        {"ref": "v1.0.0", "ref_type": "tag", "repository": {"name": "terraform-aws-..", "owner": {"login": "-bad"}}},
    ),
    "push-ref-number": ("push", {"ref": 5}),
    "push-deleted-no-repository": ("push", {"ref": "refs/tags/v1.0.0", "deleted": True}),
    "delete-tag-repository-null": ("delete", {"ref": "v1.0.0", "ref_type": "tag", "repository": None}),
    "release-null": ("release", {"action": "published", "release": None}),
    "installation-no-installation": ("installation", {"action": "created"}),
    "installation-id-string": (
        "installation",
        {"action": "created", "installation": {"id": "x", "account": {"login": "acme"}}},
    ),
    "installation-login-not-a-namespace": (
        "installation",
        {"action": "created", "installation": {"id": 5, "account": {"login": "-bad/../x"}}},
    ),
    "installation-id-bool": (
        "installation",
        {"action": "created", "installation": {"id": True, "account": {"login": "a"}}},
    ),
    "installation-deleted-unknown": ("installation", {"action": "deleted", "installation": {"id": 123456}}),
    "installation-repositories-junk": (
        "installation_repositories",
        {"action": "added", "installation": {"id": 1, "account": {"login": "acme"}}, "repositories_added": "all"},
    ),
    "repository-created-junk": ("repository", {"action": "created", "repository": {"owner": None}}),
    "repository-renamed-junk": ("repository", {"action": "renamed", "repository": {"id": [], "owner": {"login": 1}}}),
    "repository-unknown-action": ("repository", {"action": "exploded", "repository": {}}),
}


@in_module_loop
@pytest.mark.parametrize("label", list(JUNK_PAYLOADS))
async def test_junk_payloads_of_handled_events(world: World, label: str) -> None:
    """A signed delivery of an event mirror acts on is queued (202) whatever its payload; the
    job then ends done or failed, and nothing but the job (and the calls to GitHub) is written."""
    event, payload = JUNK_PAYLOADS[label]
    before = await snapshot(world)
    body = json.dumps(payload).encode()
    async with world.session.post(
        world.url("/github/webhook"), data=body, headers=signed(event, body) | {"Connection": "close"}
    ) as response:
        assert response.status == 202, await response.text()
        job_id = (await response.json())["job"]
    await world.app[JOBS].drain(15)
    after = await snapshot(world)
    jobs = {job.id: job for job in after["jobs"]}
    assert jobs[job_id].state in ("done", "failed"), jobs[job_id]
    assert all(job.state in ("done", "failed") for job in after["jobs"])
    ignored = {"jobs", "github_calls"}  # the rest of the store is as it was
    assert {k: v for k, v in after.items() if k not in ignored} == {k: v for k, v in before.items() if k not in ignored}


# -- requests aiohttp's HTTP parser refuses before any route runs -----------------------------------

MALFORMED_HTTP = {
    "request-line-over-32-kib": b"GET /v1/modules?q=" + b"x" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header-over-8-kib": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 9000 + b"\r\n\r\n",
    "unknown-method": b"FROB /api/v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw-newline-in-path": b"GET /x\ny HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw-nul-in-path": b"GET /x\x00y HTTP/1.1\r\nHost: x\r\n\r\n",
    "negative-content-length": b"PUT /api/v1/modules/acme/fresh/aws/2.0.0 HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "content-length-and-chunked": (
        b"PUT /api/v1/modules/acme/fresh/aws/2.0.0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bad-chunk-size": b"PUT /api/v1/modules/acme/fresh/aws/2.0.0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "header-without-colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n",
}


@in_module_loop
@pytest.mark.parametrize("label", list(MALFORMED_HTTP))
async def test_malformed_http_is_refused_before_routing(world: World, label: str) -> None:
    """Refused by aiohttp's parser with a 400 before any handler runs, and nothing is written.
    (Its answer is aiohttp's own plain text, without X-Request-Id: see the report.)"""
    before = await snapshot(world)
    server = world.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(MALFORMED_HTTP[label])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] == b"400", answer[:300]
    assert await snapshot(world) == before


# -- the patterns behind the refusals above ---------------------------------------------------------


@pytest.mark.parametrize(
    "refused",
    [
        pytest.param(lambda: valid_namespace("acme\n"), id="namespace-trailing-newline"),
        pytest.param(lambda: valid_provider("aws\n"), id="provider-trailing-newline"),
        pytest.param(lambda: is_sha256("a" * 64 + "\n"), id="sha256-trailing-newline"),
        pytest.param(lambda: _parses(Version.parse, "1.0.0\n"), id="version-trailing-newline"),
        pytest.param(lambda: _parses(Version.parse, "1٢.0.0"), id="version-other-script-digit"),
        pytest.param(lambda: _parses(Constraints.parse, "~> 1٢.0"), id="constraint-other-script-digit"),
    ],
)
def test_patterns_match_the_whole_text_in_ascii(refused: Callable[[], bool]) -> None:
    """``$`` also matches before a final newline, and ``\\d`` matches every script's digits (which
    ``int`` reads): names, versions and digests are matched to ``\\Z``, in ASCII."""
    assert refused() is False


def _parses(parse: Callable[[str], Any], text: str) -> bool:
    try:
        parse(text)
    except BadRequest:
        return False
    return True
