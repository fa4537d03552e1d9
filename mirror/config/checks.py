"""Checks of a loaded config that one key's type cannot make: bounds, keys that go together, URLs,
namespaces, the backends this process knows. Each problem is one line naming its section and key.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mirror.config.sections import POLL_INTERVAL_BOUNDS, AuthConfig, Config, GitHubConfig, OidcConfig, WebhooksConfig
from mirror.config.upstreams import check_upstreams
from mirror.domain.addresses import valid_namespace
from mirror.domain.monorepo import MappingError, parse_monorepos
from mirror.domain.oidc import parse_rules
from mirror.domain.urls import http_url, valid_registry_host


def check(config: Config, metadata_backends: frozenset[str], blob_backends: frozenset[str]) -> list[str]:
    """Every problem between keys and of bounds, in the order of the sections."""
    problems: list[str] = []
    server, downloads, limits = config.server, config.downloads, config.limits

    if not 0 <= server.port <= 65535:
        problems.append(f"[server] port must be between 0 and 65535, not {server.port}")
    if server.public_url is not None:
        if http_url(server.public_url) is None:
            problems.append(f"[server] public_url must be an http(s) URL, not {server.public_url!r}")
    if server.registry_host is not None and not valid_registry_host(server.registry_host):
        problems.append(
            f"[server] registry_host must be a hostname with an optional :PORT (e.g. registry.example.com), "
            f"not {server.registry_host[:100]!r}"
        )
    if (server.tls_cert is None) != (server.tls_key is None):
        problems.append("[server] tls_cert and tls_key must be set together")
    for key in ("tls_cert", "tls_key"):
        tls_path = getattr(server, key)
        if tls_path is not None and not tls_path.is_file():
            problems.append(f"[server] {key}: file {tls_path} does not exist")

    if not 0 <= config.metadata.cache_seconds <= 300:
        problems.append("[metadata] cache_seconds must be between 0 and 300")
    if config.metadata.backend not in metadata_backends:
        problems.append(
            f"[metadata] backend must be one of {', '.join(sorted(metadata_backends))}, not {config.metadata.backend!r}"
        )
    if config.metadata.backend == "dynamodb" and not config.metadata.table:
        problems.append("[metadata] table is required when [metadata] backend = \"dynamodb\"")
    if config.metadata.endpoint_url is not None and http_url(config.metadata.endpoint_url) is None:
        problems.append(f"[metadata] endpoint_url must be an http(s) URL, not {config.metadata.endpoint_url!r}")
    if config.blobs.backend not in blob_backends:
        problems.append(f"[blobs] backend must be one of {', '.join(sorted(blob_backends))}, not {config.blobs.backend!r}")
    if config.blobs.backend == "s3" and not config.s3.bucket:
        problems.append("[s3] bucket is required when [blobs] backend = \"s3\"")
    if config.s3.endpoint_url is not None:
        if http_url(config.s3.endpoint_url) is None:
            problems.append(f"[s3] endpoint_url must be an http(s) URL, not {config.s3.endpoint_url!r}")

    if downloads.mode in ("s3", "presigned") and config.blobs.backend != "s3":
        problems.append(f"[downloads] mode = \"{downloads.mode}\" needs [blobs] backend = \"s3\"")
    if not 60 <= downloads.ttl_seconds <= 7 * 24 * 3600:
        problems.append(
            "[downloads] ttl_seconds must be between 60 and 604800: a whole `terraform init` must fit in it"
        )
    if downloads.signing_key is not None and len(downloads.signing_key) < 32:
        problems.append("[downloads] signing_key must be at least 32 characters")

    for key in ("max_archive_bytes", "max_unpacked_bytes", "max_files", "max_provider_zip_bytes",
                "max_provider_release_bytes", "max_provider_files"):
        if getattr(limits, key) <= 0:
            problems.append(f"[limits] {key} must be positive")
    analysis = config.analysis
    if not 1 <= analysis.cpu_seconds <= 3600:
        problems.append("[analysis] cpu_seconds must be between 1 and 3600")
    if not 64 <= analysis.memory_mb <= 65536:
        problems.append("[analysis] memory_mb must be between 64 and 65536")
    if not 1 <= analysis.timeout_seconds <= 3600:
        problems.append("[analysis] timeout_seconds must be between 1 and 3600")
    if not 1 <= analysis.workers <= 64:
        problems.append("[analysis] workers must be between 1 and 64")
    problems.extend(_validate_auth(config.auth))
    problems.extend(_validate_oidc(config.oidc, server.public_url))
    problems.extend(_validate_github(config.github))
    problems.extend(_validate_monorepos(config.github))
    problems.extend(_validate_webhooks(config.webhooks))
    problems.extend(check_upstreams(config.upstreams))
    if config.events.log_max_bytes < 1024:
        problems.append("[events] log_max_bytes must be at least 1024")
    jobs = config.jobs
    if jobs.lease_seconds < 1 or jobs.max_attempts < 1 or jobs.backoff_base <= 0 or jobs.backoff_max < jobs.backoff_base:
        problems.append("[jobs] lease_seconds >= 1, max_attempts >= 1 and 0 < backoff_base <= backoff_max are required")
    for namespace in config.browse.verified_namespaces:
        if not valid_namespace(namespace):
            problems.append(f"[browse] verified_namespaces: {namespace!r} is not a valid namespace")
    if config.logging.level.lower() not in ("debug", "info", "warning", "error"):
        problems.append(f"[logging] level must be debug, info, warning or error, not {config.logging.level!r}")
    return problems


#: the longest token lifetime the config may set: 100 years
_LONGEST_TOKEN_EXPIRY = 100 * 365 * 24 * 3600


def _validate_auth(auth: AuthConfig) -> list[str]:
    problems = []
    default, longest = auth.token_default_expiry_seconds, auth.token_max_expiry_seconds
    for key, value in (("token_default_expiry_seconds", default), ("token_max_expiry_seconds", longest)):
        if not 0 <= value <= _LONGEST_TOKEN_EXPIRY:
            problems.append(f"[auth] {key} must be between 0 and {_LONGEST_TOKEN_EXPIRY} (100 years), not {value}")
    if longest and not 1 <= default <= longest:
        problems.append(
            f"[auth] token_default_expiry_seconds must be between 1 and token_max_expiry_seconds ({longest}), "
            f"not {default}"
        )
    return problems


def _validate_oidc(oidc: OidcConfig, public_url: str | None) -> list[str]:
    if not oidc.enabled:
        return [] if oidc.client_id is None and not oidc.grants else [
            "[oidc] issuer is required when client_id or [[oidc.grants]] is set"
        ]
    problems = []
    issuer = oidc.issuer or ""
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if http_url(issuer) is None or parts.query or parts.fragment or (parts.scheme != "https" and not loopback):
        problems.append(
            f"[oidc] issuer must be an https URL without query or fragment (http only on a loopback address), not {issuer[:200]!r}"
        )
    if not oidc.client_id:
        problems.append("[oidc] client_id is required with issuer")
    if "openid" not in oidc.scopes:
        problems.append("[oidc] scopes must include \"openid\"")
    if not oidc.groups_claim:
        problems.append("[oidc] groups_claim must not be empty")
    if not 300 <= oidc.session_seconds <= 30 * 24 * 3600:
        problems.append(f"[oidc] session_seconds must be between 300 and 2592000 (30 days), not {oidc.session_seconds}")
    if public_url is None:
        problems.append("[oidc] needs [server] public_url: the provider sends people back to PUBLIC_URL/oidc/callback")
    problems.extend(f"[oidc] {problem}" for problem in parse_rules(oidc.grants, oidc.groups_claim)[1])
    return problems


def _validate_github(github: GitHubConfig) -> list[str]:
    if not github.enabled:
        return []
    problems = []
    if github.mode != "poll" and not (github.webhook_secret or github.webhook_secret_file):
        problems.append(
            "[github] webhook_secret (or webhook_secret_file) is required: webhooks are never accepted unverified"
        )
    for key in ("webhook_secret_file", "private_key_file"):
        path = getattr(github, key)
        if path is not None and not path.is_file():
            problems.append(f"[github] {key}: file {path} does not exist")
    if github.app_id and not (github.private_key or github.private_key_file):
        problems.append("[github] app_id needs private_key or private_key_file")
    if not (github.app_id or github.token):
        problems.append("[github] set app_id and private_key (a GitHub App) or token (a plain webhook)")
    if github.timeout <= 0:
        problems.append("[github] timeout must be positive")
    if github.workers < 1:
        problems.append("[github] workers must be at least 1")
    if github.reconcile_interval < 0:
        problems.append("[github] reconcile_interval must be 0 (off) or a number of seconds")
    low, high = POLL_INTERVAL_BOUNDS
    if not low <= github.poll_interval <= high:
        problems.append(f"[github] poll_interval must be between {low} and {high} seconds, not {github.poll_interval}")
    if github.mode != "webhook" and github.token and not github.app_id and not github.accounts:
        problems.append(
            f'[github] accounts is required with a token in mode = "{github.mode}": the users or organizations to poll'
        )
    for account in github.accounts:
        if not valid_namespace(account):
            problems.append(f"[github] accounts: {account!r} is not a GitHub user or organization name")
    if http_url(github.api_url) is None:
        problems.append(f"[github] api_url must be an http(s) URL, not {github.api_url[:200]!r}")
    for login, namespace in github.namespaces.items():
        if not valid_namespace(namespace):
            problems.append(f"[github] namespaces: {login!r} maps to an invalid namespace {namespace!r}")
    return problems


def _validate_monorepos(github: GitHubConfig) -> list[str]:
    """``[[github.monorepos]]``: each entry's repository and module mapping (``mirror.domain.monorepo``)."""
    try:
        parse_monorepos(github.monorepos)
    except MappingError as exc:
        return [str(exc)]
    return []


def _validate_webhooks(webhooks: WebhooksConfig) -> list[str]:
    problems = []
    if webhooks.timeout_seconds <= 0 or webhooks.max_attempts < 1:
        problems.append("[webhooks] timeout_seconds must be positive and max_attempts at least 1")
    if webhooks.backoff_base <= 0 or webhooks.backoff_max < webhooks.backoff_base:
        problems.append("[webhooks] 0 < backoff_base <= backoff_max is required")
    if webhooks.lease_seconds <= webhooks.timeout_seconds:
        problems.append("[webhooks] lease_seconds must be more than timeout_seconds (a delivery fits in a lease)")
    for number, subscription in enumerate(webhooks.subscriptions, start=1):
        where = f"[[webhooks.subscriptions]] #{number}"
        unknown = set(subscription) - {"url", "secret", "events", "namespaces"}
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        url = subscription.get("url")
        if http_url(url) is None:
            problems.append(f"{where}: url must be an http(s) URL")
        secret = subscription.get("secret")
        if not isinstance(secret, str) or len(secret) < 16:
            problems.append(f"{where}: secret must be a string of at least 16 characters")
        for key in ("events", "namespaces"):
            value = subscription.get(key, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                problems.append(f"{where}: {key} must be a list of strings")
    return problems
