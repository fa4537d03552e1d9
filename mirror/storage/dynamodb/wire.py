"""DynamoDB's wire format: typed attribute values and expressions with their names and values declared."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError


_NAME_RE = re.compile(r"#(\w+)")


@dataclass(frozen=True, slots=True)
class _Raw:
    """An update value that is an expression (``if_not_exists(...)``, ``#n + :one``)."""

    expression: str


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _expressions(values: Mapping[str, Any] | None = None, **expressions: str | None) -> dict[str, Any]:
    """Expressions with every ``#name`` declared and every ``:value`` marshalled."""
    out: dict[str, Any] = {key: text for key, text in expressions.items() if text}
    names = {f"#{name}": name for text in out.values() for name in _NAME_RE.findall(text)}
    if names:
        out["ExpressionAttributeNames"] = names
    if values:
        out["ExpressionAttributeValues"] = {key: _value(value) for key, value in values.items()}
    return out


def _put_args(
    table: str, item: dict[str, Any], condition: str | None, values: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {"TableName": table, "Item": _to_item(item), **_expressions(values, ConditionExpression=condition)}


def _update_args(
    table: str,
    key: tuple[str, str],
    *,
    set: Mapping[str, Any] | None = None,
    remove: Sequence[str] = (),
    add: Mapping[str, int | float] | None = None,
    condition: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """UpdateItem arguments: ``set`` (a None value removes the attribute), ``remove``, ``add``."""
    all_values = dict(values or {})
    assignments, removals = [], list(remove)
    for number, (name, value) in enumerate((set or {}).items()):
        if value is None:
            removals.append(name)
        elif isinstance(value, _Raw):
            assignments.append(f"#{name} = {value.expression}")
        else:
            assignments.append(f"#{name} = :set{number}")
            all_values[f":set{number}"] = value
    clauses = []
    if assignments:
        clauses.append("SET " + ", ".join(assignments))
    if removals:
        clauses.append("REMOVE " + ", ".join(f"#{name}" for name in removals))
    if add:
        for number, (name, amount) in enumerate(add.items()):
            all_values[f":add{number}"] = amount
        clauses.append("ADD " + ", ".join(f"#{name} :add{number}" for number, name in enumerate(add)))
    return {
        "TableName": table,
        "Key": _key(*key),
        **_expressions(all_values, UpdateExpression=" ".join(clauses), ConditionExpression=condition),
    }


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _to_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _value(value) for name, value in item.items() if value is not None}


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, (list, tuple)):
        return {"L": [_value(v) for v in value]}
    if isinstance(value, Mapping):
        return {"M": {k: _value(v) for k, v in value.items() if v is not None}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _python(value) for name, value in item.items()}


def _python(value: Mapping[str, Any]) -> Any:
    [(kind, data)] = value.items()
    if kind == "S" or kind == "BOOL":
        return data
    if kind == "N":
        return int(data) if re.fullmatch(r"-?\d+", data) else float(data)
    if kind == "B":
        return bytes(data)
    if kind == "NULL":
        return None
    if kind == "L":
        return [_python(v) for v in data]
    if kind == "M":
        return {k: _python(v) for k, v in data.items()}
    raise TypeError(f"unexpected DynamoDB type {kind}")
