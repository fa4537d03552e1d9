"""Module versions: SemVer as Terraform's go-version reads it.

Terraform parses registry versions with hashicorp/go-version, which accepts a ``v`` prefix and
short forms (``1.1``), then *requests* the chosen version in normalized form (``v1.2.0`` is asked
for as ``1.2.0``, ``1.1`` as ``1.1.0``). We therefore store the normalized string as the version's
identity and keep the raw tag beside it.

``packaging.version`` implements PEP 440, which cannot represent SemVer prerelease tags such as
``1.0.0-beta.1`` or ``1.0.0-rc.1+build.5`` faithfully, so this small parser follows SemVer 2.0
precedence instead (and go-version's normalization).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from functools import total_ordering

from mirror.domain.errors import BadRequest

# ASCII digits only (re.ASCII: a bare \d also matches "٢", which int() reads as 2) and \Z, not $
# (which also matches before a trailing newline)
_VERSION_RE = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)"
    r"(?:\.(?P<minor>0|[1-9]\d*))?"
    r"(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?\Z",
    re.ASCII,
)
_MAX_LEN = 128


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        if len(text) > _MAX_LEN or not (m := _VERSION_RE.match(text)):
            raise BadRequest(
                f"invalid version {text[:_MAX_LEN]!r}: expected SemVer such as 1.2.0, v1.2.0 or 1.2.0-beta.1"
            )
        return cls(
            int(m["major"]),
            int(m["minor"] or 0),
            int(m["patch"] or 0),
            tuple(m["pre"].split(".")) if m["pre"] else (),
            m["build"] or "",
        )

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    def _key(self) -> tuple:
        # SemVer 2.0 precedence: a release sorts after its prereleases; numeric identifiers
        # compare numerically and sort before alphanumeric ones. Build metadata breaks ties only
        # so that ordering stays total and deterministic.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre, self.build)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()


def normalize(text: str) -> str:
    """The identity string of a version: ``v1.2`` becomes ``1.2.0``."""
    return str(Version.parse(text))


# Version constraints ---------------------------------------------------------------------------
#
# Terraform's module installer checks a release against ``required`` with hashicorp/go-version
# (``Constraints.Check``: every comma-separated constraint must hold), and a prerelease with
# apparentlymart/go-versions, which admits a prerelease only when a constraint names it exactly.
# Build metadata never takes part in a comparison.

_CONSTRAINT_RE = re.compile(
    r"^\s*(?P<op>~>|>=|<=|!=|=|>|<)?\s*"
    r"(?P<version>v?(?:0|[1-9]\d*)(?P<minor>\.(?:0|[1-9]\d*))?(?P<patch>\.(?:0|[1-9]\d*))?"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)\s*\Z",
    re.ASCII,
)


def _precedence(version: Version) -> tuple:
    """What comparisons use: the SemVer precedence, without build metadata."""
    return version._key()[:-1]


@dataclass(frozen=True, slots=True)
class Constraint:
    """One ``OP VERSION`` term; ``segments`` is how many of MAJOR.MINOR.PATCH were written
    (``~>`` lets only the last written one grow)."""

    op: str
    version: Version
    segments: int

    def __str__(self) -> str:
        return f"{self.op} {self.version}"

    def exact(self, version: Version) -> bool:
        return self.op == "=" and _precedence(version) == _precedence(self.version)

    def allows_release(self, version: Version) -> bool:
        """go-version's check of a version without a prerelease part."""
        if self.op == "~>" and self.version.is_prerelease:  # a pessimistic prerelease admits prereleases only
            return False
        return self.holds(version)

    def holds(self, version: Version) -> bool:
        """The term's ordering alone. ``~>``: at least the constraint, with every written segment
        but the last unchanged (so ``~> 1`` is ``>= 1.0.0``, as in go-version)."""
        v, c = _precedence(version), _precedence(self.version)
        if self.op == "~>":
            keep = self.segments - 1
            written = (self.version.major, self.version.minor, self.version.patch)[:keep]
            return v >= c and (version.major, version.minor, version.patch)[:keep] == written
        return _OPERATORS[self.op](v, c)


_OPERATORS = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True, slots=True)
class Constraints:
    """A Terraform version constraint string: ``">= 1.2, < 2.0"``, ``"~> 1.2"``, ``"1.0.0"``.

    No terms (an empty string) admits every release. A prerelease is admitted only when a term
    names it exactly (``= 1.0.0-beta.1`` or ``1.0.0-beta.1``) and every other term holds too.
    """

    terms: tuple[Constraint, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Constraints:
        if len(text) > 4 * _MAX_LEN:
            raise BadRequest(f"version constraint {text[:_MAX_LEN]!r}... is too long")
        if not text.strip():
            return cls(())
        terms = []
        for part in text.split(","):
            match = _CONSTRAINT_RE.match(part)
            if match is None:
                raise BadRequest(
                    f"invalid version constraint {text!r}: {part.strip()!r} is not OPERATOR VERSION "
                    "(operators: =, !=, >, >=, <, <=, ~>; e.g. \">= 1.2.0, < 2.0.0\" or \"~> 1.2\")"
                )
            segments = 1 + bool(match["minor"]) + bool(match["patch"])
            terms.append(Constraint(match["op"] or "=", Version.parse(match["version"]), segments))
        return cls(tuple(terms))

    def allows(self, version: Version) -> bool:
        if version.is_prerelease:
            return any(term.exact(version) for term in self.terms) and all(term.holds(version) for term in self.terms)
        return all(term.allows_release(version) for term in self.terms)

    def __str__(self) -> str:
        return ", ".join(str(term) for term in self.terms)


def matching(versions: list[str], constraints: Constraints) -> list[str]:
    """The versions (as given) that ``constraints`` admit, lowest first, one spelling per
    normalized version; versions that do not parse are left out."""
    found: dict[str, tuple[Version, str]] = {}
    for text in versions:
        try:
            parsed = Version.parse(text)
        except BadRequest:
            continue
        if constraints.allows(parsed):
            found.setdefault(str(parsed), (parsed, text))
    return [text for _, text in sorted(found.values())]
