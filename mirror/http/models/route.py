"""One documented operation: a row of the route table ``mirror.http.openapi`` generates the
document from (``models.routes`` for the API, ``models.ui`` for the web UI's pages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

#: a response: a model with its description (and more of the response object, such as headers),
#: or a literal OpenAPI response object
Answer = tuple[type[BaseModel], str] | tuple[type[BaseModel], str, dict[str, Any]] | dict[str, Any]

READ_NOTE = "Read scope; no token is needed when `auth.anonymous_read` is on."
ADMIN_NOTE = "Admin scope on `*` (registry-wide admins only)."
OPEN: list[dict[str, list[str]]] = []  # no credential at all


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    description: str = ""
    #: None: the document's default (a bearer token); ``OPEN``: none
    security: list[dict[str, list[str]]] | None = None
    #: path (and header) parameters: a name in ``components.parameters``, or a parameter object
    params: tuple[str | dict[str, Any], ...] = ()
    #: the query parameters, one per field of the model
    query: type[BaseModel] | None = None
    #: the JSON body's model, or a literal requestBody object
    body: type[BaseModel] | dict[str, Any] | None = None
    responses: dict[int, Answer] = field(default_factory=dict)
    #: statuses answered with the ``Errors`` shape
    errors: tuple[int, ...] = ()
