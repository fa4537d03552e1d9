"""Which GitLab projects are modules, in which namespace, and what a tag releases (pure; no I/O).

``releases_for_tag`` is the one place that turns "a tag of a project" into what to ingest: the
module address(es), the version and the subdirectory of the repository each is taken from. A
project is one module at its root, released by SemVer tags, or a monorepo (``[plugins.gitlab]
monorepos``, ``mirror.domain.monorepo``) whose tags release the module their prefix names, from
its directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirror.domain import monorepo
from mirror.domain.addresses import ModuleAddress, valid_namespace, valid_provider
from mirror.domain.errors import BadRequest
from mirror.domain.versions import normalize
from mirror.domain.monorepo import Monorepo
from mirror.integrations.gitlab.settings import WatchedGroup

TAG_REF = "refs/tags/"
ZERO_SHA = "0" * 40


@dataclass(frozen=True, slots=True)
class TagRelease:
    """One module version a tag releases: ``subdirectory`` ("" for the repository's root) is
    what the module archive holds."""

    address: ModuleAddress
    version: str
    tag: str
    subdirectory: str = ""


def version_for_tag(tag: str) -> str | None:
    """The normalized version a tag names (``v1.2.0`` -> ``1.2.0``), or None if it is not SemVer."""
    try:
        return normalize(tag)
    except BadRequest:
        return None


def tag_from_ref(ref: str) -> str | None:
    """``refs/tags/v1.0.0`` -> ``v1.0.0``; None for branches."""
    return ref[len(TAG_REF) :] if ref.startswith(TAG_REF) and len(ref) > len(TAG_REF) else None


@dataclass(frozen=True, slots=True)
class GitLabNaming:
    groups: tuple[WatchedGroup, ...]
    prefix: str = "terraform-"
    #: projects that release several modules; they hold no ``module_for`` module, whatever their path
    monorepos: tuple[Monorepo, ...] = ()

    def monorepo_for(self, namespace_path: str, project_path: str) -> Monorepo | None:
        """The config's entry for a project that releases several modules, if it has one (and the
        project is inside a watched group)."""
        if self.namespace_for(namespace_path) is None:
            return None
        return next((m for m in self.monorepos if m.is_for(namespace_path, project_path)), None)

    def takes_tag(self, namespace_path: str, project_path: str, tag: str) -> bool:
        """Whether a tag of a project that is not a single module's may release a monorepo's module:
        in a declared monorepo, any tag that may name a version; in another project of a watched
        group whose path holds no module (found by its tags), only a prefixed one."""
        if self.namespace_for(namespace_path) is None or not monorepo.may_release(tag):
            return False
        if self.monorepo_for(namespace_path, project_path) is not None:
            return True
        return self.module_for(namespace_path, project_path) is None and bool(monorepo.prefixed_versions(tag))

    def watched_group(self, namespace_path: str) -> WatchedGroup | None:
        """The deepest watched group holding a project of the namespace ``namespace_path``
        (the group itself, or a subgroup below one that includes subgroups)."""
        lowered = namespace_path.lower()
        best: WatchedGroup | None = None
        for group in self.groups:
            path = group.path.lower()
            inside = lowered == path or (group.include_subgroups and lowered.startswith(path + "/"))
            if inside and (best is None or len(group.path) > len(best.path)):
                best = group
        return best

    def namespace_for(self, namespace_path: str) -> str | None:
        """The registry namespace of projects in ``namespace_path``: the deepest watched group's
        namespace, then the rest of the path with ``/`` as ``-``; None outside every watched group."""
        group = self.watched_group(namespace_path)
        if group is None:
            return None
        rest = namespace_path[len(group.path) :].strip("/")
        return group.namespace + ("-" + rest.replace("/", "-") if rest else "")

    def skip_reason(self, namespace_path: str, project_path: str) -> str | None:
        """Why the project is not a module (None: it is one)."""
        namespace = self.namespace_for(namespace_path)
        if namespace is None:
            return f"{namespace_path} is not a watched group"
        entry = self.monorepo_for(namespace_path, project_path)
        if entry is not None:
            where = "config" if entry.mapping is not None else f"each tag's {monorepo.FILE_NAME}"
            return f"a monorepo: its modules come from {where}"
        if not project_path.startswith(self.prefix):
            return f"its path does not start with {self.prefix!r}"
        provider, _, name = project_path[len(self.prefix) :].partition("-")
        if provider == "provider":
            return "a provider's repository (terraform-provider-...), not a module"
        if not valid_provider(provider):
            return f"{provider!r} is not a provider name (lowercase letters and digits): name it {self.prefix}PROVIDER-NAME"
        if not name:
            return f"no module name after the provider: name it {self.prefix}{provider}-NAME"
        if not valid_namespace(namespace):
            return f"namespace {namespace!r} is not a valid registry namespace: give its group an explicit namespace"
        try:
            ModuleAddress.parse_parts(namespace, name, provider)
        except BadRequest as exc:
            return str(exc)
        return None

    def module_for(self, namespace_path: str, project_path: str) -> ModuleAddress | None:
        """The module a project holds, or None when it is not one (``skip_reason`` says why)."""
        if self.skip_reason(namespace_path, project_path) is not None:
            return None
        namespace = self.namespace_for(namespace_path)
        provider, _, name = project_path[len(self.prefix) :].partition("-")
        assert namespace is not None
        return ModuleAddress.parse_parts(namespace, name, provider)

    def releases_for_tag(self, namespace_path: str, project_path: str, tag: str) -> list[TagRelease]:
        """What ingesting ``tag`` of the project means: the module version(s) it releases, each
        with the subdirectory to take; [] when the project is no module or the tag no version, or
        when only the tag's tree can tell (a monorepo mapped by ``.mirror.toml``)."""
        entry = self.monorepo_for(namespace_path, project_path)
        if entry is not None:
            namespace = self.namespace_for(namespace_path)
            match = entry.mapping.match(tag) if entry.mapping is not None else None
            if match is None or namespace is None:
                return []
            return [TagRelease(match.module.address(namespace), match.version, tag, match.module.path)]
        address = self.module_for(namespace_path, project_path)
        version = version_for_tag(tag)
        if address is None or version is None:
            return []
        return [TagRelease(address=address, version=version, tag=tag)]
