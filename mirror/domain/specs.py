"""Upstream registries and module specs as the config and the command line give them. Pure.

* a host is ``registry.terraform.io`` (https, as Terraform addresses registries), ``HOST:PORT``,
  or a full ``http(s)://HOST[:PORT]`` URL (plain http for tests and private networks);
* a module spec is ``NAMESPACE/NAME/PROVIDER`` followed by an optional Terraform version
  constraint: ``"hashicorp/consul/aws >= 0.1"``, ``"acme/network/aws ~> 1.2, != 1.2.5"``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from mirror.domain.addresses import ModuleAddress
from mirror.domain.providers import ProviderAddress
from mirror.domain.urls import http_url
from mirror.domain.versions import Constraints
from mirror.domain.errors import BadRequest

_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?$")


def registry_base_url(host: str) -> str:
    """``https://registry.terraform.io`` for ``registry.terraform.io``; a URL as given, without a
    trailing slash. Raises ValueError for anything else (discovery lives at the host's root, so a
    path is refused)."""
    text = host.strip()
    if "://" not in text:
        if not _HOSTNAME_RE.match(text):
            raise ValueError(f"{host!r} is not a host name (registry.example.com) or an http(s) URL")
        text = f"https://{text}"
    parts = http_url(text)
    if parts is None:
        raise ValueError(f"{host!r} is not a host name (registry.example.com) or an http(s) URL")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"{host!r} must be a bare host or scheme://host[:port]: Terraform finds a registry's "
            "services at /.well-known/terraform.json on the host itself"
        )
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """A module of an upstream and which of its versions to copy."""

    address: ModuleAddress
    constraints: Constraints
    text: str

    @classmethod
    def parse(cls, text: str) -> ModuleSpec:
        """``NS/NAME/PROVIDER [CONSTRAINT]``; BadRequest naming what is wrong."""
        stripped = text.strip()
        if not stripped:
            raise BadRequest("a module spec is empty; write NAMESPACE/NAME/PROVIDER [CONSTRAINT]")
        address_text, _, constraint_text = stripped.partition(" ")
        if address_text.count("/") != 2:
            raise BadRequest(
                f"module spec {text!r}: {address_text!r} is not NAMESPACE/NAME/PROVIDER "
                "(e.g. \"hashicorp/consul/aws >= 0.1\")"
            )
        try:
            address = ModuleAddress.parse(address_text)
        except BadRequest as exc:
            raise BadRequest(f"module spec {text!r}: {exc}") from None
        try:
            constraints = Constraints.parse(constraint_text)
        except BadRequest as exc:
            raise BadRequest(f"module spec {text!r}: {exc}") from None
        return cls(address, constraints, stripped)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A provider of an upstream and which of its versions ``mirror sync`` copies."""

    address: ProviderAddress
    constraints: Constraints
    text: str

    @classmethod
    def parse(cls, text: str) -> ProviderSpec:
        """``NS/TYPE [CONSTRAINT]`` (``"hashicorp/aws ~> 5.0"``); BadRequest naming what is wrong."""
        stripped = text.strip()
        address_text, _, constraint_text = stripped.partition(" ")
        if address_text.count("/") != 1:
            raise BadRequest(f"provider spec {text[:200]!r}: write NAMESPACE/TYPE [CONSTRAINT], e.g. \"hashicorp/aws ~> 5.0\"")
        try:
            address = ProviderAddress.parse(address_text.lower())
            constraints = Constraints.parse(constraint_text)
        except BadRequest as exc:
            raise BadRequest(f"provider spec {text[:200]!r}: {exc}") from None
        return cls(address, constraints, stripped)

    def __str__(self) -> str:
        return self.text


_PATTERN_PART = re.compile(r"^(?:\*|[A-Za-z0-9_*-]{1,64})\Z")


def check_provider_pattern(pattern: str) -> None:
    """``NS/TYPE`` where either part may be ``*`` or hold ``*`` wildcards (``hashicorp/*``)."""
    parts = pattern.split("/")
    if len(parts) != 2 or not all(_PATTERN_PART.match(part) for part in parts):
        raise BadRequest(f"provider pattern {pattern[:200]!r}: write NAMESPACE/TYPE, either part may use *, e.g. \"hashicorp/*\"")


def provider_pattern_matches(pattern: str, address: ProviderAddress) -> bool:
    """Whether ``address`` matches ``pattern`` (``*`` matches any run of characters; no case)."""
    return fnmatch.fnmatchcase(f"{address.namespace}/{address.type}".lower(), pattern.lower())
