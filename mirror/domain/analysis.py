"""Static analysis of a module archive's Terraform (.tf) files, without external binaries.

``analyze_archive`` streams a .tar.gz once (never extracting to disk), parses the ``.tf`` files of
the root directory and of every ``modules/<name>/`` directory with python-hcl2, and returns the
``root`` / ``submodules`` shape of the public registry's module detail, plus ``errors`` for files
that could not be read or parsed (the other files of the same directory still count).

Synchronous and CPU-bound: callers run it in a worker thread. ``.tf.json`` files and symlinked
``.tf`` files are ignored.
"""

from __future__ import annotations

import codecs
import re
import tarfile
from pathlib import Path
from typing import Any

import hcl2

from mirror.domain.archive import ArchiveLimits, _member_path, _open_tar_stream

_KiB = 1024
_MiB = 1024 * _KiB
MAX_TF_FILE_BYTES = _MiB  # larger .tf files are skipped (and reported in "errors")
MAX_TF_TOTAL_BYTES = 20 * _MiB  # .tf text read in total; files past it are skipped and reported
MAX_README_BYTES = 64 * _KiB  # submodule README text kept
_README_NAMES = ("readme.md", "readme")  # lower-cased, best first

_HCL_OPTIONS = hcl2.SerializationOptions(
    with_comments=False,
    explicit_blocks=False,  # no "__is_block__" markers
    strip_string_quotes=True,  # "x" rather than '"x"'; escapes are resolved
    preserve_heredocs=True,  # hcl2 mangles quotes when it converts heredocs itself: see _heredoc
    preserve_scientific_notation=False,  # 1e3 -> 1000.0 rather than "${1e3}"
)
_HEREDOC_RE = re.compile(r"\A<<(-?)([A-Za-z][A-Za-z0-9._-]*)\r?\n(.*?)^[ \t]*\2\Z", re.S | re.M)


def analyze_archive(path: Path, limits: ArchiveLimits) -> dict[str, Any]:
    """Describe the module at ``path`` (a .tar.gz already accepted by ``check_archive``)."""
    tf_files: dict[str, dict[str, str]] = {}  # directory -> {file name: text}
    readmes: dict[str, tuple[int, str]] = {}  # submodule directory -> (rank, text)
    errors: list[str] = []
    total = 0
    with path.open("rb") as raw, _open_tar_stream(raw, limits) as tar:
        for member in tar:
            if not member.isreg():
                continue
            member_path = _member_path(member)
            directory, _, name = member_path.rpartition("/")
            if not _is_module_dir(directory):
                continue
            if name.endswith(".tf"):
                if member.size > MAX_TF_FILE_BYTES:
                    errors.append(f"{member_path}: file is larger than 1 MiB; skipped")
                elif total + member.size > MAX_TF_TOTAL_BYTES:
                    errors.append(f"{member_path}: the module has more than 20 MiB of .tf files; skipped")
                else:
                    total += member.size
                    tf_files.setdefault(directory, {})[name] = _read_text(tar, member, member.size)
            elif directory and name.lower() in _README_NAMES:
                rank = _README_NAMES.index(name.lower())
                if directory not in readmes or rank < readmes[directory][0]:
                    readmes[directory] = (rank, _read_text(tar, member, MAX_README_BYTES))

    def module(directory: str) -> dict[str, Any]:
        files = tf_files.get(directory, {})
        result = _analyze_directory(directory, files, errors)
        result["readme"] = readmes.get(directory, (0, ""))[1]
        return result

    root = module("")
    submodules = [module(d) for d in sorted(tf_files) if d]
    return {"root": root, "submodules": submodules, "errors": sorted(errors)}


def _is_module_dir(directory: str) -> bool:
    parts = directory.split("/") if directory else []
    return not parts or (len(parts) == 2 and parts[0] == "modules")


def _read_text(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> str:
    reader = tar.extractfile(member)
    assert reader is not None
    data = reader.read(limit + 1)
    truncated = len(data) > limit
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(data[:limit], final=not truncated)
    return text.removeprefix("\ufeff")


# One directory -------------------------------------------------------------------------------


def _analyze_directory(directory: str, files: dict[str, str], errors: list[str]) -> dict[str, Any]:
    inputs: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    dependencies: dict[str, dict[str, Any]] = {}
    providers: dict[str, dict[str, Any]] = {}
    resources: set[tuple[str, str]] = set()
    for file_name in sorted(files):
        display = f"{directory}/{file_name}" if directory else file_name
        try:
            doc = hcl2.loads(files[file_name], serialization_options=_HCL_OPTIONS)
        except Exception as exc:  # lark errors, and hcl2's own RuntimeError / ValueError
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            errors.append(f"{display}: {message}")
            continue
        for name, body in _labelled(doc.get("variable")):
            has_default = "default" in body
            inputs.setdefault(
                name,
                {
                    "name": name,
                    "type": _type_text(body.get("type")),
                    "description": _text(body.get("description")),
                    "default": _value(body["default"]) if has_default else None,
                    "required": not has_default,
                },
            )
        for name, body in _labelled(doc.get("output")):
            outputs.setdefault(name, {"name": name, "description": _text(body.get("description"))})
        for name, body in _labelled(doc.get("module")):
            dependencies.setdefault(
                name, {"name": name, "source": _text(body.get("source")), "version": _text(body.get("version"))}
            )
        for type_, named in _labelled(doc.get("resource")):
            for name, _ in _labelled([named]):
                resources.add((name, type_))
        for block in _blocks(doc.get("terraform")):
            for required in _blocks(block.get("required_providers")):
                for name, spec in required.items():
                    _merge_provider(providers, str(name), spec)
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


def _merge_provider(providers: dict[str, dict[str, Any]], name: str, spec: Any) -> None:
    if isinstance(spec, dict):
        source, version = _text(spec.get("source")), _text(spec.get("version"))
    else:  # legacy form: aws = ">= 2.0"
        source, version = "", _text(spec)
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
