"""The provider browse API's shapes, those of the public Terraform Registry's ``/v1/providers``:
the list query, a list entry, a page of them, a version in detail."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from mirror.domain.addresses import valid_namespace
from mirror.http.models.base import NAME_PATTERN, Response, problem
from mirror.http.models.browse import PageMeta, PageQuery


class ProviderListQuery(PageQuery):
    """A page of providers, of one namespace when ``namespace`` is given."""

    namespace: Annotated[str | None, Field(description="Only this namespace", pattern=NAME_PATTERN)] = None

    @field_validator("namespace", mode="before")
    @classmethod
    def _namespace(cls, raw: Any) -> Any:
        if raw is not None and not (isinstance(raw, str) and valid_namespace(raw)):
            raise problem(f"invalid namespace {raw!r}")
        return raw


class ProviderListItem(Response):
    id: Annotated[str, Field(description="namespace/type/version")]
    owner: Annotated[str, Field(description="Always empty (the public registry's account)")]
    namespace: str
    name: Annotated[str, Field(description="The provider type")]
    alias: Annotated[str, Field(description="The provider type")]
    version: Annotated[str, Field(description="The latest version: the highest release, else the highest prerelease")]
    tag: Annotated[str, Field(description="`v` and the version")]
    description: str
    source: Annotated[str, Field(description="The repository URL, or empty")]
    published_at: str
    downloads: Annotated[int, Field(ge=0)]
    tier: Annotated[str, Field(description="Always `community`")]
    logo_url: str


class ProviderList(Response):
    meta: PageMeta
    providers: list[ProviderListItem]


class ProviderPlatformItem(Response):
    os: str
    arch: str
    filename: str
    shasum: Annotated[str, Field(description="The zip's SHA-256, as the signed SHA256SUMS lists it")]


class ProviderDetail(ProviderListItem):
    versions: Annotated[list[str], Field(description="Every live version, newest first")]
    platforms: Annotated[list[ProviderPlatformItem], Field(description="This version's platforms")]
    protocols: Annotated[list[str], Field(description="The provider protocol versions it speaks, such as `6.0`")]
