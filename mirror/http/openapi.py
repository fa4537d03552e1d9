"""``GET /openapi.json``: an OpenAPI 3.1 description of every HTTP endpoint (no auth), generated.

The document is built from the route table (``models.routes`` for the API, ``models.ui`` for
the web UI's pages: path, method, summary, auth note and which models) and the pydantic models
in ``mirror.http.models``, the same models the handlers validate query parameters and JSON
bodies with. ``tests/test_openapi.py`` keeps it in step with the routes: every route (HEAD
aside) is described and every described path is a route. ``/github/webhook`` is described
although it is only registered when ``[github]`` is configured.

Why pydantic rather than msgspec: the document is the point here, and pydantic v2 writes JSON
Schema 2020-12 (what OpenAPI 3.1 embeds) from the models with field descriptions, bounds and
patterns, where msgspec's schema output is thinner; pydantic is already a dependency (the
config models), so one modelling library serves both. Its cost per request does not matter on
the routes that validate with it (lists, search, admin calls), and the Terraform protocol's hot
routes validate no model per request: their path parameters are parsed as before.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from mirror.http.models.base import NAME_PATTERN, PROVIDER_PATTERN, Errors
from mirror.http.models.browse import DEFAULT_LIMIT, MAX_LIMIT
from mirror.http.models.route import Route
from mirror.http.models.routes import ROUTES
from mirror.http.models.ui import UI_ROUTES
from mirror.http.models.webhooks import ID_PATTERN

_SCHEMAS = "#/components/schemas/{model}"

_INFO = {
    "title": "mirror",
    "version": "1",
    "summary": "A self-hosted private Terraform module and provider registry",
    "description": "Terraform's module and provider registry protocols and the provider network mirror, a browse "
    "and search API, publishing, background "
    "jobs, the event feed and outbound webhooks. Every error is `{\"errors\": [\"...\"]}`; every "
    "response carries `X-Request-Id`.",
}
_TAGS = [
    {"name": "terraform", "description": "The registry protocols used by terraform init: modules, providers, the network mirror"},
    {"name": "browse", "description": "Module lists, search and details"},
    {"name": "publish"},
    {"name": "providers", "description": "Provider signing keys and publishing"},
    {"name": "tokens", "description": "API tokens: made within the caller's grant, with an expiry"},
    {"name": "github", "description": "GitHub App integration"},
    {"name": "jobs"},
    {"name": "events"},
    {"name": "webhooks", "description": "Outbound webhook subscriptions"},
    {"name": "operations"},
    {"name": "ui", "description": "The web UI's HTML pages"},
]
_SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A registry token (scopes read, publish or admin, on a namespace or `*`)",
    },
    "cookieAuth": {
        "type": "apiKey",
        "in": "cookie",
        "name": "mirror_token",
        "description": "The web UI's login cookie (holds a registry token)",
    },
}


def _path(name: str, pattern: str | None, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", **({"pattern": pattern} if pattern else {}), **schema},
    }


_PARAMETERS = {
    "namespace": _path(
        "namespace", NAME_PATTERN, "1-64 letters, digits, `-` and `_`, starting and ending with a letter or digit "
        "(matched case-insensitively)",
    ),
    "name": _path("name", NAME_PATTERN, "Same rules as the namespace"),
    "provider": _path("provider", PROVIDER_PATTERN, "1-64 lowercase letters and digits"),
    "version": _path(
        "version", None, "SemVer such as 1.2.0, v1.2.0 or 1.2.0-beta.1 (at most 128 characters)", maxLength=128
    ),
    "type": _path("type", r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$", "A provider type: 1-64 lowercase letters, digits or `-`"),
    "os": _path("os", r"^[a-z][a-z0-9]{0,31}$", "Go's GOOS: linux, darwin, windows, ..."),
    "arch": _path("arch", r"^[a-z0-9]{1,32}$", "Go's GOARCH: amd64, arm64, 386, ..."),
    "hostname": _path("hostname", None, "The registry host of the provider's address (`registry.terraform.io`)", maxLength=260),
    "keyId": _path("key_id", r"^[0-9A-Fa-f]{16}$", "The key's long key id, 16 hex digits"),
    "webhookId": {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}},
}
_ERRORS = {
    400: "Bad request (invalid names, version or query parameters)",
    401: "A bearer token is missing or not valid",
    403: "The token lacks the scope",
    404: "Not found",
    408: "The body did not arrive in time",
    409: "Conflict",
    413: "The body is too large",
    415: "Unsupported media type",
    422: "The archive failed a safety or shape check",
    502: "Another server failed: the upstream registry a proxied namespace pulls through from, "
    "or the webhook subscriber that did not accept the delivery",
    503: "A backing store is unavailable, or (webhook deliveries) every slot for large bodies stayed "
    "taken: `Retry-After` says when to retry",
}
assert DEFAULT_LIMIT <= MAX_LIMIT


def _strip_titles(schema: Any) -> Any:
    """pydantic's generated ``title`` of every model and field: noise in the document."""
    if isinstance(schema, dict):
        return {
            key: (
                {name: _strip_titles(value) for name, value in sub.items()}
                if key in ("properties", "$defs")
                else _strip_titles(sub)
            )
            for key, sub in schema.items()
            if not (key == "title" and isinstance(sub, str))
        }
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional input as what a client sends: ``anyOf [X, null]`` with a null default is X."""
    schema = dict(schema)
    branches = schema.get("anyOf")
    if branches and {"type": "null"} in branches and len(branches) == 2 and schema.get("default", 0) is None:
        (kept,) = [branch for branch in branches if branch != {"type": "null"}]
        del schema["anyOf"], schema["default"]
        schema = {**kept, **schema}
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _request_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = _strip_titles(model.model_json_schema(ref_template=_SCHEMAS))
    schema["properties"] = {name: _plain(prop) for name, prop in schema.get("properties", {}).items()}
    return schema


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = _request_schema(model)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        parameter: dict[str, Any] = {"name": name, "in": "query"}
        if name in required:
            parameter["required"] = True
            prop.pop("default", None)
        if "description" in prop:
            parameter["description"] = prop.pop("description")
        parameter["schema"] = prop
        if prop.get("type") == "array":
            parameter |= {"style": "form", "explode": True}
        parameters.append(parameter)
    return parameters


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _SCHEMAS.format(model=model.__name__)}}}}


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary}
    if route.description:
        operation["description"] = route.description
    operation["tags"] = [route.tag]
    if route.security is not None:
        operation["security"] = route.security
    parameters = [
        {"$ref": f"#/components/parameters/{param}"} if isinstance(param, str) else param for param in route.params
    ]
    if route.query is not None:
        parameters += _query_parameters(route.query)
    if parameters:
        operation["parameters"] = parameters
    if isinstance(route.body, dict):
        operation["requestBody"] = route.body
    elif route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _request_schema(route.body)}},
        }
    responses: dict[str, Any] = {}
    for status, answer in route.responses.items():
        if isinstance(answer, tuple):
            model, description, *more = answer
            responses[str(status)] = {**_json(model, description), **(more[0] if more else {})}
        else:
            responses[str(status)] = answer
    for status in route.errors:
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    operation["responses"] = responses
    return operation


def _response_models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Errors": Errors}
    for route in (*ROUTES, *UI_ROUTES):
        for answer in route.responses.values():
            if isinstance(answer, tuple):
                found[answer[0].__name__] = answer[0]
    return list(found.values())


@functools.cache
def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in (*ROUTES, *UI_ROUTES):
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    _, definitions = models_json_schema(
        [(model, "validation") for model in _response_models()], ref_template=_SCHEMAS
    )
    schemas = _strip_titles(definitions.get("$defs", {}))
    errors = {
        f"E{status}": {"description": text, "content": {"application/json": {"schema": {"$ref": _SCHEMAS.format(model="Errors")}}}}
        for status, text in _ERRORS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": _INFO,
        "tags": _TAGS,
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": _SECURITY_SCHEMES,
            "parameters": _PARAMETERS,
            "responses": errors,
            "schemas": schemas,
        },
    }


def spec(app: web.Application | None = None) -> dict[str, Any]:
    """The OpenAPI document (a fresh copy; ``servers`` is left out: paths are relative to the host)."""
    return copy.deepcopy(_document())


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(spec(request.app))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/openapi.json", openapi_json),
    ]
