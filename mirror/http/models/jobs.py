"""The jobs API's shapes: the list's query, a job."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from mirror.domain.models import JOB_STATES, JobState
from mirror.http.models.base import Request, Response, problem, whole_number

MAX_LIMIT = 1000


class JobsQuery(Request):
    state: JobState | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 50

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, raw: Any) -> Any:
        if raw not in JOB_STATES:
            raise problem(f"state must be one of {', '.join(JOB_STATES)}, not {raw!r}")
        return raw

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, raw: Any) -> int:
        return whole_number(raw, "limit", 1, MAX_LIMIT, digits=4)


class Job(Response):
    id: int
    kind: str
    state: Literal["queued", "running", "done", "failed"]
    attempts: int
    run_after: Annotated[float, Field(description="Unix time")]
    created_at: str
    updated_at: str
    last_error: str | None = None
    dedupe_key: str | None = None
    claimed_by: Annotated[
        str | None, Field(description="The replica running the job (HOST:PID) while it is running")
    ] = None
    payload: dict[str, Any]


class JobList(Response):
    jobs: list[Job]


class OneJob(Response):
    job: Job
