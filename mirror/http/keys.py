"""Typed keys for the state shared on the Application (no module globals)."""

from __future__ import annotations

from aiohttp import web

from mirror.config import Config
from mirror.services.analysis import Analyzer
from mirror.services.auth import Authenticator
from mirror.services.catalog import ModuleCatalog
from mirror.services.downloads import DownloadLocator
from mirror.services.ingest import Ingestor
from mirror.services.jobs import JobHandler, JobQueue
from mirror.services.pullthrough import PullThrough
from mirror.services.singleflight import SingleFlight
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
#: set only when some ``[[upstreams]]`` has ``proxy_namespaces``
PULLTHROUGH = web.AppKey("pullthrough", PullThrough)
JOBS = web.AppKey("jobs", JobQueue)
#: concurrent ``/readyz`` requests share one round of store checks (the problems found, [] when ready)
READINESS = web.AppKey("readiness", SingleFlight[None, list[str]])
#: job kind -> handler, filled by feature contexts before the queue's workers start
JOB_HANDLERS = web.AppKey("job_handlers", dict[str, JobHandler])
#: (the GitHub integration's own key, ``DELIVERY_READER``, lives beside its type in
#: ``mirror.integrations.github.deliveries``: this module sits below the integrations)
