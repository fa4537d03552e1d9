"""Health, readiness and the GitHub webhook's answers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mirror.http.models.base import Response


class Alive(Response):
    status: Literal["ok"]


class Ready(Response):
    status: Literal["ready"]


class WebhookDelivery(Response):
    status: Literal["pong", "duplicate", "queued"]
    delivery: str
    job: Annotated[int | None, Field(description="The queued job's id (202 only)")] = None
