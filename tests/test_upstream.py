"""The registry client and the download-location fetcher, against real servers: aiohttp test
servers standing in for a registry and an archive host, a real bare git repository, moto S3.

The helpers here (``FakeRegistry``, ``ArchiveHost``, ``bare_repository``, archive builders) are
shared with ``tests/test_sync.py``.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mirror.domain.addresses import ModuleAddress
from mirror.formats.archive import ArchiveLimits, check_archive, pack_directory
from mirror.domain.versions import Constraints, Version, matching
from mirror.domain.errors import BadRequest, InvalidArchive, PayloadTooLarge
from mirror.integrations.upstream.client import RegistryClient
from mirror.domain.errors import UnsupportedSource, UpstreamError, UpstreamUnavailable
from mirror.integrations.upstream.fetch import Fetcher
from mirror.domain.sources import SourcePolicy, parse_source, split_subdir
from mirror.domain.specs import ModuleSpec, registry_base_url
from tests.live import free_port
from tests.modules import write_module

TOKEN = "upstream-secret-token"
ADDRESS = ModuleAddress("acme", "network", "aws")


# Shared helpers ---------------------------------------------------------------------------------


def files_of(archive: Path | bytes) -> dict[str, bytes]:
    """Regular files of a .tar.gz: {path: content}."""
    fileobj = io.BytesIO(archive) if isinstance(archive, bytes) else archive.open("rb")
    with fileobj, tarfile.open(fileobj=fileobj, mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def packed(root: Path) -> bytes:
    out = io.BytesIO()
    pack_directory(root, out)
    return out.getvalue()


def tree_archive(root: Path, kind: str, prefix: str = "") -> bytes:
    """Every file under ``root`` (with ``prefix`` before its path) as a tar/tar.gz/zip archive,
    in the everyday form other tools write (real mtimes, directory entries for zip)."""
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in paths:
                archive.write(path, prefix + path.relative_to(root).as_posix())
        return buffer.getvalue()
    mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2"}[kind]
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for path in paths:
            tar.add(path, prefix + path.relative_to(root).as_posix())
    return buffer.getvalue()


def git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.test",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def bare_repository(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A bare repository with a module tagged v1.0.0 and v1.1.0 (and a submodule directory
    ``modules/subnets``); returns its path and {tag: commit}."""
    work = write_module(tmp_path / "git-work", marker="git-1.0.0")
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "one", cwd=work)
    git("tag", "v1.0.0", cwd=work)
    write_module(work, marker="git-1.1.0")
    git("commit", "-q", "-am", "two", cwd=work)
    git("tag", "-a", "v1.1.0", "-m", "annotated", cwd=work)
    bare = tmp_path / "module.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("push", "-q", str(bare), "main", "--tags", cwd=work)
    commits = {tag: git("rev-list", "-n", "1", tag, cwd=work) for tag in ("v1.0.0", "v1.1.0")}
    return bare, commits


@dataclass
class ArchiveHost:
    """An aiohttp server handing out files (and remembering every request's headers)."""

    files: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def add(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> str:
        self.files[path] = (body, headers or {})
        return self.url + path

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path_qs, dict(request.headers)))
        found = self.files.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        body, headers = found
        return web.Response(body=body, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        return app


@dataclass
class FakeRegistry:
    """A registry speaking Terraform's module protocol; ``locations[(address, version)]`` is
    what ``/download`` answers with (header and JSON body), or a (status, headers, body) triple."""

    token: str | None = TOKEN
    modules_path: str = "/v1/modules/"
    locations: dict[tuple[str, str], Any] = field(default_factory=dict)
    extra_versions: dict[str, list[str]] = field(default_factory=dict)
    seen_tokens: list[str | None] = field(default_factory=list)
    url: str = ""

    def add(self, address: str, version: str, location: Any) -> None:
        self.locations[(address, version)] = location

    def _check(self, request: web.Request) -> None:
        self.seen_tokens.append(request.headers.get("Authorization"))
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(text='{"errors": ["bad token"]}', content_type="application/json")

    async def discovery(self, request: web.Request) -> web.Response:
        self._check(request)
        return web.json_response({"modules.v1": self.modules_path, "providers.v1": "/v1/providers/"})

    async def versions(self, request: web.Request) -> web.Response:
        self._check(request)
        address = "/".join(request.match_info[k] for k in ("ns", "name", "provider"))
        versions = [v for (a, v) in self.locations if a == address] + self.extra_versions.get(address, [])
        if not versions:
            return web.json_response({"errors": ["Not Found"]}, status=404)
        return web.json_response({"modules": [{"versions": [{"version": v} for v in versions]}]})

    async def download(self, request: web.Request) -> web.Response:
        self._check(request)
        address = "/".join(request.match_info[k] for k in ("ns", "name", "provider"))
        location = self.locations.get((address, request.match_info["version"]))
        if location is None:
            return web.json_response({"errors": ["Not Found"]}, status=404)
        if isinstance(location, tuple):
            status, headers, body = location
            return web.Response(status=status, headers=headers, body=body)
        return web.json_response({"location": location}, headers={"X-Terraform-Get": location})

    def app(self) -> web.Application:
        app = web.Application()
        base = self.modules_path.rstrip("/")
        app.router.add_get("/.well-known/terraform.json", self.discovery)
        if base.startswith("/"):  # else the modules service is on another host
            app.router.add_get(base + "/{ns}/{name}/{provider}/versions", self.versions)
            app.router.add_get(base + "/{ns}/{name}/{provider}/{version}/download", self.download)
        return app


async def serve(aiohttp_server, app: web.Application) -> str:
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def archives(aiohttp_server) -> ArchiveHost:
    host = ArchiveHost()
    host.url = await serve(aiohttp_server, host.app())
    return host


@pytest.fixture
async def registry(aiohttp_server) -> FakeRegistry:
    fake = FakeRegistry()
    fake.url = await serve(aiohttp_server, fake.app())
    return fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        yield client


@pytest.fixture
async def fetcher(session, tmp_path) -> AsyncIterator[Fetcher]:
    limits = ArchiveLimits(max_archive_bytes=2 * 1024 * 1024, max_unpacked_bytes=8 * 1024 * 1024, max_files=200)
    # the locations in these tests are on loopback servers and local repositories
    trusting = SourcePolicy(allow_private=True, allow_file_sources=True)
    fetcher = Fetcher(session, spool_dir=tmp_path / "spool", limits=limits, timeout=10, default_policy=trusting)
    yield fetcher
    await fetcher.close()
    assert not list((tmp_path / "spool").iterdir())  # every work directory was removed


# Versions and specs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "version", "allowed"),
    [
        (">= 0.1", "0.1.0", True),
        (">= 0.1", "0.0.9", False),
        ("~> 1.2", "1.9.3", True),
        ("~> 1.2", "2.0.0", False),
        ("~> 1.2.3", "1.2.9", True),
        ("~> 1.2.3", "1.3.0", False),
        ("~> 1", "2.5.0", True),  # go-version: only the last written segment is pinned, and that is the major
        (">= 1.0, < 2.0, != 1.5.0", "1.5.0", False),
        (">= 1.0, < 2.0, != 1.5.0", "1.5.1", True),
        ("= 1.0.0", "1.0.0+build.7", True),  # build metadata never counts
        ("1.0.0", "1.0.0", True),
        ("v1.0", "1.0.0", True),
        ("", "3.0.0", True),
        # prereleases only when named exactly
        ("", "2.0.0-beta.1", False),
        (">= 1.0.0", "2.0.0-beta.1", False),
        (">= 2.0.0-beta.1", "2.0.0-beta.2", False),
        ("2.0.0-beta.1", "2.0.0-beta.1", True),
        ("= 2.0.0-beta.1, >= 1.0", "2.0.0-beta.1", True),
        ("= 2.0.0-beta.1, != 2.0.0-beta.1", "2.0.0-beta.1", False),
        (">= 2.0.0-beta.1", "2.0.0", True),
        ("~> 2.0.0-beta.1", "2.0.1", False),  # a pessimistic prerelease constraint admits no release
    ],
)
def test_constraints_follow_terraform(constraint: str, version: str, allowed: bool):
    assert Constraints.parse(constraint).allows(Version.parse(version)) is allowed


def test_matching_keeps_one_spelling_per_version_lowest_first():
    versions = ["v1.2.0", "1.10.0", "1.2", "nightly", "1.9.0-rc.1", "0.9.0"]
    assert matching(versions, Constraints.parse(">= 1.0")) == ["v1.2.0", "1.10.0"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("hashicorp/consul", "is not NAMESPACE/NAME/PROVIDER"),
        ("hashicorp/consul/AWS >= 1", "invalid provider"),
        ("hashicorp/consul/aws >= one", "invalid version constraint"),
        ("hashicorp/consul/aws >= 1.0,", "invalid version constraint"),
        ("hashicorp/consul/aws => 1.0", "invalid version constraint"),
        ("", "empty"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, fragment: str):
    with pytest.raises(BadRequest, match=fragment):
        ModuleSpec.parse(text)


def test_registry_hosts():
    assert registry_base_url("registry.terraform.io") == "https://registry.terraform.io"
    assert registry_base_url("mirror.example.com:8443") == "https://mirror.example.com:8443"
    assert registry_base_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    for bad in ("ftp://x", "http://host/prefix", "not a host", "https://user:pw@host"):
        with pytest.raises(ValueError):
            registry_base_url(bad)


# Download locations, as go-getter reads them -----------------------------------------------------

DOWNLOAD_URL = "http://up.test:8080/v1/modules/acme/network/aws/1.0.0/download"
SHA = "ab" * 32


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (f"/v1/archives/{SHA}.tar.gz?expires=9&signature=s", {"getter": "http", "archive": "tar.gz",
         "url": f"http://up.test:8080/v1/archives/{SHA}.tar.gz?expires=9&signature=s"}),
        ("./pkg.zip", {"url": "http://up.test:8080/v1/modules/acme/network/aws/1.0.0/pkg.zip", "archive": "zip"}),
        ("https://h.test/a/pkg.tgz//modules/vpc?archive=tar.gz&x=%2F1",
         {"url": "https://h.test/a/pkg.tgz?x=%2F1", "subdir": "modules/vpc", "archive": "tar.gz"}),
        ("https://h.test/download?archive=zip", {"url": "https://h.test/download", "archive": "zip"}),
        ("https://h.test/module", {"archive": None}),
        ("http::https://h.test/x.tar.bz2", {"getter": "http", "archive": "tar.bz2"}),
        ("git::https://git.test/org/repo.git//modules/vpc?ref=v1.2.0&depth=3",
         {"getter": "git", "url": "https://git.test/org/repo.git", "subdir": "modules/vpc", "ref": "v1.2.0", "depth": 3}),
        ("git::ssh://git@git.test/org/repo.git", {"getter": "git", "ref": None}),
        ("github.com/hashicorp/terraform-aws-consul/modules/x?ref=v0.1.0",
         {"getter": "git", "url": "https://github.com/hashicorp/terraform-aws-consul.git", "subdir": "modules/x", "ref": "v0.1.0"}),
        ("git@github.com:org/repo.git?ref=main", {"getter": "git", "url": "ssh://git@github.com/org/repo.git", "ref": "main"}),
        ("https://h.test/x.tar.gz?checksum=sha256:" + "AB" * 32, {"checksum": ("sha256", "ab" * 32)}),
    ],
)
def test_locations_parse_as_go_getter_reads_them(location: str, expected: dict[str, Any]):
    source = parse_source(location, DOWNLOAD_URL)
    for key, value in expected.items():
        assert getattr(source, key) == value, key


@pytest.mark.parametrize(
    ("location", "bucket", "key", "region", "endpoint"),
    [
        ("s3::https://s3.amazonaws.com/b/k/m.tar.gz", "b", "k/m.tar.gz", "us-east-1", None),
        ("s3::https://s3-eu-west-1.amazonaws.com/b/m.tar.gz", "b", "m.tar.gz", "eu-west-1", None),
        ("s3::https://s3.eu-west-1.amazonaws.com/b/m.tar.gz", "b", "m.tar.gz", "eu-west-1", None),  # path style
        ("s3::https://my.bucket.s3.eu-west-1.amazonaws.com/k/m.tar.gz", "my.bucket", "k/m.tar.gz", "eu-west-1", None),
        ("s3::https://b.s3-us-west-2.amazonaws.com/m.tar.gz", "b", "m.tar.gz", "us-west-2", None),
        # as mirror's own s3urls.py writes them for S3-compatible stores
        ("s3::http://127.0.0.1:9000/b/registry/m%20x.tar.gz?region=eu-central-1", "b", "registry/m x.tar.gz",
         "eu-central-1", "http://127.0.0.1:9000"),
    ],
)
def test_s3_sources(location: str, bucket: str, key: str, region: str, endpoint: str | None):
    source = parse_source(location)
    assert source.getter == "s3" and source.s3 is not None
    assert (source.s3.bucket, source.s3.key, source.s3.region, source.s3.endpoint_url) == (bucket, key, region, endpoint)


def test_locations_mirror_cannot_follow_are_refused_clearly():
    for location, fragment in [
        ("hg::https://h.test/repo", "'hg' getter"),
        ("gcs::https://www.googleapis.com/storage/v1/b/k.zip", "'gcs' getter"),
        ("file:///etc", "'file' scheme"),
        ("bitbucket.org/org/repo", "neither a URL"),
        ("https://h.test/pkg.tar.gz//*", "glob"),
        ("https://h.test/pkg.tar.gz//../x", "leaves the package"),
        ("https://h.test/x?archive=rar", "archive type"),
        ("git::https://h.test/r.git?sshkey=abc", "sshkey"),
        ("https://h.test/x.tgz?checksum=sha256:abc", "checksum"),
    ]:
        with pytest.raises(UnsupportedSource, match=fragment):
            parse_source(location, DOWNLOAD_URL)
    assert split_subdir("git::https://h/r.git//a/b?ref=1") == ("git::https://h/r.git?ref=1", "a/b")


def test_content_addresses_and_secrets_in_messages():
    assert parse_source(f"/v1/archives/{SHA}.tar.gz?signature=x", DOWNLOAD_URL).content_address() == SHA
    assert parse_source(f"s3::http://h:1/b/registry/modules/ab/{SHA}.tar.gz").content_address() == SHA
    assert parse_source(f"/v1/archives/{SHA}.tar.gz//sub", DOWNLOAD_URL).content_address() is None  # repacked
    assert parse_source(f"/v1/archives/{SHA}.zip", DOWNLOAD_URL).content_address() is None
    described = parse_source("git::https://u:pw@h.test/r.git?ref=v1").describe()
    assert "pw" not in described and described.endswith("?ref=v1")
    assert "signature" not in parse_source("/x.tar.gz?signature=secret", DOWNLOAD_URL).describe()


# The registry client -----------------------------------------------------------------------------


async def test_client_speaks_the_protocol_and_keeps_the_token_at_home(session, registry, archives):
    registry.add("acme/network/aws", "1.0.0", archives.url + "/a.tar.gz")
    registry.add("acme/network/aws", "v1.1", (204, {"X-Terraform-Get": "./pkg.zip"}, b""))
    registry.add("acme/network/aws", "1.2.0", (200, {"Content-Type": "application/json"}, b'{"location": "/b.tgz"}'))
    client = RegistryClient(session, registry.url, token=TOKEN)
    assert client.host == registry.url
    assert await client.modules_url() == registry.url + "/v1/modules/"
    assert sorted(await client.versions(ADDRESS)) == ["1.0.0", "1.2.0", "v1.1"]
    plain = await client.download(ADDRESS, "1.0.0")
    assert plain.source().url == archives.url + "/a.tar.gz"
    old = await client.download(ADDRESS, "v1.1")  # 204 + header, relative to the download URL
    assert old.source().url == registry.url + "/v1/modules/acme/network/aws/v1.1/pkg.zip"
    body_only = await client.download(ADDRESS, "1.2.0")  # a JSON location alone (OpenTofu's way)
    assert body_only.source().url == registry.url + "/b.tgz"
    assert set(registry.seen_tokens) == {f"Bearer {TOKEN}"}
    assert "upstream-secret" not in repr(client)


async def test_client_follows_an_absolute_modules_service_on_another_host(session, aiohttp_server):
    elsewhere = FakeRegistry(modules_path="/api/registry/v1/modules/")
    elsewhere.add("acme/network/aws", "1.0.0", "https://h.test/x.tar.gz")
    elsewhere.url = await serve(aiohttp_server, elsewhere.app())
    front = FakeRegistry(modules_path=elsewhere.url + "/api/registry/v1/modules")  # absolute, no trailing slash
    front.url = await serve(aiohttp_server, front.app())
    client = RegistryClient(session, front.url, token=TOKEN)
    assert await client.versions(ADDRESS) == ["1.0.0"]
    assert elsewhere.seen_tokens == [f"Bearer {TOKEN}"]  # the service the host names gets it, as Terraform does


async def test_client_errors_say_whether_a_retry_can_help(session, registry, aiohttp_server):
    with pytest.raises(UpstreamError, match=r"Not Found \(404\)") as missing:
        await RegistryClient(session, registry.url, token=TOKEN).versions(ModuleAddress("acme", "nothing", "aws"))
    assert missing.value.status_code == 404
    with pytest.raises(UpstreamError, match="check the upstream's token") as refused:
        await RegistryClient(session, registry.url, token="wrong").versions(ADDRESS)
    assert refused.value.status_code == 401 and "bad token" in str(refused.value)
    with pytest.raises(UpstreamUnavailable, match="cannot reach"):
        await RegistryClient(session, f"http://127.0.0.1:{free_port()}").versions(ADDRESS)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/.well-known/terraform.json", broken)
    with pytest.raises(UpstreamUnavailable, match="503"):
        await RegistryClient(session, await serve(aiohttp_server, app)).versions(ADDRESS)
    with pytest.raises(UpstreamError, match="is it a Terraform registry"):
        await RegistryClient(session, await serve(aiohttp_server, web.Application())).versions(ADDRESS)


# Fetching ---------------------------------------------------------------------------------------


async def test_a_tar_gz_is_stored_as_is_and_other_archives_are_repacked(fetcher, archives, tmp_path):
    module = write_module(tmp_path / "module", marker="fetched")
    expected = files_of(packed(module))
    as_is = packed(module)
    archives.add("/m.tar.gz", as_is)
    async with fetcher.fetch(archives.url + "/m.tar.gz") as fetched:
        assert fetched.archive.path.read_bytes() == as_is  # byte for byte: the sha256 carries over
        assert fetched.archive.sha256 == hashlib.sha256(as_is).hexdigest()

    digests = set()
    for kind, location in [
        ("zip", "/download/zipped?archive=zip"),  # no suffix: ?archive= says what it is
        ("tar", "/m.tar"),
        ("tar.bz2", "/m.tar.bz2"),
        ("tar.gz", "/pkg.tar.gz//inner"),  # a subdirectory is taken out and repacked
    ]:
        archives.add(location.split("?")[0].split("//")[0], tree_archive(module, kind, "inner/" if "//" in location else ""))
        for _ in range(2):
            async with fetcher.fetch(archives.url + location) as fetched:
                assert files_of(fetched.archive.path) == expected, location
                check_archive(fetched.archive.path, ArchiveLimits())
                digests.add(fetched.archive.sha256)
    assert digests == {hashlib.sha256(packed(module)).hexdigest()}  # deterministic, whatever the wrapping
    assert all("Authorization" not in headers for _, headers in archives.requests)


async def test_x_terraform_get_hops_and_checksums(fetcher, archives, tmp_path):
    module = write_module(tmp_path / "module", marker="hop")
    body = tree_archive(module, "tar.gz", "pkg/")
    archives.add("/files/pkg.tgz", body)
    archives.add("/landing", b"<html></html>", {"X-Terraform-Get": "./files/pkg.tgz//pkg"})
    async with fetcher.fetch(archives.url + "/landing") as fetched:
        assert files_of(fetched.archive.path) == files_of(packed(module))
    assert archives.requests[0][0] == "/landing?terraform-get=1"  # asked as go-getter asks
    digest = hashlib.sha256(body).hexdigest()
    async with fetcher.fetch(f"{archives.url}/files/pkg.tgz//pkg?checksum=sha256:{digest}"):
        pass
    with pytest.raises(UpstreamError, match="checksum mismatch"):
        async with fetcher.fetch(f"{archives.url}/files/pkg.tgz//pkg?checksum=sha256:{'0' * 64}"):
            pass
    archives.add("/nowhere", b"just a page")
    with pytest.raises(UnsupportedSource, match="without an X-Terraform-Get"):
        async with fetcher.fetch(archives.url + "/nowhere"):
            pass


async def test_unsafe_missing_or_oversized_archives_are_refused(fetcher, archives, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.tf", 'variable "x" {}\n')
        archive.writestr("../escape.tf", "x")
    archives.add("/evil.zip", buffer.getvalue())
    with pytest.raises(InvalidArchive, match=r"'\.\.' component"):
        async with fetcher.fetch(archives.url + "/evil.zip"):
            pass
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    archives.add("/evil.tar", evil.getvalue())
    with pytest.raises(InvalidArchive, match="escape"):
        async with fetcher.fetch(archives.url + "/evil.tar"):
            pass
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        header = tarfile.TarInfo("sub/main.tf")
        header.pax_headers = {"comment": "x" * (3 * 1024 * 1024)}  # read into memory whole by tarfile
        tar.addfile(header, io.BytesIO(b""))
    archives.add("/pax.tar.gz", pax.getvalue())
    with pytest.raises(InvalidArchive, match="extended header"):
        async with fetcher.fetch(archives.url + "/pax.tar.gz//sub"):
            pass
    archives.add("/ok.tar.gz", packed(write_module(tmp_path / "m")))
    with pytest.raises(InvalidArchive, match="not a directory"):
        async with fetcher.fetch(archives.url + "/ok.tar.gz//missing"):
            pass
    archives.add("/big.tar.gz", os.urandom(3 * 1024 * 1024))  # over the 2 MiB limit
    with pytest.raises(PayloadTooLarge):
        async with fetcher.fetch(archives.url + "/big.tar.gz"):
            pass
    with pytest.raises(UpstreamError, match="404"):
        async with fetcher.fetch(archives.url + "/absent.tar.gz"):
            pass
    with pytest.raises(UpstreamUnavailable, match="cannot connect"):
        async with fetcher.fetch(f"http://127.0.0.1:{free_port()}/x.tar.gz"):
            pass


async def test_git_sources_are_cloned_at_their_ref_and_packed(fetcher, tmp_path):
    bare, commits = bare_repository(tmp_path)
    url = f"git::file://{bare}"
    async with fetcher.fetch(f"{url}?ref=v1.0.0") as fetched:
        files = files_of(fetched.archive.path)
        assert b"git-1.0.0" in files["main.tf"] and not any(name.startswith(".git") for name in files)
        assert fetched.commit_sha == commits["v1.0.0"]
        first = fetched.archive.sha256
    async with fetcher.fetch(f"{url}?ref=v1.0.0") as again:
        assert again.archive.sha256 == first  # packed deterministically: a re-run compares equal
    async with fetcher.fetch(f"{url}?ref=v1.1.0") as annotated:
        assert annotated.commit_sha == commits["v1.1.0"]
    async with fetcher.fetch(url) as head:  # no ref: the remote's HEAD (main)
        assert b"git-1.1.0" in files_of(head.archive.path)["main.tf"]
    async with fetcher.fetch(f"{url}//modules/subnets?ref={commits['v1.0.0']}") as by_commit:
        assert list(files_of(by_commit.archive.path)) == ["main.tf"]
        assert by_commit.commit_sha == commits["v1.0.0"]
    with pytest.raises(UpstreamError, match="v9.9.9"):
        async with fetcher.fetch(f"{url}?ref=v9.9.9"):
            pass


async def test_s3_sources_are_read_with_the_aws_credential_chain(fetcher, moto, bucket, tmp_path):
    module = write_module(tmp_path / "module", marker="s3")
    body = packed(module)
    async with moto.client("s3") as s3:
        await s3.put_object(Bucket=bucket, Key="modules/net 1.tar.gz", Body=body)
        await s3.put_object(Bucket=bucket, Key="modules/net.zip", Body=tree_archive(module, "zip"))
    base = f"s3::{moto.endpoint_url}/{bucket}"
    moto_allowed = SourcePolicy.for_upstream("https://registry.test", s3_endpoints=[moto.endpoint_url])
    async with fetcher.fetch(f"{base}/modules/net%201.tar.gz?region={moto.region}", policy=moto_allowed) as fetched:
        assert fetched.archive.path.read_bytes() == body
    async with fetcher.fetch(f"{base}/modules/net.zip", policy=moto_allowed) as zipped:
        assert zipped.archive.sha256 == hashlib.sha256(body).hexdigest()
    with pytest.raises(UpstreamError, match="NoSuchKey"):
        async with fetcher.fetch(f"{base}/modules/absent.tar.gz", policy=moto_allowed):
            pass


# Configuration and the command line ------------------------------------------------------------


def test_upstreams_in_the_config(tmp_path):
    from mirror.config import UpstreamConfig, load_config
    from mirror.domain.errors import ConfigError

    path = tmp_path / "mirror.toml"
    path.write_text(
        '[[upstreams]]\nhost = "registry.terraform.io"\ntoken_env = "PUBLIC_TOKEN"\n'
        'modules = ["hashicorp/consul/aws >= 0.1", "acme/vpc/aws ~> 1.2, != 1.2.5"]\nnamespace = "mirrored"\n'
        '[[upstreams]]\nhost = "http://127.0.0.1:8080"\n'
    )
    config = load_config(path, {"PUBLIC_TOKEN": "tok-3f9a"})
    assert config.upstreams == (
        UpstreamConfig(
            host="registry.terraform.io",
            token="tok-3f9a",
            token_env="PUBLIC_TOKEN",
            modules=("hashicorp/consul/aws >= 0.1", "acme/vpc/aws ~> 1.2, != 1.2.5"),
            namespace="mirrored",
        ),
        UpstreamConfig(host="http://127.0.0.1:8080"),
    )
    assert "tok-3f9a" not in repr(config)
    path.write_text(
        '[[upstreams]]\nhost = "http://registry/with/path"\ntoken = "a"\ntoken_env = "B"\n'
        'modules = ["hashicorp/consul", "hashicorp/consul/aws >= one"]\nnamespace = "not ok"\nextra = 1\n'
        "[[upstreams]]\nmodules = []\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    problems = info.value.problems
    assert len(problems) == 7, problems
    for fragment in ("unknown keys extra", "not both", "must be a bare host", "not a valid namespace",
                     "is not NAMESPACE/NAME/PROVIDER", "invalid version constraint", "#2: host is required"):
        assert any(fragment in problem for problem in problems), fragment
    path.write_text('upstreams = "registry.terraform.io"\n')
    with pytest.raises(ConfigError, match=r"array of tables \(\[\[upstreams\]\]\)"):
        load_config(path, {})


def test_sync_usage_errors_exit_2(tmp_path, capsys):
    from mirror.cli.main import main

    empty = tmp_path / "empty.toml"
    empty.write_text(f'[metadata]\npath = "{tmp_path / "db"}"\n')
    for args, fragment in [
        ([], "no upstreams with modules or providers to copy are configured"),
        (["acme/network/aws"], "give --upstream HOST with module specs"),
        (["--upstream", "http://127.0.0.1:1", "acme/network"], "is not NAMESPACE/NAME/PROVIDER"),
        (["--upstream", "http://127.0.0.1:1"], "not an upstream in the config"),
        (["--upstream", "ftp://x", "acme/network/aws"], "upstream 'ftp://x'"),
        (["--from-mirror", "http://127.0.0.1:1"], "needs a token"),
        (["--from-mirror", "http://127.0.0.1:1", "--upstream", "http://127.0.0.1:2"], "not both"),
        (["--namespace", "bad ns", "--upstream", "http://127.0.0.1:1", "a/b/c"], "invalid namespace"),
    ]:
        assert main(["sync", "--config", str(empty), *args]) == 2, args
        assert fragment in capsys.readouterr().err, args
    # an upstream that is only a pull-through proxy has nothing for sync to copy
    proxy_only = tmp_path / "proxy.toml"
    proxy_only.write_text(
        f'[metadata]\npath = "{tmp_path / "db"}"\n[[upstreams]]\nhost = "http://127.0.0.1:1"\nproxy_namespaces = ["acme"]\n'
    )
    assert main(["sync", "--config", str(proxy_only)]) == 2
    assert "no upstreams with modules or providers to copy" in capsys.readouterr().err
