"""Outbound connections to public addresses only (server-side request forgery).

Checking a host name's addresses and then letting the HTTP client resolve it again leaves a gap:
the second answer may differ (DNS rebinding). Here the check sits where the connection is made:

* ``GuardedResolver`` wraps aiohttp's resolver and drops every non-public address from each
  answer (raising ``NonPublicAddress`` when none is left), so the connector only ever has checked
  addresses to connect to, from the very answer it uses;
* ``GuardedConnector`` uses it, and checks once more the address each socket is about to connect
  to (its ``socket_factory``): that also covers literal IP addresses in URLs, including those in
  a redirect's ``Location``, which aiohttp never passes to a resolver.

Which addresses are public is decided in ``mirror.domain.netaddr``.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from mirror.domain.netaddr import Address, NonPublicAddress, guard_error, is_guarded, non_public_reason, parse_address, refuse_non_public

__all__ = ["GuardedConnector", "GuardedResolver", "NonPublicAddress", "guard_error", "is_guarded", "non_public_reason", "outbound_session", "parse_address", "refuse_non_public"]


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` (aiohttp's default resolver when None) and keeps the public
    addresses only; NonPublicAddress when an answer has none."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        kept, refused = [], []
        for answer in answers:
            address = parse_address(answer["host"])
            reason = non_public_reason(address) if address is not None else "not an IP address"
            if reason is None:
                kept.append(answer)
            else:
                refused.append(f"{answer['host']} ({reason})")
        if not kept:
            shown = ", ".join(refused[:4]) or "nothing"
            raise NonPublicAddress(f"{host!r} resolves to no public address: {shown}")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def _guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's ``socket_factory``: the last check, on the address about to be connected to."""
    family, type_, proto, _, sockaddr = addr_info
    refuse_non_public(str(sockaddr[0]), str(sockaddr[0]))
    return socket.socket(family=family, type=type_, proto=proto)


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects to public addresses only (see the module docstring)."""

    #: what ``is_guarded`` looks for
    guards_addresses = True

    def __init__(self, *, resolver: AbstractResolver | None = None, **kwargs: Any) -> None:
        super().__init__(resolver=GuardedResolver(resolver), socket_factory=_guarded_socket, **kwargs)


def outbound_session(*, allow_private: bool, resolver: AbstractResolver | None = None, **kwargs: Any) -> aiohttp.ClientSession:
    """A ClientSession for requests to addresses that someone else chose: guarded unless
    ``allow_private``; no cookie jar; proxy settings and .netrc not taken from the environment.
    ``resolver`` replaces aiohttp's default one underneath the guard."""
    connector = aiohttp.TCPConnector(resolver=resolver) if allow_private else GuardedConnector(resolver=resolver)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), **kwargs)
