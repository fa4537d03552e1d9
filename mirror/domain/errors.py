"""Error types that carry their HTTP status.

Adapters translate vendor errors (botocore, sqlite3, aiohttp client) into these; the error
middleware in ``mirror.http.middleware`` renders any of them as ``{"errors": [...]}``.
"""

from __future__ import annotations


class MirrorError(Exception):
    """Base class: a message meant for the user, and the HTTP status it maps to."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class BadRequest(MirrorError):
    status = 400


class Unauthorized(MirrorError):
    status = 401


class Forbidden(MirrorError):
    status = 403


class NotFound(MirrorError):
    status = 404


class Conflict(MirrorError):
    status = 409


class PayloadTooLarge(MirrorError):
    status = 413


class UnsupportedMediaType(MirrorError):
    status = 415


class InvalidArchive(BadRequest):
    """An uploaded or fetched module archive failed a safety or shape check."""

    status = 422


class StorageUnavailable(MirrorError):
    """A backing store (S3, DynamoDB, disk) failed; the request may be retried."""

    status = 503


class ConfigError(MirrorError):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# What can go wrong talking to another registry or following its download locations.
# What can go wrong talking to another registry or following its download locations.
#
# ``UpstreamUnavailable`` may pass (connection refused, timeouts, 5xx, 429): a later run, or a
# retried job, can succeed. ``UpstreamError`` will not pass by itself: a 4xx answer (its status is
# ``status_code``), an answer that breaks the protocol, a source mirror cannot follow.
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
