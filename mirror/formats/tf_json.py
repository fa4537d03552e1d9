"""Terraform's JSON configuration syntax (``.tf.json``, and OpenTofu's ``.tofu.json``), read with the
json module into the shape python-hcl2 gives for the native syntax, so that one analysis serves both.

The root is a JSON object whose properties are block types. A block type's labels are nested
objects, one level per label (``"resource": {"aws_s3_bucket": {"this": {...}}}``); at each of these
levels, and for the body itself, an array of objects stands for several blocks. A body's properties
are its arguments and nested blocks. A property named ``"//"`` is a comment and is ignored, at the
root and at every level below it. Strings are kept as written (``"${var.x}"`` stays an expression).

Bounded: the caller limits the text's size; ``load_document`` refuses nesting deeper than
``MAX_DEPTH`` before the json module sees the text, and numbers JSON does not have (``NaN``,
``Infinity``) or too long to convert.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: arrays and objects nested deeper than this are refused (Terraform's own configurations use a
#: handful of levels; the json module recurses once per level)
MAX_DEPTH = 64
COMMENT_KEY = "//"
#: block types and their number of labels; other root properties (locals, provider, moved, ...)
#: declare nothing the analysis reports
_LABELS = {"variable": 1, "output": 1, "module": 1, "resource": 2, "data": 2, "terraform": 0}
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET_RE = re.compile(r"[\[\]{}]")


class JsonConfigError(ValueError):
    """The text is not a JSON configuration: malformed JSON, too deep, or not an object at the root."""


def load_document(text: str) -> dict[str, Any]:
    """The configuration in ``text`` as python-hcl2 shapes a native file: each block type a list of
    ``{label: {label: body}}`` (a body alone for ``terraform``), with ``required_providers`` a list
    of bodies. Raises ``JsonConfigError``."""
    _check_depth(text)
    try:
        root = json.loads(text, parse_constant=_no_constant)
    except JsonConfigError:
        raise
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        raise JsonConfigError(f"invalid JSON: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None
    if not isinstance(root, dict):
        raise JsonConfigError("the root of a JSON configuration must be an object")
    doc: dict[str, Any] = {}
    for block_type, labels in _LABELS.items():
        if block_type in root:
            blocks = _labelled_blocks(root[block_type], labels)
            if block_type == "terraform":
                blocks = [_terraform_body(body) for body in blocks]
            doc[block_type] = blocks
    return doc


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH``, counting brackets outside strings (linear time)."""
    depth = 0
    for match in _BRACKET_RE.finditer(_STRING_RE.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise JsonConfigError(f"JSON nested more than {MAX_DEPTH} levels deep")
        else:
            depth -= 1


def _no_constant(name: str) -> Any:
    raise JsonConfigError(f"invalid JSON: {name} is not a JSON number")


def _objects(value: Any) -> list[dict[str, Any]]:
    """An object, or each object of an array (several blocks); anything else stands for none."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _properties(value: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(key, item) for key, item in value.items() if key != COMMENT_KEY]


def _labelled_blocks(value: Any, labels: int) -> list[Any]:
    """The blocks under a block type's property, as hcl2 gives them: ``[{l1: {l2: body}}]`` for two
    labels, ``[{l1: body}]`` for one, ``[body]`` for none; one entry per block."""
    if labels == 0:
        return [_body(item) for item in _objects(value)]
    blocks: list[Any] = []
    for level in _objects(value):
        for label, inner in _properties(level):
            blocks.extend({label: block} for block in _labelled_blocks(inner, labels - 1))
    return blocks


def _body(value: dict[str, Any]) -> dict[str, Any]:
    return dict(_properties(value))


def _terraform_body(body: dict[str, Any]) -> dict[str, Any]:
    """A ``terraform`` block with its ``required_providers`` blocks as a list of bodies."""
    result = dict(body)
    if "required_providers" in body:
        result["required_providers"] = [_body(item) for item in _objects(body["required_providers"])]
    return result
