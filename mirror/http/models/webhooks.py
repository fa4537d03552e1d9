"""The outbound webhooks API's shapes: a new subscription, its status, parked deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from mirror.http.models.base import MAX_ID, Request, Response, problem

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_NON_EMPTY = Annotated[str, Field(min_length=1)]


class NewWebhook(Request):
    """The `POST /api/v1/webhooks` body."""

    #: (``new_subscription`` checks the address, so the pattern is documented, not enforced here)
    url: Annotated[
        str, Field(description="An http(s) URL on a public host", json_schema_extra={"pattern": "^https?://[^/?#]+"})
    ]
    secret: Annotated[str, Field(description="HMAC key for the deliveries")]
    events: list[_NON_EMPTY] = []
    namespaces: list[_NON_EMPTY] = []

    @model_validator(mode="before")
    @classmethod
    def _required(cls, body: Any) -> Any:
        if not isinstance(body.get("url"), str) or not isinstance(body.get("secret"), str):
            raise problem("url and secret are required strings")
        return body

    @field_validator("events", "namespaces", mode="before")
    @classmethod
    def _strings(cls, raw: Any, info: Any) -> list[str]:
        value = raw or []
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise problem(f"{info.field_name} must be a list of non-empty strings")
        return value


class FailuresQuery(Request):
    all: Annotated[
        str, Field(description="`true`, `1` or `yes` to include redelivered ones (pending only by default)")
    ] = "false"

    @property
    def pending_only(self) -> bool:
        return self.all.lower() not in ("1", "true", "yes")


class Subscription(Response):
    id: str
    url: str
    events: list[str]
    namespaces: list[str]
    source: str
    created_at: str


class SubscriptionStatus(Subscription):
    serial: int
    lag: Annotated[int, Field(ge=0)]
    attempts: int
    next_attempt_at: float | None = None
    last_error: str | None = None
    pending_failures: int
    delivered: int | None = None
    failed_attempts: int | None = None
    parked: int | None = None
    running: bool
    lease_held: Annotated[
        bool | None, Field(description="whether this process holds the subscriber's lease (delivers to it)")
    ] = None


class OneSubscription(Response):
    webhook: Subscription


class OneSubscriptionStatus(Response):
    webhook: SubscriptionStatus


class SubscriptionList(Response):
    webhooks: list[SubscriptionStatus]


class DeliveryFailure(Response):
    id: int
    subscription_id: str
    serial: int
    attempts: int
    last_error: str
    failed_at: str
    redelivered_at: str | None = None


class FailureList(Response):
    failures: list[DeliveryFailure]


class Redelivery(Response):
    subscription_id: str
    failure_id: Annotated[int, Field(ge=0, le=MAX_ID)]


class Redelivered(Response):
    redelivered: Redelivery
