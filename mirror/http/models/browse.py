"""The browse and search API's shapes: list and search queries, list items, a version in detail."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from mirror.domain.addresses import valid_namespace, valid_provider
from mirror.http.models.base import NAME_PATTERN, PROVIDER_PATTERN, Request, Response, problem
from mirror.http.models.providers import DeprecationRecord

DEFAULT_LIMIT = 15
MAX_LIMIT = 100
MAX_OFFSET = 1_000_000_000  # far past any list; keeps the number inside SQL's integers


def _number(raw: Any, name: str, default: int, low: int, high: int) -> int:
    text = str(raw)
    if text == "":
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not low <= int(text) <= high:
        raise problem(f"{name} must be an integer from {low} to {high}")
    return int(text)


class PageQuery(Request):
    """``offset`` and ``limit`` of a page (empty means the default)."""

    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT

    @field_validator("offset", mode="before")
    @classmethod
    def _offset(cls, raw: Any) -> int:
        return _number(raw, "offset", 0, 0, MAX_OFFSET)

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, raw: Any) -> int:
        return _number(raw, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


class ListQuery(PageQuery):
    """A module list's filters."""

    provider: Annotated[str | None, Field(description="Only this provider", pattern=PROVIDER_PATTERN)] = None
    verified: Annotated[bool | None, Field(description="Only verified modules (`true`) or only the others")] = None

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, raw: Any) -> Any:
        if raw is not None and not (isinstance(raw, str) and valid_provider(raw)):
            raise problem(f"invalid provider {raw!r} (lowercase letters and digits only)")
        return raw

    @field_validator("verified", mode="before")
    @classmethod
    def _verified(cls, raw: Any) -> Any:
        text = str(raw).lower()
        if text not in ("true", "false"):
            raise problem("verified must be true or false")
        return text == "true"


class SearchQuery(ListQuery):
    """A search: the text, and the list's filters."""

    model_config = ConfigDict(json_schema_extra={"required": ["q"]})

    q: Annotated[str, Field(description="The search text (not blank)", min_length=1, pattern=r"\S", validate_default=True)] = ""
    namespace: Annotated[str | None, Field(description="Only this namespace", pattern=NAME_PATTERN)] = None

    @field_validator("q", mode="before")
    @classmethod
    def _q(cls, raw: Any) -> str:
        text = str(raw).strip()
        if not text:
            raise problem("q (the search text) is required")
        return text

    @field_validator("namespace", mode="before")
    @classmethod
    def _namespace(cls, raw: Any) -> Any:
        if raw is not None and not (isinstance(raw, str) and valid_namespace(raw)):
            raise problem(f"invalid namespace {raw!r}")
        return raw


class ModuleListItem(Response):
    id: Annotated[str, Field(description="namespace/name/provider/version")]
    owner: str
    namespace: str
    name: str
    version: str
    provider: str
    description: Annotated[str, Field(description="The README's first paragraph")]
    source: Annotated[str, Field(description="The repository URL, or empty")]
    published_at: str
    downloads: Annotated[int, Field(ge=0)]
    verified: bool


class PageMeta(Response):
    limit: int
    current_offset: int
    next_offset: int | None = None
    prev_offset: int | None = None
    next_url: str | None = None


class ModuleList(Response):
    meta: PageMeta
    modules: list[ModuleListItem]


class ModuleSpec(Response):
    """What a module's HCL declares."""

    path: str = ""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    dependencies: list[dict[str, Any]] = []
    provider_dependencies: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []


class ModuleDetail(ModuleListItem):
    root: ModuleSpec
    submodules: list[ModuleSpec]
    analysis_errors: list[str]
    providers: list[str]
    versions: Annotated[list[str], Field(description="Every live version, newest first")]
    owner_source: Annotated[
        str | None,
        Field(description="The one source that changes the module: upload, bundle, github:ID or upstream:HOST"),
    ] = None
    allow_uploads: Annotated[
        bool, Field(description="Whether uploads may add versions although another source owns it")
    ] = False
    deprecation: Annotated[
        DeprecationRecord | None,
        Field(description="Why the version should no longer be chosen, and what to use instead; null when it is not deprecated"),
    ] = None
