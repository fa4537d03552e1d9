"""The ``source`` of each ``module`` block in a Terraform file, read without parsing the file whole.

A module's ``source`` must be a literal string (Terraform refuses an expression there), so finding
the module calls needs only a lexer: comments, quoted strings (escapes decoded, ``${...}`` and
``%{...}`` skipped with the strings nested in them), heredocs and braces. That is linear in the
text and never slow, however hostile the file, unlike a full HCL parse. ``.tf.json`` and
``.tofu.json`` files are read as JSON.

``module_sources(name, text)`` returns ``(label, source)`` for each ``module "label" { source = "..." }``
at the top level of a file; ``escapes(directory, source)`` says whether a local source
(``./...``, ``../...``) resolves outside the root of the tree the file is in.
"""

from __future__ import annotations

import json
import posixpath
import re

#: strings nested in interpolations nested in strings... deeper than this end the scan of the file
_MAX_NESTING = 64
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SPACE_RE = re.compile(r"[ \t\r]+")
_HEREDOC_RE = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_-]*)\r?\n")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_LOCAL_PREFIXES = ("./", "../", ".\\", "..\\")

# token kinds
_NL, _IDENT, _STRING, _OPEN, _CLOSE, _EQUALS, _OTHER = range(7)


def is_local(source: str) -> bool:
    """A local path, as Terraform tells one from a registry or remote address."""
    return source.startswith(_LOCAL_PREFIXES)


def escapes(directory: str, source: str) -> bool:
    """Whether the local ``source``, written in a file of ``directory`` (relative to the tree's
    root, "" for the root), resolves above the root. Non-local sources never do."""
    if not is_local(source):
        return False
    path = source.replace("\\", "/").split("//", 1)[0]  # a "//subdir" part is inside the path
    joined = posixpath.normpath(posixpath.join(directory or ".", path))
    return joined == ".." or joined.startswith("../")


def module_sources(name: str, text: str) -> list[tuple[str, str]]:
    """``(label, source)`` of every top-level module block of the file ``name`` whose source is a
    literal string."""
    if name.endswith(".json"):
        return _json_sources(text)
    return _hcl_sources(text)


def _json_sources(text: str) -> list[tuple[str, str]]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return []
    if not isinstance(document, dict):
        return []
    found = []
    blocks = document.get("module")
    for block in blocks if isinstance(blocks, list) else [blocks]:
        if not isinstance(block, dict):
            continue
        for label, bodies in block.items():
            for body in bodies if isinstance(bodies, list) else [bodies]:
                if isinstance(body, dict) and isinstance(body.get("source"), str):
                    found.append((str(label), body["source"]))
    return found


def _hcl_sources(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    depth = 0
    module: str | None = None  # the label of the module block being read (at depth 1)
    tokens = _tokens(text)
    window: list[tuple[int, str | None]] = [(_NL, None)] * 4  # the last tokens, oldest first
    for kind, value in tokens:
        window = [*window[1:], (kind, value)]
        if kind == _OPEN:
            if depth == 0 and window[0][0] in (_NL, _CLOSE) and window[1] == (_IDENT, "module") and window[2][0] in (_STRING, _IDENT):
                module = window[2][1]
            depth += 1
        elif kind == _CLOSE:
            depth = max(depth - 1, 0)
            if depth == 0:
                module = None
        elif kind == _STRING and value is not None and depth == 1 and module is not None:
            if window[0][0] in (_NL, _OPEN) and window[1] == (_IDENT, "source") and window[2][0] == _EQUALS:
                found.append((module, value))
    return found


def _tokens(text: str):  # noqa: ANN202 - a generator of (kind, value)
    """The tokens that matter here; a string's value is None when it is not a literal."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i = _SPACE_RE.match(text, i).end()  # type: ignore[union-attr]
        elif c == "\n":
            yield _NL, None
            i += 1
        elif c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == '"':
            value, i = _string(text, i + 1, 0)
            yield _STRING, value
        elif c == "<" and (heredoc := _HEREDOC_RE.match(text, i)):
            i = _heredoc_end(text, heredoc.end(), heredoc.group(1))
            yield _OTHER, None
            yield _NL, None
        elif c == "{":
            yield _OPEN, None
            i += 1
        elif c == "}":
            yield _CLOSE, None
            i += 1
        elif c == "=" and not text.startswith("==", i) and not text.startswith("=>", i):
            yield _EQUALS, None
            i += 1
        elif c.isalpha() or c == "_":
            match = _IDENT_RE.match(text, i)
            assert match is not None
            yield _IDENT, match.group()
            i = match.end()
        else:
            if c in "!<>" and text.startswith("=", i + 1):
                i += 1
            yield _OTHER, None
            i += 1


def _string(text: str, i: int, nesting: int) -> tuple[str | None, int]:
    """Read a quoted string from just after its opening quote: (its value, or None when it holds a
    template sequence or does not end on its line; the index after it)."""
    out: list[str] = []
    literal = True
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return ("".join(out) if literal else None), i + 1
        if c == "\n":
            return None, i
        if c == "\\":
            decoded, i = _escape(text, i + 1)
            if decoded is None:
                literal = False
            else:
                out.append(decoded)
            continue
        if c in "$%" and text.startswith(c + c + "{", i):  # "$${" and "%%{" are a literal "${" and "%{"
            out.append(c + "{")
            i += 3
            continue
        if c in "$%" and text.startswith("{", i + 1):
            literal = False
            i = _template_end(text, i + 2, nesting)
            continue
        out.append(c)
        i += 1
    return None, n


def _escape(text: str, i: int) -> tuple[str | None, int]:
    c = text[i : i + 1]
    if c in _ESCAPES:
        return _ESCAPES[c], i + 1
    for letter, digits in (("u", 4), ("U", 8)):
        if c == letter:
            hex_digits = text[i + 1 : i + 1 + digits]
            if len(hex_digits) == digits and all(d in "0123456789abcdefABCDEF" for d in hex_digits):
                code = int(hex_digits, 16)
                return (chr(code) if code <= 0x10FFFF else None), i + 1 + digits
    return None, i + 1


def _template_end(text: str, i: int, nesting: int) -> int:
    """The index after the ``}`` closing a template sequence whose body starts at ``i``."""
    if nesting >= _MAX_NESTING:
        return len(text)
    depth, n = 1, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            _, i = _string(text, i + 1, nesting + 1)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _heredoc_end(text: str, i: int, marker: str) -> int:
    """The index after the heredoc's closing marker line (or the end of the text)."""
    closing = re.compile(rf"^[ \t]*{re.escape(marker)}[ \t]*\r?$", re.M)
    match = closing.search(text, i)
    return len(text) if match is None else match.end()
