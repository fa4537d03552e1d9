"""``GET /openapi.json``: an OpenAPI 3.1 description of every HTTP endpoint (no auth).

The document is a dict literal kept in step with the routes by ``tests/test_openapi.py``: every
route (HEAD aside) must be described here and every path here must be a route. ``/github/webhook``
is described although it is only registered when ``[github]`` is configured.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

# -- reusable pieces ------------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": f"#/components/responses/E{status}"} for status in statuses}


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


_MODULE_PARAMS = [_param("namespace"), _param("name"), _param("provider")]
_PAGE_PARAMS = [_param("offset"), _param("limit")]
_LIST_FILTERS = [*_PAGE_PARAMS, _param("providerFilter"), _param("verified")]
_READ_NOTE = "Read scope; no token is needed when `auth.anonymous_read` is on."
_ADMIN_NOTE = "Admin scope on `*` (registry-wide admins only)."
_NAME_PATTERN = r"^[0-9A-Za-z](?:[0-9A-Za-z_-]{0,62}[0-9A-Za-z])?$"
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_STRINGS = {"type": "array", "items": {"type": "string"}}
_PULL_THROUGH_VERSIONS = (
    "In a namespace that proxies an upstream registry (`[[upstreams]] proxy_namespaces`), the versions "
    "here and those the upstream lists (its list is reused for `proxy_ttl_seconds`, and the last one "
    "is served while the upstream cannot be reached); 502 when the module has no versions here and "
    "the upstream has never answered for it."
)
_PULL_THROUGH_DOWNLOAD = (
    "In a namespace that proxies an upstream registry, the first download of a version the upstream "
    "lists fetches it into this registry (a publish, with its checks and events) before answering; "
    "later downloads never ask the upstream. 502 when that fetch fails (the upstream cannot be "
    "reached, or its archive is refused), 503 when this registry's storage fails."
)

_PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness: ok while the process answers (no store is asked; see /readyz)",
            "tags": ["operations"],
            "security": [],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                    },
                    "The process is alive",
                ),
            },
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness, for load balancers: ready while the metadata and blob stores answer "
            "(2 s each); 503 naming what is unreachable",
            "tags": ["operations"],
            "security": [],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ready"}},
                    },
                    "Both stores answer",
                ),
                **_errors(503),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This OpenAPI document",
            "tags": ["operations"],
            "security": [],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document")},
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics (when `metrics.enabled`): requests by route template and status, "
            "latency, downloads, ingests, jobs, webhook deliveries; never module names or tokens",
            "tags": ["operations"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The Prometheus text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/.well-known/terraform.json": {
        "get": {
            "operationId": "discovery",
            "summary": "Terraform service discovery",
            "description": _READ_NOTE,
            "tags": ["terraform"],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["modules.v1"],
                        "properties": {"modules.v1": {"type": "string", "examples": ["/v1/modules/"]}},
                    },
                    "Where the modules.v1 protocol is served",
                ),
                **_errors(401, 403),
            },
        }
    },
    "/v1/modules/{namespace}/{name}/{provider}/versions": {
        "get": {
            "operationId": "listVersions",
            "summary": "A module's live versions, newest first",
            "description": _READ_NOTE + " " + _PULL_THROUGH_VERSIONS,
            "tags": ["terraform"],
            "parameters": _MODULE_PARAMS,
            "responses": {"200": _json(_ref("VersionsList"), "The versions"), **_errors(400, 401, 403, 404, 502)},
        }
    },
    "/v1/modules/{namespace}/{name}/{provider}/{version}/download": {
        "get": {
            "operationId": "downloadVersion",
            "summary": "Where to download a version's archive (counts a download)",
            "description": (
                _READ_NOTE + " The location is also in the `X-Terraform-Get` header. " + _PULL_THROUGH_DOWNLOAD
            ),
            "tags": ["terraform"],
            "parameters": [*_MODULE_PARAMS, _param("version")],
            "responses": {
                "200": {
                    **_json(_ref("DownloadLocation"), "The archive's location"),
                    "headers": {
                        "X-Terraform-Get": {"description": "The archive's location", "schema": {"type": "string"}}
                    },
                },
                **_errors(400, 401, 403, 404, 502, 503),
            },
        }
    },
    "/v1/modules/{namespace}/{name}/{provider}/download": {
        "get": {
            "operationId": "downloadLatest",
            "summary": "Redirect to the latest version's download",
            "description": _READ_NOTE,
            "tags": ["terraform"],
            "parameters": _MODULE_PARAMS,
            "responses": {
                "302": {
                    "description": "Redirect to `/v1/modules/:ns/:name/:provider/:version/download`",
                    "headers": {"Location": {"description": "The download URL", "schema": {"type": "string"}}},
                },
                **_errors(400, 401, 403, 404),
            },
        }
    },
    "/v1/archives/{sha256}.tar.gz": {
        "get": {
            "operationId": "downloadArchive",
            "summary": "A module archive by signed URL (proxy download mode)",
            "description": "No bearer token: the `expires` and `signature` query parameters authorize it.",
            "tags": ["terraform"],
            "security": [],
            "parameters": [
                {
                    "name": "sha256",
                    "in": "path",
                    "required": True,
                    "description": "The archive's SHA-256, 64 lowercase hex digits",
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
                {
                    "name": "expires",
                    "in": "query",
                    "required": True,
                    "description": "Unix time the link expires at",
                    "schema": {"type": "string"},
                },
                {
                    "name": "signature",
                    "in": "query",
                    "required": True,
                    "description": "HMAC of the path and expiry",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {
                    "description": "The archive",
                    "headers": {"ETag": {"description": "The quoted SHA-256", "schema": {"type": "string"}}},
                    "content": {"application/gzip": {"schema": {"type": "string", "contentMediaType": "application/gzip"}}},
                },
                **_errors(401, 404),
            },
        }
    },
    "/v1/modules": {
        "get": {
            "operationId": "listModules",
            "summary": "Modules with their latest version",
            "description": _READ_NOTE + " A namespace token lists only its own namespace.",
            "tags": ["browse"],
            "parameters": _LIST_FILTERS,
            "responses": {"200": _json(_ref("ModuleList"), "A page of modules"), **_errors(400, 401, 403)},
        }
    },
    "/v1/modules/": {
        "get": {
            "operationId": "listModulesSlash",
            "summary": "Modules with their latest version (the discovery base URL)",
            "description": _READ_NOTE + " The same as `/v1/modules`.",
            "tags": ["browse"],
            "parameters": _LIST_FILTERS,
            "responses": {"200": _json(_ref("ModuleList"), "A page of modules"), **_errors(400, 401, 403)},
        }
    },
    "/v1/modules/search": {
        "get": {
            "operationId": "searchModules",
            "summary": "Search modules by namespace, name, provider and description",
            "description": _READ_NOTE + " Case-insensitive substring match.",
            "tags": ["browse"],
            "parameters": [
                {
                    "name": "q",
                    "in": "query",
                    "required": True,
                    "description": "The search text (not blank)",
                    "schema": {"type": "string", "minLength": 1, "pattern": "\\S"},
                },
                *_LIST_FILTERS,
                {
                    "name": "namespace",
                    "in": "query",
                    "description": "Only this namespace",
                    "schema": {"type": "string", "pattern": _NAME_PATTERN},
                },
            ],
            "responses": {"200": _json(_ref("ModuleList"), "A page of matching modules"), **_errors(400, 401, 403)},
        }
    },
    "/v1/modules/{namespace}": {
        "get": {
            "operationId": "listNamespaceModules",
            "summary": "A namespace's modules with their latest version",
            "description": _READ_NOTE,
            "tags": ["browse"],
            "parameters": [_param("namespace"), *_LIST_FILTERS],
            "responses": {"200": _json(_ref("ModuleList"), "A page of modules"), **_errors(400, 401, 403)},
        }
    },
    "/v1/modules/{namespace}/{name}": {
        "get": {
            "operationId": "listModuleProviders",
            "summary": "The latest version of every provider of a module",
            "description": _READ_NOTE,
            "tags": ["browse"],
            "parameters": [_param("namespace"), _param("name"), *_PAGE_PARAMS],
            "responses": {"200": _json(_ref("ModuleList"), "A page of modules"), **_errors(400, 401, 403, 404)},
        }
    },
    "/v1/modules/{namespace}/{name}/{provider}": {
        "get": {
            "operationId": "getLatestVersion",
            "summary": "The latest version in detail (highest release, else prerelease)",
            "description": _READ_NOTE,
            "tags": ["browse"],
            "parameters": _MODULE_PARAMS,
            "responses": {"200": _json(_ref("ModuleDetail"), "The version"), **_errors(400, 401, 403, 404)},
        }
    },
    "/v1/modules/{namespace}/{name}/{provider}/{version}": {
        "get": {
            "operationId": "getVersion",
            "summary": "A version in detail: inputs, outputs, dependencies and resources",
            "description": _READ_NOTE,
            "tags": ["browse"],
            "parameters": [*_MODULE_PARAMS, _param("version")],
            "responses": {"200": _json(_ref("ModuleDetail"), "The version"), **_errors(400, 401, 403, 404)},
        }
    },
    "/api/v1/modules/{namespace}/{name}/{provider}": {
        "get": {
            "operationId": "getModuleRecord",
            "summary": "A module's record: its owner source and upload allowance",
            "description": "Read scope on the namespace.",
            "tags": ["publish"],
            "parameters": _MODULE_PARAMS,
            "responses": {"200": _json(_ref("ModuleRecord"), "The module"), **_errors(400, 401, 403, 404)},
        },
        "patch": {
            "operationId": "setModulePolicy",
            "summary": "Allow or refuse uploads to a module, or hand it to another owner source",
            "description": "Admin scope on the namespace. A module belongs to the source that created it; "
            "`allow_uploads` lets uploads add versions to a module another source owns, and "
            "`owner_source` hands the module to another source. Writes a `module.policy_changed` event.",
            "tags": ["publish"],
            "parameters": _MODULE_PARAMS,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": False,
                            "properties": {
                                "allow_uploads": {"type": "boolean"},
                                "owner_source": {
                                    "type": "string",
                                    "maxLength": 300,
                                    "pattern": "^(upload|bundle|github:[0-9]{1,20}|upstream:[A-Za-z0-9][A-Za-z0-9.:-]*)$",
                                },
                            },
                        }
                    }
                },
            },
            "responses": {"200": _json(_ref("ModuleRecord"), "The module as changed"), **_errors(400, 401, 403, 404, 409, 413)},
        },
    },
    "/api/v1/modules/{namespace}/{name}/{provider}/{version}": {
        "put": {
            "operationId": "publishVersion",
            "summary": "Publish a version from a .tar.gz archive",
            "description": "Publish scope on the namespace. Publishing identical content again is a 200.",
            "tags": ["publish"],
            "parameters": [*_MODULE_PARAMS, _param("version")],
            "requestBody": {
                "required": True,
                "description": "The module as a gzipped tar archive, at most `limits.max_archive_bytes`",
                "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/gzip"}}},
            },
            "responses": {
                "201": _json(_ref("PublishOutcome"), "Published"),
                "200": _json(_ref("PublishOutcome"), "Already published with the same content"),
                **_errors(400, 401, 403, 409, 413, 422, 503),
            },
        }
    },
    "/github/webhook": {
        "post": {
            "operationId": "githubWebhook",
            "summary": "GitHub App webhook deliveries (only when [github] is configured)",
            "description": "Authenticated by the `X-Hub-Signature-256` HMAC of the body, not a bearer token. "
            "`ping` answers 200; events mirror does not act on answer 204. A missing or malformed signature, "
            "event or delivery header, content type or length is refused before the body is read; the body "
            "must arrive within `[github] webhook_body_seconds` (408), and a large one that finds every slot "
            "taken is a 503 with `Retry-After`. A body seen before, under any "
            "delivery id, is a duplicate (200) and is not queued again.",
            "tags": ["github"],
            "security": [],
            "parameters": [
                {
                    "name": "X-Hub-Signature-256",
                    "in": "header",
                    "required": True,
                    "description": "`sha256=` HMAC of the body with the webhook secret",
                    "schema": {"type": "string"},
                },
                {"name": "X-GitHub-Event", "in": "header", "required": True, "schema": {"type": "string", "minLength": 1}},
                {
                    "name": "X-GitHub-Delivery",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 100},
                },
            ],
            "requestBody": {
                "required": True,
                "description": "The event payload, at most 25 MB",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": _json(_ref("WebhookDelivery"), "A ping, or a delivery whose body was seen before (not queued again)"),
                "202": _json(_ref("WebhookDelivery"), "Queued as a background job"),
                "204": {"description": "An event mirror does not act on"},
                **_errors(400, 401, 408, 413, 415, 503),
            },
        }
    },
    "/api/v1/jobs": {
        "get": {
            "operationId": "listJobs",
            "summary": "Background jobs, newest first",
            "description": _ADMIN_NOTE,
            "tags": ["jobs"],
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                },
            ],
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array", "items": _ref("Job")}}},
                    "The jobs",
                ),
                **_errors(400, 401, 403),
            },
        }
    },
    "/api/v1/jobs/{id}/retry": {
        "post": {
            "operationId": "retryJob",
            "summary": "Queue a failed job again with fresh attempts",
            "description": _ADMIN_NOTE,
            "tags": ["jobs"],
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
                }
            ],
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["job"], "properties": {"job": _ref("Job")}}, "The requeued job"
                ),
                **_errors(401, 403, 404, 409),
            },
        }
    },
    "/api/v1/events": {
        "get": {
            "operationId": "listEvents",
            "summary": "The event feed",
            "description": "Read scope; a token is always required. A namespace token sees only its namespace's "
            "events, so a page may hold fewer than `limit` events: pass `next_after` as `after` next time; "
            "`next_after >= latest` means caught up.",
            "tags": ["events"],
            "parameters": [
                {
                    "name": "after",
                    "in": "query",
                    "description": "Events with a serial above this one",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
                {
                    "name": "type",
                    "in": "query",
                    "description": "Only these event types (repeatable, at most 20)",
                    "style": "form",
                    "explode": True,
                    "schema": {
                        "type": "array",
                        "maxItems": 20,
                        "items": {"type": "string", "minLength": 1, "maxLength": 100},
                    },
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["events", "next_after", "latest"],
                        "properties": {
                            "events": {"type": "array", "items": _ref("Event")},
                            "next_after": {"type": "integer"},
                            "latest": {"type": "integer"},
                        },
                    },
                    "A page of events",
                ),
                **_errors(400, 401, 403),
            },
        }
    },
    "/api/v1/webhooks": {
        "post": {
            "operationId": "createWebhook",
            "summary": "Subscribe a URL to events",
            "description": _ADMIN_NOTE,
            "tags": ["webhooks"],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["url", "secret"],
                            "properties": {
                                "url": {
                                    "type": "string",
                                    "pattern": "^https?://[^/?#]+",
                                    "description": "An http(s) URL on a public host",
                                },
                                "secret": {"type": "string", "description": "HMAC key for the deliveries"},
                                "events": {"type": "array", "items": {"type": "string", "minLength": 1}},
                                "namespaces": {"type": "array", "items": {"type": "string", "minLength": 1}},
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _json(
                    {"type": "object", "required": ["webhook"], "properties": {"webhook": _ref("Subscription")}},
                    "The subscription",
                ),
                **_errors(400, 401, 403, 409),
            },
        },
        "get": {
            "operationId": "listWebhooks",
            "summary": "Every subscription with its cursor, lag and counters",
            "description": _ADMIN_NOTE,
            "tags": ["webhooks"],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["webhooks"],
                        "properties": {"webhooks": {"type": "array", "items": _ref("SubscriptionStatus")}},
                    },
                    "The subscriptions",
                ),
                **_errors(401, 403),
            },
        },
    },
    "/api/v1/webhooks/{id}": {
        "get": {
            "operationId": "getWebhook",
            "summary": "One subscription's status",
            "description": _ADMIN_NOTE,
            "tags": ["webhooks"],
            "parameters": [_param("webhookId")],
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["webhook"], "properties": {"webhook": _ref("SubscriptionStatus")}},
                    "The subscription",
                ),
                **_errors(401, 403, 404),
            },
        },
        "delete": {
            "operationId": "deleteWebhook",
            "summary": "Remove a subscription",
            "description": _ADMIN_NOTE + " Subscriptions from the config file are a 409: remove them there.",
            "tags": ["webhooks"],
            "parameters": [_param("webhookId")],
            "responses": {"204": {"description": "Removed"}, **_errors(401, 403, 404, 409)},
        },
    },
    "/api/v1/webhooks/{id}/failures": {
        "get": {
            "operationId": "listWebhookFailures",
            "summary": "A subscription's parked events (dead letters)",
            "description": _ADMIN_NOTE,
            "tags": ["webhooks"],
            "parameters": [
                _param("webhookId"),
                {
                    "name": "all",
                    "in": "query",
                    "description": "`true`, `1` or `yes` to include redelivered ones (pending only by default)",
                    "schema": {"type": "string", "default": "false"},
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["failures"],
                        "properties": {"failures": {"type": "array", "items": _ref("DeliveryFailure")}},
                    },
                    "The failures",
                ),
                **_errors(401, 403, 404),
            },
        }
    },
    "/api/v1/webhooks/{id}/failures/{failure_id}/redeliver": {
        "post": {
            "operationId": "redeliverWebhookFailure",
            "summary": "One immediate attempt at a parked event",
            "description": _ADMIN_NOTE,
            "tags": ["webhooks"],
            "parameters": [
                _param("webhookId"),
                {
                    "name": "failure_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["redelivered"],
                        "properties": {
                            "redelivered": {
                                "type": "object",
                                "required": ["subscription_id", "failure_id"],
                                "properties": {"subscription_id": {"type": "string"}, "failure_id": {"type": "integer"}},
                            }
                        },
                    },
                    "Delivered",
                ),
                **_errors(401, 403, 404, 502),
            },
        }
    },
}

_NULLABLE_STRING = {"type": ["string", "null"]}
_MODULE_ITEM_KEYS = [
    "id",
    "owner",
    "namespace",
    "name",
    "version",
    "provider",
    "description",
    "source",
    "published_at",
    "downloads",
    "verified",
]
_MODULE_ITEM_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "description": "namespace/name/provider/version"},
    "owner": {"type": "string"},
    "namespace": {"type": "string"},
    "name": {"type": "string"},
    "version": {"type": "string"},
    "provider": {"type": "string"},
    "description": {"type": "string", "description": "The README's first paragraph"},
    "source": {"type": "string", "description": "The repository URL, or empty"},
    "published_at": {"type": "string"},
    "downloads": {"type": "integer", "minimum": 0},
    "verified": {"type": "boolean"},
}
_MODULE_SPEC = {
    "type": "object",
    "description": "What a module's HCL declares",
    "properties": {
        "path": {"type": "string"},
        "inputs": {"type": "array", "items": {"type": "object"}},
        "outputs": {"type": "array", "items": {"type": "object"}},
        "dependencies": {"type": "array", "items": {"type": "object"}},
        "provider_dependencies": {"type": "array", "items": {"type": "object"}},
        "resources": {"type": "array", "items": {"type": "object"}},
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return _json(_ref("Errors"), description)


# -- the web UI: HTML pages, documented so that every route is (and fuzzed like the API) ---------


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _html_errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _html(f"An error page ({status})") for status in statuses}


_TO_LOGIN = {
    "303": {
        "description": "No usable credential: to the login form, with `next` set to this page",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}
_PAGE_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}, {}]
_UI_NOTE = (
    "Read scope, from the bearer header, else the `mirror_token` cookie set by `/login`, else "
    "anonymous when `auth.anonymous_read` is on."
)
_MODULE_PAGE = {
    "operationId": "uiModule",
    "summary": "A module's page: README, inputs, outputs, versions, submodules, usage snippet",
    "description": _UI_NOTE,
    "tags": ["ui"],
    "security": _PAGE_SECURITY,
    "responses": {"200": _html("The module page"), **_TO_LOGIN, **_html_errors(400, 403, 404)},
}
_UI_PATHS: dict[str, dict[str, Any]] = {
    "/": {
        "get": {
            "operationId": "uiIndex",
            "summary": "The module list, with search and a provider filter",
            "description": _UI_NOTE,
            "tags": ["ui"],
            "security": _PAGE_SECURITY,
            "parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string"}},
                {"name": "provider", "in": "query", "schema": {"type": "string", "pattern": "^[0-9a-z]{0,64}$"}},
                _param("offset"),
            ],
            "responses": {"200": _html("The list"), **_TO_LOGIN, **_html_errors(400, 403)},
        }
    },
    "/modules/{namespace}/{name}/{provider}": {"get": {**_MODULE_PAGE, "parameters": _MODULE_PARAMS}},
    "/modules/{namespace}/{name}/{provider}/{version}": {
        "get": {**_MODULE_PAGE, "operationId": "uiModuleVersion", "parameters": [*_MODULE_PARAMS, _param("version")]}
    },
    "/login": {
        "get": {
            "operationId": "uiLoginForm",
            "summary": "The login form",
            "tags": ["ui"],
            "security": [],
            "parameters": [{"name": "next", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _html("The form")},
        },
        "post": {
            "operationId": "uiLogin",
            "summary": "Check a token and keep it in an HttpOnly, SameSite=Strict cookie",
            "tags": ["ui"],
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {"token": {"type": "string"}, "next": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "303": {
                    "description": "Logged in: to `next` (a local path only, else `/`)",
                    "headers": {"Set-Cookie": {"schema": {"type": "string"}}},
                },
                **_html_errors(400, 401, 403),
            },
        },
    },
    "/logout": {
        "post": {
            "operationId": "uiLogout",
            "summary": "Clear the login cookie",
            "tags": ["ui"],
            "security": [],
            "responses": {"303": {"description": "Logged out: to `/`"}, **_html_errors(403)},
        }
    },
    "/static/{name}": {
        "get": {
            "operationId": "uiStatic",
            "summary": "The UI's stylesheet and script (only those two files)",
            "tags": ["ui"],
            "security": [],
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "The file",
                    "content": {"text/css": {"schema": {"type": "string"}}, "text/javascript": {"schema": {"type": "string"}}},
                },
                **_html_errors(404),
            },
        }
    },
}
_PATHS.update(_UI_PATHS)


_SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mirror",
        "version": "1",
        "summary": "A self-hosted private Terraform module registry",
        "description": "Terraform's module registry protocol, a browse and search API, publishing, background "
        "jobs, the event feed and outbound webhooks. Every error is `{\"errors\": [\"...\"]}`; every "
        "response carries `X-Request-Id`.",
    },
    "tags": [
        {"name": "terraform", "description": "The module registry protocol used by terraform init"},
        {"name": "browse", "description": "Module lists, search and details"},
        {"name": "publish"},
        {"name": "github", "description": "GitHub App integration"},
        {"name": "jobs"},
        {"name": "events"},
        {"name": "webhooks", "description": "Outbound webhook subscriptions"},
        {"name": "operations"},
        {"name": "ui", "description": "The web UI's HTML pages"},
    ],
    "security": [{"bearerAuth": []}],
    "paths": _PATHS,
    "components": {
        "securitySchemes": {
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
        },
        "parameters": {
            "namespace": {
                "name": "namespace",
                "in": "path",
                "required": True,
                "description": "1-64 letters, digits, `-` and `_`, starting and ending with a letter or digit "
                "(matched case-insensitively)",
                "schema": {"type": "string", "pattern": _NAME_PATTERN},
            },
            "name": {
                "name": "name",
                "in": "path",
                "required": True,
                "description": "Same rules as the namespace",
                "schema": {"type": "string", "pattern": _NAME_PATTERN},
            },
            "provider": {
                "name": "provider",
                "in": "path",
                "required": True,
                "description": "1-64 lowercase letters and digits",
                "schema": {"type": "string", "pattern": "^[0-9a-z]{1,64}$"},
            },
            "version": {
                "name": "version",
                "in": "path",
                "required": True,
                "description": "SemVer such as 1.2.0, v1.2.0 or 1.2.0-beta.1 (at most 128 characters)",
                "schema": {"type": "string", "maxLength": 128},
            },
            "offset": {
                "name": "offset",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000, "default": 0},
            },
            "limit": {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 15},
            },
            "providerFilter": {
                "name": "provider",
                "in": "query",
                "description": "Only this provider",
                "schema": {"type": "string", "pattern": "^[0-9a-z]{1,64}$"},
            },
            "verified": {
                "name": "verified",
                "in": "query",
                "description": "Nothing is verified, so `true` lists nothing",
                "schema": {"type": "boolean"},
            },
            "webhookId": {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": _ID_PATTERN},
            },
        },
        "responses": {
            "E400": _error_response("Bad request (invalid names, version or query parameters)"),
            "E401": _error_response("A bearer token is missing or not valid"),
            "E403": _error_response("The token lacks the scope"),
            "E404": _error_response("Not found"),
            "E408": _error_response("The body did not arrive in time"),
            "E409": _error_response("Conflict"),
            "E413": _error_response("The body is too large"),
            "E415": _error_response("Unsupported media type"),
            "E422": _error_response("The archive failed a safety or shape check"),
            "E502": _error_response(
                "Another server failed: the upstream registry a proxied namespace pulls through from, "
                "or the webhook subscriber that did not accept the delivery"
            ),
            "E503": _error_response(
                "A backing store is unavailable, or (webhook deliveries) every slot for large bodies stayed "
                "taken: `Retry-After` says when to retry"
            ),
        },
        "schemas": {
            "Errors": {
                "type": "object",
                "required": ["errors"],
                "properties": {"errors": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
            },
            "VersionsList": {
                "type": "object",
                "required": ["modules"],
                "properties": {
                    "modules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["source", "versions"],
                            "properties": {
                                "source": {"type": "string"},
                                "versions": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["version"],
                                        "properties": {"version": {"type": "string"}},
                                    },
                                },
                            },
                        },
                    }
                },
            },
            "DownloadLocation": {
                "type": "object",
                "required": ["location"],
                "properties": {"location": {"type": "string"}},
            },
            "ModuleListItem": {
                "type": "object",
                "required": _MODULE_ITEM_KEYS,
                "properties": _MODULE_ITEM_PROPERTIES,
            },
            "ModuleList": {
                "type": "object",
                "required": ["meta", "modules"],
                "properties": {
                    "meta": {
                        "type": "object",
                        "required": ["limit", "current_offset"],
                        "properties": {
                            "limit": {"type": "integer"},
                            "current_offset": {"type": "integer"},
                            "next_offset": {"type": "integer"},
                            "prev_offset": {"type": "integer"},
                            "next_url": {"type": "string"},
                        },
                    },
                    "modules": {"type": "array", "items": _ref("ModuleListItem")},
                },
            },
            "ModuleDetail": {
                "type": "object",
                "required": [
                    *_MODULE_ITEM_KEYS,
                    "root",
                    "submodules",
                    "analysis_errors",
                    "providers",
                    "versions",
                ],
                "properties": {
                    **_MODULE_ITEM_PROPERTIES,
                    "root": _MODULE_SPEC,
                    "submodules": {"type": "array", "items": _MODULE_SPEC},
                    "analysis_errors": _STRINGS,
                    "providers": _STRINGS,
                    "versions": {**_STRINGS, "description": "Every live version, newest first"},
                    "owner_source": {
                        "type": ["string", "null"],
                        "description": "The one source that changes the module: upload, bundle, github:ID or upstream:HOST",
                    },
                    "allow_uploads": {"type": "boolean", "description": "Whether uploads may add versions although another source owns it"},
                },
            },
            "ModuleRecord": {
                "type": "object",
                "required": ["module"],
                "properties": {
                    "module": {
                        "type": "object",
                        "required": [
                            "namespace",
                            "name",
                            "provider",
                            "owner_source",
                            "owner",
                            "installation_id",
                            "allow_uploads",
                            "source_url",
                            "created_at",
                        ],
                        "properties": {
                            "namespace": {"type": "string"},
                            "name": {"type": "string"},
                            "provider": {"type": "string"},
                            "owner_source": {
                                "type": "string",
                                "description": "upload, bundle, github:REPOSITORY_ID or upstream:HOST",
                            },
                            "owner": {"type": "string", "description": "The owner source in words"},
                            "installation_id": {
                                "type": ["integer", "null"],
                                "description": "The GitHub App installation that brought a repository's module",
                            },
                            "allow_uploads": {"type": "boolean"},
                            "source_url": {"type": ["string", "null"]},
                            "created_at": {"type": "string"},
                        },
                    }
                },
            },
            "PublishOutcome": {
                "type": "object",
                "required": [
                    "id",
                    "namespace",
                    "name",
                    "provider",
                    "version",
                    "sha256",
                    "size",
                    "published_at",
                    "status",
                ],
                "properties": {
                    "id": {"type": "string"},
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                    "provider": {"type": "string"},
                    "version": {"type": "string"},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "size": {"type": "integer"},
                    "published_at": {"type": "string"},
                    "status": {"type": "string", "enum": ["created", "unchanged"], "description": "`created` is a 201"},
                },
            },
            "WebhookDelivery": {
                "type": "object",
                "required": ["status", "delivery"],
                "properties": {
                    "status": {"type": "string", "enum": ["pong", "duplicate", "queued"]},
                    "delivery": {"type": "string"},
                    "job": {"type": "integer", "description": "The queued job's id (202 only)"},
                },
            },
            "Job": {
                "type": "object",
                "required": ["id", "kind", "state", "attempts", "run_after", "created_at", "updated_at", "payload"],
                "properties": {
                    "id": {"type": "integer"},
                    "kind": {"type": "string"},
                    "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                    "attempts": {"type": "integer"},
                    "run_after": {"type": "number", "description": "Unix time"},
                    "created_at": {"type": "string"},
                    "updated_at": {"type": "string"},
                    "last_error": _NULLABLE_STRING,
                    "dedupe_key": _NULLABLE_STRING,
                    "claimed_by": {
                        **_NULLABLE_STRING,
                        "description": "The replica running the job (HOST:PID) while it is running",
                    },
                    "payload": {"type": "object"},
                },
            },
            "Event": {
                "type": "object",
                "required": ["serial", "type", "occurred_at", "data"],
                "properties": {
                    "serial": {"type": "integer"},
                    "type": {"type": "string"},
                    "occurred_at": {"type": "string"},
                    "data": {"type": "object"},
                },
            },
            "Subscription": {
                "type": "object",
                "required": ["id", "url", "events", "namespaces", "source", "created_at"],
                "properties": {
                    "id": {"type": "string"},
                    "url": {"type": "string"},
                    "events": _STRINGS,
                    "namespaces": _STRINGS,
                    "source": {"type": "string"},
                    "created_at": {"type": "string"},
                },
            },
            "SubscriptionStatus": {
                "allOf": [
                    _ref("Subscription"),
                    {
                        "type": "object",
                        "required": ["serial", "lag", "attempts", "pending_failures", "running"],
                        "properties": {
                            "serial": {"type": "integer"},
                            "lag": {"type": "integer", "minimum": 0},
                            "attempts": {"type": "integer"},
                            "next_attempt_at": {"type": "number"},
                            "last_error": _NULLABLE_STRING,
                            "pending_failures": {"type": "integer"},
                            "delivered": {"type": "integer"},
                            "failed_attempts": {"type": "integer"},
                            "parked": {"type": "integer"},
                            "running": {"type": "boolean"},
                            "lease_held": {
                                "type": "boolean",
                                "description": "whether this process holds the subscriber's lease (delivers to it)",
                            },
                        },
                    },
                ]
            },
            "DeliveryFailure": {
                "type": "object",
                "required": ["id", "subscription_id", "serial", "attempts", "last_error", "failed_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "subscription_id": {"type": "string"},
                    "serial": {"type": "integer"},
                    "attempts": {"type": "integer"},
                    "last_error": {"type": "string"},
                    "failed_at": {"type": "string"},
                    "redelivered_at": _NULLABLE_STRING,
                },
            },
        },
    },
}


def spec(app: web.Application | None = None) -> dict[str, Any]:
    """The OpenAPI document (a fresh copy; ``servers`` is left out: paths are relative to the host)."""
    return copy.deepcopy(_SPEC)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(spec(request.app))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/openapi.json", openapi_json),
    ]
