"""go-getter sources as Terraform follows a registry's download location. Pure: no I/O.

What ``parse_source`` understands, in go-getter's order:

1. a location starting with ``/``, ``./`` or ``../`` is resolved against the ``/download`` URL
   (Terraform does this before go-getter sees it);
2. a forcing prefix ``git::``, ``s3::``, ``http::`` or ``https::`` picks the getter; without one,
   ``http(s)://`` is the http getter, ``git://`` git, ``github.com/OWNER/REPO`` and
   ``git@HOST:PATH`` are git (go-getter's detectors). ``hg``, ``gcs``, ``file`` and the other
   detectors are refused with a clear error;
3. ``//subdir`` after the host is the module's directory inside what is fetched (go-getter's
   ``SourceDirSubdir``; query parameters stay with the source). Globs are refused: Terraform does
   not expand them in a registry's answer;
4. go-getter's own query parameters are taken off the URL: ``archive`` (http, s3: the archive
   type, overriding the path's suffix; ``false``: not an archive), ``checksum`` (``TYPE:HEX``),
   ``ref`` and ``depth`` (git), ``region``, ``version`` and ``aws_access_key_id`` /
   ``aws_access_key_secret`` / ``aws_access_token`` (s3). Every other parameter is kept as sent,
   byte for byte (a presigned URL's signature covers them).

What an upstream may hand out is then checked against its ``SourcePolicy`` (``check_source``):
``s3::`` only to AWS S3 hosts or the upstream's ``s3_endpoints``, local git repositories
(``git::file://``, a path) only with ``allow_file_sources``, http(s) and git hosts that are literal
non-public addresses only with ``allow_private`` (a host name's addresses are checked when the
fetcher connects), and nothing of that restricted at the upstream's own origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit, urlunsplit

from mirror.domain.netaddr import non_public_reason, parse_address
from mirror.domain.errors import UnsupportedSource

#: archive types by file suffix, longest first (go-getter's decompressors, zstd left out)
ARCHIVE_SUFFIXES = ("tar.bz2", "tar.gz", "tar.xz", "tbz2", "tgz", "txz", "zip", "tar", "bz2", "gz", "xz")
#: the ones that hold a directory tree (the rest decompress a single file)
TREE_ARCHIVES = frozenset({"tar.bz2", "tar.gz", "tar.xz", "tbz2", "tgz", "txz", "zip", "tar"})
#: archive types stored as they are, when no subdirectory is taken out of them
GZIP_TAR = frozenset({"tar.gz", "tgz"})
CHECKSUM_TYPES = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}

_FORCED_RE = re.compile(r"^([A-Za-z0-9]+)::(.+)$", re.DOTALL)
_SCP_RE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)$")
_AWS_HOST_RE = re.compile(
    r"^(?:(?P<bucket>.+)\.)?s3(?:[.-](?P<region>[a-z0-9-]+))?\.(?P<domain>amazonaws\.com(?:\.cn)?)$"
)
_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")
_CONTENT_NAME_RE = re.compile(r"^([0-9a-f]{64})\.(?:tar\.gz|tgz)$")
_HTTP_PARAMS = frozenset({"archive", "checksum"})
_GIT_PARAMS = frozenset({"ref", "depth", "sshkey"})
_S3_PARAMS = frozenset(
    {"archive", "checksum", "region", "version", "aws_access_key_id", "aws_access_key_secret", "aws_access_token"}
)


@dataclass(frozen=True, slots=True)
class S3Object:
    bucket: str
    key: str
    region: str
    #: an S3-compatible endpoint (``scheme://host:port``, path-style), None for AWS itself
    endpoint_url: str | None = None
    version_id: str | None = None
    #: from the URL (``aws_access_key_id`` ...); None: the standard AWS credential chain
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where a module's files come from and how to get them."""

    getter: str  # "http", "git" or "s3"
    #: what the getter fetches: go-getter's own parameters taken off (for s3, a display form)
    url: str
    #: the module's directory inside what is fetched ("" for its root)
    subdir: str = ""
    #: http and s3: the archive type; None when the URL names none (http then asks the URL for an
    #: ``X-Terraform-Get`` location, as go-getter does); "" for ``archive=false``
    archive: str | None = None
    #: (type, lowercase hex) from ``?checksum=``, verified on the downloaded file
    checksum: tuple[str, str] | None = None
    ref: str | None = None  # git: branch or tag (or a commit id); None for the remote's HEAD
    depth: int | None = None  # git
    s3: S3Object | None = None

    def describe(self) -> str:
        """The source for messages: without its query, which may carry signatures or keys."""
        base = _redacted(self.url)
        text = f"{self.getter}::{base}" if self.getter != "http" else base
        if self.ref:
            text += f"?ref={self.ref}"
        return text + (f"//{self.subdir}" if self.subdir else "")

    @property
    def stored_as_is(self) -> bool:
        """A .tar.gz taken whole: its bytes are stored unchanged (so its sha256 carries over)."""
        return self.getter in ("http", "s3") and self.archive in GZIP_TAR and not self.subdir

    def content_address(self) -> str | None:
        """The sha256 an archive stored as is names itself by (``<sha256>.tar.gz``, as mirror's
        own locations do), else None. A claim only: good for skipping a version already held."""
        if not self.stored_as_is:
            return None
        path = self.s3.key if self.s3 is not None else urlsplit(self.url).path
        match = _CONTENT_NAME_RE.match(unquote(path.rsplit("/", 1)[-1]))
        return match[1] if match else None


def resolve_location(location: str, download_url: str) -> str:
    """A location as Terraform reads it: ``/``, ``./`` and ``../`` are relative to the
    ``/download`` URL; anything else is a go-getter source, left as it is."""
    text = location.strip()
    if text.startswith("//"):  # a network-path reference: another host, same scheme
        return urljoin(download_url, text)
    if not text.startswith(("/", "./", "../")):
        return text
    # the package part is resolved on its own: urljoin would drop the "//" before a subdirectory
    package, subdir = split_subdir(text)
    resolved = urljoin(download_url, package)
    if not subdir:
        return resolved
    base, question, query = resolved.partition("?")
    return f"{base}//{subdir}{question}{query}"


def parse_source(location: str, base_url: str | None = None) -> Source:
    """The Source a download location (or an ``X-Terraform-Get`` hop) stands for.

    Raises UnsupportedSource for what mirror cannot follow, naming what it is.
    """
    text = resolve_location(location, base_url) if base_url else location.strip()
    if not text:
        raise UnsupportedSource("the download location is empty")
    if text.startswith(("/", "./", "../")):
        raise UnsupportedSource(f"relative download location {_redacted(text)!r} has nothing to be relative to")
    getter, text = _getter_of(text)
    text, subdir = split_subdir(text)
    subdir = _checked_subdir(subdir, text)
    if getter == "git":
        return _git_source(text, subdir)
    if getter == "s3":
        return _s3_source(text, subdir)
    return _http_source(text, subdir)


def split_subdir(src: str) -> tuple[str, str]:
    """go-getter's ``SourceDirSubdir``: ``https://h/x.tgz//sub?q`` -> (``https://h/x.tgz?q``, ``sub``)."""
    stop = src.find("?")
    stop = len(src) if stop == -1 else stop
    scheme_end = src.find("://", 0, stop)
    offset = scheme_end + 3 if scheme_end != -1 else 0
    index = src.find("//", offset, stop)
    if index == -1:
        return src, ""
    subdir = src[index + 2 :]
    src = src[:index]
    query = subdir.find("?")
    if query != -1:
        src += subdir[query:]
        subdir = subdir[:query]
    return src, subdir


def join_subdirs(outer: str, inner: str) -> str:
    return "/".join(part for part in (outer, inner) if part)


def _getter_of(text: str) -> tuple[str, str]:
    """(getter, source without its forcing prefix), after go-getter's detectors."""
    forced = _FORCED_RE.match(text)
    if forced:
        name, rest = forced[1].lower(), forced[2]
        if name in ("http", "https"):
            return "http", rest
        if name in ("git", "s3"):
            return name, rest
        raise UnsupportedSource(f"download location {_redacted(text)!r} uses go-getter's {name!r} getter, which mirror does not support (git, s3, http, https)")
    if "://" in text.split("?", 1)[0]:
        scheme = text.split("://", 1)[0].lower()
        if scheme in ("http", "https"):
            return "http", text
        if scheme == "git":
            return "git", text
        raise UnsupportedSource(f"download location {_redacted(text)!r}: the {scheme!r} scheme is not supported (git, s3, http, https)")
    if text.lower().startswith("github.com/"):
        return "git", _github_shorthand(text)
    scp = _SCP_RE.match(text.split("?", 1)[0])
    if scp:
        query = text[len(text.split("?", 1)[0]) :]
        return "git", f"ssh://{scp['user']}@{scp['host']}/{scp['path']}{query}"
    raise UnsupportedSource(
        f"download location {_redacted(text)!r} is neither a URL nor a go-getter source mirror can follow"
    )


def _github_shorthand(text: str) -> str:
    """go-getter's GitHub detector: ``github.com/OWNER/REPO[/PATH]`` -> ``https://github.com/OWNER/REPO.git[//PATH]``."""
    path, _, query = text.partition("?")
    parts = path.split("/")
    if len(parts) < 3 or not parts[1] or not parts[2]:
        raise UnsupportedSource(f"GitHub source {text!r} must be github.com/OWNER/REPO")
    repo = parts[2] if parts[2].endswith(".git") else parts[2] + ".git"
    url = f"https://github.com/{parts[1]}/{repo}"
    rest = "/".join(parts[3:]).lstrip("/")
    if rest:
        url += f"//{rest}"
    return url + (f"?{query}" if query else "")


def _checked_subdir(subdir: str, src: str) -> str:
    cleaned = "/".join(part for part in subdir.split("/") if part not in ("", "."))
    if any(part == ".." for part in cleaned.split("/")) or "\\" in cleaned:
        raise UnsupportedSource(f"subdirectory {subdir!r} of {_redacted(src)!r} leaves the package")
    if any(char in cleaned for char in "*?["):
        raise UnsupportedSource(
            f"subdirectory {subdir!r} of {_redacted(src)!r} is a glob; Terraform does not expand globs "
            "in a registry's download location"
        )
    return cleaned


def _query_params(url: str, names: frozenset[str]) -> tuple[str, dict[str, str]]:
    """Take go-getter's parameters ``names`` off ``url``'s query, leaving the others as sent."""
    parts = urlsplit(url)
    kept, taken = [], {}
    for pair in parts.query.split("&") if parts.query else []:
        decoded = parse_qsl(pair, keep_blank_values=True)
        if decoded and decoded[0][0] in names:
            taken[decoded[0][0]] = decoded[0][1]
        else:
            kept.append(pair)
    return urlunsplit(parts._replace(query="&".join(kept))), taken


def _archive_type(params: dict[str, str], path: str) -> str | None:
    given = params.get("archive")
    if given is not None:
        if given.lower() == "false":
            return ""
        kind = given.lower().lstrip(".")
        if kind not in ARCHIVE_SUFFIXES:
            raise UnsupportedSource(f"archive type {given!r} is not supported ({', '.join(sorted(TREE_ARCHIVES))})")
        return kind
    name = unquote(path).rsplit("/", 1)[-1].lower()
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith("." + suffix):
            return suffix
    return None


def _checksum(params: dict[str, str]) -> tuple[str, str] | None:
    given = params.get("checksum")
    if not given:
        return None
    kind, _, value = given.rpartition(":")
    value = value.lower()
    if not kind:  # a bare digest: its length tells the type, as in go-getter
        kind = next((name for name, length in CHECKSUM_TYPES.items() if length == len(value)), "")
    if kind == "file":
        raise UnsupportedSource("checksum=file:... (a checksum file) is not supported; give TYPE:HEX")
    if CHECKSUM_TYPES.get(kind) != len(value) or not re.fullmatch(r"[0-9a-f]+", value):
        raise UnsupportedSource(f"checksum {given!r} is not TYPE:HEX with TYPE one of {', '.join(CHECKSUM_TYPES)}")
    return kind, value


def _http_source(text: str, subdir: str) -> Source:
    url, params = _query_params(text, _HTTP_PARAMS)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsupportedSource(f"download location {_redacted(text)!r} is not an http(s) URL")
    return Source("http", url, subdir, _archive_type(params, parts.path), _checksum(params))


def _git_source(text: str, subdir: str) -> Source:
    url, params = _query_params(text, _GIT_PARAMS)
    if "sshkey" in params:
        raise UnsupportedSource("git sources with ?sshkey= are not supported; use the SSH agent or ~/.ssh/config")
    depth = params.get("depth")
    if depth is not None and not (depth.isascii() and depth.isdigit() and int(depth) > 0):
        raise UnsupportedSource(f"git depth {depth!r} is not a positive whole number")
    ref = params.get("ref") or None
    if ref is not None and (ref.startswith("-") or any(ord(char) < 32 for char in ref)):
        raise UnsupportedSource(f"git ref {ref!r} is not a valid ref")
    if not url or url.startswith("-"):
        raise UnsupportedSource(f"git source {_redacted(text)!r} has no repository URL")
    return Source("git", url, subdir, ref=ref, depth=int(depth) if depth else None)


def _s3_source(text: str, subdir: str) -> Source:
    url, params = _query_params(text, _S3_PARAMS)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsupportedSource(f"s3 source {_redacted(text)!r} is not an http(s) URL")
    path = unquote(parts.path)
    host = parts.hostname.lower()
    aws = _AWS_HOST_RE.match(host)
    endpoint_url = None
    if aws:
        region = aws["region"] or "us-east-1"
        if aws["bucket"]:  # virtual-hosted: bucket.s3[.-]region.amazonaws.com/key
            bucket, key = aws["bucket"], path.lstrip("/")
        else:  # path style: s3[.-]region.amazonaws.com/bucket/key
            bucket, _, key = path.lstrip("/").partition("/")
    elif host.endswith(_AWS_SUFFIXES):
        raise UnsupportedSource(f"s3 source {_redacted(text)!r}: {host!r} is not an S3 host name mirror recognizes")
    else:  # an S3-compatible store: path style, region from ?region=
        region = params.get("region") or "us-east-1"
        endpoint_url = f"{parts.scheme}://{parts.netloc}"
        bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        raise UnsupportedSource(f"s3 source {_redacted(text)!r} does not name a bucket and an object key")
    access_key = params.get("aws_access_key_id")
    secret_key = params.get("aws_access_key_secret")
    if (access_key is None) != (secret_key is None):
        raise UnsupportedSource("s3 source: give aws_access_key_id and aws_access_key_secret together")
    s3 = S3Object(
        bucket=bucket,
        key=key,
        region=region,
        endpoint_url=endpoint_url,
        version_id=params.get("version") or None,
        access_key_id=access_key,
        secret_access_key=secret_key,
        session_token=params.get("aws_access_token") or None,
    )
    display = f"{endpoint_url or 'https://s3.' + region + '.' + aws['domain']}/{bucket}/{key}"
    return Source("s3", display, subdir, _archive_type(params, key), _checksum(params), s3=s3)


_PASSWORD_RE = re.compile(r"(//[^/@:?#]*):[^/@?#]*@")


def _redacted(text: str) -> str:
    """A source for messages: the query (signatures, keys) and any password left out."""
    return _PASSWORD_RE.sub(r"\1:***@", text.split("?", 1)[0])


# -- what an upstream may hand out ---------------------------------------------------------------

#: git transports over the network; ``file`` and plain paths are local repositories
_GIT_NETWORK_SCHEMES = frozenset({"http", "https", "ssh", "git"})


def origin_of(url: str) -> str:
    """``scheme://host:port`` (lowercase, the default port written out) of an http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """Which download locations one upstream may hand out (its ``[[upstreams]]`` keys).

    By default: http(s) and git over the network to public addresses, and ``s3::`` to AWS S3
    (with this host's AWS credentials). Locations at the upstream's own ``origins`` (its
    configured host) are allowed as configured, like the upstream itself."""

    #: http(s) and git hosts at non-public addresses (``allow_private``)
    allow_private: bool = False
    #: ``git::file://`` and local paths (``allow_file_sources``)
    allow_file_sources: bool = False
    #: S3-compatible endpoints ``s3::`` may name besides AWS (``s3_endpoints``), as origins
    s3_endpoints: frozenset[str] = field(default_factory=frozenset)
    #: the upstream's own origins
    origins: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_upstream(
        cls,
        host_url: str,
        *,
        allow_private: bool = False,
        allow_file_sources: bool = False,
        s3_endpoints: Iterable[str] = (),
    ) -> SourcePolicy:
        """The policy of the upstream at ``host_url`` (its registry base URL)."""
        return cls(
            allow_private=allow_private,
            allow_file_sources=allow_file_sources,
            s3_endpoints=frozenset(origin_of(url) for url in s3_endpoints),
            origins=frozenset({origin_of(host_url)}),
        )

    def trusts(self, url: str) -> bool:
        """Whether a request to ``url`` may go to any address: ``allow_private``, or the
        upstream's own origin."""
        return self.allow_private or (url.lower().startswith(("http://", "https://")) and origin_of(url) in self.origins)


def check_source(source: Source, policy: SourcePolicy) -> None:
    """UnsupportedSource when ``policy`` does not let the upstream hand out ``source``. Pure: a
    host name is not resolved here (the fetcher's guarded session checks what it connects to)."""
    if source.getter == "s3":
        obj = source.s3
        assert obj is not None
        if obj.endpoint_url is not None and origin_of(obj.endpoint_url) not in policy.s3_endpoints:
            raise UnsupportedSource(
                f"s3 source {source.describe()!r}: {obj.endpoint_url} is not an AWS S3 host, nor one of this "
                "upstream's s3_endpoints; this host's AWS credentials are never sent there"
            )
        return
    if source.getter == "git":
        scheme = urlsplit(source.url).scheme.lower() if "://" in source.url else ""
        if scheme in ("file", ""):
            if not policy.allow_file_sources:
                raise UnsupportedSource(
                    f"git source {source.describe()!r} is a local repository; set allow_file_sources = true "
                    "on the upstream to allow it"
                )
            return
        if scheme not in _GIT_NETWORK_SCHEMES:
            raise UnsupportedSource(f"git source {source.describe()!r}: the {scheme!r} transport is not supported")
    if policy.trusts(source.url):
        return
    host = urlsplit(source.url).hostname or ""
    address = parse_address(host)
    reason = non_public_reason(address) if address is not None else None
    if reason is not None:
        raise UnsupportedSource(
            f"download location {source.describe()!r}: {host} is {reason}; set allow_private = true "
            "on the upstream to allow it"
        )
