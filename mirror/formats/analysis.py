"""Static analysis of a module archive's Terraform (.tf) files, without external binaries.

``read_module_files`` streams a .tar.gz once (never extracting to disk) and takes the ``.tf`` files
of the root directory and of every ``modules/<name>/`` directory; ``parse_file`` parses one file
with python-hcl2 into what it declares; ``assemble`` combines the files' results into the
``root`` / ``submodules`` shape of the public registry's module detail, plus ``errors`` for files
that could not be read or parsed (the other files of the same directory still count) and
``complete`` / ``stopped`` for files whose parse was stopped at a limit.

Synchronous and CPU-bound. Parsing is expensive on hostile input (a 1 MiB file can take python-hcl2
tens of seconds and hundreds of MB), so the registry runs ``parse_file`` in a child process under
limits and caches its results by content (``mirror.services.analysis``); ``analyze_archive`` does it
all in this process. ``.tf.json`` files and symlinked ``.tf`` files are ignored.
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
from mirror.formats.archive_names import member_path

_KiB = 1024
_MiB = 1024 * _KiB
MAX_TF_FILE_BYTES = _MiB  # larger .tf files are skipped (and reported in "errors")
MAX_TF_TOTAL_BYTES = 20 * _MiB  # .tf text read in total; files past it are skipped and reported
MAX_README_BYTES = 64 * _KiB  # submodule README text kept
_README_NAMES = ("readme.md", "readme")  # lower-cased, best first
#: the shape of ``parse_file``'s results: change it when they change, and cached results of the
#: old shape are no longer used
RESULT_FORMAT = 1

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
    return assemble(files, {tf.sha256: parse_file(tf.text) for tf in files.tf_files})


@dataclass(frozen=True, slots=True)
class TfFile:
    directory: str  # "" for the root, "modules/<name>" for a submodule
    name: str
    text: str
    sha256: str  # of the file's bytes: the key its parse is cached under

    @property
    def display(self) -> str:
        return f"{self.directory}/{self.name}" if self.directory else self.name


@dataclass(frozen=True, slots=True)
class ModuleFiles:
    """What the analysis reads from an archive: the .tf files to parse, the submodules' READMEs,
    and the files skipped for their size."""

    tf_files: list[TfFile]
    readmes: dict[str, str]  # submodule directory -> README text
    errors: list[str]


def read_module_files(path: Path, limits: ArchiveLimits) -> ModuleFiles:
    """Read the root's and the submodules' .tf files and READMEs from ``path`` in one pass."""
    tf_files: dict[str, TfFile] = {}  # path -> file (a later member of the same path replaces it)
    readmes: dict[str, tuple[int, str]] = {}  # submodule directory -> (rank, text)
    errors: list[str] = []
    total = 0
    with path.open("rb") as raw, open_tar_stream(raw, limits) as tar:
        for member in tar:
            if not member.isreg():
                continue
            inner = member_path(member)
            directory, _, name = inner.rpartition("/")
            if not _is_module_dir(directory):
                continue
            if name.endswith(".tf"):
                if member.size > MAX_TF_FILE_BYTES:
                    errors.append(f"{inner}: file is larger than 1 MiB; skipped")
                elif total + member.size > MAX_TF_TOTAL_BYTES:
                    errors.append(f"{inner}: the module has more than 20 MiB of .tf files; skipped")
                else:
                    total += member.size
                    data = _read_bytes(tar, member, member.size)
                    text = _decode(data, member.size)
                    tf_files[inner] = TfFile(directory, name, text, hashlib.sha256(data).hexdigest())
            elif directory and name.lower() in _README_NAMES:
                rank = _README_NAMES.index(name.lower())
                if directory not in readmes or rank < readmes[directory][0]:
                    readmes[directory] = (rank, _decode(_read_bytes(tar, member, MAX_README_BYTES), MAX_README_BYTES))
    ordered = sorted(tf_files.values(), key=lambda tf: (tf.directory, tf.name))
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


def parse_file(text: str) -> dict[str, Any]:
    """What one .tf file declares, JSON-able: ``{"facts": {...}}``, or ``{"error": message}`` when
    it does not parse. The result depends on the text alone, so it can be cached by content."""
    try:
        doc = hcl2.loads(text, serialization_options=_HCL_OPTIONS)
    except Exception as exc:  # lark errors, and hcl2's own RuntimeError / ValueError
        if _out_of_memory(exc):  # a limit of this process, not a property of the file
            raise MemoryError from exc
        return {"error": (str(exc).strip().splitlines() or [type(exc).__name__])[0]}
    inputs: list[dict[str, Any]] = []
    for name, body in _labelled(doc.get("variable")):
        has_default = "default" in body
        inputs.append(
            {
                "name": name,
                "type": _type_text(body.get("type")),
                "description": _text(body.get("description")),
                "default": _value(body["default"]) if has_default else None,
                "required": not has_default,
            }
        )
    outputs = [{"name": name, "description": _text(body.get("description"))} for name, body in _labelled(doc.get("output"))]
    dependencies = [
        {"name": name, "source": _text(body.get("source")), "version": _text(body.get("version"))}
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
                    source, version = _text(spec.get("source")), _text(spec.get("version"))
                else:  # legacy form: aws = ">= 2.0"
                    source, version = "", _text(spec)
                providers.append({"name": str(name), "source": source, "version": version})
    return {
        "facts": {
            "inputs": inputs,
            "outputs": outputs,
            "dependencies": dependencies,
            "resources": resources,
            "providers": providers,
        }
    }


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
    for tf in files:  # sorted by name: the first file declaring a name wins
        result = results.get(tf.sha256) or {"stopped": "not analysed"}
        if "stopped" in result:
            errors.append(f"{tf.display}: analysis stopped: {result['stopped']}")
            stopped.append(f"{result['stopped']} in {tf.display}")
            continue
        if "error" in result:
            errors.append(f"{tf.display}: {result['error']}")
            continue
        facts = result["facts"]
        for item in facts["inputs"]:
            inputs.setdefault(item["name"], dict(item))
        for item in facts["outputs"]:
            outputs.setdefault(item["name"], dict(item))
        for item in facts["dependencies"]:
            dependencies.setdefault(item["name"], dict(item))
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
