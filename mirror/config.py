"""Configuration: frozen dataclasses read from a TOML file, then ``MIRROR_<SECTION>_<KEY>`` variables.

Every problem is collected and reported together, one line each, before anything starts. Nothing
here reads the environment later: ``load_config`` is called once by the CLI and the result is
passed down.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mirror.domain.addresses import valid_namespace
from mirror.formats.archive import ArchiveLimits
from mirror.domain.urls import http_url
from mirror.domain.errors import BadRequest, ConfigError
from mirror.domain.specs import ModuleSpec, registry_base_url

MiB = 1024 * 1024
#: ``[server] data_dir`` when unset, relative to the working directory
DEFAULT_DATA_DIR = Path("mirror-data")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    #: the URL clients reach the registry at (behind a proxy, say); when unset, download
    #: locations are relative to the request, which Terraform resolves against the registry
    public_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_timeout: float = 30.0
    #: the directory every default path derives from (relative: to the working directory); a
    #: path set explicitly wins, and a relative one stays relative to the working directory
    data_dir: Path = DEFAULT_DATA_DIR
    #: where uploads and GitHub downloads are spooled while they are checked; entries a crash
    #: left behind are removed at start-up. Default: ``data_dir/spool``
    spool_dir: Path = DEFAULT_DATA_DIR / "spool"


@dataclass(frozen=True, slots=True)
class MetadataConfig:
    backend: str = "sqlite"
    #: default: ``[server] data_dir/mirror.db``
    path: Path = DEFAULT_DATA_DIR / "mirror.db"
    #: how long this process serves a module's versions from memory; its own writes show at once
    cache_seconds: float = 2.0
    #: backend "dynamodb": the table (``mirror dynamodb create-table`` makes it), its region, and an
    #: endpoint for DynamoDB-compatible servers; credentials come from the standard AWS chain
    table: str = ""
    region: str = "us-east-1"
    endpoint_url: str | None = None


@dataclass(frozen=True, slots=True)
class BlobsConfig:
    backend: str = "local"
    #: default: ``[server] data_dir/blobs``
    path: Path = DEFAULT_DATA_DIR / "blobs"


@dataclass(frozen=True, slots=True)
class S3Config:
    bucket: str = ""
    prefix: str = ""
    region: str = "us-east-1"
    #: for S3-compatible stores (MinIO, Ceph, moto): path-style addressing is used then
    endpoint_url: str | None = None
    #: optional; the standard AWS credential chain is used when unset
    access_key_id: str | None = None
    secret_access_key: str | None = None


DownloadMode = Literal["s3", "presigned", "proxy"]


@dataclass(frozen=True, slots=True)
class DownloadsConfig:
    mode: DownloadMode = "proxy"
    ttl_seconds: int = 900
    #: HMAC key for proxy download URLs; generated once and kept in the metadata store when unset
    signing_key: str | None = None


@dataclass(frozen=True, slots=True)
class AuthConfig:
    anonymous_read: bool = False


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_archive_bytes: int = 100 * MiB
    max_unpacked_bytes: int = 500 * MiB
    max_files: int = 10_000

    def archive_limits(self) -> ArchiveLimits:
        """These limits in the form the archive checks take."""
        return ArchiveLimits(self.max_archive_bytes, self.max_unpacked_bytes, self.max_files)


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """Limits of the child processes that parse a module's .tf files, and their result cache."""

    #: CPU time one file's parse may take; a file past it is reported as stopped
    cpu_seconds: int = 10
    #: address space of one parsing process, in MiB
    memory_mb: int = 512
    #: wall-clock time for the analysis of one version (files not reached are reported)
    timeout_seconds: float = 60.0
    #: parsing processes running at once
    workers: int = 2
    #: parse results kept by file content; default: ``analysis-cache`` beside the spool directory
    #: (``[server] data_dir/analysis-cache`` unless ``spool_dir`` is set); empty means the default
    cache_dir: Path | None = DEFAULT_DATA_DIR / "analysis-cache"


@dataclass(frozen=True, slots=True)
class GitHubConfig:
    #: HMAC secret of webhook deliveries (or a file holding it); mandatory once GitHub is configured
    webhook_secret: str | None = None
    webhook_secret_file: Path | None = None
    #: a GitHub App ...
    app_id: str | None = None
    private_key: str | None = None
    private_key_file: Path | None = None
    #: ... or a plain token, for repository or organization webhooks
    token: str | None = None
    api_url: str = "https://api.github.com"
    #: seconds for each GitHub request (a tarball may take longer; a stalled read may not)
    timeout: float = 30.0
    #: workers that process webhook jobs (ingests, backfills, reconciles)
    workers: int = 4
    #: repositories named <prefix><provider>-<name> become modules
    module_prefix: str = "terraform-"
    #: account login -> namespace; an account not listed keeps its login as namespace
    namespaces: dict[str, str] = field(default_factory=dict)
    #: what happens to archives when an installation is removed
    on_uninstall: Literal["keep", "delete"] = "keep"
    #: seconds between full reconciles against GitHub; 0 turns them off
    reconcile_interval: int = 3600
    #: seconds a delivery's whole body may take to arrive (waiting for a large-body slot included)
    webhook_body_seconds: float = 10.0
    #: delivery bodies larger than this need a slot and are spooled to disk until verified
    webhook_large_body_bytes: int = 1 * MiB
    #: large delivery bodies read at once in this process; others wait for a slot
    webhook_large_bodies: int = 4

    @property
    def enabled(self) -> bool:
        return any((self.webhook_secret, self.webhook_secret_file, self.app_id, self.token))


@dataclass(frozen=True, slots=True)
class JobsConfig:
    #: a running job's claim; a job whose worker died runs again once it lapses (renewed while alive)
    lease_seconds: float = 60.0
    max_attempts: int = 8
    #: exponential backoff with jitter between attempts: base * 2^(attempt-1), at most backoff_max
    backoff_base: float = 2.0
    backoff_max: float = 600.0


@dataclass(frozen=True, slots=True)
class EventsConfig:
    #: the local JSONL event log; empty turns it off. Default: ``[server] data_dir/events.jsonl``
    log_path: str = str(DEFAULT_DATA_DIR / "events.jsonl")
    #: rotate the log once it passes this size; rotated files are kept (nothing is lost)
    log_max_bytes: int = 100 * MiB


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    #: subscribers on private, loopback or link-local addresses are refused unless this is true
    allow_private: bool = False
    timeout_seconds: float = 10.0
    #: attempts per event before it is parked in the subscriber's dead-letter list
    max_attempts: int = 10
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    #: a dispatcher holds a subscriber's lease this long (renewed while it works); only the
    #: holder delivers, so several replicas never deliver to one subscriber at once
    lease_seconds: float = 30.0
    #: ``[[webhooks.subscriptions]]``: url, secret, events (list), namespaces (list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BrowseConfig:
    #: namespaces whose modules the browse API and the web UI show as verified
    verified_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    #: serve ``GET /metrics`` (Prometheus text format, no token: it holds no module names)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    #: "auto": console lines on a terminal, JSON otherwise
    format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One ``[[upstreams]]`` table: a registry ``mirror sync`` copies modules from, and that
    ``proxy_namespaces`` pull through from while the server runs."""

    #: ``registry.terraform.io`` (https) or a full ``http(s)://HOST[:PORT]`` URL
    host: str
    #: bearer token sent to that registry only (never to download locations) ...
    token: str | None = field(default=None, repr=False)
    #: ... or the environment variable holding it (read once, when the config is loaded)
    token_env: str | None = None
    #: ``"NAMESPACE/NAME/PROVIDER [CONSTRAINT]"``, e.g. ``"hashicorp/consul/aws >= 0.1"``
    modules: tuple[str, ...] = ()
    #: copy into this namespace instead of the upstream's (``hashicorp/consul/aws`` -> ``NS/consul/aws``)
    namespace: str | None = None
    #: local namespaces that proxy this upstream (pull-through cache): a module unknown here is
    #: looked up at the upstream under the same namespace, and a version is fetched on its first download
    proxy_namespaces: tuple[str, ...] = ()
    #: how long the server reuses an upstream's versions list of a proxied module
    proxy_ttl_seconds: int = 300
    #: download locations this upstream hands out may be at non-public addresses (http(s), git)
    allow_private: bool = False
    #: ... may be local git repositories (``git::file://``, a path)
    allow_file_sources: bool = False
    #: ... may be ``s3::`` objects on these S3-compatible endpoints (``http(s)://HOST[:PORT]``)
    #: besides AWS S3; this host's AWS credentials go to AWS and to these only
    s3_endpoints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    blobs: BlobsConfig = field(default_factory=BlobsConfig)
    s3: S3Config = field(default_factory=S3Config)
    downloads: DownloadsConfig = field(default_factory=DownloadsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    browse: BrowseConfig = field(default_factory=BrowseConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    #: ``[[upstreams]]``: registries ``mirror sync`` copies from (an array of tables, not a section)
    upstreams: tuple[UpstreamConfig, ...] = ()
    #: ``[plugins.NAME]``: each plug-in's own table, as written; the plug-in named NAME (its
    #: entry-point name) validates it (see ``mirror.app.plugins``)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)


ENV_PREFIX = "MIRROR_"
#: ``MIRROR_*`` variables that are not config keys: read by the command line (the config file,
#: ``publish``'s token and registry, the bundle signing key, ``sync``'s upstream token)
NON_CONFIG_VARIABLES = frozenset(
    {"MIRROR_CONFIG", "MIRROR_TOKEN", "MIRROR_REGISTRY", "MIRROR_BUNDLE_KEY", "MIRROR_UPSTREAM_TOKEN"}
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    metadata_backends: frozenset[str] = frozenset({"sqlite"}),
    blob_backends: frozenset[str] = frozenset({"local", "s3"}),
) -> Config:
    """Read ``path`` (if any), apply ``MIRROR_*`` overrides from ``environ``, validate.

    Raises ConfigError listing every problem found.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file {path} does not exist"]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"config file {path} cannot be read: {exc}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"config file {path} is not valid TOML: {exc}"]) from None

    sections: dict[str, Any] = {
        "upstreams": _build_upstreams(raw.pop("upstreams", []), environ, problems),
        "plugins": _plugin_tables(raw.pop("plugins", {}), problems),
    }
    given: set[str] = set()  # "section.key" of every key the file or the environment set
    for section_field in dataclasses.fields(Config):
        if section_field.name in ("upstreams", "plugins"):
            continue
        section_cls = _hints(Config)[section_field.name]
        values = raw.pop(section_field.name, {})
        if not isinstance(values, dict):
            problems.append(f"[{section_field.name}] must be a table")
            values = {}
        sections[section_field.name] = _build_section(section_field.name, section_cls, values, environ, problems, given)
    for unknown in raw:
        problems.append(f"unknown section [{unknown}]" + _did_you_mean(unknown, [f.name for f in dataclasses.fields(Config)]))

    # Fields that failed to parse kept their defaults, so validation still reports the rest.
    config = _derive_paths(Config(**sections), given)
    problems.extend(_unknown_variables(environ, config))
    problems.extend(_validate(config, metadata_backends, blob_backends))
    if problems:
        raise ConfigError(problems)
    return config


def _plugin_tables(raw: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    """``[plugins.NAME]`` tables, kept as written for each plug-in to validate."""
    if not isinstance(raw, dict):
        problems.append("[plugins] must be a table of tables, one [plugins.NAME] per plug-in")
        return {}
    tables: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if isinstance(table, dict):
            tables[name] = table
        else:
            problems.append(f"[plugins.{name}] must be a table")
    return tables


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build_section(
    name: str, cls: type, values: dict[str, Any], environ: Mapping[str, str], problems: list[str], given: set[str]
) -> Any:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key in values:
        if key not in hints:
            problems.append(f"unknown key [{name}] {key}" + _did_you_mean(key, list(hints)))
    for key, hint in hints.items():
        env_name = f"{ENV_PREFIX}{name.upper()}_{key.upper()}"
        if env_name in environ:
            value, source = environ[env_name], env_name
        elif key in values:
            value, source = values[key], f"[{name}] {key}"
        else:
            continue
        given.add(f"{name}.{key}")
        try:
            kwargs[key] = _coerce(value, hint)
        except ValueError as exc:
            problems.append(f"{source}: {exc}")
    return cls(**kwargs)


def _derive_paths(config: Config, given: set[str]) -> Config:
    """Every path the file and the environment left unset, under ``[server] data_dir``; the
    analysis cache beside the spool directory (which is under ``data_dir`` unless set)."""
    data_dir = config.server.data_dir
    server = config.server
    if "server.spool_dir" not in given:
        server = dataclasses.replace(server, spool_dir=data_dir / "spool")
    metadata, blobs, events = config.metadata, config.blobs, config.events
    if "metadata.path" not in given:
        metadata = dataclasses.replace(metadata, path=data_dir / "mirror.db")
    if "blobs.path" not in given:
        blobs = dataclasses.replace(blobs, path=data_dir / "blobs")
    if "events.log_path" not in given:  # set empty, it stays empty: the log is off
        events = dataclasses.replace(events, log_path=str(data_dir / "events.jsonl"))
    analysis = config.analysis
    if "analysis.cache_dir" not in given or analysis.cache_dir is None:
        analysis = dataclasses.replace(analysis, cache_dir=server.spool_dir.parent / "analysis-cache")
    return dataclasses.replace(config, server=server, metadata=metadata, blobs=blobs, events=events, analysis=analysis)


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _unknown_variables(environ: Mapping[str, str], config: Config) -> list[str]:
    """A ``MIRROR_*`` variable that is no config key (a typo would otherwise be ignored silently),
    not one the command line reads, and not named by a ``*_env`` key of the config."""
    known = {
        f"{ENV_PREFIX}{section.name.upper()}_{key.upper()}"
        for section in dataclasses.fields(Config)
        if section.name not in ("upstreams", "plugins")
        for key in _hints(_hints(Config)[section.name])
    }
    allowed = known | NON_CONFIG_VARIABLES | _named_variables(config)
    return [
        f"unknown variable {name}" + _did_you_mean(name.upper(), sorted(known | NON_CONFIG_VARIABLES))
        for name in sorted(environ)
        if name.startswith(ENV_PREFIX) and name not in allowed
    ]


def _named_variables(value: Any) -> set[str]:
    """Every string value of a key ending in ``_env`` anywhere in the config (the variables a
    ``token_env`` and the like name)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if dataclasses.is_dataclass(item):
            item = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and key.endswith("_env") and isinstance(child, str):
                    found.add(child)
                else:
                    stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


def _coerce(value: Any, hint: Any) -> Any:
    """Turn a TOML or environment value into the field's type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value == ""):
            return None
        return _coerce(value, non_none[0])
    if origin is Literal:
        if value not in args:
            raise ValueError(f"must be one of {', '.join(repr(a) for a in args)}, not {value!r}")
        return value
    if origin is dict:
        return _coerce_mapping(value)
    if origin is tuple:  # tuple[str, ...]: a TOML array of strings, or "a,b" from the environment
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"must be an array of strings, not {value!r}")
        return tuple(value)
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise ValueError("must be an array of tables ([[...]])")
        return list(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"must be true or false, not {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number, not {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a whole number, not {value!r}") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number, not {value!r}") from None
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ValueError(f"must be a path, not {value!r}")
        return Path(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {value!r}")
        return value
    raise ValueError(f"unsupported value {value!r}")  # pragma: no cover - a field type we do not use


def _coerce_mapping(value: Any) -> dict[str, str]:
    """A TOML table, or ``"a=b,c=d"`` from the environment."""
    if isinstance(value, str):
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"must be KEY=VALUE pairs separated by commas, not {value!r}")
        value = {key.strip(): val.strip() for key, val in pairs}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"must be a table of strings, not {value!r}")
    return dict(value)


def _validate(config: Config, metadata_backends: frozenset[str], blob_backends: frozenset[str]) -> list[str]:
    problems: list[str] = []
    server, downloads, limits = config.server, config.downloads, config.limits

    if not 0 <= server.port <= 65535:
        problems.append(f"[server] port must be between 0 and 65535, not {server.port}")
    if server.public_url is not None:
        if http_url(server.public_url) is None:
            problems.append(f"[server] public_url must be an http(s) URL, not {server.public_url!r}")
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

    for key in ("max_archive_bytes", "max_unpacked_bytes", "max_files"):
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
    problems.extend(_validate_github(config.github))
    problems.extend(_validate_webhooks(config.webhooks))
    problems.extend(_validate_upstreams(config.upstreams))
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


def _validate_github(github: GitHubConfig) -> list[str]:
    if not github.enabled:
        return []
    problems = []
    if not (github.webhook_secret or github.webhook_secret_file):
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
    for login, namespace in github.namespaces.items():
        if not valid_namespace(namespace):
            problems.append(f"[github] namespaces: {login!r} maps to an invalid namespace {namespace!r}")
    return problems


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


_UPSTREAM_KEYS = frozenset(
    {
        "host", "token", "token_env", "modules", "namespace", "proxy_namespaces", "proxy_ttl_seconds",
        "allow_private", "allow_file_sources", "s3_endpoints",
    }
)
#: bounds of ``proxy_ttl_seconds``: a second to a day
PROXY_TTL_RANGE = (1, 86400)


def _build_upstreams(raw: Any, environ: Mapping[str, str], problems: list[str]) -> tuple[UpstreamConfig, ...]:
    """``[[upstreams]]`` tables as UpstreamConfig; a ``token_env`` is read from ``environ`` here."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        problems.append("upstreams must be an array of tables ([[upstreams]])")
        return ()
    built = []
    for number, table in enumerate(raw, start=1):
        where = f"[[upstreams]] #{number}"
        unknown = set(table) - _UPSTREAM_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        host = table.get("host")
        if not isinstance(host, str) or not host:
            problems.append(f"{where}: host is required (e.g. \"registry.terraform.io\")")
            continue
        values: dict[str, Any] = {}
        for key in ("token", "token_env", "namespace"):
            value = table.get(key)
            if value is not None and not isinstance(value, str):
                problems.append(f"{where} ({host}): {key} must be a string")
            elif value:
                values[key] = value
        modules = table.get("modules", [])
        if not isinstance(modules, list) or not all(isinstance(item, str) for item in modules):
            problems.append(f"{where} ({host}): modules must be a list of strings")
            modules = []
        proxied = table.get("proxy_namespaces", [])
        if not isinstance(proxied, list) or not all(isinstance(item, str) for item in proxied):
            problems.append(f"{where} ({host}): proxy_namespaces must be a list of strings")
        else:
            values["proxy_namespaces"] = tuple(proxied)
        if "proxy_ttl_seconds" in table:
            ttl = table["proxy_ttl_seconds"]
            if isinstance(ttl, int) and not isinstance(ttl, bool):
                values["proxy_ttl_seconds"] = ttl
            else:
                problems.append(f"{where} ({host}): proxy_ttl_seconds must be a whole number of seconds, not {ttl!r}")
        for key in ("allow_private", "allow_file_sources"):
            if key in table:
                if isinstance(table[key], bool):
                    values[key] = table[key]
                else:
                    problems.append(f"{where} ({host}): {key} must be true or false")
        if "s3_endpoints" in table:
            endpoints = table["s3_endpoints"]
            if not isinstance(endpoints, list) or not all(isinstance(item, str) for item in endpoints):
                problems.append(f"{where} ({host}): s3_endpoints must be a list of http(s)://HOST[:PORT] URLs")
            else:
                for endpoint in endpoints:
                    parts = http_url(endpoint)
                    if parts is None or parts.path.strip("/") or parts.query or parts.fragment or parts.username:
                        problems.append(f"{where} ({host}): s3_endpoints: {endpoint!r} is not an http(s)://HOST[:PORT] URL")
                values["s3_endpoints"] = tuple(endpoints)
        if "token" in values and "token_env" in values:
            problems.append(f"{where} ({host}): set token or token_env, not both")
        elif "token_env" in values:
            values["token"] = environ.get(values["token_env"]) or None
        built.append(UpstreamConfig(host=host, modules=tuple(modules), **values))
    return tuple(built)


def _validate_upstreams(upstreams: tuple[UpstreamConfig, ...]) -> list[str]:
    problems = []
    proxied_by: dict[str, int] = {}  # lowercased namespace -> the upstream's number
    for number, upstream in enumerate(upstreams, start=1):
        where = f"[[upstreams]] #{number} ({upstream.host})"
        try:
            registry_base_url(upstream.host)
        except ValueError as exc:
            problems.append(f"{where}: host {exc}")
        if upstream.namespace is not None and not valid_namespace(upstream.namespace):
            problems.append(f"{where}: namespace {upstream.namespace!r} is not a valid namespace")
        for spec in upstream.modules:
            try:
                ModuleSpec.parse(spec)
            except BadRequest as exc:
                problems.append(f"{where}: modules: {exc}")
        listed: set[str] = set()
        for namespace in upstream.proxy_namespaces:
            key = namespace.lower()
            if not valid_namespace(namespace):
                problems.append(f"{where}: proxy_namespaces: {namespace!r} is not a valid namespace")
            elif key in listed:
                problems.append(f"{where}: proxy_namespaces: {namespace!r} is listed twice")
            elif key in proxied_by:
                problems.append(
                    f"{where}: proxy_namespaces: {namespace!r} is already proxied by [[upstreams]] "
                    f"#{proxied_by[key]}; a namespace proxies one upstream"
                )
            else:
                proxied_by[key] = number
            listed.add(key)
        low, high = PROXY_TTL_RANGE
        if not low <= upstream.proxy_ttl_seconds <= high:
            problems.append(
                f"{where}: proxy_ttl_seconds must be between {low} and {high}, not {upstream.proxy_ttl_seconds}"
            )
    return problems
