"""What a module's page shows beyond the version's detail: its tabs with their counts, the
version picker (each version's date and its latest and prerelease labels), the banners of an
older, a prerelease or a deprecated version, and where a deprecation's replacement lives; each
version's downloads, the module's history (its changes from the event log, with who made each)
and which lifecycle forms the reader may use (``lifecycle_pages``).

Tabs are separate URLs (``?tab=inputs``), plain links that work without JavaScript; the shown
tab's link carries ``aria-current="page"``. A deprecation's replacement is free text (a version,
or an address and a version); it becomes a link when it names a live version (or module) the
caller may read, else it is shown as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from mirror.domain.addresses import ModuleAddress
from mirror.domain.errors import MirrorError, Unauthorized
from mirror.domain.lifecycle import Deprecation
from mirror.domain.models import Event, ModuleRecord, ModuleVersion
from mirror.domain.versions import Version, normalize
from mirror.http.keys import AUTH, CATALOG, DOWNLOADS, STORE
from mirror.http.ui.lifecycle_pages import allowed
from mirror.services.audit import HISTORY_SCAN, HISTORY_SHOWN, module_history

#: the tabs in their order, with their labels; every one but the README and History has a count
TABS: dict[str, str] = {
    "readme": "Readme",
    "inputs": "Inputs",
    "outputs": "Outputs",
    "dependencies": "Dependencies",
    "resources": "Resources",
    "submodules": "Submodules",
    "versions": "Versions",
    "history": "History",
}
DEFAULT_TAB = "readme"
_SEPARATORS_RE = re.compile(r"[\s@]+")


@dataclass(frozen=True, slots=True)
class Tab:
    key: str
    label: str
    count: int | None
    url: str
    current: bool


@dataclass(frozen=True, slots=True)
class VersionRow:
    """A version as the picker and the Versions tab show it."""

    version: str
    url: str
    published_at: str
    latest: bool
    prerelease: bool
    deprecated: bool
    current: bool


def tab_url(base: str, tab: str) -> str:
    return base if tab == DEFAULT_TAB else str(URL(base).with_query(tab=tab))


def tabs(base: str, current: str, root: Mapping[str, Any], submodules: Sequence[Any], versions: int) -> list[Tab]:
    """The tabs of a version's page at ``base`` (its URL without a query). Dependencies count
    the root's provider requirements and module calls together."""
    counts: dict[str, int | None] = {
        "readme": None,
        "inputs": len(root["inputs"]),
        "outputs": len(root["outputs"]),
        "dependencies": len(root["provider_dependencies"]) + len(root["dependencies"]),
        "resources": len(root["resources"]),
        "submodules": len(submodules),
        "versions": versions,
        "history": None,  # counting would read the event log on every page
    }
    return [Tab(key, label, counts[key], tab_url(base, key), key == current) for key, label in TABS.items()]


def version_rows(
    versions: Mapping[str, ModuleVersion], newest_first: Sequence[str], latest: str | None, shown: str, url: Any
) -> list[VersionRow]:
    """Every live version, newest first; ``url(version)`` is its page."""
    rows = []
    for version in newest_first:
        found = versions.get(version)
        rows.append(
            VersionRow(
                version=version,
                url=url(version),
                published_at=found.published_at if found else "",
                latest=version == latest,
                prerelease=Version.parse(version).is_prerelease,
                deprecated=bool(found and found.deprecation),
                current=version == shown,
            )
        )
    return rows


def newer_than_shown(shown: str, latest: str | None) -> str | None:
    """"older" when a later release is the latest, "prerelease" when the shown version is a
    prerelease beyond the latest release, None when the shown version is the latest."""
    if latest is None or shown == latest:
        return None
    return "older" if Version.parse(shown) < Version.parse(latest) else "prerelease"


def _version_or_none(text: str) -> str | None:
    try:
        return normalize(text)
    except MirrorError:
        return None


async def module_replacement_url(
    request: web.Request, authorization: str | None, address: ModuleAddress, deprecation: Deprecation | None, url: Any
) -> str | None:
    """The page of the deprecation's replacement: a version of this module (``2.0.0``), or a
    module (``ns/name/provider``, optionally with a host before it) and optionally its version
    after a space, an ``@`` or a ``/``. None when it names nothing live the caller may read."""
    if deprecation is None or not deprecation.replacement:
        return None
    words = [word for word in _SEPARATORS_RE.split(deprecation.replacement.strip()) if word]
    if len(words) == 1 and "/" not in words[0]:
        version = _version_or_none(words[0])
        if version and await request.app[CATALOG].version(address, version) is not None:
            return str(url(address, version))
        return None
    if not words or len(words) > 2:
        return None
    parts = words[0].split("/")
    version_text = words[1] if len(words) == 2 else None
    if version_text is None and len(parts) >= 4 and _version_or_none(parts[-1]):
        version_text = parts.pop()
    if len(parts) == 4:
        parts = parts[1:]  # a host before the address
    if len(parts) != 3:
        return None
    try:
        target = ModuleAddress.parse_parts(*parts)
        await request.app[AUTH].authorize(authorization, target.namespace, "read")
    except MirrorError:
        return None
    catalog = request.app[CATALOG]
    if version_text is None:
        latest = (await catalog.module(target)).latest
        return str(url(target, None)) if latest else None
    version = _version_or_none(version_text)
    if version and await catalog.version(target, version) is not None:
        return str(url(target, version))
    return None


# -- downloads, history and lifecycle forms -------------------------------------------------------

#: what a module event did, in words (other types: the type's last part, underscores as spaces)
EVENT_WORDS = {
    "module.created": "created",
    "module.version_released": "published",
    "module.version_deprecated": "deprecated",
    "module.version_revoked": "revoked",
    "module.renamed": "renamed",
    "module.policy_changed": "owner policy changed",
    "module.deleted": "deleted",
}
#: an actor's kind in words (``mirror.domain.audit``; other kinds are shown as they are)
ACTOR_KINDS = {
    "token": "token",
    "person": "person",
    "github": "GitHub",
    "upstream": "upstream",
    "bundle": "bundle",
    "cli": "command line",
    "system": "mirror itself",
}
#: the actor fields shown after its name, in this order (then any other, by name)
_ACTOR_FIELDS = ("id", "delivery", "job", "host", "file")
_MAX_TEXT = 200


@dataclass(frozen=True, slots=True)
class Who:
    """An event's actor: its kind in words, its description, and its other fields."""

    kind: str
    name: str
    details: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Change:
    """A module event as the History tab shows it."""

    serial: int
    what: str
    version: str
    detail: str
    when: str
    who: Who


def _text(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def who(actor: Mapping[str, Any] | None) -> Who:
    """Any recorded actor, generically: its kind, its description, then its other fields."""
    if not actor:
        return Who("unknown", "", (("recorded", "before actors were kept"),))
    kind = str(actor.get("kind", ""))
    rest = [name for name in sorted(actor) if name not in ("kind", "description", *_ACTOR_FIELDS)]
    details = tuple(
        (name, _text(actor[name]))
        for name in (*_ACTOR_FIELDS, *rest)
        if actor.get(name) not in (None, "") and isinstance(actor[name], (str, int))
    )
    return Who(ACTOR_KINDS.get(kind, _text(kind) or "unknown"), _text(actor.get("description") or ""), details)


def change(event: Event) -> Change:
    data = event.data
    what = EVENT_WORDS.get(event.type, event.type.rpartition(".")[2].replace("_", " "))
    detail = ""
    if event.type == "module.version_deprecated":
        detail = _text(data.get("reason") or "")
        if data.get("replacement"):
            detail += f" (use {_text(data['replacement'])} instead)"
    elif event.type == "module.renamed" and data.get("old_name"):
        detail = f"from {_text(data['old_name'])}"
    elif event.type == "module.policy_changed":
        uploads = "allowed" if data.get("allow_uploads") else "not allowed"
        detail = f"owner source {_text(data.get('owner_source'))}, uploads {uploads}"
    return Change(event.serial, what, _text(data.get("version") or ""), detail, event.occurred_at, who(event.actor))


def audit_url(address: ModuleAddress) -> str:
    """The audit trail of the module's namespace, where older changes are."""
    return str(URL("/api/v1/audit").with_query(namespace=address.namespace))


async def extras(
    request: web.Request,
    authorization: str | None,
    address: ModuleAddress,
    tab: str,
    record: ModuleRecord | None,
) -> dict[str, Any]:
    """The page's downloads per version, its History tab (a credential needed, as for the audit
    trail) and the lifecycle forms its reader may use."""
    principal = await request.app[AUTH].identify(authorization)
    store = request.app[STORE]
    history = None
    if tab == "history":
        if principal is None:
            raise Unauthorized("a module's history takes a token with the 'read' scope")
        history = await module_history(store, address)
    counted = await store.version_downloads(address)
    for version, n in request.app[DOWNLOADS].unflushed_versions(address).items():  # not flushed yet
        counted[version] = counted.get(version, 0) + n
    return {
        "version_downloads": counted,
        "history": [change(event) for event in history.events] if history else [],
        "history_complete": history.complete if history else True,
        "history_limits": (HISTORY_SHOWN, HISTORY_SCAN),
        "audit_url": audit_url(address),
        "may": allowed(principal, address, record),
    }
