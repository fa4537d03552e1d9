"""DynamoDB metadata store: one table shared by every replica, through one aiobotocore client.

The table has string keys ``PK`` (partition) and ``SK`` (sort) and one global secondary index,
``GSI1`` (``GSI1PK``/``GSI1SK``, all attributes projected). Names are matched case-insensitively by
putting the lowercased namespace and name in the keys and keeping the first spelling in attributes.

| item | PK | SK | GSI1PK / GSI1SK |
|---|---|---|---|
| namespace | ``NAMESPACE#<ns>`` | ``NAMESPACE#<ns>`` | |
| module (with its latest-version summary) | ``NAMESPACE#<ns>`` | ``MODULE#<name>#PROVIDER#<provider>`` | ``MODULES`` / ``<ns>#<name>#<provider>``, only while it has a live version |
| version | ``NAMESPACE#<ns>`` | ``NAME#<name>#PROVIDER#<provider>#VERSION#<version>`` | |
| repository -> module | ``REPOSITORY#<id>`` | ``REPOSITORY`` | |
| archive reference count | ``BLOB#<blob key>`` | ``BLOB`` | |
| event | ``EVENTS#<serial // 1000>`` | ``<serial, 20 digits>`` | |
| counters (events, jobs, failures) | ``COUNTER#<name>`` | ``COUNTER`` | |
| token | ``TOKENS`` and ``TOKEN#<sha256>`` | ``TOKEN#<id>`` and ``TOKEN`` | |
| session | ``SESSIONS`` and ``SESSION#<sha256>`` | ``SESSION#<id>`` and ``SESSION`` | |
| installation | ``INSTALLATIONS`` | ``INSTALLATION#<id, 20 digits>`` | |
| consumer | ``CONSUMERS`` | ``CONSUMER#<name>`` | |
| webhook subscription | ``WEBHOOKS`` | ``SUBSCRIPTION#<id>`` | |
| delivery failure (+ pointer) | ``WEBHOOK#<subscription>`` (``FAILURE#<id>``) | ``FAILURE#<id, 20 digits>`` (``FAILURE``) | |
| setting | ``SETTINGS`` | ``SETTING#<key>`` | |
| job (+ dedupe key) | ``JOB#<id, 20 digits>`` (``JOBDEDUPE#<key>``) | ``JOB`` (``JOBDEDUPE``) | ``JOBS#<state>`` / due time (queued), lease end (running) or id (done, failed) |
| provider | ``PROVIDER#<host>#<ns>#<type>`` (host "" for this registry's own) | ``PROVIDER`` | ``PROVIDERS`` / ``<host>#<ns>#<type>`` |
| provider version (SHA256SUMS zlib-compressed over 16 KiB) | ``PROVIDER#<host>#<ns>#<type>`` | ``VERSION#<version>`` | |
| provider signing key | ``PROVIDERKEYS#<ns>`` | ``KEY#<key id>`` | |

Every write that appends events is one ``TransactWriteItems``: its items, the events, and the
event counter moved from the serial read before the write's own reads to that serial plus the
number of events, on the condition that it still holds that serial. Writers are therefore
serialized on the counter (a loser re-reads and tries again), serials have no gaps, and readers
read events only up to the counter's committed value, so they never see a gap either.

One module per aggregate: ``wire`` (the typed wire format), ``keys`` (where items live, limits),
``items`` (items to records and back), ``table`` (the client, primitive reads and writes, and the
commit of writes that append events), ``versions``, ``modules``, ``installations``, ``tokens``
(and settings), ``sessions``, ``events`` (and consumers), ``webhooks``, ``jobs``, ``providers`` (its items in
``provider_items``); ``store`` composes them.
"""

from __future__ import annotations

from mirror.storage.dynamodb.items import (
    _BRIEF_FIELDS,
    _latest_fields,
    _new_module_item,
    _pick_latest,
    _version_item,
)
from mirror.storage.dynamodb.keys import INDEX, _namespace_key
from mirror.storage.dynamodb.store import DynamoMetadataStore
from mirror.storage.dynamodb.table import table_definition
from mirror.storage.dynamodb.wire import _to_item

__all__ = [
    "INDEX",
    "DynamoMetadataStore",
    "table_definition",
    # item builders the benchmarks use to write a large table exactly as publishes would
    "_BRIEF_FIELDS",
    "_latest_fields",
    "_namespace_key",
    "_new_module_item",
    "_pick_latest",
    "_to_item",
    "_version_item",
]
