"""Monorepos: one repository releasing several modules, each from its own directory and tags (pure).

A repository's modules are a mapping of directories to modules, from the registry's config or from
the file ``.mirror.toml`` at the root of the tagged tree (``FILE_NAME``), both in the same shape::

    [[modules]]
    path = "modules/vpc"     # the module's directory, relative to the repository root
    name = "vpc"             # the module's name: <namespace>/vpc/<provider>
    provider = "aws"
    tag_prefix = "vpc"       # optional; defaults to the name; "" releases plain tags (v1.2.0)

Which module a tag releases (``Mapping.match``):

- ``<prefix>/<version>`` or ``<prefix>-<version>``, where ``<version>`` is a SemVer tag as a
  single-module repository takes it (``v1.2.0`` or ``1.2.0``), releases the module whose
  ``tag_prefix`` is ``<prefix>`` (compared exactly, case included). When several prefixes fit, the
  longest wins (``dns-private-v1.0.0`` is ``dns-private``'s, not ``dns``'s).
- A plain ``<version>`` tag releases the module whose ``tag_prefix`` is ``""``; with none, and only
  one module in the mapping, that module; otherwise nothing.
- Any other tag releases nothing: the caller skips it and says so.

Nothing here reads files or the network: a source passes in the text it read and the tags it saw,
so the GitHub source and any other source apply the same rules.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mirror.domain.addresses import ModuleAddress, valid_provider
from mirror.domain.errors import BadRequest
from mirror.domain.versions import normalize

#: the mapping file read from the root of a tag's tree
FILE_NAME = ".mirror.toml"
#: the mapping file is read up to this size; a larger one is refused
MAX_FILE_BYTES = 64 * 1024
#: modules one repository may release
MAX_MODULES = 200
_KEYS = frozenset({"path", "name", "provider", "tag_prefix"})
_SEPARATORS = ("/", "-")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,98}[A-Za-z0-9])?\Z")
_REPOSITORY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9_.-]{1,100}\Z")
_PATH_PART_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._ -]*\Z")


class MappingError(BadRequest):
    """A module mapping (config or ``.mirror.toml``) that cannot be used, and why."""


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """One module of a monorepo: the directory it is released from and the tags that release it."""

    path: str  # normalized, relative, "/"-separated; "" is the repository root
    name: str
    provider: str
    tag_prefix: str  # "" for plain SemVer tags

    def address(self, namespace: str) -> ModuleAddress:
        return ModuleAddress.parse_parts(namespace, self.name, self.provider)

    def to_json(self) -> dict[str, str]:
        return {"path": self.path or ".", "name": self.name, "provider": self.provider, "tag_prefix": self.tag_prefix}


@dataclass(frozen=True, slots=True)
class TagMatch:
    module: ModuleSpec
    version: str  # normalized: "1.2.0"
    raw_version: str  # the tag's version part as written: "v1.2.0"


@dataclass(frozen=True, slots=True)
class Mapping:
    """The modules of one repository."""

    modules: tuple[ModuleSpec, ...]

    def match(self, tag: str) -> TagMatch | None:
        """The module ``tag`` releases and its version, or None (see the module's docstring)."""
        best: TagMatch | None = None
        for module in self.modules:
            if not module.tag_prefix:
                continue
            for separator in _SEPARATORS:
                head = module.tag_prefix + separator
                if tag.startswith(head) and (best is None or len(module.tag_prefix) > len(best.module.tag_prefix)):
                    version = _version(tag[len(head) :])
                    if version is not None:
                        best = TagMatch(module, version, tag[len(head) :])
        if best is not None:
            return best
        version = _version(tag)
        if version is None:
            return None
        plain = [m for m in self.modules if not m.tag_prefix] or (list(self.modules) if len(self.modules) == 1 else [])
        return TagMatch(plain[0], version, tag) if plain else None

    def prefixes(self) -> list[str]:
        """How each module's tags look, for messages: ``vpc/<version> or vpc-<version>``."""
        return [
            f"{m.tag_prefix}/<version> or {m.tag_prefix}-<version>" if m.tag_prefix else "<version>" for m in self.modules
        ]

    def addresses(self, namespace: str) -> list[ModuleAddress]:
        return [m.address(namespace) for m in self.modules]


@dataclass(frozen=True, slots=True)
class Monorepo:
    """A repository declared in config as releasing several modules: ``mapping`` from the config,
    or None to read the mapping from ``FILE_NAME`` in each tag's tree (config wins over the file)."""

    repository: str  # "owner/name", compared case-insensitively
    mapping: Mapping | None

    def is_for(self, owner: str, name: str) -> bool:
        return self.repository.lower() == f"{owner}/{name}".lower()


def parse_modules(value: Any, where: str) -> Mapping:
    """A mapping from its ``modules`` array of tables (config or file); ``where`` names it in errors.

    Raises MappingError naming the entry and the problem."""
    if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
        raise MappingError(f"{where}: modules must be a non-empty array of tables with path, name and provider")
    if len(value) > MAX_MODULES:
        raise MappingError(f"{where}: {len(value)} modules; at most {MAX_MODULES} are allowed")
    modules = [_module(item, f"{where}: modules[{number}]") for number, item in enumerate(value)]
    _check_distinct(modules, where)
    return Mapping(tuple(modules))


def parse_file(data: bytes, where: str = FILE_NAME) -> Mapping:
    """The mapping in a ``.mirror.toml``: its ``[[modules]]`` tables (other tables are ignored)."""
    if len(data) > MAX_FILE_BYTES:
        raise MappingError(f"{where} is larger than {MAX_FILE_BYTES} bytes")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MappingError(f"{where} is not valid TOML: {exc}") from None
    return parse_modules(document.get("modules"), where)


def parse_monorepo(value: Any, where: str) -> Monorepo:
    """One ``[[github.monorepos]]`` table: ``repository = "owner/name"`` and optional ``modules``."""
    if not isinstance(value, dict):
        raise MappingError(f"{where} must be a table")
    unknown = sorted(set(value) - {"repository", "modules"})
    if unknown:
        raise MappingError(f"{where}: unknown keys {', '.join(unknown)} (expected repository and modules)")
    repository = value.get("repository")
    if not (isinstance(repository, str) and _REPOSITORY_RE.match(repository)):
        raise MappingError(f"{where}: repository must be \"owner/name\", not {repository!r}")
    modules = value.get("modules")
    mapping = None if modules is None else parse_modules(modules, f"{where} ({repository})")
    return Monorepo(repository, mapping)


def parse_monorepos(values: Iterable[Any], where: str = "[github] monorepos") -> tuple[Monorepo, ...]:
    monorepos = tuple(parse_monorepo(value, f"{where}[{number}]") for number, value in enumerate(values))
    seen: set[str] = set()
    for monorepo in monorepos:
        if monorepo.repository.lower() in seen:
            raise MappingError(f"{where}: {monorepo.repository} is listed twice")
        seen.add(monorepo.repository.lower())
    return monorepos


def may_release(tag: str) -> bool:
    """Whether some mapping could take ``tag``: it is a SemVer tag, or ends in one after ``/`` or ``-``."""
    return bool(candidate_versions(tag))


def candidate_versions(tag: str) -> set[str]:
    """Every version ``tag`` could name under some mapping (whatever the prefix)."""
    plain = _version(tag)
    return prefixed_versions(tag) | ({plain} if plain is not None else set())


def prefixed_versions(tag: str) -> set[str]:
    """The versions ``tag`` could name as ``<prefix>/<version>`` or ``<prefix>-<version>``."""
    found = set()
    for index, char in enumerate(tag):
        if char in _SEPARATORS and index > 0:
            version = _version(tag[index + 1 :])
            if version is not None:
                found.add(version)
    return found


def _version(text: str) -> str | None:
    if not text or not (text[0].isdigit() or (text[0] in "vV" and text[1:2].isdigit())):
        return None
    try:
        return normalize(text)
    except BadRequest:
        return None


def _module(item: dict[str, Any], where: str) -> ModuleSpec:
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise MappingError(f"{where}: unknown keys {', '.join(unknown)} (expected path, name, provider, tag_prefix)")
    for key in ("path", "name", "provider"):
        if not isinstance(item.get(key), str):
            raise MappingError(f"{where}: {key} is required (a string)")
    name, provider = item["name"], item["provider"]
    try:
        ModuleAddress.parse_parts("namespace", name, provider)
    except BadRequest as exc:
        raise MappingError(f"{where}: {exc}") from None
    if not valid_provider(provider):
        raise MappingError(f"{where}: invalid provider {provider!r}")
    prefix = item.get("tag_prefix", name)
    if not isinstance(prefix, str) or (prefix and not _valid_prefix(prefix)):
        raise MappingError(
            f"{where}: tag_prefix {prefix!r} must be \"\" or letters, digits, '.', '_', '-' and '/' "
            "(starting and ending with a letter or digit, no '..' or '//')"
        )
    return ModuleSpec(_path(item["path"], where), name, provider, prefix)


def _valid_prefix(prefix: str) -> bool:
    return bool(_PREFIX_RE.match(prefix)) and ".." not in prefix and "//" not in prefix


def _path(raw: str, where: str) -> str:
    """``raw`` as a normalized relative directory ("" for the root), or MappingError."""
    if raw.startswith("/") or "\\" in raw or re.match(r"^[A-Za-z]:", raw):
        raise MappingError(f"{where}: path {raw!r} must be relative to the repository root, with '/'")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if any(part == ".." or not _PATH_PART_RE.match(part) for part in parts):
        raise MappingError(f"{where}: path {raw!r} must stay inside the repository (no '..') and name a directory")
    return posixpath.join(*parts) if parts else ""


def _check_distinct(modules: list[ModuleSpec], where: str) -> None:
    addresses: set[tuple[str, str]] = set()
    prefixes: set[str] = set()
    for module in modules:
        key = (module.name.lower(), module.provider)
        if key in addresses:
            raise MappingError(f"{where}: module {module.name}/{module.provider} is listed twice")
        addresses.add(key)
        if module.tag_prefix.lower() in prefixes:
            shown = repr(module.tag_prefix) if module.tag_prefix else '"" (plain tags)'
            raise MappingError(f"{where}: tag_prefix {shown} is used by two modules; give each its own")
        prefixes.add(module.tag_prefix.lower())
