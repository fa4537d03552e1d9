"""Configuration: frozen pydantic models read from a TOML file, then ``MIRROR_<SECTION>_<KEY>``
variables (``mirror.config.loader``).

Every problem is collected and reported together, one line each, before anything starts.
``mirror.config.sections`` declares the keys with their types, defaults and descriptions,
``mirror.config.upstreams`` the ``[[upstreams]]`` tables, ``mirror.config.checks`` the checks
between keys, and ``mirror.config.reference`` renders the configuration reference from them.
"""

from mirror.config.loader import ENV_PREFIX, NON_CONFIG_VARIABLES, env_name, load_config
from mirror.config.sections import (
    DEFAULT_DATA_DIR,
    MiB,
    AnalysisConfig,
    AuthConfig,
    BlobsConfig,
    BrowseConfig,
    Config,
    DownloadMode,
    DownloadsConfig,
    EventsConfig,
    GitHubConfig,
    JobsConfig,
    LimitsConfig,
    LoggingConfig,
    MetadataConfig,
    MetricsConfig,
    S3Config,
    ServerConfig,
    WebhooksConfig,
)
from mirror.config.upstreams import PROXY_TTL_RANGE, UpstreamConfig
from mirror.domain.errors import ConfigError

__all__ = [
    "DEFAULT_DATA_DIR",
    "ENV_PREFIX",
    "NON_CONFIG_VARIABLES",
    "PROXY_TTL_RANGE",
    "AnalysisConfig",
    "AuthConfig",
    "BlobsConfig",
    "BrowseConfig",
    "Config",
    "ConfigError",
    "DownloadMode",
    "DownloadsConfig",
    "EventsConfig",
    "GitHubConfig",
    "JobsConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetadataConfig",
    "MetricsConfig",
    "MiB",
    "S3Config",
    "ServerConfig",
    "UpstreamConfig",
    "WebhooksConfig",
    "env_name",
    "load_config",
]
