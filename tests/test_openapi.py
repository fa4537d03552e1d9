"""The OpenAPI document: valid OpenAPI 3.1, in step with the routes, served without a token."""

from __future__ import annotations

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from mirror.app.build import create_app
from mirror.config import Config, GitHubConfig
from mirror.http import openapi

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _routes() -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route of an app with GitHub configured, HEAD aside.

    aiohttp's canonical form already names its variables ``{name}`` (regexes dropped) and keeps
    the archive route's literal ``.tar.gz`` suffix, which is a valid OpenAPI path template as is."""
    app = create_app(Config(github=GitHubConfig(webhook_secret="x" * 20, token="t")))
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "*") and route.resource is not None
    }


def _documented(document: dict) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items() for method in item if method in METHODS}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.spec(None)
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_route_is_documented_and_every_documented_path_is_a_route() -> None:
    routes, documented = _routes(), _documented(openapi.spec(None))
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "OpenAPI operations with no route"


def test_unauthenticated_operations_are_marked() -> None:
    document = openapi.spec(None)
    assert document["security"] == [{"bearerAuth": []}]
    open_ones = {
        (method, path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security") == []
    }
    assert open_ones == {
        ("get", "/v1/archives/{sha256}.zip"),
        ("get", "/v1/mirror/{hostname}/{namespace}/{type}/{version}/{platform}.zip"),
        ("get", "/v1/provider-files/{namespace}/{type}/{version}/{name}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
        ("get", "/v1/archives/{sha256}.tar.gz"),
        ("post", "/github/webhook"),
        ("get", "/login"),
        ("post", "/login"),
        ("post", "/logout"),
        ("get", "/oidc/login"),
        ("get", "/oidc/callback"),
        ("get", "/static/{name}"),
        ("get", "/metrics"),
        ("post", "/oauth/token"),
    }


def test_error_responses_share_the_errors_schema() -> None:
    document = openapi.spec(None)
    for name, response in document["components"]["responses"].items():
        assert name.startswith("E")
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Errors"}
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                if "ui" in operation["tags"]:  # the web UI's errors are pages
                    assert set(response["content"]) == {"text/html"}
                else:
                    assert response == {"$ref": f"#/components/responses/E{status}"}


async def test_openapi_json_is_served_without_a_token(registry) -> None:
    response = await registry.client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == openapi.spec(registry.app)
