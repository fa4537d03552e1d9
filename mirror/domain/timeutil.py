"""Timestamps as RFC 3339 strings in UTC (what the registry API and events carry)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def rfc3339(timestamp: float) -> str:
    """A unix time as RFC 3339 in UTC, to the second (clocks that tests move)."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
