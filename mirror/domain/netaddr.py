"""Which addresses are public: the pure half of the outbound guard.

``non_public_reason`` decides: private, loopback, link-local, site-local, multicast, reserved,
unspecified, shared (CGNAT 100.64.0.0/10), documentation and benchmarking ranges are refused, as
is everything the standard library does not call global. An IPv6 address carrying an IPv4 one is
judged by the IPv4 address it leads to: IPv4-mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``
and 6to4 ``2002::/16``. Teredo ``2001::/32`` is refused as a whole (it tunnels to a server and a
client address at once, and is not used for services), as are the deprecated IPv4-compatible
``::/96`` and the local-use NAT64 ``64:ff9b:1::/48``.

The connections themselves are guarded in ``mirror.integrations.netguard``.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
#: refused whatever the standard library of the day says about them
_V4_NAMED = (
    (ipaddress.ip_network("0.0.0.0/8"), "a 'this network' address"),
    (ipaddress.ip_network("192.0.0.0/24"), "an IETF protocol assignment"),
    (ipaddress.ip_network("192.0.2.0/24"), "a documentation address"),
    (ipaddress.ip_network("198.51.100.0/24"), "a documentation address"),
    (ipaddress.ip_network("203.0.113.0/24"), "a documentation address"),
    (ipaddress.ip_network("198.18.0.0/15"), "a benchmarking address"),
    (ipaddress.ip_network("192.88.99.0/24"), "a 6to4 relay address"),
)


class NonPublicAddress(OSError):
    """A connection to a non-public address was refused (an OSError, so that aiohttp reports it
    as a connection error carrying this exception as ``os_error``)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)

    def __str__(self) -> str:
        return str(self.strerror)


def parse_address(text: str) -> Address | None:
    """An IP address (an IPv6 zone ``%eth0`` dropped), or None when ``text`` is not one."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def non_public_reason(address: Address) -> str | None:
    """Why a connection to ``address`` is refused ("a loopback address", ...), None when public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _TEREDO:
            return "a Teredo address (2001::/32)"
        if address.ipv4_mapped is not None:
            return _embedded(address.ipv4_mapped, "an IPv4-mapped")
        if address in _NAT64:
            return _embedded(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "a NAT64")
        if address in _NAT64_LOCAL:
            return "a local-use NAT64 address (64:ff9b:1::/48)"
        if address in _SIX_TO_FOUR:
            assert address.sixtofour is not None
            return _embedded(address.sixtofour, "a 6to4")
        if address in _IPV4_COMPATIBLE and not (address.is_loopback or address.is_unspecified):
            return "an IPv4-compatible address (::/96, deprecated)"
        if address.is_site_local:
            return "a site-local address"
    else:
        if address in _CGNAT:
            return "a shared (carrier-grade NAT) address"
        for network, reason in _V4_NAMED:
            if address in network:
                return reason
    for flag, reason in (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a global address"),
    ):
        if flag:
            return reason
    return None


def _embedded(inner: ipaddress.IPv4Address, kind: str) -> str | None:
    reason = non_public_reason(inner)
    return f"{kind} address of {inner}, {reason}" if reason else None


def refuse_non_public(host: str, address_text: str) -> None:
    """NonPublicAddress unless ``address_text`` is a public IP address."""
    address = parse_address(address_text)
    if address is None:
        raise NonPublicAddress(f"{host!r}: {address_text!r} is not an IP address")
    reason = non_public_reason(address)
    if reason is not None:
        raise NonPublicAddress(f"{host!r} is {address}, {reason}" if host == address_text else f"{host!r} resolves to {address}, {reason}")


def is_guarded(session: Any) -> bool:
    """Whether an HTTP client session connects through the guard (its connector says so)."""
    return getattr(session.connector, "guards_addresses", False) is True


def guard_error(exc: BaseException) -> NonPublicAddress | None:
    """The NonPublicAddress behind an aiohttp connection error, if that is what it was."""
    if isinstance(exc, NonPublicAddress):
        return exc
    os_error = getattr(exc, "os_error", None)
    return os_error if isinstance(os_error, NonPublicAddress) else None
