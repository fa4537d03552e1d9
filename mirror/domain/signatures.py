"""Self-authenticating download URLs (``downloads.mode = "proxy"``).

Terraform never sends its bearer token to a download location, so the URL must carry its own
proof: an HMAC-SHA256 over the path and an expiry time.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(key: bytes, path: str, expires: int) -> str:
    return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def verify(key: bytes, path: str, expires: int, signature: str, now: float) -> bool:
    if expires < now:
        return False
    return hmac.compare_digest(sign(key, path, expires), signature)


def expiry(now: float, ttl_seconds: int, granularity: int = 60) -> int:
    """An expiry at least ``ttl_seconds`` away, rounded up to ``granularity`` seconds so that the
    same archive gets the same URL for a while (cacheable by clients and by us)."""
    return (int(now) // granularity + 1) * granularity + ttl_seconds
