"""The tokens API's shapes: a new token's request, a token as listed, a new token with its secret."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from mirror.domain.addresses import valid_namespace
from mirror.domain.models import SCOPES, Scope
from mirror.http.models.base import NAME_PATTERN, Request, Response, problem
from mirror.services.tokens import LONGEST_EXPIRY

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_DESCRIPTION = 256
TokenState = Literal["active", "expired", "revoked"]


class NewToken(Request):
    """The `POST /api/v1/tokens` body."""

    namespace: Annotated[
        str,
        Field(
            description="A namespace, or `*` for every namespace",
            json_schema_extra={"pattern": f"^(\\*|{NAME_PATTERN[1:-1]})$"},
        ),
    ]
    scope: Annotated[Scope, Field(description="`read`, `publish` or `admin`; at most the calling token's own")]
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION, description="A note to recognise it by")] = ""
    expires_in: Annotated[
        StrictInt | None,
        Field(
            ge=1,
            le=LONGEST_EXPIRY,
            description="Seconds until it stops working; default `[auth] token_default_expiry_seconds`, "
            "at most `[auth] token_max_expiry_seconds`",
        ),
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _required(cls, body: Any) -> Any:
        if not isinstance(body.get("namespace"), str) or not isinstance(body.get("scope"), str):
            raise problem("namespace and scope are required strings")
        return body

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value != "*" and not valid_namespace(value):
            raise problem(f"invalid namespace {value[:100]!r} (use a namespace name or '*')")
        return value

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, raw: Any) -> Any:
        if raw not in SCOPES:
            raise problem(f"scope must be one of {', '.join(SCOPES)}")
        return raw

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, raw: Any) -> Any:
        if not isinstance(raw, str) or len(raw) > MAX_DESCRIPTION:
            raise problem(f"description must be a string of at most {MAX_DESCRIPTION} characters")
        return raw

    @field_validator("expires_in", mode="before")
    @classmethod
    def _expires_in(cls, raw: Any) -> Any:
        if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= LONGEST_EXPIRY):
            raise problem(f"expires_in must be a whole number of seconds from 1 to {LONGEST_EXPIRY}")
        return raw


class Token(Response):
    """A token as listed: never its secret or hash."""

    id: str
    namespace: str
    scope: Scope
    description: str
    state: TokenState
    created_at: str
    created_by: Annotated[
        str, Field(description="The id of the token that made it; empty when made on the server (`mirror token create`)")
    ]
    created_by_description: Annotated[str | None, Field(description="That token's description")] = None
    expires_at: Annotated[str | None, Field(description="When it stops working; null: never")] = None
    last_used_at: Annotated[
        str | None, Field(description="When it was last used, coarsely (recorded at most every few minutes)")
    ] = None
    revoked_at: str | None = None


class CreatedToken(Token):
    secret: Annotated[str, Field(description="The token itself: shown this once, never again")]


class OneCreatedToken(Response):
    token: CreatedToken


class TokenList(Response):
    tokens: list[Token]
