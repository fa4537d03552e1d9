"""What the request and response models share: the base classes, the name patterns, turning a
validation error into the project's one-line 400, and reading a query or a JSON body into a model.

Request models give their own messages (``problem``): a ``PydanticCustomError`` carries the
text as is, so a client reads the same line as before the models existed.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from mirror.domain.errors import BadRequest, PayloadTooLarge

#: a namespace or module name (the pattern ``mirror.domain.addresses`` checks)
NAME_PATTERN = r"^[0-9A-Za-z](?:[0-9A-Za-z_-]{0,62}[0-9A-Za-z])?$"
PROVIDER_PATTERN = r"^[0-9a-z]{1,64}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
#: the largest id a job or a delivery failure has (18 digits)
MAX_ID = 999_999_999_999_999_999


class Request(BaseModel):
    """A request's query parameters or body: unknown query parameters are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Response(BaseModel):
    """An answer's shape (documentation: handlers build the dicts themselves)."""

    model_config = ConfigDict(extra="allow")


class Errors(Response):
    """Every error answer: one readable line per problem."""

    errors: Annotated[list[str], Field(min_length=1)]


def problem(message: str) -> PydanticCustomError:
    """A validation failure whose message the client reads as is."""
    return PydanticCustomError("mirror", message)


def problems(exc: ValidationError) -> list[str]:
    """One line per error: ours as written, pydantic's prefixed with where it is."""
    lines = []
    for error in exc.errors(include_url=False):
        if error["type"] == "mirror":
            lines.append(error["msg"])
        else:
            where = ".".join(str(part) for part in error["loc"])
            lines.append(f"{where}: {error['msg']}" if where else error["msg"])
    return list(dict.fromkeys(lines))


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` as ``model``, or a 400 naming every problem on one line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest("; ".join(problems(exc))) from None


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (list, tuple) or any(
        typing.get_origin(arg) in (list, tuple) for arg in typing.get_args(annotation)
    )


def parse_query(model: type[M], request: web.Request) -> M:
    """The request's query parameters as ``model`` (a list field takes every value given)."""
    query = request.query
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in query:
            data[key] = query.getall(key) if _is_list(field.annotation) else query[key]
    return validate(model, data)


async def read_json_object(request: web.Request, limit: int | None = None) -> dict[str, Any]:
    """The body as a JSON object (at most ``limit`` bytes when given), else a 400 (413)."""
    if limit is None:
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: nesting too deep for the decoder
            raise BadRequest("the body must be a JSON object") from None
    else:
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"the body is at most {limit} bytes")
        data = bytearray()
        async for chunk in request.content.iter_chunked(limit):
            data += chunk
            if len(data) > limit:
                raise PayloadTooLarge(f"the body is at most {limit} bytes")
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def whole_number(raw: Any, name: str, low: int, high: int, *, digits: int) -> int:
    """``raw`` as an int from ``low`` to ``high``: ASCII digits only (``int()`` also takes " 5 ",
    "1_0" and "١"), at most ``digits`` of them."""
    text = raw if isinstance(raw, str) else str(raw)
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= digits else low - 1
    if not low <= value <= high:
        raise problem(f"{name} must be a whole number between {low} and {high}, not {text!r}")
    return value
