"""Who made a change: the actor every event records (``docs/events.md``).

The actor travels with the work in a context variable: the HTTP layer sets it where a request is
authorized, the job queue while a job runs, sync, pull-through and import around their writes,
and the metadata stores read ``current_actor()`` when they append events. Nothing set: the
change is the system's own (``SYSTEM``).

Kinds and their fields:

* ``token``: ``id`` and ``description`` of the API token the request was made with
* ``person``: ``id``, the person signed in through OpenID Connect (their e-mail, user name or
  subject), and ``description``, their name
* ``github``: ``delivery``, the ``X-GitHub-Delivery`` id of the webhook delivery behind the change,
  or ``job``, the id of the job, for reconcile and backfill work that no delivery started
* ``gitlab``: ``delivery``, the ``X-Gitlab-Event-UUID`` of the group webhook delivery behind the
  change, or ``job``, the id of the job, for polling work that no delivery started
* ``upstream``: ``host``, the upstream registry of ``mirror sync`` or of a pull-through cache
* ``bundle``: ``file``, the bundle's file name, for ``mirror import``
* ``cli``: other commands run on the server
* ``system``: nothing else applies
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: the actor kinds, in the order of the module's docstring
KINDS = ("token", "person", "github", "gitlab", "upstream", "bundle", "cli", "system")

#: the fields an actor of each kind may carry, besides ``kind``
_FIELDS = ("id", "description", "delivery", "job", "host", "file")


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str
    id: str | None = None
    description: str | None = None
    delivery: str | None = None
    job: str | None = None
    host: str | None = None
    file: str | None = None

    @classmethod
    def token(cls, token_id: str, description: str) -> Actor:
        return cls("token", id=token_id, description=description)

    @classmethod
    def person(cls, person: str, name: str) -> Actor:
        return cls("person", id=person, description=name)

    @classmethod
    def github(cls, *, delivery: str | None = None, job: str | None = None) -> Actor:
        return cls("github", delivery=delivery, job=job)

    @classmethod
    def gitlab(cls, *, delivery: str | None = None, job: str | None = None) -> Actor:
        return cls("gitlab", delivery=delivery, job=job)

    @classmethod
    def upstream(cls, host: str) -> Actor:
        return cls("upstream", host=host)

    @classmethod
    def bundle(cls, file: str) -> Actor:
        return cls("bundle", file=file)

    def to_json(self) -> dict[str, Any]:
        """``{"kind": ...}`` and the fields the kind carries (a token's description even when empty)."""
        out: dict[str, Any] = {"kind": self.kind}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Any) -> Actor | None:
        """The actor ``to_json`` made; None for anything else (an event recorded before actors)."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            return None
        return cls(data["kind"], **{name: str(data[name]) for name in _FIELDS if data.get(name) is not None})


SYSTEM = Actor("system")
CLI = Actor("cli")

_ACTOR: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("mirror_actor", default=None)


def current_actor() -> Actor:
    """Who the work under way is done for; ``SYSTEM`` when nobody said."""
    return _ACTOR.get() or SYSTEM


def actor_is_set() -> bool:
    """Whether something set the actor (``current_actor`` is not just the ``SYSTEM`` fallback)."""
    return _ACTOR.get() is not None


def set_actor(actor: Actor) -> None:
    """Make ``actor`` the current one for the rest of this task (and the tasks it starts): for a
    request, whose task ends with it."""
    _ACTOR.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Make ``actor`` the current one inside the block, and the previous one again after it."""
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)


def actor_json() -> dict[str, Any]:
    """``current_actor().to_json()``, what a store records with the events it appends."""
    return current_actor().to_json()


def actor_matches(actor: dict[str, Any] | None, wanted: str) -> bool:
    """Whether a recorded actor is ``wanted``: its kind, or its id, delivery, job, host or file
    (exactly; a kind or host case-insensitively)."""
    if not actor:
        return False
    lowered = wanted.lower()
    if str(actor.get("kind", "")).lower() == lowered or str(actor.get("host", "")).lower() == lowered:
        return True
    return any(actor.get(name) == wanted for name in ("id", "delivery", "job", "file"))
