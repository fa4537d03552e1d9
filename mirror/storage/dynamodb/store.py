"""The DynamoDB MetadataStore, composed of one class per aggregate."""

from __future__ import annotations

from mirror.storage.dynamodb.events import Events
from mirror.storage.dynamodb.installations import Installations
from mirror.storage.dynamodb.jobs import Jobs
from mirror.storage.dynamodb.providers import Providers
from mirror.storage.dynamodb.sessions import Sessions
from mirror.storage.dynamodb.tokens import Tokens
from mirror.storage.dynamodb.webhooks import Webhooks


class DynamoMetadataStore(Installations, Tokens, Sessions, Events, Webhooks, Jobs, Providers):
    """The MetadataStore on one DynamoDB table (see the package docstring for the items): each base
    class is one aggregate's items (versions, modules and installations, tokens and settings, sessions,
    events and consumers, webhooks, jobs, providers), all on the client and commit of ``DynamoTable``."""
