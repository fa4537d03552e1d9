"""The sections of the config file, one frozen model per ``[table]``, and ``Config``, all of them.

Each key's type (``mirror.config.fields``) reads TOML and ``MIRROR_<SECTION>_<KEY>`` values alike;
its description is the configuration reference (``mirror.config.reference``). Checks between
keys are in ``mirror.config.checks``; ``mirror.config.loader`` reads, derives and checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.dataclasses import dataclass

from mirror.config.fields import (
    SECTION,
    FilePath,
    Flag,
    Number,
    OptionalPath,
    OptionalText,
    Strings,
    StringTable,
    Tables,
    Text,
    Whole,
    choice,
)
from mirror.config.upstreams import UpstreamConfig
from mirror.formats.archive import ArchiveLimits
from mirror.formats.provider_zip import ProviderZipLimits

MiB = 1024 * 1024
#: ``[server] data_dir`` when unset, relative to the working directory
DEFAULT_DATA_DIR = Path("mirror-data")


@dataclass(frozen=True, config=SECTION)
class ServerConfig:
    """The HTTP server."""

    host: Text = Field("127.0.0.1", description="Address to listen on (`serve --host` wins).")
    port: Whole = Field(8080, description="Port to listen on, 0 to 65535 (`serve --port` wins).")
    public_url: OptionalText = Field(
        None,
        description="The http(s) URL clients reach the registry at (behind a proxy, say). When unset, "
        "download locations are relative to the request, which Terraform resolves against the registry.",
    )
    registry_host: OptionalText = Field(
        None,
        description="The hostname users write in provider addresses (`HOST/namespace/type`) and module sources, "
        "with `:PORT` when not 443. Default: `public_url`'s host, else the `Host` each request was sent to.",
    )
    tls_cert: OptionalPath = Field(None, description="TLS certificate file; set with `tls_key` to serve HTTPS.")
    tls_key: OptionalPath = Field(None, description="TLS private key file; set with `tls_cert`.")
    shutdown_timeout: Number = Field(30.0, description="Seconds running requests get to finish on shutdown.")
    data_dir: FilePath = Field(
        DEFAULT_DATA_DIR,
        description="The directory every default path derives from (relative: to the working directory). "
        "A path set explicitly wins, and a relative one stays relative to the working directory.",
    )
    spool_dir: FilePath = Field(
        DEFAULT_DATA_DIR / "spool",
        description="Where uploads and GitHub downloads are spooled while they are checked; entries a crash "
        "left behind are removed at start-up. Default: `data_dir/spool`.",
    )


@dataclass(frozen=True, config=SECTION)
class MetadataConfig:
    """The metadata store: modules, versions, tokens, jobs, events."""

    backend: Text = Field(
        "sqlite", description='`"sqlite"`, `"dynamodb"`, or the entry-point name of a metadata store plug-in.'
    )
    path: FilePath = Field(DEFAULT_DATA_DIR / "mirror.db", description="The SQLite database. Default: `data_dir/mirror.db`.")
    cache_seconds: Number = Field(
        2.0,
        description="How long this process serves a module's versions from memory (0 to 300); its own writes show at once.",
    )
    table: Text = Field("", description='The DynamoDB table (`mirror dynamodb create-table` makes it); required with backend "dynamodb".')
    region: Text = Field("us-east-1", description="The DynamoDB region; credentials come from the standard AWS chain.")
    endpoint_url: OptionalText = Field(None, description="An http(s) endpoint for DynamoDB-compatible servers.")


@dataclass(frozen=True, config=SECTION)
class BlobsConfig:
    """The blob store: module archives."""

    backend: Text = Field('local', description='`"local"`, `"s3"` (see `[s3]`), or the entry-point name of a blob store plug-in.')
    path: FilePath = Field(DEFAULT_DATA_DIR / "blobs", description="The local blob directory. Default: `data_dir/blobs`.")


@dataclass(frozen=True, config=SECTION)
class S3Config:
    """The S3 bucket of `[blobs] backend = "s3"`."""

    bucket: Text = Field("", description='The bucket; required with `[blobs] backend = "s3"`.')
    prefix: Text = Field("", description="A key prefix for every object.")
    region: Text = Field("us-east-1", description="The bucket's region.")
    endpoint_url: OptionalText = Field(
        None, description="An http(s) endpoint for S3-compatible stores (MinIO, Ceph, moto); path-style addressing is used then."
    )
    access_key_id: OptionalText = Field(None, description="Optional; the standard AWS credential chain is used when unset.")
    secret_access_key: OptionalText = Field(None, description="Optional, with `access_key_id`.")


DownloadMode = choice("s3", "presigned", "proxy")


@dataclass(frozen=True, config=SECTION)
class DownloadsConfig:
    """The download locations Terraform is given."""

    mode: DownloadMode = Field(
        "proxy",
        description='`"proxy"`: the registry serves archives itself; `"s3"` or `"presigned"`: presigned S3 URLs '
        '(needs `[blobs] backend = "s3"`).',
    )
    ttl_seconds: Whole = Field(
        900, description="How long a download URL stays valid, 60 to 604800: a whole `terraform init` must fit in it."
    )
    signing_key: OptionalText = Field(
        None,
        description="HMAC key of proxy download URLs, at least 32 characters; generated once and kept in the "
        "metadata store when unset.",
    )


@dataclass(frozen=True, config=SECTION)
class AuthConfig:
    """Who may read, and how long the tokens made over the API (`POST /api/v1/tokens`) last."""

    anonymous_read: Flag = Field(False, description="Serve modules to clients without a token.")
    token_default_expiry_seconds: Whole = Field(
        90 * 24 * 3600,
        description="Lifetime of a token made over the API when the request names none, in seconds "
        "(default 90 days); 0: such tokens never expire (only when `token_max_expiry_seconds` is 0 too). "
        "Tokens made on the server with `mirror token create` never expire unless given `--expires`.",
    )
    token_max_expiry_seconds: Whole = Field(
        365 * 24 * 3600,
        description="Longest lifetime a request may ask for (`expires_in`), in seconds (default 1 year); "
        "0: no maximum.",
    )


@dataclass(frozen=True, config=SECTION)
class OidcConfig:
    """Sign-in to the web UI and `terraform login` through an OpenID Provider (authorization code
    with PKCE). The redirect URI to register at the provider is `PUBLIC_URL/oidc/callback`."""

    issuer: OptionalText = Field(
        None,
        description="The provider's issuer URL, exactly as its discovery document names it (https; http only "
        "for a provider on a loopback address). Setting it turns sign-in on.",
    )
    client_id: OptionalText = Field(None, description="The client id registered at the provider; required with `issuer`.")
    client_secret: OptionalText = Field(
        None,
        description="The client secret (sent with HTTP Basic, or in the form when the provider supports only that); "
        "better given as `MIRROR_OIDC_CLIENT_SECRET`. Unset: a public client (PKCE alone).",
    )
    scopes: Strings = Field(
        ("openid", "profile", "email"), description="Scopes asked for; must include `openid`."
    )
    groups_claim: Text = Field(
        "groups", description="The claim holding the person's groups, read by `[[oidc.grants]]` `group` rules (dotted for nested claims)."
    )
    grants: Tables = Field(
        [],
        description="`[[oidc.grants]]` tables: `group` (a value of `groups_claim`), or `claim` and `value`; "
        "`namespace` (or `\"*\"`) and `scope` (`read`, `publish` or `admin`; default `read`). A person no rule "
        "matches is signed in with no access.",
    )
    session_seconds: Whole = Field(
        8 * 3600, description="How long a sign-in lasts, in seconds (300 to 2592000); sign-out or revoking ends it sooner."
    )
    display_name: Text = Field("single sign-on", description="What the sign-in button names (\"Sign in with ...\").")

    @property
    def enabled(self) -> bool:
        return self.issuer is not None


@dataclass(frozen=True, config=SECTION)
class LimitsConfig:
    """Limits of an uploaded module archive, and of a provider release."""

    max_archive_bytes: Whole = Field(100 * MiB, description="Largest archive accepted, in bytes.")
    max_unpacked_bytes: Whole = Field(500 * MiB, description="Largest total size of its files once unpacked, in bytes.")
    max_files: Whole = Field(10_000, description="Most files an archive may hold.")
    max_provider_zip_bytes: Whole = Field(
        1024 * MiB, description="Largest provider zip accepted (one platform's), in bytes; its binary unpacked may be twice that."
    )
    max_provider_release_bytes: Whole = Field(
        4096 * MiB, description="Largest provider release upload (every file of one `POST`), in bytes."
    )
    max_provider_files: Whole = Field(64, description="Most files one provider release upload may hold (zips, SHA256SUMS, .sig, manifest).")

    def archive_limits(self) -> ArchiveLimits:
        """These limits in the form the archive checks take."""
        return ArchiveLimits(self.max_archive_bytes, self.max_unpacked_bytes, self.max_files)

    def provider_zip_limits(self) -> ProviderZipLimits:
        """The limits of one provider zip, in the form its check takes."""
        return ProviderZipLimits(max_zip_bytes=self.max_provider_zip_bytes, max_unpacked_bytes=2 * self.max_provider_zip_bytes)


@dataclass(frozen=True, config=SECTION)
class AnalysisConfig:
    """Limits of the child processes that parse a module's .tf files, and their result cache."""

    cpu_seconds: Whole = Field(10, description="CPU time one file's parse may take (1 to 3600); a file past it is reported as stopped.")
    memory_mb: Whole = Field(512, description="Address space of one parsing process, in MiB (64 to 65536).")
    timeout_seconds: Number = Field(
        60.0, description="Wall-clock seconds for the analysis of one version (1 to 3600); files not reached are reported."
    )
    workers: Whole = Field(2, description="Parsing processes running at once (1 to 64).")
    cache_dir: OptionalPath = Field(
        DEFAULT_DATA_DIR / "analysis-cache",
        description="Parse results kept by file content. Default: `analysis-cache` beside the spool directory "
        "(`data_dir/analysis-cache` unless `[server] spool_dir` is set); empty means the default.",
    )


@dataclass(frozen=True, config=SECTION)
class JobsConfig:
    """The job queue (GitHub ingests, backfills, reconciles)."""

    lease_seconds: Number = Field(
        60.0, description="A running job's claim (at least 1); a job whose worker died runs again once it lapses (renewed while alive)."
    )
    max_attempts: Whole = Field(8, description="Attempts before a job is given up (at least 1).")
    backoff_base: Number = Field(
        2.0, description="Exponential backoff with jitter between attempts: `backoff_base * 2^(attempt-1)`, at most `backoff_max`."
    )
    backoff_max: Number = Field(600.0, description="The longest wait between attempts, in seconds.")


@dataclass(frozen=True, config=SECTION)
class EventsConfig:
    """The local event log."""

    log_path: Text = Field(
        str(DEFAULT_DATA_DIR / "events.jsonl"),
        description="The JSONL event log; empty turns it off. Default: `data_dir/events.jsonl`.",
    )
    log_max_bytes: Whole = Field(
        100 * MiB, description="Rotate the log once it passes this size (at least 1024); rotated files are kept (nothing is lost)."
    )


@dataclass(frozen=True, config=SECTION)
class WebhooksConfig:
    """Outbound webhooks: events delivered to subscribers."""

    allow_private: Flag = Field(
        False, description="Allow subscribers on private, loopback or link-local addresses (refused otherwise)."
    )
    timeout_seconds: Number = Field(10.0, description="Seconds one delivery may take.")
    max_attempts: Whole = Field(10, description="Attempts per event before it is parked in the subscriber's dead-letter list.")
    backoff_base: Number = Field(1.0, description="Backoff between attempts: `backoff_base * 2^(attempt-1)` seconds, with jitter.")
    backoff_max: Number = Field(300.0, description="The longest wait between attempts, in seconds.")
    lease_seconds: Number = Field(
        30.0,
        description="A dispatcher holds a subscriber's lease this long (renewed while it works; more than "
        "`timeout_seconds`); only the holder delivers, so several replicas never deliver to one subscriber at once.",
    )
    subscriptions: Tables = Field(
        default_factory=list,
        description="`[[webhooks.subscriptions]]` tables: `url`, `secret` (at least 16 characters), "
        "`events` (list), `namespaces` (list).",
    )


@dataclass(frozen=True, config=SECTION)
class BrowseConfig:
    """The browse API and the web UI."""

    verified_namespaces: Strings = Field((), description="Namespaces whose modules are shown as verified.")


@dataclass(frozen=True, config=SECTION)
class MetricsConfig:
    """Prometheus metrics."""

    enabled: Flag = Field(True, description="Serve `GET /metrics` (Prometheus text format, no token: it holds no module names).")


LogFormat = choice("auto", "json", "console")
Uninstall = choice("keep", "delete")
GitHubMode = choice("webhook", "poll", "both")
#: bounds of ``[github] poll_interval`` (seconds)
POLL_INTERVAL_BOUNDS = (2, 86400)


@dataclass(frozen=True, config=SECTION)
class GitHubConfig:
    """The GitHub integration: a GitHub App or a plain token, and the webhooks it sends."""

    webhook_secret: OptionalText = Field(
        None, description="HMAC secret of webhook deliveries; this or `webhook_secret_file` is required once GitHub is configured."
    )
    webhook_secret_file: OptionalPath = Field(None, description="A file holding the webhook secret.")
    app_id: OptionalText = Field(None, description="A GitHub App's id (with `private_key` or `private_key_file`) ...")
    private_key: OptionalText = Field(None, description="The App's private key (PEM).")
    private_key_file: OptionalPath = Field(None, description="A file holding the App's private key.")
    token: OptionalText = Field(None, description="... or a plain token, for repository or organization webhooks.")
    api_url: Text = Field(
        "https://api.github.com",
        description="The GitHub API; for GitHub Enterprise Server its API URL (`https://HOST/api/v3`).",
    )
    mode: GitHubMode = Field(
        "webhook",
        description='`"webhook"`: GitHub delivers events (a periodic reconcile catches what was lost); `"poll"`: '
        "the registry lists installations or `accounts`, repositories and tags itself every `poll_interval` "
        '(no webhook needed, none served); `"both"`: webhooks and polling.',
    )
    poll_interval: Whole = Field(
        300,
        description="Seconds between polls in `poll` and `both` modes, 2 to 86400; listings are conditional "
        "requests, so an unchanged account costs no rate limit.",
    )
    accounts: Strings = Field(
        (),
        description="Users and organizations whose repositories are polled with a plain `token` "
        "(`MIRROR_GITHUB_ACCOUNTS=\"acme,solo-dev\"`); with an App its installations are found through the API, "
        "and a non-empty list keeps only those accounts' installations.",
    )
    timeout: Number = Field(30.0, description="Seconds for each GitHub request (a tarball may take longer; a stalled read may not).")
    workers: Whole = Field(4, description="Workers that process webhook jobs (ingests, backfills, reconciles).")
    module_prefix: Text = Field("terraform-", description="Repositories named `<prefix><provider>-<name>` become modules.")
    namespaces: StringTable = Field(
        default_factory=dict,
        description="Account login -> namespace (`MIRROR_GITHUB_NAMESPACES=\"login=ns,other=ns2\"`); "
        "an account not listed keeps its login as namespace.",
    )
    on_uninstall: Uninstall = Field("keep", description="What happens to archives when an installation is removed.")
    reconcile_interval: Whole = Field(3600, description="Seconds between full reconciles against GitHub; 0 turns them off.")
    webhook_body_seconds: Number = Field(
        10.0, description="Seconds a delivery's whole body may take to arrive (waiting for a large-body slot included)."
    )
    webhook_large_body_bytes: Whole = Field(
        1 * MiB, description="Delivery bodies larger than this need a slot and are spooled to disk until verified."
    )
    webhook_large_bodies: Whole = Field(4, description="Large delivery bodies read at once in this process; others wait for a slot.")
    monorepos: Tables = Field(
        default_factory=list,
        description="Repositories that release several modules: `[[github.monorepos]]` with `repository = \"owner/name\"` "
        "and `modules = [{ path, name, provider, tag_prefix }, ...]` (without `modules`, each tag's `.mirror.toml`); "
        "see the GitHub set-up's Monorepos.",
    )

    @property
    def enabled(self) -> bool:
        return any((self.webhook_secret, self.webhook_secret_file, self.app_id, self.token))


@dataclass(frozen=True, config=SECTION)
class LoggingConfig:
    """Log lines."""

    level: Text = Field("info", description='`"debug"`, `"info"`, `"warning"` or `"error"`.')
    format: LogFormat = Field(
        "auto", description='`"auto"`: console lines on a terminal, JSON otherwise.'
    )


@dataclass(frozen=True, config=SECTION)
class Config:
    """The whole configuration: one field per section, then ``[[upstreams]]`` and ``[plugins.NAME]``."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    blobs: BlobsConfig = Field(default_factory=BlobsConfig)
    s3: S3Config = Field(default_factory=S3Config)
    downloads: DownloadsConfig = Field(default_factory=DownloadsConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    oidc: OidcConfig = Field(default_factory=OidcConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    github: GitHubConfig = Field(default_factory=GitHubConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    browse: BrowseConfig = Field(default_factory=BrowseConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    upstreams: tuple[UpstreamConfig, ...] = Field(
        (), description="`[[upstreams]]`: registries `mirror sync` copies from (an array of tables, not a section)."
    )
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="`[plugins.NAME]`: each plug-in's own table, as written; the plug-in named NAME "
        "(its entry-point name) validates it (see `mirror.app.plugins`).",
    )


#: the sections, by table name (every field of Config but ``upstreams`` and ``plugins``)
SECTIONS: dict[str, type] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Config.__pydantic_fields__.items()
    if name not in ("upstreams", "plugins")
}
