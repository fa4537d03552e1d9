"""The ``git::`` getter: ``git clone --depth 1 --branch REF`` into a work directory, then packed.

``--depth`` comes from ``?depth=``; without ``ref`` the remote's HEAD is taken; a commit id is
fetched with a full clone and checked out; submodules too. Unless the policy trusts the host, a
host name is resolved and must have public addresses only, git's http transport is pinned to them
(``http.curloptResolve``) and follows no redirects; the ``file`` transport is off (submodules
included) unless ``allow_file_sources``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from mirror.domain.errors import UnsupportedSource, UpstreamError, UpstreamUnavailable
from mirror.domain.sources import Source, SourcePolicy
from mirror.formats.unpack import module_root, pack
from mirror.integrations.netguard import non_public_reason, parse_address
from mirror.services.ingest import Archive
from mirror.services.upstream import FetchedModule

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


class GitGetter:
    """Clones git sources with the ``git`` command, never prompting."""

    def __init__(self, *, git: str = "git", git_timeout: float = 600.0, resolver: AbstractResolver | None = None) -> None:
        """``resolver`` checks a host's addresses (aiohttp's default when None)."""
        self._git = git
        self._git_timeout = git_timeout
        self._resolver = resolver

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

    async def fetch(self, source: Source, workdir: Path, policy: SourcePolicy) -> FetchedModule:
        """The checkout of ``source``, packed into ``workdir``."""
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
