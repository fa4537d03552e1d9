"""Build hooks of the documentation site (``hooks:`` in mkdocs.yml).

Two pages are generated from the code as it stands when the site is built, so they cannot drift:

- ``configuration.md``: the reference of every configuration key, rendered from the config
  models by ``mirror.config.reference.markdown()``;
- ``http-api.md``: every path and method of the OpenAPI document the server serves
  (``mirror.http.openapi.spec(None)``), with its parameters, request body and responses;
- ``plugins.md``: what a storage backend implements, method by method, from
  ``mirror.storage.protocols``.

Each page holds a marker comment that the generated Markdown replaces.
"""

from __future__ import annotations

import inspect
import sys
import typing
from pathlib import Path
from typing import Any

CONFIG_INTRO_MARKER = "<!-- generated: configuration intro -->"
CONFIG_MARKER = "<!-- generated: configuration reference -->"
OPENAPI_MARKER = "<!-- generated: openapi -->"
PROTOCOLS_MARKER = "<!-- generated: storage protocols -->"
METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


def on_config(config: Any) -> Any:
    """The repository root on the import path, so a checkout builds its own docs."""
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if CONFIG_MARKER in markdown:
        intro, sections = config_reference()
        markdown = markdown.replace(CONFIG_INTRO_MARKER, intro).replace(CONFIG_MARKER, sections)
    if OPENAPI_MARKER in markdown:
        from mirror.http.openapi import spec

        markdown = markdown.replace(OPENAPI_MARKER, openapi_markdown(spec(None)))
    if PROTOCOLS_MARKER in markdown:
        markdown = markdown.replace(PROTOCOLS_MARKER, protocols_markdown())
    return markdown


# -- configuration reference ------------------------------------------------------------------------


def config_reference() -> tuple[str, str]:
    """The reference the config models render (``mirror.config.reference.markdown``: a ``#``
    title, an introduction, a ``##`` per table), as (introduction, one ``###`` per table)."""
    from mirror.config.reference import markdown

    page = markdown()
    lines = page.splitlines()
    if lines and lines[0].startswith("# "):
        page = "\n".join(lines[1:])
    intro, _, sections = page.partition("\n## ")
    sections = "## " + sections if sections else ""
    demoted = "\n".join("#" + line if line.startswith("## ") else line for line in sections.splitlines())
    return intro.strip() + "\n", demoted + "\n"


def _cell(text: str) -> str:
    """Text that stays inside one table cell: one line, pipes escaped outside code spans (the
    table extension leaves pipes in code spans alone, and would show the backslash there)."""
    parts = " ".join(str(text).split()).split("`") if text else []
    return "`".join(part if index % 2 else part.replace("|", "\\|") for index, part in enumerate(parts))


# -- HTTP API from the OpenAPI document -------------------------------------------------------------


def openapi_markdown(document: dict[str, Any]) -> str:
    """One section per path and method, grouped by tag, then the schemas the answers refer to."""
    components = document.get("components", {})
    operations: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                operations.setdefault(tag, []).append((path, method, {**item, **operation}))
    tags = [tag["name"] for tag in document.get("tags", [])]
    tags += sorted(tag for tag in operations if tag not in tags)
    described = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    default_security = document.get("security", [])
    out: list[str] = []
    for tag in tags:
        if tag not in operations:
            continue
        title = tag.upper() if len(tag) <= 3 else tag.capitalize()
        out.append(f"## {title} {{#tag-{_slug(tag)}}}\n")
        if described.get(tag):
            out.append(described[tag] + "\n")
        for path, method, operation in operations[tag]:
            out.append(_operation(path, method, operation, components, default_security))
    schemas = components.get("schemas", {})
    if schemas:
        out.append("## Schemas {#schemas}\n")
        out.append("The shapes the requests and answers above refer to.\n")
        for name, schema in schemas.items():
            out.append(_schema_section(name, schema))
    return "\n".join(out)


def _operation(
    path: str, method: str, operation: dict[str, Any], components: dict[str, Any], default_security: list[Any]
) -> str:
    anchor = operation.get("operationId") or f"{method}-{path}"
    out = [f"### `{method.upper()} {path}` {{#op-{_slug(anchor)}}}\n"]
    if operation.get("summary"):
        out.append(f"**{operation['summary'].strip()}**\n")
    if operation.get("description"):
        out.append(operation["description"].strip() + "\n")
    security = operation.get("security", default_security)
    out.append(f"*Authentication:* {_security(security, components)}\n")
    parameters = [_resolve(p, components) for p in operation.get("parameters", [])]
    if parameters:
        out.append("| parameter | in | required | schema | description |\n|---|---|---|---|---|")
        for parameter in parameters:
            out.append(
                f"| `{parameter.get('name')}` | {parameter.get('in', '')} | "
                f"{'yes' if parameter.get('required') else 'no'} | "
                f"{_cell(_schema_brief(parameter.get('schema', {}), components))} | "
                f"{_cell(parameter.get('description', ''))} |"
            )
        out.append("")
    body = operation.get("requestBody")
    if body:
        body = _resolve(body, components)
        out.append("*Request body*" + (" (required)" if body.get("required") else "") + ":"
                   + (f" {_cell(body['description'])}" if body.get("description") else "") + "\n")
        for content_type, media in body.get("content", {}).items():
            schema = media.get("schema", {})
            out.append(f"- `{content_type}`: {_schema_brief(schema, components)}")
            if "$ref" not in schema and schema.get("properties"):
                out.append("")
                out.append(_fields_of(schema))
        out.append("")
    responses = operation.get("responses", {})
    if responses:
        out.append("| status | description | body |\n|---|---|---|")
        for status, response in responses.items():
            response = _resolve(response, components)
            bodies = [
                f"`{content_type}` {_schema_brief(media.get('schema', {}), components)}".strip()
                for content_type, media in response.get("content", {}).items()
            ]
            out.append(f"| {status} | {_cell(response.get('description', ''))} | {_cell(', '.join(bodies))} |")
        out.append("")
    return "\n".join(out)


def _security(security: list[Any], components: dict[str, Any]) -> str:
    """Who may call: each accepted scheme in words (a bearer token, a cookie, ...)."""
    schemes = components.get("securitySchemes", {})
    words = []
    for requirement in security:
        for name in requirement:
            scheme = schemes.get(name, {})
            if scheme.get("type") == "http":
                words.append(f"{scheme.get('scheme', 'http')} token (`Authorization` header)")
            elif scheme.get("type") == "apiKey":
                words.append(f"the `{scheme.get('name')}` {scheme.get('in', '')}".rstrip())
            else:
                words.append(f"`{name}`")
    return " or ".join(dict.fromkeys(words)) or "none"


def _resolve(item: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` into ``#/components/...`` (a few levels at most)."""
    for _ in range(5):
        ref = item.get("$ref") if isinstance(item, dict) else None
        if not ref or not ref.startswith("#/components/"):
            return item
        _, _, kind, name = ref.split("/", 3)
        item = components.get(kind, {}).get(name, {})
    return item


def _schema_brief(schema: dict[str, Any], components: dict[str, Any]) -> str:
    """A schema in a few words: a link to a named one, else its type and constraints."""
    if not schema:
        return ""
    ref = schema.get("$ref")
    if ref and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        return f"[{name}](#schema-{_slug(name)})"
    if "const" in schema:
        return f"`{schema['const']!r}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    for combinator in ("oneOf", "anyOf", "allOf"):
        if combinator in schema:
            joiner = " and " if combinator == "allOf" else " or "
            return joiner.join(_schema_brief(part, components) for part in schema[combinator])
    kind = schema.get("type", "object" if "properties" in schema else "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"array of {_schema_brief(schema.get('items', {}), components) or 'items'}"
    words = [f"{kind}" if kind else "any"]
    for key, label in (
        ("format", "format"), ("pattern", "pattern"), ("minimum", "min"), ("maximum", "max"),
        ("minLength", "min length"), ("maxLength", "max length"), ("default", "default"),
    ):
        if key in schema:
            words.append(f"{label} `{schema[key]}`")
    if kind == "object" and schema.get("properties"):
        words.append("with " + ", ".join(f"`{name}`" for name in schema["properties"]))
    return ", ".join(words)


def _schema_section(name: str, schema: dict[str, Any]) -> str:
    out = [f"### {name} {{#schema-{_slug(name)}}}\n"]
    if schema.get("description"):
        out.append(schema["description"].strip() + "\n")
    if schema.get("properties"):
        out.append(_fields_of(schema))
    else:
        out.append(_schema_brief(schema, {}) + "\n")
    return "\n".join(out)


def _fields_of(schema: dict[str, Any]) -> str:
    """An object schema's fields as a table."""
    required = set(schema.get("required", []))
    rows = ["| field | required | schema | description |", "|---|---|---|---|"]
    for field, sub in schema.get("properties", {}).items():
        rows.append(
            f"| `{field}` | {'yes' if field in required else 'no'} | "
            f"{_cell(_schema_brief(sub, {}))} | {_cell(sub.get('description', ''))} |"
        )
    return "\n".join(rows) + "\n"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower()


# -- storage protocols, method by method ------------------------------------------------------------


def protocols_markdown(module_name: str = "mirror.storage.protocols") -> str:
    """What a backend implements: each Protocol of the module, its attributes and its methods
    with their signatures and docstrings. ``MetadataStore`` is listed by the Protocols it joins."""
    import importlib

    module = importlib.import_module(module_name)
    protocols = [
        value for value in vars(module).values()
        if isinstance(value, type) and getattr(value, "_is_protocol", False) and value is not typing.Protocol
    ]
    out: list[str] = []
    for cls in protocols:
        parts = [base.__name__ for base in cls.__bases__ if getattr(base, "_is_protocol", False) and base is not typing.Protocol]
        out.append(f"### `{cls.__name__}` {{#protocol-{_slug(cls.__name__)}}}\n")
        if cls.__doc__:
            out.append(inspect.cleandoc(cls.__doc__) + "\n")
        if parts:
            out.append("Joins " + ", ".join(f"[`{part}`](#protocol-{_slug(part)})" for part in parts) + ".\n")
        members = []
        for name, annotation in vars(cls).get("__annotations__", {}).items():
            members.append(f"- `{name}: {annotation}` (attribute)")
        for name, value in vars(cls).items():
            function = value.fget if isinstance(value, property) else value
            if name.startswith("_") or not inspect.isfunction(function):
                continue
            prefix = "async " if inspect.iscoroutinefunction(function) else ""
            doc = " ".join(inspect.cleandoc(function.__doc__).split()) if function.__doc__ else ""
            members.append(f"- `{prefix}{name}{_signature(function)}`" + (f": {doc}" if doc else ""))
        if members:
            out.append("\n".join(members) + "\n")
    return "\n".join(out)


def _signature(function: Any) -> str:
    signature = inspect.signature(function)
    params = []
    star_done = False
    for parameter in list(signature.parameters.values())[1:]:  # self
        if parameter.kind is parameter.KEYWORD_ONLY and not star_done:
            params.append("*")
            star_done = True
        if parameter.kind is parameter.VAR_POSITIONAL:
            star_done = True
        text = parameter.name
        if parameter.kind is parameter.VAR_POSITIONAL:
            text = "*" + text
        elif parameter.kind is parameter.VAR_KEYWORD:
            text = "**" + text
        if parameter.annotation is not parameter.empty:
            text += f": {_annotation(parameter.annotation)}"
        if parameter.default is not parameter.empty:
            text += f" = {parameter.default!r}"
        params.append(text)
    result = ""
    if signature.return_annotation is not signature.empty:
        result = f" -> {_annotation(signature.return_annotation)}"
    return f"({', '.join(params)}){result}"


def _annotation(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
