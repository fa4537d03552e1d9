"""http(s) URLs as users type them: parsed once, or refused (never an exception); and URLs
redacted for display (no userinfo, no query values)."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit


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


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_REGISTRY_HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::(?:[1-9][0-9]{{0,4}}))?\Z", re.IGNORECASE)


def valid_registry_host(text: object) -> bool:
    """A hostname as Terraform reads it in a provider address or module source: DNS labels, an
    optional ``:PORT``, at most 253 characters before the port."""
    if not isinstance(text, str) or not _REGISTRY_HOST_RE.match(text):
        return False
    host, _, port = text.partition(":")
    return len(host) <= 253 and (not port or int(port) <= 65535)


def registry_host(configured: str | None, public_url: str | None, request_host: str | None) -> str:
    """The hostname this registry's own providers are named under, lowercase: the configured
    ``registry_host``, else ``public_url``'s host (and port, unless it is the scheme's default),
    else the ``Host`` the request came to."""
    if configured:
        return configured.lower()
    parts = http_url(public_url) if public_url else None
    if parts is not None and parts.hostname:
        default = 443 if parts.scheme == "https" else 80
        return parts.hostname.lower() + (f":{parts.port}" if parts.port not in (None, default) else "")
    return (request_host or "").lower()


_REDACTED = "***"
#: an http(s) URL inside free text (an error message): up to the next blank or quote
_URL_IN_TEXT_RE = re.compile(r"""https?://[^\s'"<>]+""", re.IGNORECASE)


def redact_url(text: str) -> str:
    """``text`` fit to show: any userinfo becomes ``***@`` and the value of every query parameter
    (and any fragment) ``***``; scheme, host, port, path and parameter names stay. Something that
    does not parse as a URL is shown as ``***`` after its scheme."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        scheme = text.split(":", 1)[0] if ":" in text else ""
        return f"{scheme}://{_REDACTED}" if scheme.isalpha() else _REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(
        f"{pair.split('=', 1)[0]}={_REDACTED}" if pair else pair for pair in parts.query.split("&")
    ) if parts.query else ""
    fragment = _REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_urls_in(text: str) -> str:
    """Free text (an error message) with every http(s) URL in it passed through ``redact_url``."""
    return _URL_IN_TEXT_RE.sub(lambda match: redact_url(match[0]), text)
