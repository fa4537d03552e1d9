"""Plain records passed between the layers. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mirror.domain.addresses import ModuleAddress
from mirror.domain.lifecycle import Deprecation
from mirror.domain.provenance import Owner

Scope = Literal["read", "publish", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "publish", "admin")


@dataclass(frozen=True, slots=True)
class ModuleVersion:
    address: ModuleAddress
    version: str  # normalized (identity)
    raw_version: str  # as given (tag or upload), kept for reference
    sha256: str
    size: int
    blob_key: str
    published_at: str  # RFC 3339
    readme: str | None = None
    source: str | None = None  # where it came from: "upload", a repository URL, an upstream
    commit_sha: str | None = None
    revoked_at: str | None = None
    deprecation: Deprecation | None = None


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A version to record, with the events that go in the same transaction."""

    version: ModuleVersion
    #: events to append, as (type, data) pairs; ``module.created`` is added by the store when the
    #: module did not exist before this version.
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: what the module's HCL declares (``mirror.formats.analysis``), stored beside the version
    analysis: dict[str, Any] | None = None
    #: the source publishing it: a new module is recorded with this owner
    owner: Owner = Owner("upload")
    #: the owner the publisher decided against (None: no module yet); the store writes only while
    #: it still is (or, for a new module, while there is still none), and raises ``NotOwner``
    #: otherwise. "any": no condition (tools and tests that write directly).
    expected_owner: Owner | None | Literal["any"] = "any"


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    #: "created": new version; "unchanged": same version, same bytes; "conflict": other bytes
    status: Literal["created", "unchanged", "conflict"]
    version: ModuleVersion  # the stored version (the existing one for unchanged/conflict)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    token_hash: str
    namespace: str  # a namespace, or "*"
    scope: Scope
    created_at: str
    description: str = ""
    revoked_at: str | None = None
    #: when it stops working (RFC 3339); None: never
    expires_at: str | None = None
    #: who made it: a person, a token id, or "" (made on the server with ``mirror token create``)
    created_by: str = ""
    #: when it was last used, coarsely (not written on every request)
    last_used_at: str | None = None
    #: a signed-in person's session (``mirror.domain.sessions.principal``): every (namespace,
    #: scope) grant the person holds, which then stand in for ``namespace`` and ``scope``; None for
    #: API tokens
    grants: tuple[tuple[str, Scope], ...] | None = None
    #: the signed-in person (their e-mail, user name or subject) for a session; "" for API tokens
    person: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    serial: int
    type: str
    occurred_at: str
    data: dict[str, Any]
    #: who made the change (``mirror.domain.audit``); None for events recorded before actors were
    actor: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "data": self.data,
        }


JobState = Literal["queued", "running", "done", "failed"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "done", "failed")


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of background work (an ingest, a webhook delivery's processing, a reconcile)."""

    id: int
    kind: str
    payload: dict[str, Any]
    state: JobState
    attempts: int
    run_after: float  # unix time
    created_at: str
    updated_at: str
    last_error: str | None = None
    dedupe_key: str | None = None
    #: the token of the claim that returned this job (random per claim); the lease holder's
    #: renew/finish/retry/fail apply only while the job still carries it
    lease_owner: str | None = None
    #: while running: the unix time the claim's lease ends (renewals move it)
    lease_until: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "attempts": self.attempts,
            "run_after": self.run_after,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_error": self.last_error,
            "dedupe_key": self.dedupe_key,
            "claimed_by": self._claimed_by(),
            "payload": self.payload,
        }

    def _claimed_by(self) -> str | None:
        """Which replica runs the job (``HOST:PID``), while it is running."""
        if self.state != "running" or not self.lease_owner:
            return None
        replica, slash, _ = self.lease_owner.rpartition("/")
        return replica if slash and replica else None


@dataclass(frozen=True, slots=True)
class ModuleRecord:
    address: ModuleAddress
    created_at: str
    source_url: str | None = None
    repository_id: int | None = None
    #: the one source that changes the module (``mirror.domain.provenance``)
    owner: Owner = Owner("upload")
    #: the GitHub App installation that brought it (github-owned modules; None for a plain webhook)
    installation_id: int | None = None
    #: set by an admin: uploads may add versions although another source owns the module
    allow_uploads: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.address.namespace,
            "name": self.address.name,
            "provider": self.address.provider,
            "owner_source": str(self.owner),
            "owner": self.owner.describe(self.source_url),
            "installation_id": self.installation_id,
            "allow_uploads": self.allow_uploads,
            "source_url": self.source_url,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Installation:
    """A GitHub App installation (or a configured account) and the namespace it maps to."""

    id: int
    account: str
    namespace: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Consumer:
    """A reader of the event log with its own cursor (the JSONL log, each webhook subscriber)."""

    name: str
    serial: int  # the last event it has handled
    attempts: int  # failed attempts at event serial + 1 so far
    next_attempt_at: float  # unix time; 0 when it may go on at once
    last_error: str | None
    updated_at: str


@dataclass(frozen=True, slots=True)
class WebhookSubscription:
    id: str
    url: str
    secret: str
    events: tuple[str, ...]  # event types; empty: all
    namespaces: tuple[str, ...]  # namespaces; empty: all
    source: Literal["config", "api"]
    created_at: str

    def wants(self, event: Event) -> bool:
        if self.events and event.type not in self.events:
            return False
        namespace = event.data.get("namespace")
        return not self.namespaces or (namespace is not None and namespace.lower() in {n.lower() for n in self.namespaces})

    def to_json(self) -> dict[str, Any]:
        """Everything but the secret."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "namespaces": list(self.namespaces),
            "source": self.source,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """An event a subscriber did not accept after every attempt (the dead-letter list)."""

    id: int
    subscription_id: str
    serial: int
    attempts: int
    last_error: str
    failed_at: str
    redelivered_at: str | None = None
