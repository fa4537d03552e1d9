"""The sessions API's shapes: a signed-in person's session as listed (never its secret)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mirror.domain.models import Scope
from mirror.http.models.base import Response

ID_PATTERN = r"^[0-9a-f]{12}$"
SessionState = Literal["active", "expired", "revoked"]


class SessionGrant(Response):
    namespace: Annotated[str, Field(description="A namespace, or `*`")]
    scope: Scope


class Session(Response):
    id: str
    person: Annotated[str, Field(description="The person's e-mail, else user name, else subject")]
    name: Annotated[str, Field(description="Their display name, when the provider gives one")]
    issuer: str
    subject: Annotated[str, Field(description="`sub` at the issuer")]
    grants: Annotated[list[SessionGrant], Field(description="What the `[[oidc.grants]]` rules gave at sign-in")]
    state: SessionState
    created_at: str
    expires_at: str
    revoked_at: str | None = None
    current: Annotated[bool, Field(description="The session this request was made with")] = False


class SessionList(Response):
    sessions: list[Session]
