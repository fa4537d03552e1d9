"""What a publish does and which version a module shows, decided once for every backend.

A backend reads what it needs (the stored version, whether the module exists, the live versions),
asks these functions, and applies the answer atomically with its events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from mirror.domain import events
from mirror.domain.events import EventSpec
from mirror.domain.models import ModuleVersion, NewVersion, PublishOutcome
from mirror.domain.versions import Version

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """The decision on one publish: what to write and the events that go with it."""

    #: "create": a new version (and its module when ``events`` starts with ``module.created``);
    #: "reinstate": clear the stored version's revocation; "unchanged", "conflict": write nothing
    action: Literal["create", "reinstate", "unchanged", "conflict"]
    outcome: PublishOutcome
    events: tuple[EventSpec, ...] = ()


def plan_publish(new: NewVersion, stored: ModuleVersion | None, *, module_exists: bool) -> PublishPlan:
    """The same version with other bytes is a conflict, with the same bytes unchanged; the same
    bytes after a revocation (a tag deleted and pushed back) bring the version back."""
    version = new.version
    if stored is not None:
        if stored.sha256 != version.sha256:
            return PublishPlan("conflict", PublishOutcome("conflict", stored))
        if stored.revoked_at is None:
            return PublishPlan("unchanged", PublishOutcome("unchanged", stored))
        return PublishPlan("reinstate", PublishOutcome("created", replace(stored, revoked_at=None)), tuple(new.events))
    created = () if module_exists else (events.module_created(version.address),)
    return PublishPlan("create", PublishOutcome("created", version), (*created, *new.events))


def latest_rank(version: str) -> tuple[bool, Version]:
    """Releases above prereleases, then SemVer order."""
    parsed = Version.parse(version)
    return (not parsed.is_prerelease, parsed)


def _itself(candidate: Any) -> str:
    return candidate


def latest_live(
    candidates: Iterable[T], version: Callable[[T], str] = _itself, revoked: Callable[[T], Any] = lambda _: None
) -> T | None:
    """The version a module shows: its highest live release, else its highest live prerelease
    (the first of equals); None when nothing is live. The one rule for every store and reader:
    ``candidates`` are version strings unless ``version`` reads one from each, and a candidate
    is live unless ``revoked`` says otherwise."""
    best: tuple[tuple[bool, Version], T] | None = None
    for candidate in candidates:
        if revoked(candidate):
            continue
        rank = latest_rank(version(candidate))
        if best is None or rank > best[0]:
            best = (rank, candidate)
    return best[1] if best else None
