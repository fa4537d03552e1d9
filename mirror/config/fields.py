"""The value types of config keys: what a TOML value or a ``MIRROR_*`` variable may be, and how it
is read.

Each type is an ``Annotated`` pydantic type whose ``BeforeValidator`` turns the value into the
key's type (a variable is always a string: ``"yes"`` is true, ``"a, b"`` is a list, ``"a=b,c=d"``
a table) or raises ``ValueError`` with the one message the loader reports after the value's
source. Values that already have the type (``dataclasses.replace``, constructors in code) pass.
A ``Kind`` in the metadata names the type in the configuration reference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict

#: every section model: frozen by the decorator, unknown keys reported by the loader
SECTION = ConfigDict(extra="forbid", defer_build=True)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Kind:
    """How the configuration reference names a key's type."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError(f"must be true or false, not {value!r}")


def _whole(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a whole number, not {value!r}") from None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number, not {value!r}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {value!r}")
    return value


def _path(value: Any) -> Path:
    if isinstance(value, PurePath):
        return Path(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a path, not {value!r}")
    return Path(value)


def _strings(value: Any) -> tuple[str, ...]:
    """A TOML array of strings, or ``"a, b"`` from the environment."""
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"must be an array of strings, not {value!r}")
    return tuple(value)


def _mapping(value: Any) -> dict[str, str]:
    """A TOML table of strings, or ``"a=b,c=d"`` from the environment."""
    if isinstance(value, str):
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"must be KEY=VALUE pairs separated by commas, not {value!r}")
        value = {key.strip(): val.strip() for key, val in pairs}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"must be a table of strings, not {value!r}")
    return dict(value)


def _tables(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError("must be an array of tables ([[...]])")
    return list(value)


def _optional(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Unset (``None``) or empty (``""``, an empty variable) is ``None``; anything else is read."""

    def read_optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value == ""):
            return None
        return read(value)

    return read_optional


def choice(*values: str) -> Any:
    """One of ``values``, as a ``Literal`` of them."""

    def one_of(value: Any) -> Any:
        if value not in values:
            raise ValueError(f"must be one of {', '.join(repr(a) for a in values)}, not {value!r}")
        return value

    return Annotated[Literal[values], BeforeValidator(one_of), Kind(" or ".join(f'`"{v}"`' for v in values))]


Flag = Annotated[bool, BeforeValidator(_flag), Kind("boolean")]
Whole = Annotated[int, BeforeValidator(_whole), Kind("integer")]
Number = Annotated[float, BeforeValidator(_number), Kind("number")]
Text = Annotated[str, BeforeValidator(_text), Kind("string")]
OptionalText = Annotated[str | None, BeforeValidator(_optional(_text)), Kind("string")]
FilePath = Annotated[Path, BeforeValidator(_path), Kind("path")]
OptionalPath = Annotated[Path | None, BeforeValidator(_optional(_path)), Kind("path")]
Strings = Annotated[tuple[str, ...], BeforeValidator(_strings), Kind("array of strings")]
StringTable = Annotated[dict[str, str], BeforeValidator(_mapping), Kind("table of strings")]
Tables = Annotated[list[dict[str, Any]], BeforeValidator(_tables), Kind("array of tables")]


def kind_of(metadata: list[Any]) -> str:
    """The reference's name of a key's type, from its field's ``Annotated`` metadata."""
    return next((item.name for item in metadata if isinstance(item, Kind)), "value")


def message(error: Any) -> str:
    """The text of one pydantic error: a reader's own ``ValueError`` message, or pydantic's."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])
