"""Content-addressed blob keys."""

from __future__ import annotations

import re

_SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")  # \Z: "$" would also accept a trailing newline


def archive_key(sha256: str) -> str:
    """``modules/ab/abcdef....tar.gz``: immutable, deduplicated, and go-getter reads the archive
    type from the ``.tar.gz`` suffix."""
    if not _SHA256_RE.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"modules/{sha256[:2]}/{sha256}.tar.gz"


def provider_archive_key(sha256: str) -> str:
    """``providers/ab/abcdef....zip``: a provider zip, immutable and deduplicated like modules."""
    if not _SHA256_RE.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return f"providers/{sha256[:2]}/{sha256}.zip"


def is_sha256(value: str) -> bool:
    return bool(_SHA256_RE.match(value))
