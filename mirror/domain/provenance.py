"""Module provenance: every module has one owner source, and only that source changes it.

An owner source is one of:

- ``upload``: created by a publish over the API (``mirror publish``, ``PUT /api/v1/modules/...``);
- ``github:<repository id>``: created from a GitHub repository, named by its numeric id (a rename
  or transfer keeps the id);
- ``gitlab:<project id>``: created from a GitLab project (the ``gitlab`` source plug-in), named by
  its numeric id, which a rename or transfer keeps too;
- ``upstream:<host>``: created by ``mirror sync`` or the pull-through cache from that upstream;
- ``bundle``: created by ``mirror import`` of an air-gap bundle.

The source that creates an address owns it. Another source never adds, reinstates, revokes,
renames or deletes its versions: the attempt fails with ``NotOwner`` (409), whose message names
the owner. One exception, set per module by an admin: ``allow_uploads`` lets uploads add versions
to a module another source owns. Those versions stay the uploader's: the owner's revocations
(a tag delete, a reconcile) leave versions that did not come from it alone.

Pure: the rules, and the text of their refusals. Backends store the owner as its string and apply
writes on the condition that the owner they read is still the one recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit
from typing import Literal

from mirror.domain.errors import BadRequest, Conflict

OwnerKind = Literal["upload", "github", "gitlab", "upstream", "bundle"]
KINDS: tuple[OwnerKind, ...] = ("upload", "github", "gitlab", "upstream", "bundle")
#: what a source may try to do to a module
Action = Literal[
    "add versions to", "reinstate versions of", "revoke versions of", "deprecate versions of", "rename", "delete", "change"
]

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class Owner:
    """A source of modules. ``ref`` is the repository id (github) or the host (upstream)."""

    kind: OwnerKind
    ref: str = ""

    @classmethod
    def upload(cls) -> Owner:
        return cls("upload")

    @classmethod
    def bundle(cls) -> Owner:
        return cls("bundle")

    @classmethod
    def github(cls, repository_id: int) -> Owner:
        return cls("github", str(int(repository_id)))

    @classmethod
    def gitlab(cls, project_id: int) -> Owner:
        return cls("gitlab", str(int(project_id)))

    @classmethod
    def upstream(cls, host: str) -> Owner:
        """An upstream by its host (``registry.example.com``, ``HOST:PORT``) or its base URL."""
        if "://" in host:
            host = urlsplit(host).netloc.rpartition("@")[2]
        return cls("upstream", host.lower())

    @classmethod
    def parse(cls, text: str) -> Owner:
        """The stored (and API) form back: ``upload``, ``bundle``, ``github:ID``, ``upstream:HOST``."""
        kind, _, ref = text.partition(":")
        if kind in ("upload", "bundle") and not ref:
            return cls(kind)  # type: ignore[arg-type]
        if kind == "github" and ref.isascii() and ref.isdigit() and len(ref) <= 20:
            return cls.github(int(ref))
        if kind == "gitlab" and ref.isascii() and ref.isdigit() and len(ref) <= 20:
            return cls.gitlab(int(ref))
        if kind == "upstream" and _HOST.fullmatch(ref):
            return cls.upstream(ref)
        raise BadRequest(
            f"invalid owner source {text[:100]!r}: use upload, bundle, github:REPOSITORY_ID, gitlab:PROJECT_ID or upstream:HOST"
        )

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}" if self.ref else self.kind

    @property
    def repository_id(self) -> int | None:
        return int(self.ref) if self.kind == "github" else None

    def describe(self, source_url: str | None = None) -> str:
        """For people: ``the GitHub repository https://github.com/acme/terraform-aws-vpc (id 42)``."""
        if self.kind == "upload":
            return "uploads (publish over the API)"
        if self.kind == "bundle":
            return "bundle imports"
        if self.kind == "upstream":
            return f"the upstream registry {self.ref} (mirror sync and pull-through)"
        where = f"{source_url} " if source_url else ""
        if self.kind == "gitlab":
            return f"the GitLab project {where}(id {self.ref})"
        return f"the GitHub repository {where}(id {self.ref})"


class NotOwner(Conflict):
    """A source tried to change a module that another source owns."""

    def __init__(self, message: str, *, owner: Owner | None = None) -> None:
        super().__init__(message)
        self.owner = owner


def refusal(address: object, owner: Owner, actor: Owner, action: Action, *, source_url: str | None = None) -> NotOwner:
    """The error for ``actor`` trying ``action`` on ``address``, owned by ``owner``."""
    hint = ""
    if actor.kind == "upload" and action == "add versions to":
        hint = (
            f"; an admin can allow uploads to it (PATCH /api/v1/modules/{address} "
            '{"allow_uploads": true}, or mirror modules set ADDRESS --allow-uploads)'
        )
    return NotOwner(
        f"{address} belongs to owner source {owner} ({owner.describe(source_url)}): "
        f"{actor.describe()} cannot {action} it{hint}",
        owner=owner,
    )


def changed(address: object, current: Owner | None, expected: Owner | None) -> NotOwner:
    """A store's refusal when the owner it finds is not the one the writer decided against."""
    now = f"belongs to owner source {current} ({current.describe()})" if current else "no longer exists"
    was = f"owner source {expected}" if expected else "no module"
    return NotOwner(f"{address} {now}, but the write was decided against {was}; nothing was written", owner=current)


def check(
    address: object,
    owner: Owner | None,
    actor: Owner,
    action: Action,
    *,
    allow_uploads: bool = False,
    source_url: str | None = None,
) -> None:
    """Raise ``NotOwner`` unless ``actor`` may do ``action`` to the module at ``address``, which
    ``owner`` owns (None: there is no module yet, and whoever creates it owns it)."""
    if owner is None or owner == actor:
        return
    if action == "add versions to" and actor.kind == "upload" and allow_uploads:
        return
    raise refusal(address, owner, actor, action, source_url=source_url)


def released_by(owner: Owner, commit_sha: str | None, version_source: str | None) -> bool:
    """Whether a version of a module ``owner`` owns came from that owner (and so is the owner's to
    revoke or reinstate): for a repository, versions released from a commit; for the others, every
    version not uploaded under ``allow_uploads``."""
    if owner.kind in ("github", "gitlab"):
        return commit_sha is not None
    if owner.kind == "upload":
        return True
    return version_source != "upload"


def legacy_owner(repository_id: int | None, version_source: str | None) -> Owner:
    """The owner of a module recorded before owners were kept: its repository when it is linked to
    one; else an upstream when its versions carry a sync label (``HOST/NS/NAME/PROVIDER``); else
    uploads. An admin can change it (``PATCH /api/v1/modules/...`` with ``owner_source``)."""
    if repository_id is not None:
        return Owner.github(repository_id)
    if version_source and "://" not in version_source and version_source != "upload":
        host = version_source.split("/", 1)[0]
        if _HOST.fullmatch(host) and ("." in host or ":" in host):
            return Owner.upstream(host)
    return Owner.upload()
