"""The API's route table: what ``mirror.http.openapi`` documents for each operation (the web
UI's pages are in ``models.ui``). ``tests/test_openapi.py`` keeps it in step with the router."""

from __future__ import annotations

from typing import Any

from mirror.http.models import audit, browse, events, jobs, operations, protocol, providers, publish, sessions, tokens, webhooks
from mirror.http.models.base import MAX_ID, SHA256_PATTERN
from mirror.http.models.provider_routes import PROVIDER_ROUTES
from mirror.http.models.route import ADMIN_NOTE, OPEN, READ_NOTE, Route

MODULE = ("namespace", "name", "provider")
MODULE_PATH = "/v1/modules/{namespace}/{name}/{provider}"
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


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}}


def _header(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "schema": schema} | (
        {"description": description} if description else {}
    )


_LIST = dict(query=browse.ListQuery, responses={200: (browse.ModuleList, "A page of modules")}, errors=(400, 401, 403))

ROUTES: list[Route] = [
    # -- operations
    Route("get", "/healthz", "healthz", "Liveness: ok while the process answers (no store is asked; see /readyz)",
          "operations", security=OPEN, responses={200: (operations.Alive, "The process is alive")}),
    Route("get", "/readyz", "readyz", "Readiness, for load balancers: ready while the metadata and blob stores "
          "answer (2 s each); 503 naming what is unreachable", "operations", security=OPEN,
          responses={200: (operations.Ready, "Both stores answer")}, errors=(503,)),
    Route("get", "/openapi.json", "openapi", "This OpenAPI document", "operations", security=OPEN,
          responses={200: {"description": "The OpenAPI 3.1 document",
                           "content": {"application/json": {"schema": {"type": "object"}}}}}),
    Route("get", "/metrics", "metrics", "Prometheus metrics (when `metrics.enabled`): requests by route template "
          "and status, latency, downloads, ingests, jobs, webhook deliveries; never module names or tokens",
          "operations", security=OPEN,
          responses={200: {"description": "The Prometheus text exposition format",
                           "content": {"text/plain": {"schema": {"type": "string"}}}}}),
    # -- terraform
    Route("get", "/.well-known/terraform.json", "discovery", "Terraform service discovery", "terraform",
          READ_NOTE, responses={200: (protocol.Discovery, "Where the modules.v1 protocol is served")},
          errors=(401, 403)),
    Route("get", MODULE_PATH + "/versions", "listVersions", "A module's live versions, newest first", "terraform",
          READ_NOTE + " " + _PULL_THROUGH_VERSIONS, params=MODULE,
          responses={200: (protocol.VersionsList, "The versions")}, errors=(400, 401, 403, 404, 502)),
    Route("get", MODULE_PATH + "/{version}/download", "downloadVersion",
          "Where to download a version's archive (counts a download)", "terraform",
          READ_NOTE + " The location is also in the `X-Terraform-Get` header. " + _PULL_THROUGH_DOWNLOAD,
          params=(*MODULE, "version"),
          responses={200: (protocol.DownloadLocation, "The archive's location", {"headers": {"X-Terraform-Get": {
              "description": "The archive's location", "schema": {"type": "string"}}}})},
          errors=(400, 401, 403, 404, 502, 503)),
    Route("get", MODULE_PATH + "/download", "downloadLatest", "Redirect to the latest version's download",
          "terraform", READ_NOTE, params=MODULE,
          responses={302: {"description": "Redirect to `/v1/modules/:ns/:name/:provider/:version/download`",
                           "headers": {"Location": {"description": "The download URL", "schema": {"type": "string"}}}}},
          errors=(400, 401, 403, 404)),
    Route("get", "/v1/archives/{sha256}.tar.gz", "downloadArchive",
          "A module archive by signed URL (proxy download mode)", "terraform",
          "No bearer token: the `expires` and `signature` query parameters authorize it.", security=OPEN,
          params=({"name": "sha256", "in": "path", "required": True,
                   "description": "The archive's SHA-256, 64 lowercase hex digits",
                   "schema": {"type": "string", "pattern": SHA256_PATTERN}},),
          query=protocol.ArchiveQuery,
          responses={200: {"description": "The archive",
                           "headers": {"ETag": {"description": "The quoted SHA-256", "schema": {"type": "string"}}},
                           "content": {"application/gzip": {"schema": {"type": "string",
                                                                        "contentMediaType": "application/gzip"}}}}},
          errors=(401, 404)),
    # -- browse
    Route("get", "/v1/modules", "listModules", "Modules with their latest version", "browse",
          READ_NOTE + " A namespace token lists only its own namespace.", **_LIST),
    Route("get", "/v1/modules/", "listModulesSlash", "Modules with their latest version (the discovery base URL)",
          "browse", READ_NOTE + " The same as `/v1/modules`.", **_LIST),
    Route("get", "/v1/modules/search", "searchModules", "Search modules by namespace, name, provider and description",
          "browse", READ_NOTE + " Case-insensitive substring match.", query=browse.SearchQuery,
          responses={200: (browse.ModuleList, "A page of matching modules")}, errors=(400, 401, 403)),
    Route("get", "/v1/modules/{namespace}", "listNamespaceModules", "A namespace's modules with their latest version",
          "browse", READ_NOTE, params=("namespace",), **_LIST),
    Route("get", "/v1/modules/{namespace}/{name}", "listModuleProviders",
          "The latest version of every provider of a module", "browse", READ_NOTE, params=("namespace", "name"),
          query=browse.PageQuery, responses={200: (browse.ModuleList, "A page of modules")},
          errors=(400, 401, 403, 404)),
    Route("get", MODULE_PATH, "getLatestVersion", "The latest version in detail (highest release, else prerelease)",
          "browse", READ_NOTE, params=MODULE, responses={200: (browse.ModuleDetail, "The version")},
          errors=(400, 401, 403, 404)),
    Route("get", MODULE_PATH + "/{version}", "getVersion",
          "A version in detail: inputs, outputs, dependencies and resources", "browse", READ_NOTE,
          params=(*MODULE, "version"), responses={200: (browse.ModuleDetail, "The version")},
          errors=(400, 401, 403, 404)),
    # -- publish
    Route("get", "/api" + MODULE_PATH, "getModuleRecord", "A module's record: its owner source and upload allowance",
          "publish", "Read scope on the namespace.", params=MODULE,
          responses={200: (publish.ModuleRecord, "The module")}, errors=(400, 401, 403, 404)),
    Route("patch", "/api" + MODULE_PATH, "setModulePolicy",
          "Allow or refuse uploads to a module, or hand it to another owner source", "publish",
          "Admin scope on the namespace. A module belongs to the source that created it; `allow_uploads` lets "
          "uploads add versions to a module another source owns, and `owner_source` hands the module to another "
          "source. Writes a `module.policy_changed` event.", params=MODULE, body=publish.ModulePolicy,
          responses={200: (publish.ModuleRecord, "The module as changed")}, errors=(400, 401, 403, 404, 409, 413)),
    Route("put", "/api" + MODULE_PATH + "/{version}", "publishVersion", "Publish a version from a .tar.gz archive",
          "publish", "Publish scope on the namespace. Publishing identical content again is a 200.",
          params=(*MODULE, "version"),
          body={"required": True,
                "description": "The module as a gzipped tar archive, at most `limits.max_archive_bytes`",
                "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                      "contentMediaType": "application/gzip"}}}},
          responses={201: (publish.PublishOutcome, "Published"),
                     200: (publish.PublishOutcome, "Already published with the same content")},
          errors=(400, 401, 403, 409, 413, 422, 503)),
    Route("post", "/api" + MODULE_PATH + "/{version}/deprecate", "deprecateVersion",
          "Deprecate a version: a reason and a suggested replacement, shown on the version", "publish",
          "Publish scope on the namespace for modules published over the API; admin scope for any owner source "
          "(another owner's module is a 409). The version stays in `versions` (no released Terraform reads a "
          "module deprecation); `deprecation` shows on the version's detail. Posting again replaces it. Writes "
          "`module.version_deprecated`.", params=(*MODULE, "version"), body=providers.DeprecationBody,
          responses={200: (providers.Deprecated, "Deprecated")}, errors=(400, 401, 403, 404, 409, 413, 415)),
    Route("post", "/api" + MODULE_PATH + "/{version}/revoke", "revokeVersion",
          "Revoke a version: gone from versions and downloads", "publish",
          "Publish scope on the namespace for modules published over the API; admin scope for any owner source "
          "(another owner's module is a 409). Publishing the same archive again brings it back. Writes "
          "`module.version_revoked`.", params=(*MODULE, "version"),
          responses={204: {"description": "Revoked"}}, errors=(400, 401, 403, 404, 409)),
    Route("delete", "/api" + MODULE_PATH, "deleteModule", "Delete a module with all its versions", "publish",
          "Admin scope on the namespace, whatever owns the module. Archives no other version uses are removed "
          "from the blob store. Writes `module.deleted`.", params=MODULE,
          responses={204: {"description": "Deleted"}}, errors=(400, 401, 403, 404)),
    # -- github
    Route("post", "/github/webhook", "githubWebhook", "GitHub App webhook deliveries (only when [github] is configured)",
          "github", "Authenticated by the `X-Hub-Signature-256` HMAC of the body, not a bearer token. `ping` answers "
          "200; events mirror does not act on answer 204. A missing or malformed signature, event or delivery "
          "header, content type or length is refused before the body is read; the body must arrive within "
          "`[github] webhook_body_seconds` (408), and a large one that finds every slot taken is a 503 with "
          "`Retry-After`. A body seen before, under any delivery id, is a duplicate (200) and is not queued again.",
          security=OPEN,
          params=(_header("X-Hub-Signature-256", {"type": "string"}, "`sha256=` HMAC of the body with the webhook secret"),
                  _header("X-GitHub-Event", {"type": "string", "minLength": 1}),
                  _header("X-GitHub-Delivery", {"type": "string", "minLength": 1, "maxLength": 100})),
          body={"required": True, "description": "The event payload, at most 25 MB",
                "content": {"application/json": {"schema": {"type": "object"}}}},
          responses={200: (operations.WebhookDelivery, "A ping, or a delivery whose body was seen before (not queued again)"),
                     202: (operations.WebhookDelivery, "Queued as a background job"),
                     204: {"description": "An event mirror does not act on"}},
          errors=(400, 401, 408, 413, 415, 503)),
    # -- jobs
    Route("get", "/api/v1/jobs", "listJobs", "Background jobs, newest first", "jobs", ADMIN_NOTE, query=jobs.JobsQuery,
          responses={200: (jobs.JobList, "The jobs")}, errors=(400, 401, 403)),
    Route("post", "/api/v1/jobs/{id}/retry", "retryJob", "Queue a failed job again with fresh attempts", "jobs",
          ADMIN_NOTE, params=(_id("id"),), responses={200: (jobs.OneJob, "The requeued job")}, errors=(401, 403, 404, 409)),
    # -- events
    Route("get", "/api/v1/events", "listEvents", "The event feed", "events",
          "Read scope; a token is always required. A namespace token sees only its namespace's events, so a page "
          "may hold fewer than `limit` events: pass `next_after` as `after` next time; `next_after >= latest` "
          "means caught up.", query=events.EventsQuery, responses={200: (events.EventPage, "A page of events")},
          errors=(400, 401, 403)),
    Route("get", "/api/v1/audit", "listChanges", "The audit trail: changes with who made each, oldest first", "events",
          "Read scope; a token is always required. A `*` token sees every change, a namespace token its namespace's "
          "only (another `namespace` is a 403). Filters: `actor` (a kind, or a token id, GitHub delivery or job id, "
          "upstream host, bundle file), `namespace` (case-insensitive), `since`/`until` (RFC 3339 on `occurred_at`, "
          "both included). A request reads at most 5,000 events, so a page may hold fewer than `limit` changes: "
          "pass `next_after` as `after` next time; `next_after >= latest` means every change was read.",
          query=audit.AuditQuery, responses={200: (audit.AuditPage, "A page of changes")}, errors=(400, 401, 403)),
    # -- webhooks
    Route("post", "/api/v1/webhooks", "createWebhook", "Subscribe a URL to events", "webhooks", ADMIN_NOTE,
          body=webhooks.NewWebhook, responses={201: (webhooks.OneSubscription, "The subscription")},
          errors=(400, 401, 403, 409)),
    Route("get", "/api/v1/webhooks", "listWebhooks", "Every subscription with its cursor, lag and counters",
          "webhooks", ADMIN_NOTE, responses={200: (webhooks.SubscriptionList, "The subscriptions")}, errors=(401, 403)),
    Route("get", "/api/v1/webhooks/{id}", "getWebhook", "One subscription's status", "webhooks", ADMIN_NOTE,
          params=("webhookId",), responses={200: (webhooks.OneSubscriptionStatus, "The subscription")},
          errors=(401, 403, 404)),
    Route("delete", "/api/v1/webhooks/{id}", "deleteWebhook", "Remove a subscription", "webhooks",
          ADMIN_NOTE + " Subscriptions from the config file are a 409: remove them there.", params=("webhookId",),
          responses={204: {"description": "Removed"}}, errors=(401, 403, 404, 409)),
    Route("get", "/api/v1/webhooks/{id}/failures", "listWebhookFailures", "A subscription's parked events (dead letters)",
          "webhooks", ADMIN_NOTE, params=("webhookId",), query=webhooks.FailuresQuery,
          responses={200: (webhooks.FailureList, "The failures")}, errors=(401, 403, 404)),
    Route("post", "/api/v1/webhooks/{id}/failures/{failure_id}/redeliver", "redeliverWebhookFailure",
          "One immediate attempt at a parked event", "webhooks", ADMIN_NOTE, params=("webhookId", _id("failure_id")),
          responses={200: (webhooks.Redelivered, "Delivered")}, errors=(401, 403, 404, 502)),
]
ROUTES += PROVIDER_ROUTES

_TOKENS_NOTE = (
    "Any valid token. A token makes tokens within its own grant: its namespace (any for a `*` token), the same "
    "or a lower scope (read < publish < admin), expiring no later than itself; registry-wide admins (`*`/admin) "
    "make tokens for anyone. A token sees and revokes itself and the tokens it made, a namespace admin also its "
    "namespace's tokens, a registry-wide admin every token."
)
_TOKEN_ID = {"name": "id", "in": "path", "required": True, "description": "The token's id (never its secret)",
             "schema": {"type": "string", "pattern": tokens.ID_PATTERN}}
ROUTES += [
    # -- tokens
    Route("post", "/api/v1/tokens", "createToken", "Make a token; its secret is in this answer only", "tokens",
          _TOKENS_NOTE + " `expires_in` defaults to `[auth] token_default_expiry_seconds`; beyond "
          "`[auth] token_max_expiry_seconds` is a 400.", body=tokens.NewToken,
          responses={201: (tokens.OneCreatedToken, "The token, with its secret")}, errors=(400, 401, 403, 413)),
    Route("get", "/api/v1/tokens", "listTokens", "The tokens this token may manage: description, creator, expiry, "
          "last use (never a secret)", "tokens", _TOKENS_NOTE,
          responses={200: (tokens.TokenList, "The tokens, oldest first")}, errors=(401,)),
    Route("delete", "/api/v1/tokens/{id}", "revokeToken", "Revoke a token", "tokens",
          _TOKENS_NOTE + " A token this token may not manage is a 404, as is one already revoked.", params=(_TOKEN_ID,),
          responses={204: {"description": "Revoked"}}, errors=(401, 404)),
]

_SESSION_ID = {"name": "id", "in": "path", "required": True, "description": "The session's id (never its secret)",
               "schema": {"type": "string", "pattern": sessions.ID_PATTERN}}
ROUTES += [
    # -- sessions
    Route("get", "/api/v1/sessions", "listSessions", "Signed-in people's sessions: who, their grants, when they end",
          "tokens", ADMIN_NOTE + " A person sees and ends their own sessions on the web UI's `/sessions` page.",
          responses={200: (sessions.SessionList, "The sessions, oldest first (ended ones until purged)")},
          errors=(401, 403)),
    Route("delete", "/api/v1/sessions/{id}", "revokeSession", "End a person's session (sign them out)", "tokens",
          ADMIN_NOTE + " An unknown or already revoked session is a 404.", params=(_SESSION_ID,),
          responses={204: {"description": "Revoked"}}, errors=(401, 403, 404)),
]

_LOGIN_NOTE = (
    "`terraform login` (`login.v1` in discovery): authorization code with PKCE (S256), for the client "
    "`terraform-cli` and Terraform's loopback redirect (`http://localhost:PORT/login` or "
    "`http://127.0.0.1:PORT/...`, PORT from 10000 to 10009)."
)
_OAUTH_QUERY = (
    ("client_id", {"type": "string", "const": "terraform-cli"}),
    ("redirect_uri", {"type": "string", "maxLength": 300}),
    ("response_type", {"type": "string", "const": "code"}),
    ("code_challenge", {"type": "string", "pattern": r"^[A-Za-z0-9_-]{43}$"}),
    ("code_challenge_method", {"type": "string", "const": "S256"}),
    ("state", {"type": "string", "pattern": r"^[\x20-\x7e]{1,500}$"}),
)


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _form(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": required, "properties": properties}}}}


_LOCATION = {"Location": {"description": "`redirect_uri` with `code` and `state` (or `error=access_denied`)",
                          "schema": {"type": "string"}}}
ROUTES += [
    # -- terraform login
    Route("get", "/oauth/authorize", "oauthAuthorizeForm", "terraform login: the sign-in page", "ui",
          _LOGIN_NOTE + " A person signs in with a registry token (or confirms the one the browser's UI session "
          "holds) and chooses a namespace and scope within it. Every refusal is an HTML page; nothing redirects "
          "to a `redirect_uri` that was not checked.", security=[{"cookieAuth": []}, {}],
          params=tuple({"name": name, "in": "query", "required": True, "schema": schema} for name, schema in _OAUTH_QUERY),
          responses={200: _html("The sign-in page"), 400: _html("An error page: the request is refused")}),
    Route("post", "/oauth/authorize", "oauthAuthorize", "terraform login: sign in and issue an authorization code",
          "ui", _LOGIN_NOTE + " The form of `GET /oauth/authorize` (a post from another site is a 403). The code "
          "is usable once, for 60 seconds, bound to the challenge, the redirect URI and the grant.",
          security=[{"cookieAuth": []}, {}],
          body=_form([name for name, _ in _OAUTH_QUERY], {
              **{name: schema for name, schema in _OAUTH_QUERY},
              "token": {"type": "string", "description": "A registry token (else the UI session's)"},
              "namespace": {"type": "string", "description": "The new token's namespace (default: the signing token's)"},
              "scope": {"type": "string", "enum": ["", "read", "publish", "admin"]},
              "decision": {"type": "string", "enum": ["allow", "deny"]}}),
          responses={303: {"description": "To Terraform's listener with the code", "headers": _LOCATION},
                     400: _html("An error page, or the form again naming the problem"),
                     401: _html("The form again: no token, or one not valid"),
                     403: _html("The grant is beyond the signing token's, or the form came from another site")}),
    Route("post", "/oauth/token", "oauthToken", "terraform login: exchange a code for a registry token", "tokens",
          _LOGIN_NOTE + " No bearer token: the code and its PKCE verifier authorize it. The new token is within "
          "the code's grant, expires after `[auth] token_default_expiry_seconds` (no later than the signing "
          "token), and names the signing token as its creator. A reused code is refused and the token it got is "
          "revoked. Errors carry OAuth's `error` and `error_description` beside `errors`.", security=OPEN,
          body=_form(["grant_type", "code", "redirect_uri", "client_id", "code_verifier"], {
              "grant_type": {"type": "string", "const": "authorization_code"},
              "code": {"type": "string", "maxLength": 2048},
              "redirect_uri": {"type": "string", "maxLength": 300},
              "client_id": {"type": "string", "const": "terraform-cli"},
              "code_verifier": {"type": "string", "pattern": r"^[A-Za-z0-9._~-]{43,128}$"}}),
          responses={200: (protocol.OAuthToken, "The new token", {"headers": {"Cache-Control": {
              "description": "`no-store`", "schema": {"type": "string"}}}})},
          errors=(400, 413)),
]
