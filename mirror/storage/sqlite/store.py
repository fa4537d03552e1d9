"""The SQLite MetadataStore, composed of one class per aggregate."""

from __future__ import annotations

from mirror.storage.sqlite.events import Events
from mirror.storage.sqlite.installations import Installations
from mirror.storage.sqlite.jobs import Jobs
from mirror.storage.sqlite.providers import Providers
from mirror.storage.sqlite.sessions import Sessions
from mirror.storage.sqlite.tokens import Tokens
from mirror.storage.sqlite.versions import Versions
from mirror.storage.sqlite.webhooks import Webhooks


class SqliteMetadataStore(Versions, Providers, Installations, Tokens, Sessions, Events, Webhooks, Jobs):
    """The MetadataStore on one SQLite file: each base class is one aggregate's tables (versions,
    modules and installations, providers, tokens and settings, sessions, events and consumers, webhooks,
    jobs), all on the connections and write transactions of ``SqliteConnection``."""
