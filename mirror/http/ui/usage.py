"""The ``module`` block a module page offers to copy, as a user would type it into Terraform.

The host is the registry's public one (``mirror.domain.urls.registry_host``): ``[server]
registry_host``, else ``public_url``'s host, else the request's ``Host``, so a registry behind a
proxy never offers the address it listens on. The version constraint follows the shown version:

- ``X.Y.Z`` with X >= 1: ``~> X.Y``, any later X.* release (SemVer: minors add, never break);
- ``0.Y.Z``: ``~> 0.Y.Z``, later patches of 0.Y only (before 1.0 a minor may break);
- a prerelease: the exact version, since Terraform picks a prerelease only when a constraint
  names it exactly.
"""

from __future__ import annotations

import re

from mirror.domain.addresses import ModuleAddress
from mirror.domain.versions import Version

_NOT_IN_IDENTIFIER_RE = re.compile(r"[^A-Za-z0-9_-]")


def version_constraint(version: str) -> str:
    parsed = Version.parse(version)
    if parsed.is_prerelease:
        return str(parsed)
    if parsed.major == 0:
        return f"~> 0.{parsed.minor}.{parsed.patch}"
    return f"~> {parsed.major}.{parsed.minor}"


def block_label(name: str) -> str:
    """The module name as an HCL block label (an identifier: it may not start with a digit)."""
    label = _NOT_IN_IDENTIFIER_RE.sub("_", name)
    return label if label[:1].isalpha() or label[:1] == "_" else f"m_{label}"


def source_address(host: str, address: ModuleAddress, subdir: str = "") -> str:
    source = f"{host}/{address.namespace}/{address.name}/{address.provider}"
    return f"{source}//{subdir}" if subdir else source


def usage_snippet(host: str, address: ModuleAddress, version: str) -> str:
    return (
        f'module "{block_label(address.name)}" {{\n'
        f'  source  = "{source_address(host, address)}"\n'
        f'  version = "{version_constraint(version)}"\n'
        "}\n"
    )
