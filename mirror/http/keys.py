"""Typed keys for the state shared on the Application (no module globals)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from mirror.config import Config
from mirror.http.telemetry import Metrics
from mirror.integrations.github.deliveries import DeliveryReader
from mirror.services.analysis import Analyzer
from mirror.services.auth import Authenticator
from mirror.services.browse import DownloadCounter
from mirror.services.catalog import ModuleCatalog
from mirror.services.downloads import DownloadLocator
from mirror.services.ingest import Ingestor
from mirror.services.oidc import RelyingParty
from mirror.services.jobs import JobHandler, JobQueue
from mirror.services.provider_mirror import ProviderMirror
from mirror.services.providers import ProviderRegistry
from mirror.services.pullthrough import PullThrough
from mirror.services.singleflight import SingleFlight
from mirror.services.webhooks import WebhookDispatcher
from mirror.storage.protocols import BlobStore, MetadataStore

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", MetadataStore)
BLOBS = web.AppKey("blobs", BlobStore)
AUTH = web.AppKey("auth", Authenticator)
LOCATOR = web.AppKey("locator", DownloadLocator)
INGESTOR = web.AppKey("ingestor", Ingestor)
#: parses modules' .tf files in child processes, under limits, with a cache by content
ANALYZER = web.AppKey("analyzer", Analyzer)
CATALOG = web.AppKey("catalog", ModuleCatalog)
#: providers: signing keys, publishing, versions
PROVIDERS = web.AppKey("providers", ProviderRegistry)
#: upstream registries' providers on the network mirror (only when an upstream serves providers)
PROVIDER_MIRROR = web.AppKey("provider_mirror", ProviderMirror)
#: set only when some ``[[upstreams]]`` has ``proxy_namespaces``
PULLTHROUGH = web.AppKey("pullthrough", PullThrough)
JOBS = web.AppKey("jobs", JobQueue)
#: concurrent ``/readyz`` requests share one round of store checks (the problems found, [] when ready)
READINESS = web.AppKey("readiness", SingleFlight[None, list[str]])
#: job kind -> handler, filled by feature contexts before the queue's workers start
JOB_HANDLERS = web.AppKey("job_handlers", dict[str, JobHandler])
#: the counters ``/metrics`` shows
METRICS = web.AppKey("metrics", Metrics)
#: downloads counted in memory, flushed to the store in the background
DOWNLOADS = web.AppKey("downloads", DownloadCounter)
#: the outbound webhooks' dispatcher
WEBHOOKS = web.AppKey("webhooks", WebhookDispatcher)
#: the webhook secret and the bounds on GitHub delivery bodies (only when ``[github]`` is configured)
DELIVERY_READER = web.AppKey("github_delivery_reader", DeliveryReader)
#: the GitHub integration's periodic reconciliation (only when ``[github]`` is configured)
RECONCILER = web.AppKey("github_reconciler", asyncio.Task)
#: sign-in through the OpenID Provider of ``[oidc]`` (only when it is configured)
OIDC = web.AppKey("oidc", RelyingParty)
