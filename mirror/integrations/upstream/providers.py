"""A client for another registry's provider protocol (``providers.v1``), and the files its
download answers point to.

The bearer token goes to discovery, ``versions`` and ``download`` (the upstream and the
``providers.v1`` service it names), as Terraform sends it, and never to the zip, SHA256SUMS or
signature URLs: those are fetched without credentials by the ``Fetcher``, through the outbound
guard unless the upstream's own origin (or ``allow_private``) is trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp

from mirror.domain.errors import UpstreamError
from mirror.domain.provider_records import ProviderVersion
from mirror.domain.providers import Platform, ProviderAddress
from mirror.domain.sources import SourcePolicy
from mirror.formats.bundle_providers import parse_providers
from mirror.integrations.upstream.client import RegistryClient, _json_object, _raise_for_status
from mirror.integrations.upstream.fetch import Fetcher
from mirror.services.upstream import UpstreamPackage

#: most signing keys read from one download answer
MAX_KEYS = 16


class ProviderClient(RegistryClient):
    """``providers.v1`` of the upstream at ``base`` (its reach URL), files through ``fetcher``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        *,
        fetcher: Fetcher,
        policy: SourcePolicy,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(session, base, token=token, timeout=timeout)
        self._fetcher = fetcher
        self._policy = policy

    async def providers_url(self) -> str:
        return await self.service_url("providers.v1", "a provider registry")

    async def provider_versions(self, address: ProviderAddress) -> list[str]:
        what = f"listing the versions of provider {address} at {self.host}"
        url = await self.providers_url() + _path(address) + "/versions"
        status, _, body, _ = await self._get(url, what)
        _raise_for_status(status, body, what, self.host)
        try:
            return [str(item["version"]) for item in _json_object(body, what)["versions"]]
        except (KeyError, TypeError) as exc:
            raise UpstreamError(f"{what}: unexpected answer ({type(exc).__name__}: {exc})") from None

    async def provider_package(self, address: ProviderAddress, version: str, platform: Platform) -> UpstreamPackage | None:
        what = f"asking {self.host} for provider {address} {version} on {platform}"
        url = (
            await self.providers_url() + _path(address) + "/" + quote(version, safe="")
            + f"/download/{platform.os}/{platform.arch}"
        )
        status, _, body, final_url = await self._get(url, what)
        if status == 404:
            return None
        _raise_for_status(status, body, what, self.host)
        data = _json_object(body, what)
        try:
            keys = data.get("signing_keys", {}).get("gpg_public_keys", [])
            return UpstreamPackage(
                protocols=tuple(str(p) for p in data.get("protocols") or ("5.0",)),
                filename=_text(data, "filename"),
                download_url=urljoin(final_url, _text(data, "download_url")),
                shasums_url=urljoin(final_url, _text(data, "shasums_url")),
                shasums_signature_url=urljoin(final_url, _text(data, "shasums_signature_url")),
                shasum=_text(data, "shasum").lower(),
                signing_keys=tuple(str(key["ascii_armor"]) for key in keys[:MAX_KEYS]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError(f"{what}: unexpected answer ({type(exc).__name__}: {exc})") from None

    async def provider_release(
        self, hostname: str, address: ProviderAddress, version: str
    ) -> tuple[ProviderVersion, dict[str, str]]:
        """Another mirror's record of a version (``/api/v1/providers/.../release``): the version,
        and each zip's URL by file name."""
        name = f"{hostname + '/' if hostname else ''}{address} {version}"
        what = f"reading {self.host}'s record of provider {name}"
        url = (
            f"{self.base_url}/api/v1/providers/{_path(address)}/{quote(version, safe='')}/release"
            f"?hostname={quote(hostname, safe='')}"
        )
        status, _, body, final_url = await self._get(url, what)
        _raise_for_status(status, body, what, self.host)
        data = _json_object(body, what)
        [parsed] = parse_providers([data], UpstreamError, what, "the answer")
        if (parsed.hostname, parsed.address, parsed.version) != (hostname.lower(), address, version):
            raise UpstreamError(f"{what}: the answer is about another provider version")
        urls = {}
        try:
            for platform in data["versions"][0]["platforms"]:
                urls[str(platform["filename"])] = urljoin(final_url, str(platform["url"]))
        except (KeyError, TypeError, IndexError) as exc:
            raise UpstreamError(f"{what}: unexpected answer ({type(exc).__name__}: {exc})") from None
        return parsed, urls

    async def read_file(self, url: str, limit: int, what: str) -> bytes:
        return await self._fetcher.read_small(url, limit=limit, policy=self._policy, what=what)

    async def download_file(self, url: str, destination: Path, limit: int, what: str) -> tuple[str, int]:
        return await self._fetcher.get_file(url, destination, limit=limit, policy=self._policy, what=what)


def _path(address: ProviderAddress) -> str:
    return f"{quote(address.namespace, safe='')}/{quote(address.type, safe='')}"


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} is not a non-empty string")
    return value
