"""A PEP 517 build backend for this example package alone: it writes the wheel itself (the
package's modules, its metadata and entry points from pyproject.toml), so installing needs
neither the network nor setuptools' wheel support."""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "mirror_example_plugin"


def _project() -> dict:
    return tomllib.loads((HERE / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _dist_info(project: dict) -> str:
    return f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"


def _metadata(project: dict) -> str:
    return (
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
        f"Summary: {project['description']}\nRequires-Python: {project['requires-python']}\n"
    )


def _entry_points(project: dict) -> str:
    text = ""
    for group, entries in project["entry-points"].items():
        text += f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items()) + "\n"
    return text


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project = _project()
    target = Path(metadata_directory) / _dist_info(project)
    target.mkdir(parents=True, exist_ok=True)
    (target / "METADATA").write_text(_metadata(project))
    (target / "entry_points.txt").write_text(_entry_points(project))
    return target.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    dist_info = _dist_info(project)
    name = f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"
    files: dict[str, bytes] = {
        f"{PACKAGE}/{path.name}": path.read_bytes() for path in sorted((HERE / PACKAGE).glob("*.py"))
    }
    files[f"{dist_info}/METADATA"] = _metadata(project).encode()
    files[f"{dist_info}/entry_points.txt"] = _entry_points(project).encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: example_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    with zipfile.ZipFile(Path(wheel_directory) / name, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name
