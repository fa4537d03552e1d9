"""The small storage interfaces the rest of mirror is written against.

Each Protocol is a handful of methods, shaped by the code that calls it. Backends satisfy them
structurally (no inheritance); ``mirror.storage.factory`` picks a backend by name from config.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mirror.domain.provenance import Owner
from mirror.domain.provider_records import (
    Deprecation,
    NewProviderVersion,
    ProviderKey,
    ProviderPublishOutcome,
    ProviderRecord,
    ProviderVersion,
)
from mirror.domain.providers import ProviderAddress
from mirror.domain.sessions import SessionRecord
from mirror.domain.models import (
    Consumer,
    DeliveryFailure,
    Event,
    Installation,
    Job,
    ModuleAddress,
    ModuleRecord,
    ModuleVersion,
    NewVersion,
    PublishOutcome,
    TokenRecord,
    WebhookSubscription,
)


def replica_name() -> str:
    """This process as an operator finds it: ``HOST:PID`` (a pod's name in Kubernetes)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_lease_owner() -> str:
    """A token naming one lease holder (a job's claim, a dispatcher process): the replica that
    holds it, then a random part unique to the claim (``HOST:PID/HEX``)."""
    return f"{replica_name()}/{secrets.token_hex(12)}"



class BlobStore(Protocol):
    """Immutable, content-addressed archives.

    Keys are produced by ``mirror.domain.blobs``: ``archive_key`` (``.tar.gz``) and
    ``provider_archive_key`` (``.zip``).
    """

    #: short name of the backend ("local", "s3"), used by the download modes
    kind: str

    async def open_client(self) -> None:
        """Create the backend's one client (called once at start-up)."""

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Verify once at start-up that the store is usable (bucket reachable, directory
        writable); raise StorageUnavailable with a message an operator can act on."""

    async def exists(self, key: str) -> bool: ...

    async def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> None:
        """Store the file at ``path`` under ``key``, streaming (never whole in memory).

        Writing a key that already exists is allowed and leaves the same content.
        """

    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream the object's bytes in chunks; raises NotFound if it is missing."""

    async def delete(self, key: str) -> None: ...

    def url(self, key: str) -> str:
        """Where the object lives, for events and operators (``s3://...``, ``file://...``)."""

    def local_path(self, key: str) -> Path | None:
        """The object's file on this machine, for a store that keeps one (served with sendfile);
        None when it has none (the object is then read through ``open``). The file may be missing."""


class ModuleIndex(Protocol):
    """Read side of modules and versions: what Terraform's protocol needs."""

    async def list_versions(self, address: ModuleAddress, *, readme: bool = True) -> list[ModuleVersion]:
        """Live (not revoked) versions of a module, any order; [] when unknown. With
        ``readme=False`` each ``readme`` is None and is neither read nor decompressed."""

    async def get_version(self, address: ModuleAddress, version: str) -> ModuleVersion | None:
        """A version by its normalized string, revoked or not."""

    async def version_analysis(self, address: ModuleAddress, version: str) -> dict[str, Any] | None:
        """What the version's HCL declares (inputs, outputs, ...), None when it was not analysed."""


@dataclass(frozen=True, slots=True)
class ModuleSummary:
    """A module as the browse API lists it: its latest live version and its counters."""

    version: ModuleVersion  # the latest live version (highest release, else highest prerelease)
    source_url: str | None  # the module's repository, when known
    downloads: int  # stored download count of all its versions (revoked ones included)
    description: str  # the latest version's README, first paragraph


class ModuleBrowser(Protocol):
    """What the browse API reads, and where the download counter flushes."""

    async def latest_versions(
        self, *, namespace: str | None = None, name: str | None = None, provider: str | None = None
    ) -> list[ModuleSummary]:
        """Matching modules that have a live version, each with its latest, sorted by address."""

    async def browse_modules(
        self,
        *,
        namespace: str | None = None,
        provider: str | None = None,
        query: str = "",
        only_namespaces: Collection[str] | None = None,
        exclude_namespaces: Collection[str] = (),
        offset: int = 0,
        limit: int = 15,
    ) -> tuple[list[ModuleSummary], bool]:
        """A page of modules with a live version, sorted by address, and whether more follow.

        ``query`` matches a substring (any case) of the namespace, name, provider or description.
        The summaries' versions carry no README (lists show the description)."""

    async def add_downloads(self, counts: Mapping[tuple[ModuleAddress, str], int]) -> None:
        """Add ``counts`` (per module and normalized version) to the stored totals in one write."""

    async def version_downloads(self, address: ModuleAddress) -> dict[str, int]:
        """The stored download count of each of the module's versions (revoked ones included; 0
        for none yet), by normalized version; {} for an unknown module."""


class ModulePublisher(Protocol):
    """Write side: a version and its events go in one transaction."""

    async def publish_version(self, new: NewVersion) -> PublishOutcome: ...


class TokenStore(Protocol):
    async def create_token(self, record: TokenRecord) -> None: ...

    async def find_token(self, token_hash: str) -> TokenRecord | None: ...

    async def list_tokens(self) -> list[TokenRecord]: ...

    async def revoke_token(self, token_id: str) -> bool: ...

    async def touch_token(self, token_id: str, when: str) -> bool:
        """Record ``when`` (RFC 3339) as the token's last use; False when the token is unknown or
        a later use is already recorded. Called coarsely (not per request) by the Authenticator."""


class SessionStore(Protocol):
    """Signed-in people's server-side sessions (``mirror.domain.sessions``)."""

    async def create_session(self, record: SessionRecord) -> None:
        """Store a new session (its id and secret hash are new; Conflict when either is taken)."""

    async def find_session(self, secret_hash: str) -> SessionRecord | None:
        """The session whose secret hashes to ``secret_hash``, revoked or expired ones included."""

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def list_sessions(self) -> list[SessionRecord]:
        """Every stored session, oldest first (ended ones until they are purged)."""

    async def revoke_session(self, session_id: str, when: str) -> bool:
        """Mark the session revoked at ``when`` (RFC 3339); False when it is unknown or already revoked."""

    async def purge_sessions(self, before: str) -> int:
        """Remove the sessions that expired or were revoked before ``before``; how many went."""


class EventReader(Protocol):
    async def events_after(self, serial: int, limit: int, types: Sequence[str] = ()) -> list[Event]: ...

    async def latest_serial(self) -> int: ...

    def add_event_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (cheap, non-blocking) after each commit that appended events."""


class ConsumerStore(Protocol):
    """Cursors of the event log's consumers, with each one's retry state.

    A consumer can be leased (webhook dispatchers of several processes: one delivers per
    subscriber at a time). Writes given an ``owner`` apply only while that owner holds the lease
    (it is the consumer's recorded ``lease_owner``: nobody acquired it since, expired or not) and
    return False otherwise; without ``owner`` they apply unconditionally (single-writer consumers
    such as the JSONL log). Writes to unknown consumers do nothing and return False.
    """

    async def consumer(self, name: str, *, start_serial: int = 0) -> Consumer: ...

    async def list_consumers(self) -> list[Consumer]: ...

    async def advance_consumer(self, name: str, serial: int, *, owner: str | None = None) -> bool:
        """Move the cursor up to ``serial`` (never back) and reset the retry state."""

    async def record_consumer_failure(
        self, name: str, attempts: int, next_attempt_at: float, error: str, *, owner: str | None = None
    ) -> bool: ...

    async def acquire_consumer_lease(self, name: str, owner: str, until: float, now: float) -> bool:
        """A conditional write: take or renew the lease until ``until`` when it is free, expired
        (``lease_until < now``) or already ``owner``'s; False otherwise (or no such consumer)."""

    async def release_consumer_lease(self, name: str, owner: str) -> bool:
        """Free the lease if ``owner`` holds it (another owner may acquire it at once)."""

    async def delete_consumer(self, name: str) -> None: ...


class WebhookStore(Protocol):
    """Outbound webhook subscriptions and their dead-letter list."""

    async def put_subscription(self, subscription: WebhookSubscription) -> None: ...

    async def list_subscriptions(self) -> list[WebhookSubscription]: ...

    async def get_subscription(self, subscription_id: str) -> WebhookSubscription | None: ...

    async def delete_subscription(self, subscription_id: str) -> bool: ...

    async def add_delivery_failure(
        self, subscription_id: str, serial: int, attempts: int, error: str, *, owner: str | None = None
    ) -> bool:
        """Park the event and move the subscriber's cursor past it, atomically; with ``owner``,
        only while it holds the subscriber's consumer lease (False and nothing written otherwise)."""

    async def list_delivery_failures(self, subscription_id: str, *, pending_only: bool = True) -> list[DeliveryFailure]: ...

    async def mark_redelivered(self, failure_id: int) -> bool: ...


class SettingsStore(Protocol):
    async def get_or_create_setting(self, key: str, default: str) -> str:
        """Return the stored value, storing ``default`` first when there is none (atomically)."""


class ModuleAdmin(Protocol):
    """Module lifecycle driven by the module's owner source; each change writes its event.

    Given ``owner``, ``delete_module``, ``rename_module``, ``revoke_version`` and
    ``deprecate_version`` apply only while the module is that owner's (a conditional write) and
    raise ``NotOwner`` otherwise; without it they apply whatever owns the module (admins, tests)."""

    async def ensure_module(
        self,
        address: ModuleAddress,
        *,
        owner: Owner = Owner("upload"),
        source_url: str | None = None,
        installation_id: int | None = None,
    ) -> bool:
        """Create the module for ``owner`` if it is new (True); an existing module of ``owner``
        takes a given source URL and installation; one of another owner raises ``NotOwner``."""

    async def get_module(self, address: ModuleAddress) -> ModuleRecord | None: ...

    async def list_modules(self, namespace: str) -> list[ModuleRecord]: ...

    async def module_by_repository(self, repository_id: int) -> ModuleRecord | None:
        """The module owned by GitHub repository ``repository_id`` (``github:<id>``)."""

    async def set_module_policy(
        self, address: ModuleAddress, *, owner: Owner | None = None, allow_uploads: bool | None = None
    ) -> ModuleRecord | None:
        """An admin's change of owner source or upload allowance (``module.policy_changed``);
        None when there is no such module. Writers that decided against the old owner fail."""

    async def all_versions(self, address: ModuleAddress) -> list[ModuleVersion]: ...

    async def delete_module(self, address: ModuleAddress, *, owner: Owner | None = None) -> list[str]: ...

    async def rename_module(self, address: ModuleAddress, new_name: str, *, owner: Owner | None = None) -> bool: ...

    async def revoke_version(self, address: ModuleAddress, version: str, *, owner: Owner | None = None) -> bool: ...

    async def deprecate_version(
        self, address: ModuleAddress, version: str, deprecation: Deprecation, *, owner: Owner | None = None
    ) -> bool:
        """Record (or replace) a live version's deprecation (``module.version_deprecated``); False
        if not live. With ``owner``, only while the module is that owner's (NotOwner otherwise).
        ``get_version`` reads it back; the protocol's ``list_versions`` need not."""


class InstallationStore(Protocol):
    async def record_installation(self, installation: Installation) -> bool: ...

    async def installation(self, installation_id: int) -> Installation | None: ...

    async def list_installations(self) -> list[Installation]: ...

    async def remove_installation(self, installation_id: int) -> list[str]: ...


class JobStore(Protocol):
    """A durable queue: jobs are claimed with a lease, so a dead worker's job runs again.

    Each claim records a new random owner token, returned as ``Job.lease_owner``. Given that
    ``owner``, ``renew_job_lease``, ``finish_job``, ``retry_job`` and ``fail_job`` are conditional
    writes that apply only while the job still carries the token (no other claim took it over
    after the lease lapsed) and return whether they applied. Without ``owner`` (operators, tests)
    they apply to the job whatever holds it. Unknown jobs are left alone (False).
    """

    async def enqueue_job(
        self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None, run_after: float | None = None
    ) -> Job | None: ...

    async def claim_job(self, now: float, lease_seconds: float) -> Job | None: ...

    async def renew_job_lease(self, job_id: int, until: float, *, owner: str | None = None) -> bool:
        """Extend a running job's lease; False when it is not running (or not ``owner``'s)."""

    async def finish_job(self, job_id: int, *, owner: str | None = None) -> bool: ...

    async def retry_job(self, job_id: int, error: str, run_after: float, *, owner: str | None = None) -> bool: ...

    async def fail_job(self, job_id: int, error: str, *, owner: str | None = None) -> bool: ...

    async def requeue_job(self, job_id: int) -> bool: ...

    async def get_job(self, job_id: int) -> Job | None: ...

    async def list_jobs(self, state: str | None = None, limit: int = 100) -> list[Job]: ...


class ProviderStore(Protocol):
    """Providers: namespaces' signing keys, providers and their versions.

    ``hostname`` is ``LOCAL_HOST`` ("") for this registry's own providers and the upstream's
    hostname (lowercase) for copies of another registry's. Namespaces compare without regard to
    case. A provider has one owner source, as a module has (``mirror.domain.provenance``): a
    write for another owner raises ``NotOwner`` and writes nothing."""

    async def add_provider_key(self, key: ProviderKey) -> bool:
        """Record a namespace's signing key; False (nothing written) when that key id is there."""

    async def list_provider_keys(self, namespace: str) -> list[ProviderKey]:
        """The namespace's keys, oldest first (the order signatures are tried in)."""

    async def remove_provider_key(self, namespace: str, key_id: str) -> bool: ...

    async def publish_provider_version(self, new: NewProviderVersion) -> ProviderPublishOutcome:
        """Record a version (and its provider, when new) with its events in one transaction;
        a version already there is merged by ``provider_records.merge_version``."""

    async def get_provider(self, hostname: str, address: ProviderAddress) -> ProviderRecord | None: ...

    async def list_providers(self, hostname: str | None = None) -> list[ProviderRecord]:
        """Every provider (of ``hostname`` when given), sorted by hostname, namespace, type."""

    async def provider_versions(self, hostname: str, address: ProviderAddress) -> list[ProviderVersion]:
        """Live (not revoked) versions, any order; [] when the provider is unknown."""

    async def get_provider_version(
        self, hostname: str, address: ProviderAddress, version: str
    ) -> ProviderVersion | None:
        """A version by its normalized string, revoked or not."""

    async def revoke_provider_version(
        self, hostname: str, address: ProviderAddress, version: str, *, owner: Owner | None = None
    ) -> bool:
        """Take a version out of service (``provider.version_revoked``); False if not live. With
        ``owner``, only while the provider is that owner's (NotOwner otherwise)."""

    async def deprecate_provider_version(
        self,
        hostname: str,
        address: ProviderAddress,
        version: str,
        deprecation: Deprecation,
        *,
        owner: Owner | None = None,
    ) -> bool:
        """Record (or replace) a live version's deprecation (``provider.version_deprecated``);
        False if not live. With ``owner``, only while the provider is that owner's."""

    async def delete_provider(self, hostname: str, address: ProviderAddress, *, owner: Owner | None = None) -> list[str]:
        """Remove a provider and all its versions (``provider.deleted``); return the blob keys of
        its zips that no other provider version lists any more ([] when there is no such provider).
        With ``owner``, only while the provider is that owner's (NotOwner otherwise)."""


class MetadataStore(
    ModuleIndex,
    ProviderStore,
    ModuleBrowser,
    ModulePublisher,
    ModuleAdmin,
    InstallationStore,
    JobStore,
    TokenStore,
    SessionStore,
    EventReader,
    ConsumerStore,
    WebhookStore,
    SettingsStore,
    Protocol,
):
    """Everything a metadata backend (SQLite, DynamoDB) provides, opened and closed by the app."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...
