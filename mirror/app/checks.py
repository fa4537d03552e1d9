"""What ``mirror sources check`` prints: one ``CheckLine`` per check a source made, or per
version it would import. Here, below the sources, so each of them can make lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail", "import"]


@dataclass(frozen=True, slots=True)
class CheckLine:
    """One line of ``mirror sources check``: ``ok``, ``warn`` or ``fail`` for a check, ``import``
    for a module version (or provider release) the source would import now."""

    status: Status
    text: str
