"""Static analysis of a module archive's configuration files, without external binaries.

``read_module_files`` streams a .tar.gz once (never extracting to disk) and takes the configuration
files of the root directory and of every ``modules/<name>/`` directory: ``.tf`` and ``.tf.json``,
and OpenTofu's ``.tofu`` and ``.tofu.json``, read as OpenTofu reads a directory (a ``.tofu`` file
wins over the ``.tf`` file of the same name, ``x.tofu.json`` over ``x.tf.json``; hidden and editor
files are ignored). ``parse_file`` parses one file, native syntax with python-hcl2 and JSON syntax
with the json module (``mirror.formats.tf_json``), into what it declares; ``assemble`` combines the
files' results into the ``root`` / ``submodules`` shape of the public registry's module detail
(override files, ``override.tf`` and ``*_override.tf`` in any of the four extensions, merged last
as OpenTofu merges them), plus ``errors`` for files that could not be read or parsed (the other
files of the same directory still count) and ``complete`` / ``stopped`` for files whose parse was
stopped at a limit.

Synchronous and CPU-bound. Parsing is expensive on hostile input (a 1 MiB file can take python-hcl2
tens of seconds and hundreds of MB), so the registry runs ``parse_file`` in a child process under
limits and caches its results by content (``mirror.services.analysis``); ``analyze_archive`` does it
all in this process. Symlinked configuration files are not read (they still hide a ``.tf`` file).
"""

from __future__ import annotations

import codecs
import hashlib
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

from mirror.formats.archive import ArchiveLimits, open_tar_stream
from mirror.formats.archive_names import config_syntax, is_override, is_terraform_config, member_path, shadowed_by_tofu
from mirror.formats.tf_json import JsonConfigError, load_document

_KiB = 1024
_MiB = 1024 * _KiB
MAX_TF_FILE_BYTES = _MiB  # larger configuration files are skipped (and reported in "errors")
MAX_TF_TOTAL_BYTES = 20 * _MiB  # configuration text read in total; files past it are skipped and reported
MAX_README_BYTES = 64 * _KiB  # submodule README text kept
_README_NAMES = ("readme.md", "readme")  # lower-cased, best first
#: the shape of ``parse_file``'s results: change it when they change, and cached results of the
#: old shape are no longer used
RESULT_FORMAT = 2
#: a variable's attributes an override file may set (``set`` lists those a file sets)
_INPUT_ATTRIBUTES = ("type", "description", "default", "sensitive", "nullable")

_HCL_OPTIONS = hcl2.SerializationOptions(
    with_comments=False,
    explicit_blocks=False,  # no "__is_block__" markers
    strip_string_quotes=True,  # "x" rather than '"x"'; escapes are resolved
    preserve_heredocs=True,  # hcl2 mangles quotes when it converts heredocs itself: see _heredoc
    preserve_scientific_notation=False,  # 1e3 -> 1000.0 rather than "${1e3}"
)
_HEREDOC_RE = re.compile(r"\A<<(-?)([A-Za-z][A-Za-z0-9._-]*)\r?\n(.*?)^[ \t]*\2\Z", re.S | re.M)


def analyze_archive(path: Path, limits: ArchiveLimits) -> dict[str, Any]:
    """Describe the module at ``path`` (a .tar.gz already accepted by ``check_archive``), parsing
    in this process. The registry parses in a child process instead (``mirror.services.analysis``)."""
    files = read_module_files(path, limits)
    return assemble(files, {tf.sha256: parse_file(tf.text, tf.syntax) for tf in files.tf_files})


@dataclass(frozen=True, slots=True)
class TfFile:
    directory: str  # "" for the root, "modules/<name>" for a submodule
    name: str
    text: str
    sha256: str  # the key its parse is cached under: of the file's bytes (and syntax, for JSON)
    syntax: str = "hcl"  # "json" for .tf.json and .tofu.json files

    @property
    def override(self) -> bool:
        return is_override(self.name)

    @property
    def display(self) -> str:
        return f"{self.directory}/{self.name}" if self.directory else self.name


@dataclass(frozen=True, slots=True)
class ModuleFiles:
    """What the analysis reads from an archive: the configuration files to parse, the submodules'
    READMEs, and the files skipped for their size."""

    tf_files: list[TfFile]
    readmes: dict[str, str]  # submodule directory -> README text
    errors: list[str]


def read_module_files(path: Path, limits: ArchiveLimits) -> ModuleFiles:
    """Read the root's and the submodules' configuration files and READMEs from ``path`` in one
    pass; files a ``.tofu`` alternative hides are dropped at the end (it may come later)."""
    tf_files: dict[str, TfFile] = {}  # path -> file (a later member of the same path replaces it)
    readmes: dict[str, tuple[int, str]] = {}  # submodule directory -> (rank, text)
    skipped: dict[str, str] = {}  # path -> why it was not read
    names: dict[str, set[str]] = {}  # directory -> its configuration files' names, read or not
    total = 0
    with path.open("rb") as raw, open_tar_stream(raw, limits) as tar:
        for member in tar:
            if member.isdir():
                continue
            inner = member_path(member)
            directory, _, name = inner.rpartition("/")
            if not _is_module_dir(directory):
                continue
            if is_terraform_config(name):
                names.setdefault(directory, set()).add(name)
                if not member.isreg():
                    continue
                if member.size > MAX_TF_FILE_BYTES:
                    skipped[inner] = f"{inner}: file is larger than 1 MiB; skipped"
                elif total + member.size > MAX_TF_TOTAL_BYTES:
                    skipped[inner] = f"{inner}: the module has more than 20 MiB of configuration files; skipped"
                else:
                    total += member.size
                    data = _read_bytes(tar, member, member.size)
                    syntax = config_syntax(name)
                    key = hashlib.sha256(data if syntax == "hcl" else b"json\0" + data).hexdigest()
                    tf_files[inner] = TfFile(directory, name, _decode(data, member.size), key, syntax)
            elif member.isreg() and directory and name.lower() in _README_NAMES:
                rank = _README_NAMES.index(name.lower())
                if directory not in readmes or rank < readmes[directory][0]:
                    readmes[directory] = (rank, _decode(_read_bytes(tar, member, MAX_README_BYTES), MAX_README_BYTES))

    def kept(inner: str) -> bool:
        directory, _, name = inner.rpartition("/")
        return not shadowed_by_tofu(name, names.get(directory, set()))

    ordered = sorted((tf for inner, tf in tf_files.items() if kept(inner)), key=lambda tf: (tf.directory, tf.name))
    errors = [message for inner, message in skipped.items() if kept(inner)]
    return ModuleFiles(ordered, {d: text for d, (_, text) in readmes.items()}, errors)


def _is_module_dir(directory: str) -> bool:
    parts = directory.split("/") if directory else []
    return not parts or (len(parts) == 2 and parts[0] == "modules")


def _read_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    reader = tar.extractfile(member)
    assert reader is not None
    return reader.read(limit + 1)


def _decode(data: bytes, limit: int) -> str:
    truncated = len(data) > limit
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data[:limit], final=not truncated)
    return text.removeprefix("\ufeff")


# One file ------------------------------------------------------------------------------------


def parse_file(text: str, syntax: str = "hcl") -> dict[str, Any]:
    """What one configuration file declares, JSON-able: ``{"facts": {...}}``, or ``{"error": message}``
    when it does not parse. ``syntax`` is ``"hcl"`` (.tf, .tofu) or ``"json"`` (.tf.json,
    .tofu.json). The result depends on these alone, so it can be cached by content."""
    if syntax == "json":
        try:
            return {"facts": _facts(load_document(text), heredocs=False)}
        except JsonConfigError as exc:
            return {"error": str(exc)}
    try:
        doc = hcl2.loads(text, serialization_options=_HCL_OPTIONS)
    except Exception as exc:  # lark errors, and hcl2's own RuntimeError / ValueError
        if _out_of_memory(exc):  # a limit of this process, not a property of the file
            raise MemoryError from exc
        return {"error": (str(exc).strip().splitlines() or [type(exc).__name__])[0]}
    return {"facts": _facts(doc, heredocs=True)}


def _facts(doc: dict[str, Any], *, heredocs: bool) -> dict[str, Any]:
    """The declarations of a document in python-hcl2's shape. Native strings may be heredocs as
    written (``heredocs``); JSON strings are taken as they are."""

    def text(value: Any) -> str:
        return _text(value) if heredocs or not isinstance(value, str) else value

    def value(raw: Any) -> Any:
        return _value(raw) if heredocs else raw

    inputs: list[dict[str, Any]] = []
    for name, body in _labelled(doc.get("variable")):
        has_default = "default" in body
        inputs.append(
            {
                "name": name,
                "type": _type_text(body.get("type")),
                "description": text(body.get("description")),
                "default": value(body["default"]) if has_default else None,
                "required": not has_default,
                "sensitive": _flag(body.get("sensitive"), False),
                "nullable": _flag(body.get("nullable"), True),
                "set": [key for key in _INPUT_ATTRIBUTES if key in body],
            }
        )
    outputs = [{"name": name, "description": text(body.get("description"))} for name, body in _labelled(doc.get("output"))]
    dependencies = [
        {
            "name": name,
            "source": text(body.get("source")),
            "version": text(body.get("version")),
            "set": [key for key in ("source", "version") if key in body],
        }
        for name, body in _labelled(doc.get("module"))
    ]
    resources = [
        {"name": name, "type": type_} for type_, named in _labelled(doc.get("resource")) for name, _ in _labelled([named])
    ]
    providers: list[dict[str, str]] = []
    for block in _blocks(doc.get("terraform")):
        for required in _blocks(block.get("required_providers")):
            for name, spec in required.items():
                if isinstance(spec, dict):
                    source, version = text(spec.get("source")), text(spec.get("version"))
                else:  # legacy form: aws = ">= 2.0"
                    source, version = "", text(spec)
                providers.append({"name": str(name), "source": source, "version": version})
    return {
        "inputs": inputs,
        "outputs": outputs,
        "dependencies": dependencies,
        "resources": resources,
        "providers": providers,
    }


def _flag(value: Any, default: bool) -> bool:
    """A literal bool (``true``, or the string ``"true"`` JSON syntax may give); else ``default``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    return default


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a MemoryError, or wraps one (lark wraps a transformer's errors)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 20 and all(current is not e for e in seen):
        if isinstance(current, MemoryError):
            return True
        seen.append(current)
        current = getattr(current, "orig_exc", None) or current.__cause__ or current.__context__
    return False


# The module ----------------------------------------------------------------------------------


def assemble(files: ModuleFiles, results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The analysis of a module from the result of each of its files (by sha256, as ``parse_file``
    returns them, or ``{"stopped": reason}`` for a file whose parse was stopped or never ran).

    ``complete`` is false when some file was stopped; ``stopped`` then says which and why."""
    errors = list(files.errors)
    stopped: list[str] = []
    by_directory: dict[str, list[TfFile]] = {}
    for tf in files.tf_files:
        by_directory.setdefault(tf.directory, []).append(tf)

    def module(directory: str) -> dict[str, Any]:
        result = _analyze_directory(directory, by_directory.get(directory, []), results, errors, stopped)
        result["readme"] = files.readmes.get(directory, "")
        return result

    root = module("")
    submodules = [module(d) for d in sorted(by_directory) if d]
    return {
        "root": root,
        "submodules": submodules,
        "errors": sorted(errors),
        "complete": not stopped,
        "stopped": "; ".join(stopped) or None,
    }


def _analyze_directory(
    directory: str,
    files: list[TfFile],
    results: Mapping[str, Mapping[str, Any]],
    errors: list[str],
    stopped: list[str],
) -> dict[str, Any]:
    inputs: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    dependencies: dict[str, dict[str, Any]] = {}
    providers: dict[str, dict[str, Any]] = {}
    resources: set[tuple[str, str]] = set()
    # sorted by name, the primary files first: the first file declaring a name wins; then the
    # override files merge into what the primary files declared, in turn, as OpenTofu does
    for tf in sorted(files, key=lambda tf: (tf.override, tf.name)):
        result = results.get(tf.sha256) or {"stopped": "not analysed"}
        if "stopped" in result:
            errors.append(f"{tf.display}: analysis stopped: {result['stopped']}")
            stopped.append(f"{result['stopped']} in {tf.display}")
            continue
        if "error" in result:
            errors.append(f"{tf.display}: {result['error']}")
            continue
        facts = result["facts"]
        if tf.override:
            _merge_override(tf.display, facts, inputs, outputs, dependencies, resources, errors)
            for item in facts["providers"]:  # a requirement in an override file replaces it whole
                providers.pop(item["name"], None)
                _merge_provider(providers, item["name"], item["source"], item["version"])
            continue
        for item in facts["inputs"]:
            inputs.setdefault(item["name"], {k: v for k, v in item.items() if k != "set"})
        for item in facts["outputs"]:
            outputs.setdefault(item["name"], dict(item))
        for item in facts["dependencies"]:
            dependencies.setdefault(item["name"], {k: v for k, v in item.items() if k != "set"})
        for item in facts["resources"]:
            resources.add((item["name"], item["type"]))
        for item in facts["providers"]:
            _merge_provider(providers, item["name"], item["source"], item["version"])
    return {
        "path": directory,
        "name": directory.rpartition("/")[2],
        "readme": "",
        "empty": not files,
        "inputs": [inputs[k] for k in sorted(inputs)],
        "outputs": [outputs[k] for k in sorted(outputs)],
        "dependencies": [dependencies[k] for k in sorted(dependencies)],
        "provider_dependencies": [providers[k] for k in sorted(providers)],
        "resources": [{"name": n, "type": t} for n, t in sorted(resources)],
    }


def _merge_override(
    display: str,
    facts: Mapping[str, Any],
    inputs: dict[str, dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
    dependencies: dict[str, dict[str, Any]],
    resources: set[tuple[str, str]],
    errors: list[str],
) -> None:
    """Merge an override file's declarations into the primary files': what it sets replaces what
    they declared; it cannot declare anything new (OpenTofu refuses that, and so it is reported)."""
    for item in facts["inputs"]:
        if (base := inputs.get(item["name"])) is None:
            errors.append(f'{display}: there is no variable "{item["name"]}" to override')
            continue
        for key in item["set"]:
            base[key] = item[key]
        if "default" in item["set"]:
            base["required"] = False
    for item in facts["outputs"]:
        if (base := outputs.get(item["name"])) is None:
            errors.append(f'{display}: there is no output "{item["name"]}" to override')
        elif item["description"]:
            base["description"] = item["description"]
    for item in facts["dependencies"]:
        if (base := dependencies.get(item["name"])) is None:
            errors.append(f'{display}: there is no module call "{item["name"]}" to override')
            continue
        for key in item["set"]:
            base[key] = item[key]
    for item in facts["resources"]:
        if (item["name"], item["type"]) not in resources:
            errors.append(f'{display}: there is no {item["type"]} resource "{item["name"]}" to override')


def _blocks(value: Any) -> list[dict[str, Any]]:
    """hcl2 gives a list of bodies for repeated blocks (a lone dict for an attribute)."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _labelled(value: Any) -> list[tuple[str, Any]]:
    """``[{label: body}, ...]`` -> ``[(label, body), ...]`` (bodies of non-dict shape become {})."""
    return [(str(k), v if isinstance(v, dict) else {}) for block in _blocks(value) for k, v in block.items()]


def _merge_provider(providers: dict[str, dict[str, Any]], name: str, source: str, version: str) -> None:
    entry = providers.setdefault(name, {"name": name, "namespace": "", "source": "", "version": ""})
    if source or not entry["source"]:  # no source: Terraform's implied hashicorp/<name>
        entry["source"] = source or f"hashicorp/{name}"
        parts = entry["source"].split("/")
        entry["namespace"] = parts[-2] if len(parts) >= 2 else "hashicorp"
    entry["version"] = entry["version"] or version


# Values --------------------------------------------------------------------------------------


def _value(value: Any) -> Any:
    """A JSON-able rendering of an HCL value: heredocs resolved, expressions kept as ``${...}``."""
    if isinstance(value, str):
        return _heredoc(value)
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items() if k != "__is_block__"}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _heredoc(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _heredoc(text: str) -> str:
    """The value of a heredoc literal (hcl2 keeps them as written): its lines up to the closing
    marker, with a trailing newline as in Terraform, and for ``<<-`` the common indentation removed.
    Anything else is returned unchanged."""
    match = _HEREDOC_RE.match(text)
    if not match:
        return text
    lines = match.group(3).splitlines(keepends=True)
    if match.group(1):
        widths = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()]
        indent = min(widths, default=0)
        lines = [line[indent:] if line.strip() else line.lstrip(" \t") for line in lines]
    return "".join(line.rstrip("\r\n") + "\n" for line in lines)


def _type_text(value: Any) -> str:
    """A type constraint as HCL text: ``string``, ``list(string)``, ``object({a = string})``.

    hcl2 wraps compound expressions as ``${...}``; the wrapper is removed when it spans it all."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value)
    if value.startswith("${") and value.endswith("}") and _closing_brace(value, 1) == len(value) - 1:
        return value[2:-1]
    return value


def _closing_brace(text: str, start: int) -> int:
    """Index of the brace that closes the one at ``start`` (skipping string literals), or -1."""
    depth, in_string, i = 0, False, start
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1
