"""A version's lifecycle beyond published: deprecated (with a reason and a replacement) and
revoked. Shared by modules and providers. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Deprecation"]


@dataclass(frozen=True, slots=True)
class Deprecation:
    """Why a version should no longer be chosen, and what to use instead."""

    reason: str
    replacement: str | None
    deprecated_at: str  # RFC 3339

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "replacement": self.replacement, "deprecated_at": self.deprecated_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deprecation:
        return cls(str(data["reason"]), data.get("replacement"), str(data["deprecated_at"]))
