"""The event catalogue: every event type a store writes with its changes, and its payload.

A backend appends these in the transaction of the change they describe; builders return
``(type, data)`` as ``NewVersion.events`` and the event log carry them."""

from __future__ import annotations

from typing import Any

from mirror.domain.addresses import ModuleAddress
from mirror.domain.provenance import Owner
from mirror.domain.providers import ProviderAddress

MODULE_CREATED = "module.created"
MODULE_DELETED = "module.deleted"
MODULE_RENAMED = "module.renamed"
MODULE_POLICY_CHANGED = "module.policy_changed"
VERSION_RELEASED = "module.version_released"
VERSION_REVOKED = "module.version_revoked"
VERSION_DEPRECATED = "module.version_deprecated"
PROVIDER_CREATED = "provider.created"
PROVIDER_VERSION_RELEASED = "provider.version_released"
PROVIDER_PLATFORMS_ADDED = "provider.platforms_added"
PROVIDER_VERSION_REVOKED = "provider.version_revoked"
PROVIDER_VERSION_DEPRECATED = "provider.version_deprecated"
PROVIDER_DELETED = "provider.deleted"
APP_INSTALLED = "app.installed"
APP_UNINSTALLED = "app.uninstalled"

EventSpec = tuple[str, dict[str, Any]]


def address_data(address: ModuleAddress) -> dict[str, str]:
    """The fields every module event carries."""
    return {"namespace": address.namespace, "name": address.name, "provider": address.provider}


def module_created(address: ModuleAddress) -> EventSpec:
    return MODULE_CREATED, address_data(address)


def module_deleted(address: ModuleAddress) -> EventSpec:
    return MODULE_DELETED, address_data(address)


def module_renamed(target: ModuleAddress, old_name: str) -> EventSpec:
    return MODULE_RENAMED, {**address_data(target), "old_name": old_name}


def module_policy_changed(address: ModuleAddress, owner: Owner, allow_uploads: bool) -> EventSpec:
    return MODULE_POLICY_CHANGED, {**address_data(address), "owner_source": str(owner), "allow_uploads": allow_uploads}


def version_released(address: ModuleAddress, version: str, url: str) -> EventSpec:
    """``url``: where the archive is fetched (the blob store's URL of its key)."""
    return VERSION_RELEASED, {**address_data(address), "version": version, "url": url}


def version_revoked(address: ModuleAddress, version: str) -> EventSpec:
    return VERSION_REVOKED, {**address_data(address), "version": version}


def version_deprecated(address: ModuleAddress, version: str, reason: str, replacement: str | None) -> EventSpec:
    return VERSION_DEPRECATED, {**address_data(address), "version": version, "reason": reason, "replacement": replacement}


def provider_data(hostname: str, address: ProviderAddress) -> dict[str, str]:
    """The fields every provider event carries; ``hostname`` is "" for this registry's own."""
    return {"hostname": hostname, "namespace": address.namespace, "type": address.type}


def provider_created(hostname: str, address: ProviderAddress) -> EventSpec:
    return PROVIDER_CREATED, provider_data(hostname, address)


def provider_version_released(hostname: str, address: ProviderAddress, version: str, platforms: list[str]) -> EventSpec:
    return PROVIDER_VERSION_RELEASED, {**provider_data(hostname, address), "version": version, "platforms": platforms}


def provider_platforms_added(hostname: str, address: ProviderAddress, version: str, platforms: list[str]) -> EventSpec:
    return PROVIDER_PLATFORMS_ADDED, {**provider_data(hostname, address), "version": version, "platforms": platforms}


def provider_version_revoked(hostname: str, address: ProviderAddress, version: str) -> EventSpec:
    return PROVIDER_VERSION_REVOKED, {**provider_data(hostname, address), "version": version}


def provider_version_deprecated(
    hostname: str, address: ProviderAddress, version: str, reason: str, replacement: str | None
) -> EventSpec:
    return PROVIDER_VERSION_DEPRECATED, {
        **provider_data(hostname, address), "version": version, "reason": reason, "replacement": replacement
    }


def provider_deleted(hostname: str, address: ProviderAddress) -> EventSpec:
    return PROVIDER_DELETED, provider_data(hostname, address)


def app_installed(namespace: str) -> EventSpec:
    return APP_INSTALLED, {"namespace": namespace}


def app_uninstalled(namespace: str) -> EventSpec:
    return APP_UNINSTALLED, {"namespace": namespace}
