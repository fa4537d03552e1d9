"""Module addresses, validated with Terraform's own rules (terraform-registry-address)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirror.domain.errors import BadRequest

# \Z, not $: "$" also matches before a trailing newline, which let "acme\n" through
_NAME_RE = re.compile(r"^[0-9A-Za-z](?:[0-9A-Za-z_-]{0,62}[0-9A-Za-z])?\Z")
_PROVIDER_RE = re.compile(r"^[0-9a-z]{1,64}\Z")


def valid_namespace(value: str) -> bool:
    return bool(_NAME_RE.match(value))


def valid_provider(value: str) -> bool:
    return bool(_PROVIDER_RE.match(value))


@dataclass(frozen=True, slots=True)
class ModuleAddress:
    """``namespace/name/provider`` (Terraform calls the last part the target system)."""

    namespace: str
    name: str
    provider: str

    @classmethod
    def parse_parts(cls, namespace: str, name: str, provider: str) -> ModuleAddress:
        problems = []
        if not _NAME_RE.match(namespace):
            problems.append(f"invalid namespace {namespace!r}")
        if not _NAME_RE.match(name):
            problems.append(f"invalid module name {name!r}")
        if not _PROVIDER_RE.match(provider):
            problems.append(f"invalid provider {provider!r} (lowercase letters and digits only)")
        if problems:
            raise BadRequest(
                "; ".join(problems)
                + ": names are 1-64 letters, digits, '-' or '_', starting and ending with a letter or digit"
            )
        return cls(namespace, name, provider)

    @classmethod
    def parse(cls, text: str) -> ModuleAddress:
        """Parse ``NS/NAME/PROVIDER``."""
        parts = text.strip().split("/")
        if len(parts) != 3:
            raise BadRequest(f"module address {text!r} must be NAMESPACE/NAME/PROVIDER")
        return cls.parse_parts(*parts)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}/{self.provider}"
