"""The configuration reference, generated from the models: ``markdown()`` renders one section per
table, each key with its type, default, environment variable and description."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from mirror.config.fields import kind_of
from mirror.config.loader import NON_CONFIG_VARIABLES, env_name
from mirror.config.sections import SECTIONS, Config, MiB
from mirror.config.upstreams import UpstreamConfig

_INTRO = """\
# Configuration reference

`mirror` reads one TOML file (`--config FILE`, anywhere on the command line, or `MIRROR_CONFIG`),
then environment variables: `MIRROR_<SECTION>_<KEY>` sets `[section] key` and wins over the file.
A variable is text: `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`) for booleans, `a, b` for
arrays of strings, `a=b,c=d` for tables of strings, and empty for "unset" where a key is optional.

Every problem (an unknown section, key or `MIRROR_*` variable, a value of the wrong type, keys
that do not go together) is reported at once, one line each, before anything starts.

Every default path derives from `[server] data_dir` (default `mirror-data`, relative to the
working directory); a path set explicitly wins.
"""


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (str, PurePath)):
        return f'`"{value}"`'
    if isinstance(value, (tuple, list)) and not value:
        return "`[]`"
    if isinstance(value, dict) and not value:
        return "`{}`"
    if isinstance(value, int) and value >= MiB and value % MiB == 0:
        return f"`{value}` ({value // MiB} MiB)"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table(section: str | None, model: type) -> list[str]:
    headings = ["Key", "Type", "Default"] + (["Environment variable"] if section is not None else []) + ["Description"]
    lines = ["| " + " | ".join(headings) + " |", "|" + " --- |" * len(headings)]
    for key, info in model.__pydantic_fields__.items():  # type: ignore[attr-defined]
        kind = kind_of(info.metadata)
        cells = [f"`{key}`", _cell(kind), _default(info)]
        if section is not None:  # an array of tables has no variable: it is written in the file
            cells.append("–" if kind == "array of tables" else f"`{env_name(section, key)}`")
        cells.append(_cell(info.description or ""))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown() -> str:
    """The configuration reference as a Markdown page (a ``#`` title, a ``##`` per table)."""
    parts = [_INTRO]
    for name, model in SECTIONS.items():
        parts.append(f"## `[{name}]`\n\n{_cell(model.__doc__ or '')}\n\n" + "\n".join(_table(name, model)) + "\n")
    fields = Config.__pydantic_fields__
    parts.append(
        "## `[[upstreams]]`\n\n"
        + _cell(fields["upstreams"].description or "")
        + " Each table is read as written: no environment variables reach it; a `token_env` names a "
        "variable that is read once, when the config is loaded (and is then allowed).\n\n"
        + "\n".join(_table(None, UpstreamConfig))
        + "\n"
    )
    parts.append(
        "## `[plugins.NAME]`\n\n"
        + _cell(fields["plugins"].description or "")
        + " `mirror` itself only checks that each one is a table.\n"
    )
    parts.append(
        "## Other variables\n\nRead by the command line, not config keys: "
        + ", ".join(f"`{name}`" for name in sorted(NON_CONFIG_VARIABLES))
        + ".\n"
    )
    return "\n".join(parts)
