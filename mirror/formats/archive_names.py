"""Member names and link targets in a module archive: safe relative paths, names compared as
case-insensitive file systems (macOS, Windows) compare them, and symlinks resolved through the
archive's other symlinks to prove they stay inside the module.
"""

from __future__ import annotations

import re
import tarfile
import unicodedata
from collections import deque

from mirror.domain.errors import InvalidArchive
from mirror.formats.archive_limits import refuse

#: path components that resolving all of an archive's symlinks may take (a loop never ends)
_MAX_RESOLVE_STEPS = 1_000_000
_WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def member_path(member: tarfile.TarInfo) -> str:
    problem = _path_problem(member.name)
    if problem:
        raise refuse(member, f"path {problem}")
    return _normalized(member.name)


def hardlink_path(member: tarfile.TarInfo) -> str:
    """A hardlink's target, which tar stores relative to the archive root."""
    problem = _path_problem(member.linkname)
    if problem:
        raise refuse(member, f"hardlink target {member.linkname!r} {problem}")
    return _normalized(member.linkname)


def _normalized(raw: str) -> str:
    """``raw`` without empty and '.' segments: "./modules//a/" -> "modules/a", "./" -> ""."""
    return "/".join(part for part in raw.split("/") if part not in ("", "."))


def _path_problem(raw: str) -> str | None:
    return _absolute_path_problem(raw) or ("contains a '..' component" if ".." in raw.split("/") else None)


def _absolute_path_problem(raw: str) -> str | None:
    if raw.startswith("/") or _WINDOWS_DRIVE_RE.match(raw):
        return "is absolute"
    if "\\" in raw:
        return "contains a backslash (a Windows-style path)"
    return None


def folded(path: str) -> str:
    """``path`` as case-insensitive file systems compare names (case and Unicode composition)."""
    return unicodedata.normalize("NFC", path).casefold()


class Spellings:
    """The archive's paths as a tree of components folded by ``folded``, each node keeping the
    first spelling met: ``Modules/a.tf`` after ``modules/b.tf`` is a clash on ``Modules``.

    Linear in the number of path components, however long the paths.
    """

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, str], tuple[int, str]] = {}  # (parent, folded part) -> (id, part)

    def clash(self, path: str) -> str | None:
        """The earlier spelling that ``path`` (or one of its directories) differs from only in case."""
        parent = 0
        spelled: list[str] = []
        for part in path.split("/"):
            key = (parent, folded(part))
            node = self._nodes.get(key)
            if node is None:
                node = self._nodes[key] = (len(self._nodes) + 1, part)
            spelled.append(node[1])
            if node[1] != part:
                return "/".join(spelled)
            parent = node[0]
        return None


class SymlinkResolver:
    """Resolves symlink targets component by component from the root, as the OS will after
    extraction, expanding the archive's symlinks met on the way: ``a -> b/..`` looks harmless, but
    not next to ``b -> .``. Links are looked up as case-insensitive file systems would find them,
    so that ``A/x`` reaches a link at ``a/X``.

    All resolutions share one budget of steps, so that loops and absurd chains cannot make checking
    an archive slow.
    """

    def __init__(self) -> None:
        self.links: dict[str, tuple[str, str]] = {}  # folded path -> (path, target)
        self._steps_left = _MAX_RESOLVE_STEPS

    def stays_inside(self, link_path: str, target: str) -> bool:
        pending = deque([*link_path.split("/")[:-1], *target.split("/")])
        resolved: list[str] = []  # prefixes of the resolved path: "a", "a/b", "a/b/c"
        while pending:
            self._steps_left -= 1
            if self._steps_left < 0:
                raise InvalidArchive(
                    f"archive member {link_path!r}: symlink target {target!r} loops, or chains through "
                    "too many symlinks to be checked"
                )
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    return False
                resolved.pop()
                continue
            prefix = f"{resolved[-1]}/{part}" if resolved else part
            link = self.links.get(folded(prefix))
            if link is None:
                resolved.append(prefix)
            else:
                pending.extendleft(reversed(link[1].split("/")))
        return True


def symlink_problem(path: str, target: str, resolver: SymlinkResolver) -> str | None:
    """Why the symlink at ``path`` may not point at ``target``, given the links ``resolver`` knows."""
    if not target:
        return "is empty"
    problem = _absolute_path_problem(target)
    if problem:
        return problem
    if not resolver.stays_inside(path, target):
        return "points outside the module"
    return None


#: configuration file extensions, as OpenTofu reads them: (extension, syntax), JSON ones first so
#: ``x.tf.json`` is not taken for a ``.json`` file. Terraform reads the ``.tf`` ones only.
CONFIG_EXTENSIONS = ((".tofu.json", "json"), (".tf.json", "json"), (".tofu", "hcl"), (".tf", "hcl"))


def config_extension(name: str) -> str:
    """The configuration extension of a file name (``.tf``, ``.tf.json``, ``.tofu``, ``.tofu.json``),
    or "" when the name is not a configuration file's: editors' and hidden files, which Terraform
    and OpenTofu ignore, have none."""
    ignored = name.startswith(".") or name.endswith("~") or (name.startswith("#") and name.endswith("#"))
    if ignored:
        return ""
    return next((ext for ext, _ in CONFIG_EXTENSIONS if name.endswith(ext)), "")


def is_terraform_config(name: str) -> bool:
    """A file Terraform or OpenTofu loads: .tf / .tf.json / .tofu / .tofu.json, except the editor
    and hidden files they ignore."""
    return bool(config_extension(name))


def config_syntax(name: str) -> str:
    """``"json"`` for .tf.json and .tofu.json files, ``"hcl"`` for .tf and .tofu files."""
    return dict(CONFIG_EXTENSIONS)[config_extension(name)]


def is_override(name: str) -> bool:
    """An override file: ``override.<ext>`` or ``*_override.<ext>``, merged after the others."""
    base = name[: -len(config_extension(name))]
    return base == "override" or base.endswith("_override")


def shadowed_by_tofu(name: str, names: set[str] | frozenset[str]) -> bool:
    """Whether OpenTofu ignores ``name`` because ``names`` (the configuration files of the same
    directory) hold its .tofu alternative: ``main.tofu`` wins over ``main.tf``, ``x.tofu.json``
    over ``x.tf.json`` (and ``a_override.tofu`` over ``a_override.tf``)."""
    ext = config_extension(name)
    if not ext.startswith(".tf"):
        return False
    return name[: -len(ext)] + ext.replace(".tf", ".tofu", 1) in names
