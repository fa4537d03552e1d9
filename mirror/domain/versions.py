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

import re
from dataclasses import dataclass
from functools import total_ordering

from mirror.errors import BadRequest

_VERSION_RE = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)"
    r"(?:\.(?P<minor>0|[1-9]\d*))?"
    r"(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
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


def latest(versions: list[str]) -> str | None:
    """The highest release; the highest prerelease only when there is no release."""
    parsed = [Version.parse(v) for v in versions]
    releases = [v for v in parsed if not v.is_prerelease]
    pool = releases or parsed
    return str(max(pool)) if pool else None
