"""The audit trail's shapes: its query and a page of changes with who made them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, field_validator

from mirror.domain.addresses import valid_namespace
from mirror.http.models.base import Request, Response, problem, whole_number
from mirror.http.models.events import MAX_SERIAL

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: the most events one request reads from the store; ``next_after`` goes on from there
MAX_SCAN = 5000
MAX_ACTOR = 200
MAX_TIME = 64


def parse_time(raw: str, name: str) -> datetime:
    """An RFC 3339 date and time (``2026-11-24T20:27:51Z``, an offset, fractions of a second),
    aware; a 400 naming ``name`` for anything else."""
    text = raw.strip()
    if not 10 < len(text) <= MAX_TIME or text[10] not in "Tt ":
        raise problem(f"{name} must be an RFC 3339 date and time, such as 2026-11-24T20:27:51Z")
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise problem(f"{name} must be an RFC 3339 date and time, such as 2026-11-24T20:27:51Z") from None
    if when.tzinfo is None:
        raise problem(f"{name} needs a time zone: Z or an offset such as +01:00")
    return when.astimezone(UTC)


class AuditQuery(Request):
    actor: Annotated[
        str | None,
        Field(
            max_length=MAX_ACTOR,
            description="Only the changes of this actor: its kind (`token`, `github`, `upstream`, `bundle`, `cli`, "
            "`system`), or a token id, a GitHub delivery id or job id, an upstream host, a bundle file name",
        ),
    ] = None
    namespace: Annotated[
        str | None, Field(max_length=64, description="Only the changes in this namespace (case-insensitive)")
    ] = None
    since: Annotated[
        str | None, Field(max_length=MAX_TIME, description="Only the changes at or after this RFC 3339 time")
    ] = None
    until: Annotated[
        str | None, Field(max_length=MAX_TIME, description="Only the changes at or before this RFC 3339 time")
    ] = None
    after: Annotated[
        int, Field(description="Changes with a serial above this one (`next_after` of the previous page)", ge=0,
                   le=MAX_SERIAL)
    ] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT

    @field_validator("actor", mode="before")
    @classmethod
    def _actor(cls, raw: Any) -> str:
        if not isinstance(raw, str) or not raw or len(raw) > MAX_ACTOR:
            raise problem(f"actor must be 1 to {MAX_ACTOR} characters")
        return raw

    @field_validator("namespace", mode="before")
    @classmethod
    def _namespace(cls, raw: Any) -> str:
        if not isinstance(raw, str) or not valid_namespace(raw):
            raise problem(f"invalid namespace {str(raw)[:100]!r}")
        return raw

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, raw: Any, info: Any) -> str:
        if not isinstance(raw, str):
            raise problem(f"{info.field_name} must be an RFC 3339 date and time")
        parse_time(raw, info.field_name)
        return raw

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, raw: Any) -> int:
        return whole_number(raw, "after", 0, MAX_SERIAL, digits=19)

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, raw: Any) -> int:
        return whole_number(raw, "limit", 1, MAX_LIMIT, digits=19)


class Actor(Response):
    """Who made a change: `kind`, and the fields of its kind."""

    kind: Annotated[str, Field(description="`token`, `github`, `upstream`, `bundle`, `cli` or `system`")]
    id: Annotated[str | None, Field(description="token: the token's id")] = None
    description: Annotated[str | None, Field(description="token: the token's description")] = None
    delivery: Annotated[str | None, Field(description="github: the `X-GitHub-Delivery` id")] = None
    job: Annotated[str | None, Field(description="github (no delivery), system: the job's id")] = None
    host: Annotated[str | None, Field(description="upstream: the upstream registry's host")] = None
    file: Annotated[str | None, Field(description="bundle: the bundle's file name")] = None


class Change(Response):
    serial: int
    type: str
    occurred_at: str
    actor: Annotated[Actor | None, Field(description="Null for changes recorded before actors were")]
    data: dict[str, Any]


class AuditPage(Response):
    events: list[Change]
    next_after: Annotated[int, Field(description="The last serial read: pass it as `after` for the next page")]
    latest: Annotated[int, Field(description="The newest serial when the request began: `next_after >= latest` "
                                             "means every change was read")]
