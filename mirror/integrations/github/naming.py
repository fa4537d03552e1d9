"""Which repositories are modules or providers, and which tags are versions (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from mirror.domain.addresses import ModuleAddress, valid_namespace, valid_provider
from mirror.domain.monorepo import Monorepo
from mirror.domain.providers import BINARY_PREFIX, ProviderAddress, valid_provider_type
from mirror.domain.versions import normalize
from mirror.domain.errors import BadRequest


@dataclass(frozen=True, slots=True)
class Naming:
    """``<prefix><provider>-<name>`` repositories of an account become ``<namespace>/<name>/<provider>``."""

    prefix: str = "terraform-"
    namespaces: tuple[tuple[str, str], ...] = ()  # (login, namespace), matched case-insensitively
    #: repositories that release several modules (``[[github.monorepos]]``); they hold no
    #: ``module_for`` module, whatever their name
    monorepos: tuple[Monorepo, ...] = ()

    def monorepo_for(self, owner: str, repository: str) -> Monorepo | None:
        """The config's entry for a repository that releases several modules, if it has one."""
        return next((m for m in self.monorepos if m.is_for(owner, repository)), None)

    def namespace_for(self, login: str) -> str:
        for account, namespace in self.namespaces:
            if account.lower() == login.lower():
                return namespace
        return login

    def module_for(self, owner: str, repository: str) -> ModuleAddress | None:
        """The module a repository holds, or None when its name does not follow the convention
        (a provider's repository, ``terraform-provider-...``, holds no module)."""
        if not repository.startswith(self.prefix) or repository.startswith(BINARY_PREFIX):
            return None
        if self.monorepo_for(owner, repository) is not None:
            return None
        provider, _, name = repository[len(self.prefix) :].partition("-")
        namespace = self.namespace_for(owner)
        if not (valid_provider(provider) and name and valid_namespace(namespace)):
            return None
        try:
            return ModuleAddress.parse_parts(namespace, name, provider)
        except BadRequest:
            return None

    def provider_for(self, owner: str, repository: str) -> ProviderAddress | None:
        """The provider a ``terraform-provider-TYPE`` repository releases, in the namespace a
        module of the account gets; None for any other repository."""
        if not repository.startswith(BINARY_PREFIX):
            return None
        type_ = repository[len(BINARY_PREFIX) :]
        namespace = self.namespace_for(owner)
        if not (valid_provider_type(type_) and valid_namespace(namespace)):
            return None
        try:
            return ProviderAddress.parse_parts(namespace, type_)
        except BadRequest:
            return None


def version_for_tag(tag: str) -> str | None:
    """The normalized version a tag names (``v1.2.0`` -> ``1.2.0``), or None if it is not SemVer."""
    try:
        return normalize(tag)
    except BadRequest:
        return None


def tag_from_ref(ref: str) -> str | None:
    """``refs/tags/v1.0.0`` -> ``v1.0.0``; None for branches."""
    prefix = "refs/tags/"
    return ref[len(prefix) :] if ref.startswith(prefix) else None
