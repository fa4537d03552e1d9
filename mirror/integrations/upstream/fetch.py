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

* http(s) (here): a GET without credentials (redirects followed, at most 10). A URL without an
  archive suffix (and no ``?archive=``) is asked with ``terraform-get=1`` for its own
  ``X-Terraform-Get`` (or ``<meta name="terraform-get">``), followed up to 10 hops, as go-getter does;
* ``s3::``: ``mirror.integrations.upstream.s3_getter``;
* ``git::``: ``mirror.integrations.upstream.git_getter``.

Then the archive form: a ``.tar.gz`` (``.tgz``) taken whole is stored byte for byte, so the sha256
an upstream mirror has is kept; anything else (zip, tar, tar.bz2, tar.xz, a ``//subdir``, a git
checkout) is unpacked safely and re-packed with ``pack_directory``: sorted, zeroed times and
owners, without ``.git``, so fetching the same content twice gives the same bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

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
from mirror.formats.archive import ArchiveLimits
from mirror.formats.unpack import module_root, pack, unpack
from mirror.integrations.netguard import guard_error, outbound_session
from mirror.integrations.upstream.git_getter import GitGetter
from mirror.integrations.upstream.s3_getter import S3Getter
from mirror.integrations.upstream.spool import CHUNK, DownloadSpool, too_large
from mirror.services.ingest import Archive
from mirror.services.upstream import FetchedModule

#: go-getter's limit on X-Terraform-Get hops
MAX_HOPS = 10
_META_RE = re.compile(rb"""<meta\s+name=["']terraform-get["']\s+content=["']([^"']+)["']""", re.IGNORECASE)
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
        self._user_agent = user_agent
        self._s3 = S3Getter(timeout=timeout)
        self._git = GitGetter(git=git, git_timeout=git_timeout, resolver=resolver)

    async def close(self) -> None:
        """Close the S3 clients and the guarded session made along the way."""
        await self._s3.close()
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
                return await self._git.fetch(source, workdir, policy)
            if source.getter == "http" and source.archive is None:
                source = await self._follow_terraform_get(source, policy)
                check_source(source, policy)
                continue
            return await self._fetch_archive(source, workdir, policy)
        raise UpstreamError(f"more than {MAX_HOPS} X-Terraform-Get hops; giving up at {source.describe()}")

    # -- archives over http (and s3) --------------------------------------------------------------

    async def _fetch_archive(self, source: Source, workdir: Path, policy: SourcePolicy) -> FetchedModule:
        if source.archive == "":
            raise UnsupportedSource(f"{source.describe()}: archive=false names a single file, not a module directory")
        if source.archive not in TREE_ARCHIVES:
            raise UnsupportedSource(
                f"{source.describe()}: a .{source.archive} file holds a single file, not a module directory"
            )
        download = workdir / f"download.{source.archive}"
        if source.getter == "s3":
            sha256, size = await self._s3.download(source, download, self._limits.max_archive_bytes)
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
                    raise too_large(what, self._limits.max_archive_bytes)
                with DownloadSpool(dst, self._limits.max_archive_bytes, source.checksum, what) as spool:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        spool.write(chunk)
                    return spool.finish()
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: no data for {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{what}: {_reason(exc)}") from None

    async def get_file(
        self, url: str, destination: Path, *, limit: int, policy: SourcePolicy, what: str
    ) -> tuple[str, int]:
        """Stream the file at ``url`` (no credentials; redirects checked against ``policy``) to
        ``destination``, at most ``limit`` bytes: (sha256 hex, size)."""
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=self._timeout)
        try:
            async with self._get(url, policy, what, timeout=timeout, auto_decompress=False) as response:
                if response.status != 200:
                    raise _http_status_error(what, response.status)
                if response.content_length is not None and response.content_length > limit:
                    raise too_large(what, limit)
                with DownloadSpool(destination, limit, None, what) as spool:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        spool.write(chunk)
                    return spool.finish()
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: no data for {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{what}: {_reason(exc)}") from None

    async def read_small(self, url: str, *, limit: int, policy: SourcePolicy, what: str) -> bytes:
        """The file at ``url`` in memory (no credentials), at most ``limit`` bytes."""
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self._get(url, policy, what, timeout=timeout) as response:
                if response.status != 200:
                    raise _http_status_error(what, response.status)
                body = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise too_large(what, limit)
                if not body:
                    raise UpstreamError(f"{what}: the file is empty")
                return bytes(body)
        except TimeoutError:
            raise UpstreamUnavailable(f"{what}: no answer within {self._timeout:g} s") from None
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
