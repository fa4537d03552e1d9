"""Following a download location into a module archive in the spool directory.

``Fetcher.fetch(location, base_url=...)`` is an async context manager: it yields a
``FetchedModule`` whose ``archive`` is a complete, hashed ``.tar.gz`` in a fresh work directory
under the spool directory, and removes that directory afterwards. A download that fails or is cut
short (a killed process) never leaves anything an ingest could pick up: the archive is handed out
only after it was read to the end, its size checked against ``[limits]`` and its ``?checksum=``
verified. Nothing is ever held whole in memory.

Each source (and each ``X-Terraform-Get`` hop) is first checked against the upstream's
``SourcePolicy`` (``mirror.domain.sources.check_source``): the fetcher's ``policies`` hold one per
configured upstream, found by the origin of the ``/download`` URL; a location from anywhere else
gets the strict default. Requests to hosts the policy does not trust (``allow_private``, or the
upstream's own origin) go through a guarded session that connects to public addresses only
(``mirror.integrations.netguard``), and redirects are followed by hand so that each hop is judged.

What each getter does:

* http(s): a GET without credentials (redirects followed, at most 10). A URL without an archive suffix (and no
  ``?archive=``) is asked with ``terraform-get=1`` for its own ``X-Terraform-Get`` (or
  ``<meta name="terraform-get">``), followed up to 10 hops, as go-getter does;
* ``s3::``: a GetObject with aiobotocore; credentials from the URL's ``aws_access_key_id`` /
  ``aws_access_key_secret`` when given, else the standard AWS chain (environment, profile, role);
* ``git::``: ``git clone --depth 1 --branch REF`` (``--depth`` from ``?depth=``; without ``ref``
  the remote's HEAD; a commit id is fetched with a full clone and checked out), submodules too.
  Unless the policy trusts the host, a host name is resolved and must have public addresses only,
  git's http transport is pinned to them (``http.curloptResolve``) and follows no redirects;
  the ``file`` transport is off (submodules included) unless ``allow_file_sources``.

Then the archive form: a ``.tar.gz`` (``.tgz``) taken whole is stored byte for byte, so the sha256
an upstream mirror has is kept; anything else (zip, tar, tar.bz2, tar.xz, a ``//subdir``, a git
checkout) is unpacked safely and re-packed with ``pack_directory``: sorted, zeroed times and
owners, without ``.git``, so fetching the same content twice gives the same bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol, Self
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from yarl import URL

from mirror.formats.archive import ArchiveLimits
from mirror.domain.errors import PayloadTooLarge, StorageUnavailable
from mirror.services.ingest import Archive
from mirror.services.upstream import FetchedModule
from mirror.integrations.netguard import guard_error, non_public_reason, outbound_session, parse_address
from mirror.domain.errors import UnsupportedSource, UpstreamError, UpstreamUnavailable
from mirror.domain.sources import (
    TREE_ARCHIVES,
    Source,
    SourcePolicy,
    check_source,
    join_subdirs,
    origin_of,
    parse_source,
)
from mirror.domain.specs import registry_base_url
from mirror.formats.unpack import module_root, pack, unpack

_CHUNK = 256 * 1024
#: go-getter's limit on X-Terraform-Get hops
MAX_HOPS = 10
_META_RE = re.compile(rb"""<meta\s+name=["']terraform-get["']\s+content=["']([^"']+)["']""", re.IGNORECASE)
_S3_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404", "NotFound"})
_S3_REFUSED = frozenset({"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"})
_GIT_NETWORK_HINTS = (
    "could not resolve host",
    "connection refused",
    "connection timed out",
    "couldn't connect",
    "failed to connect",
    "network is unreachable",
    "operation timed out",
    "the remote end hung up",
    "early eof",
    "rpc failed",
    "http 5",
    "error: 5",
)
_HEX_REF_RE = re.compile(r"^[0-9a-f]{7,64}$")
#: redirects followed by an http(s) download
MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class UpstreamSettings(Protocol):
    """The ``[[upstreams]]`` keys a source policy is made of (``mirror.config.UpstreamConfig``)."""

    host: str
    allow_private: bool
    allow_file_sources: bool
    s3_endpoints: tuple[str, ...]


def source_policies(upstreams: Iterable[UpstreamSettings]) -> list[SourcePolicy]:
    """One SourcePolicy per configured upstream (hosts that do not parse are left out: the
    config check reports them)."""
    policies = []
    for upstream in upstreams:
        try:
            base = registry_base_url(upstream.host)
        except ValueError:
            continue
        policies.append(
            SourcePolicy.for_upstream(
                base,
                allow_private=upstream.allow_private,
                allow_file_sources=upstream.allow_file_sources,
                s3_endpoints=upstream.s3_endpoints,
            )
        )
    return policies


class Fetcher:
    """Follows download locations; one per process (or app), sharing the HTTP session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        spool_dir: Path,
        limits: ArchiveLimits,
        timeout: float = 60.0,
        git_timeout: float = 600.0,
        git: str = "git",
        user_agent: str = "mirror-registry",
        policies: Iterable[SourcePolicy] = (),
        default_policy: SourcePolicy | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``session`` is used for hosts a policy trusts; every other request goes through a
        guarded session this fetcher makes on first use (resolving with ``resolver`` underneath
        the guard, aiohttp's default when None) and closes in ``close``. ``default_policy`` is for
        locations from no configured upstream (the strict ``SourcePolicy()`` when None)."""
        self._session = session
        self._policies = list(policies)
        self._default_policy = default_policy or SourcePolicy()
        self._resolver = resolver
        self._guarded_session: aiohttp.ClientSession | None = None
        self._spool_dir = spool_dir
        self._limits = limits
        self._timeout = timeout
        self._git_timeout = git_timeout
        self._git = git
        self._user_agent = user_agent
        self._aws: AioSession | None = None
        self._s3_clients: dict[tuple[Any, ...], Any] = {}
        self._s3_stack = AsyncExitStack()
        self._s3_lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the S3 clients and the guarded session made along the way."""
        self._s3_clients.clear()
        await self._s3_stack.aclose()
        if self._guarded_session is not None:
            await self._guarded_session.close()
            self._guarded_session = None

    def policy_for(self, base_url: str | None) -> SourcePolicy:
        """The policy of the upstream whose origin the ``/download`` URL is at, else the strict
        default."""
        if base_url and base_url.lower().startswith(("http://", "https://")):
            try:
                origin = origin_of(base_url)
            except ValueError:
                return self._default_policy
            for policy in self._policies:
                if origin in policy.origins:
                    return policy
        return self._default_policy

    @asynccontextmanager
    async def fetch(
        self, location: str, *, base_url: str | None = None, policy: SourcePolicy | None = None
    ) -> AsyncIterator[FetchedModule]:
        """The module at ``location`` (relative ones resolved against ``base_url``, the
        ``/download`` URL) as an archive in a work directory that is removed afterwards.
        ``policy``: what the location may be (default: the policy of ``base_url``'s upstream)."""
        policy = policy if policy is not None else self.policy_for(base_url)
        source = parse_source(location, base_url)
        check_source(source, policy)
        await asyncio.to_thread(self._spool_dir.mkdir, parents=True, exist_ok=True)
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sync-", dir=self._spool_dir))
        try:
            yield await self._fetch(source, workdir, policy)
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _fetch(self, source: Source, workdir: Path, policy: SourcePolicy) -> FetchedModule:
        for _ in range(MAX_HOPS + 1):
            if source.getter == "git":
                return await self._fetch_git(source, workdir, policy)
            if source.getter == "http" and source.archive is None:
                source = await self._follow_terraform_get(source, policy)
                check_source(source, policy)
                continue
            return await self._fetch_archive(source, workdir, policy)
        raise UpstreamError(f"more than {MAX_HOPS} X-Terraform-Get hops; giving up at {source.describe()}")

    # -- archives over http and s3 ----------------------------------------------------------------

    async def _fetch_archive(self, source: Source, workdir: Path, policy: SourcePolicy) -> FetchedModule:
        if source.archive == "":
            raise UnsupportedSource(f"{source.describe()}: archive=false names a single file, not a module directory")
        if source.archive not in TREE_ARCHIVES:
            raise UnsupportedSource(
                f"{source.describe()}: a .{source.archive} file holds a single file, not a module directory"
            )
        download = workdir / f"download.{source.archive}"
        if source.getter == "s3":
            sha256, size = await self._download_s3(source, download)
        else:
            sha256, size = await self._download_http(source, download, policy)
        if source.stored_as_is:
            return FetchedModule(Archive(download, sha256, size), source)
        tree, packed = workdir / "tree", workdir / "module.tar.gz"
        await asyncio.to_thread(unpack, download, source.archive, tree, self._limits)
        await asyncio.to_thread(download.unlink)
        sha256, size = await asyncio.to_thread(pack, module_root(tree, source.subdir), packed)
        return FetchedModule(Archive(packed, sha256, size), source)

    @asynccontextmanager
    async def _get(
        self, url: str, policy: SourcePolicy, what: str, **options: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``url`` without credentials of any kind (a download location authenticates
        itself), following redirects by hand: each hop goes through the caller's session when the
        policy trusts its host, else through the guarded one. UnsupportedSource when the guard
        refuses an address, or a hop leaves http(s)."""
        target = _url(url)
        for _ in range(MAX_REDIRECTS + 1):
            shown = _shown(str(target))
            if target.scheme not in ("http", "https"):
                raise UnsupportedSource(f"{what}: redirected to {shown}, which is not an http(s) URL")
            session = self._session if policy.trusts(str(target)) else self._guarded()
            try:
                async with session.get(
                    target, headers={"User-Agent": self._user_agent}, allow_redirects=False, **options
                ) as response:
                    if response.status in _REDIRECT_STATUSES and "Location" in response.headers:
                        target = response.url.join(URL(response.headers["Location"]))
                        continue
                    yield response
                    return
            except aiohttp.ClientError as exc:
                refused = guard_error(exc)
                if refused is not None:
                    raise UnsupportedSource(
                        f"{what}: {shown}: {refused}; set allow_private = true on the upstream to allow it"
                    ) from None
                raise
        raise UpstreamError(f"{what}: more than {MAX_REDIRECTS} redirects")

    def _guarded(self) -> aiohttp.ClientSession:
        if self._guarded_session is None:
            self._guarded_session = outbound_session(allow_private=False, resolver=self._resolver)
        return self._guarded_session

    async def _download_http(self, source: Source, dst: Path, policy: SourcePolicy) -> tuple[str, int]:
        what = f"downloading {source.describe()}"
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=self._timeout)
        try:
            async with self._get(source.url, policy, what, timeout=timeout, auto_decompress=False) as response:
                if response.status != 200:
                    raise _http_status_error(what, response.status)
                if response.content_length is not None and response.content_length > self._limits.max_archive_bytes:
                    raise self._too_large(what)
                with _Spool(dst, self._limits.max_archive_bytes, source.checksum, what) as spool:
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        spool.write(chunk)
                    return spool.finish()
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: no data for {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{what}: {_reason(exc)}") from None

    async def _follow_terraform_get(self, source: Source, policy: SourcePolicy) -> Source:
        """go-getter's http getter for a URL that names no archive: ask it where the files are."""
        what = f"asking {source.describe()} for its X-Terraform-Get location"
        separator = "&" if "?" in source.url else "?"
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self._get(source.url + separator + "terraform-get=1", policy, what, timeout=timeout) as response:
                if not 200 <= response.status < 300:
                    raise _http_status_error(what, response.status)
                location = response.headers.get("X-Terraform-Get")
                if not location:
                    match = _META_RE.search(await response.content.read(1024 * 1024))
                    location = match[1].decode("utf-8", "replace") if match else None
                final_url = str(response.url)
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: no answer within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{what}: {_reason(exc)}") from None
        if not location:
            raise UnsupportedSource(
                f"{source.describe()} names no archive type and answered without an X-Terraform-Get location; "
                "add ?archive=tar.gz (or zip, ...) if it serves an archive"
            )
        followed = parse_source(location, final_url)
        return dataclasses.replace(followed, subdir=join_subdirs(followed.subdir, source.subdir))

    async def _download_s3(self, source: Source, dst: Path) -> tuple[str, int]:
        obj = source.s3
        assert obj is not None
        what = f"downloading {source.describe()}"
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            params["VersionId"] = obj.version_id
        try:
            client = await self._s3_client(source)
            response = await client.get_object(**params)
            length = response.get("ContentLength")
            if isinstance(length, int) and length > self._limits.max_archive_bytes:
                raise self._too_large(what)
            async with response["Body"] as body:
                with _Spool(dst, self._limits.max_archive_bytes, source.checksum, what) as spool:
                    async for chunk in body.iter_chunks(_CHUNK):
                        spool.write(chunk)
                    return spool.finish()
        except NoCredentialsError:
            raise UpstreamError(
                f"{what}: no AWS credentials; set them in the environment (AWS_ACCESS_KEY_ID, ...), a profile or a role"
            ) from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = f"{what}: S3 answered {code or status}: {error.get('Message', '')}".rstrip(": ")
            if code in _S3_MISSING or code in _S3_REFUSED:
                raise UpstreamError(message, status_code=status) from None
            raise UpstreamUnavailable(message) from None
        except (BotoCoreError, aiohttp.ClientError) as exc:
            raise UpstreamUnavailable(f"{what}: {exc}") from None
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: no data for {self._timeout:g} s") from None

    async def _s3_client(self, source: Source) -> Any:
        obj = source.s3
        assert obj is not None
        key = (obj.region, obj.endpoint_url, obj.access_key_id, obj.secret_access_key, obj.session_token)
        async with self._s3_lock:
            client = self._s3_clients.get(key)
            if client is None:
                self._aws = self._aws or get_session()
                options: dict[str, Any] = {
                    "signature_version": "s3v4",
                    "connect_timeout": self._timeout,
                    "read_timeout": self._timeout,
                    "retries": {"mode": "standard", "total_max_attempts": 3},
                }
                if obj.endpoint_url is not None:  # S3-compatible stores: path style, no extra checksums
                    options["s3"] = {"addressing_style": "path"}
                    options["request_checksum_calculation"] = "when_required"
                    options["response_checksum_validation"] = "when_required"
                client = await self._s3_stack.enter_async_context(
                    self._aws.create_client(
                        "s3",
                        region_name=obj.region,
                        endpoint_url=obj.endpoint_url,
                        aws_access_key_id=obj.access_key_id,
                        aws_secret_access_key=obj.secret_access_key,
                        aws_session_token=obj.session_token,
                        config=AioConfig(**options),
                    )
                )
                self._s3_clients[key] = client
        return client

    def _too_large(self, what: str) -> PayloadTooLarge:
        return PayloadTooLarge(f"{what}: the archive is larger than the limit of {self._limits.max_archive_bytes} bytes")

    # -- git ----------------------------------------------------------------------------------

    async def _git_options(self, source: Source, policy: SourcePolicy) -> list[str]:
        """``-c`` options for git: no ``file`` transport (submodules included) unless the policy
        allows local sources; for a host the policy does not trust, its name resolved and checked
        here, git's http transport pinned to those addresses and following no redirects."""
        options = [] if policy.allow_file_sources else ["-c", "protocol.file.allow=never"]
        parts = urlsplit(source.url)
        host = parts.hostname or ""
        if "://" not in source.url or parts.scheme == "file" or not host or policy.trusts(source.url):
            return options
        options += ["-c", "http.followRedirects=false"]
        if parse_address(host) is not None:
            return options  # a literal address: check_source judged it
        try:
            port = parts.port or {"https": 443, "http": 80, "ssh": 22, "git": 9418}.get(parts.scheme, 0)
        except ValueError:
            raise UnsupportedSource(f"git source {source.describe()!r} has an invalid port") from None
        resolver = self._resolver or DefaultResolver()
        try:
            answers = await resolver.resolve(host, port, socket.AF_UNSPEC)
        except OSError as exc:
            raise UpstreamUnavailable(f"git source {source.describe()}: {host} does not resolve ({exc})") from None
        finally:
            if self._resolver is None:
                await resolver.close()
        addresses = []
        for answer in answers:
            address = parse_address(answer["host"])
            reason = non_public_reason(address) if address is not None else "not an IP address"
            if reason is not None:
                raise UnsupportedSource(
                    f"git source {source.describe()!r}: {host} resolves to {answer['host']}, {reason}; "
                    "set allow_private = true on the upstream to allow it"
                )
            addresses.append(f"[{address}]" if address.version == 6 else str(address))  # type: ignore[union-attr]
        if parts.scheme in ("http", "https") and addresses:
            options += ["-c", f"http.curloptResolve={host}:{port}:{','.join(addresses)}"]
        return options

    async def _fetch_git(self, source: Source, workdir: Path, policy: SourcePolicy) -> FetchedModule:
        options = await self._git_options(source, policy)
        checkout = workdir / "git"
        depth = str(source.depth or 1)
        clone = ["clone", "--quiet", "--depth", depth, "--single-branch", "--recurse-submodules", "--shallow-submodules"]
        if source.ref:
            clone += ["--branch", source.ref]
        try:
            await self._run_git(source, [*options, *clone, "--", source.url, str(checkout)])
        except UpstreamError:
            if not (source.ref and _HEX_REF_RE.match(source.ref)):
                raise
            # a commit id, which --branch does not take: a full clone, then check it out
            await asyncio.to_thread(shutil.rmtree, checkout, True)
            await self._run_git(source, [*options, "clone", "--quiet", "--no-checkout", "--", source.url, str(checkout)])
            await self._run_git(source, [*options, "-C", str(checkout), "checkout", "--quiet", "--detach", source.ref])
            await self._run_git(source, [*options, "-C", str(checkout), "submodule", "update", "--quiet", "--init", "--recursive"])
        commit = (await self._run_git(source, [*options, "-C", str(checkout), "rev-parse", "HEAD"])).strip()
        packed = workdir / "module.tar.gz"
        sha256, size = await asyncio.to_thread(pack, module_root(checkout, source.subdir), packed)
        return FetchedModule(Archive(packed, sha256, size), source, commit_sha=commit or None)

    async def _run_git(self, source: Source, args: list[str]) -> str:
        """Run git (never prompting); its stdout, or UpstreamError / UpstreamUnavailable."""
        command = [arg for index, arg in enumerate(args) if arg != "-c" and (index == 0 or args[index - 1] != "-c")]
        what = f"git {command[0] if command[0] != '-C' else command[2]} of {source.describe()}"
        env = dict(os.environ)
        env.update({"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "LC_ALL": "C"})
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        try:
            process = await asyncio.create_subprocess_exec(
                self._git,
                "-c",
                "protocol.ext.allow=never",
                "-c",
                "advice.detachedHead=false",
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError:
            raise UpstreamError(f"{what}: the git command ({self._git}) is not installed") from None
        try:
            async with asyncio.timeout(self._git_timeout):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: did not finish within {self._git_timeout:g} s") from None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode != 0:
            message = " ".join(stderr.decode("utf-8", "replace").split())[-500:] or f"exit code {process.returncode}"
            error = f"{what} failed: {message}"
            if any(hint in message.lower() for hint in _GIT_NETWORK_HINTS):
                raise UpstreamUnavailable(error)
            raise UpstreamError(error)
        return stdout.decode("utf-8", "replace")


class _Spool:
    """A download on its way to disk: size-capped, hashed (sha256 and any ``?checksum=`` type),
    verified when finished. Write errors are the spool directory's, not the upstream's."""

    def __init__(self, path: Path, limit: int, checksum: tuple[str, str] | None, what: str) -> None:
        self._path = path
        self._limit = limit
        self._checksum = checksum
        self._what = what
        self._sha256 = hashlib.sha256()
        self._extra = hashlib.new(checksum[0]) if checksum and checksum[0] != "sha256" else None
        self._size = 0
        self._file: BinaryIO | None = None

    def __enter__(self) -> Self:
        try:
            self._file = self._path.open("wb")
        except OSError as exc:
            raise StorageUnavailable(f"{self._what}: cannot write to the spool directory: {exc}") from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._file is not None
        self._file.close()

    def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise PayloadTooLarge(f"{self._what}: the archive is larger than the limit of {self._limit} bytes")
        self._sha256.update(chunk)
        if self._extra is not None:
            self._extra.update(chunk)
        try:
            assert self._file is not None
            self._file.write(chunk)
        except OSError as exc:
            raise StorageUnavailable(f"{self._what}: cannot write to the spool directory: {exc}") from None

    def finish(self) -> tuple[str, int]:
        """(sha256, size) of the complete download, its ``?checksum=`` verified."""
        sha256 = self._sha256.hexdigest()
        if self._checksum is not None:
            kind, expected = self._checksum
            actual = self._extra.hexdigest() if self._extra is not None else sha256
            if actual != expected:
                raise UpstreamError(f"{self._what}: {kind} checksum mismatch (expected {expected}, got {actual})")
        if self._size == 0:
            raise UpstreamError(f"{self._what}: the download is empty")
        return sha256, self._size


def _url(text: str) -> URL:
    """``text`` sent as written when it is already encoded (a presigned URL's signature covers
    its query's exact bytes), else encoded by yarl."""
    if text.isascii() and not any(char in text for char in ' "<>\\^`{|}'):
        return URL(text, encoded=True)
    return URL(text)


def _shown(url: str) -> str:
    """A URL for messages: without its query, which may carry signatures or keys."""
    return url.split("?", 1)[0]


def _http_status_error(what: str, status: int) -> Exception:
    if status >= 500 or status in (408, 425, 429):
        return UpstreamUnavailable(f"{what}: answered {status}")
    return UpstreamError(f"{what}: answered {status}", status_code=status)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error is not None:
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
    return str(exc) or type(exc).__name__
