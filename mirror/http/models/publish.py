"""Publishing and a module's record: the publish outcome, the record, and an admin's policy."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from mirror.domain.errors import MirrorError
from mirror.domain.provenance import Owner
from mirror.http.models.base import SHA256_PATTERN, Request, Response, problem

MAX_POLICY_BODY = 16 * 1024
OWNER_SOURCE_PATTERN = r"^(upload|bundle|github:[0-9]{1,20}|upstream:[A-Za-z0-9][A-Za-z0-9.:-]*)$"


class PublishOutcome(Response):
    id: str
    namespace: str
    name: str
    provider: str
    version: str
    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)]
    size: int
    published_at: str
    status: Annotated[Literal["created", "unchanged"], Field(description="`created` is a 201")]


class Module(Response):
    namespace: str
    name: str
    provider: str
    owner_source: Annotated[str, Field(description="upload, bundle, github:REPOSITORY_ID or upstream:HOST")]
    owner: Annotated[str, Field(description="The owner source in words")]
    installation_id: Annotated[
        int | None, Field(description="The GitHub App installation that brought a repository's module")
    ]
    allow_uploads: bool
    source_url: str | None
    created_at: str


class ModuleRecord(Response):
    module: Module


class ModulePolicy(Request):
    """The `PATCH` body: at least one of the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    allow_uploads: bool | None = None
    owner_source: Annotated[str | None, Field(json_schema_extra={"maxLength": 300, "pattern": OWNER_SOURCE_PATTERN})] = None

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, body: Any) -> Any:
        unknown = sorted(set(body) - set(cls.model_fields)) if isinstance(body, dict) else []
        if unknown or not body:
            named = ", ".join(repr(key[:40]) for key in unknown[:5]) or "nothing"
            raise problem(f"the body takes allow_uploads (true or false) and owner_source, not {named}")
        return body

    @field_validator("allow_uploads", mode="before")
    @classmethod
    def _allow(cls, raw: Any) -> bool:
        if not isinstance(raw, bool):
            raise problem("allow_uploads must be true or false")
        return raw

    @field_validator("owner_source", mode="before")
    @classmethod
    def _owner(cls, raw: Any) -> str:
        if not isinstance(raw, str):
            raise problem("owner_source must be a string: upload, bundle, github:REPOSITORY_ID or upstream:HOST")
        try:
            Owner.parse(raw)
        except MirrorError as exc:
            raise problem(exc.message) from None
        return raw

    @property
    def owner(self) -> Owner | None:
        return None if self.owner_source is None else Owner.parse(self.owner_source)
