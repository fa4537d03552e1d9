"""What can go wrong talking to another registry or following its download locations.

``UpstreamUnavailable`` may pass (connection refused, timeouts, 5xx, 429): a later run, or a
retried job, can succeed. ``UpstreamError`` will not pass by itself: a 4xx answer (its status is
``status_code``), an answer that breaks the protocol, a source mirror cannot follow.
"""

from __future__ import annotations

from mirror.errors import MirrorError


class UpstreamUnavailable(MirrorError):
    """The upstream (or a download location) could not answer now; retrying may succeed."""

    status = 502
    retryable = True


class UpstreamError(MirrorError):
    """The upstream refused for good, or answered something mirror cannot use."""

    status = 502
    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class UnsupportedSource(UpstreamError):
    """A download location mirror cannot follow (a go-getter getter or option it lacks)."""
