"""http(s) URLs as users type them: parsed once, or refused (never an exception)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def http_url(text: object) -> SplitResult | None:
    """The parts of an ``http``/``https`` URL with a host and a valid port, else None.

    ``urlsplit`` raises ValueError on some malformed input (an unbalanced ``[`` in the host),
    ``.port`` on a port out of range, and a host name IDNA cannot encode would fail later in the
    resolver; all are "not a URL" here."""
    if not isinstance(text, str):
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError when the port is not a number from 0 to 65535
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return None
    return parts
