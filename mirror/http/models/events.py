"""The event feed's shapes: its query and a page of events."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from mirror.http.models.base import Request, Response, problem, whole_number

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TYPES = 20
MAX_SERIAL = 2**63 - 1


class EventsQuery(Request):
    after: Annotated[int, Field(description="Events with a serial above this one", ge=0, le=MAX_SERIAL)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    type: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]],
        Field(description=f"Only these event types (repeatable, at most {MAX_TYPES})", max_length=MAX_TYPES),
    ] = []

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, raw: Any) -> int:
        return whole_number(raw, "after", 0, MAX_SERIAL, digits=19)

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, raw: Any) -> int:
        return whole_number(raw, "limit", 1, MAX_LIMIT, digits=19)

    @field_validator("type", mode="before")
    @classmethod
    def _types(cls, raw: Any) -> list[str]:
        given = list(raw)
        types = list(dict.fromkeys(given))
        if len(given) > MAX_TYPES or any(not t or len(t) > 100 for t in types):
            raise problem(f"give at most {MAX_TYPES} non-empty 'type' values of at most 100 characters")
        return types


class Event(Response):
    serial: int
    type: str
    occurred_at: str
    data: dict[str, Any]


class EventPage(Response):
    events: list[Event]
    next_after: int
    latest: int
