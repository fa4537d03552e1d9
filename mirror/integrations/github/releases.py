"""GitHub releases of ``terraform-provider-TYPE`` repositories become provider versions.

A ``release`` delivery with action ``published`` of such a repository queues one
``github.ingest_provider_release`` job (known by repository id and release id, so a release is
queued once). The job reads the release from GitHub, keeps only the assets of the GoReleaser
release of that type and version (``terraform-provider-TYPE_VERSION_OS_ARCH.zip``,
``..._SHA256SUMS``, ``..._SHA256SUMS.sig``, ``..._manifest.json``; checksums.txt, source
tarballs and anything else are left alone), downloads them within ``[limits]`` into a temporary
directory under the spool directory and hands them to ``ProviderRegistry.publish``, which checks
the release whole (the signature with one of the namespace's keys, every zip against SHA256SUMS)
before anything is stored.

The provider is ``NAMESPACE/TYPE``, NAMESPACE being the one a module of the repository would get,
and is owned by the repository (owner source ``github:<repository id>``). A refused release (no
signing key in the namespace, a bad signature, another owner) fails the job at once with the
reason; GitHub being unreachable retries it.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from mirror.domain.audit import Actor, acting_as, current_actor
from mirror.domain.errors import BadRequest, PayloadTooLarge
from mirror.domain.provenance import Owner
from mirror.domain.provider_records import LOCAL_HOST, provider_name, provider_refusal
from mirror.domain.providers import (
    MAX_MANIFEST_BYTES,
    MAX_SHASUMS_BYTES,
    ReleaseFileKind,
    parse_release_file_name,
)
from mirror.formats.openpgp import MAX_SIGNATURE_BYTES
from mirror.integrations.github.api import GitHubClient, ReleaseAsset
from mirror.integrations.github.naming import Naming, version_for_tag
from mirror.services.provider_release import no_keys_message
from mirror.services.providers import ProviderRegistry
from mirror.storage.protocols import MetadataStore

log = structlog.get_logger("mirror.github")

INGEST_PROVIDER_RELEASE = "github.ingest_provider_release"

_KIND_LIMITS = {
    ReleaseFileKind.SHASUMS: MAX_SHASUMS_BYTES,
    ReleaseFileKind.SIGNATURE: MAX_SIGNATURE_BYTES,
    ReleaseFileKind.MANIFEST: MAX_MANIFEST_BYTES,
}


@dataclass(frozen=True, slots=True)
class ReleaseLimits:
    """``[limits]`` max_provider_files, max_provider_zip_bytes and max_provider_release_bytes."""

    max_files: int
    max_zip_bytes: int
    max_release_bytes: int


def provider_release_job(naming: Naming, data: dict[str, Any], installation_id: int | None) -> tuple[dict[str, Any], str] | None:
    """The (payload, dedupe key) of the job a ``release`` delivery's ``data`` calls for, or None
    when the repository is not a provider's or the tag is not a version."""
    repository, release = data["repository"], data["release"]
    owner, name = repository["owner"]["login"], repository["name"]
    if naming.provider_for(owner, name) is None:
        return None
    tag = release["tag_name"]
    if version_for_tag(tag) is None:
        log.info("release ignored: its tag is not a SemVer version", repository=f"{owner}/{name}", tag=tag)
        return None
    repository_id, release_id = int(repository["id"]), int(release["id"])
    payload = {
        "installation_id": installation_id,
        "owner": owner,
        "name": name,
        "repository_id": repository_id,
        "release_id": release_id,
        "tag": tag,
    }
    return payload, f"github-provider-release:{repository_id}:{release_id}"


def release_assets(assets: Sequence[ReleaseAsset], type_: str, version: str) -> list[tuple[ReleaseAsset, ReleaseFileKind]]:
    """The assets that are files of the GoReleaser release of ``type_`` at ``version``, spelled
    as GoReleaser writes them (the version without ``v``), each with its kind; the rest is left."""
    chosen = []
    for asset in assets:
        if asset.state != "uploaded":
            continue
        try:
            parsed = parse_release_file_name(asset.name)
        except BadRequest:
            continue
        if parsed.type == type_ and parsed.version == version and parsed.name == asset.name:
            chosen.append((asset, parsed.kind))
    return chosen


class ProviderReleaseIngest:
    """The handler of ``github.ingest_provider_release`` jobs."""

    def __init__(
        self,
        *,
        store: MetadataStore,
        providers: ProviderRegistry,
        client: GitHubClient,
        naming: Naming,
        limits: ReleaseLimits,
        spool_dir: Path,
    ) -> None:
        self._store = store
        self._providers = providers
        self._client = client
        self._naming = naming
        self._limits = limits
        self._spool_dir = spool_dir

    def handlers(self) -> dict[str, Any]:
        return {INGEST_PROVIDER_RELEASE: as_github(self.ingest_release)}

    async def ingest_release(self, payload: dict[str, Any]) -> None:
        installation_id, owner, name = payload["installation_id"], payload["owner"], payload["name"]
        repository = await self._client.repository(owner, name, installation_id)
        if repository.id != payload["repository_id"]:
            log.info("release ignored: the repository is another one now", repository=f"{owner}/{name}")
            return
        address = self._naming.provider_for(repository.owner, repository.name)
        if address is None:
            return
        source = Owner.github(repository.id)
        # before anything is downloaded: another source's provider, or no key to check with
        record = await self._store.get_provider(LOCAL_HOST, address)
        if record is not None and record.owner != source:
            raise provider_refusal(LOCAL_HOST, address, record.owner, source, "add versions to", source_url=record.source_url)
        if not await self._providers.keys(address.namespace):
            raise BadRequest(no_keys_message(address.namespace))
        release = await self._client.release(repository.owner, repository.name, payload["release_id"], installation_id)
        version = version_for_tag(release.tag_name)
        if release.draft or version is None:
            log.info("release ignored: a draft, or not a version", repository=repository.full_name, tag=release.tag_name)
            return
        what = f"release {release.tag_name} of {repository.full_name}"
        chosen = release_assets(release.assets, address.type, version)
        if not chosen:
            stem = f"terraform-provider-{address.type}_{version}"
            raise BadRequest(
                f"{what} has no provider release files: expected {stem}_SHA256SUMS, {stem}_SHA256SUMS.sig "
                f"and {stem}_OS_ARCH.zip assets, as GoReleaser publishes them"
            )
        self._check_sizes(what, chosen)
        with tempfile.TemporaryDirectory(prefix="github-provider-", dir=self._spool_dir) as tmp:
            files: dict[str, Path] = {}
            total = 0
            for asset, kind in chosen:
                path = Path(tmp) / f"asset-{len(files)}"
                limit = min(self._file_limit(kind), self._limits.max_release_bytes - total)
                with path.open("wb") as out:
                    total += await self._client.download_release_asset(
                        repository.owner, repository.name, asset, installation_id, out, limit
                    )
                files[asset.name] = path
            outcome = await self._providers.publish(
                address, version, files, owner=source, source=repository.html_url, source_url=repository.html_url
            )
        log.info(
            "provider release ingested",
            provider=provider_name(LOCAL_HOST, address),
            version=version,
            tag=release.tag_name,
            status=outcome.status,
        )

    def _file_limit(self, kind: ReleaseFileKind) -> int:
        return _KIND_LIMITS.get(kind, self._limits.max_zip_bytes)

    def _check_sizes(self, what: str, chosen: list[tuple[ReleaseAsset, ReleaseFileKind]]) -> None:
        """Refuse, before any download, a release over ``[limits]`` by the sizes GitHub states
        (the downloads are bounded as well, whatever the stated sizes)."""
        if len(chosen) > self._limits.max_files:
            raise PayloadTooLarge(
                f"{what} has {len(chosen)} provider release files; [limits] max_provider_files is {self._limits.max_files}"
            )
        for asset, kind in chosen:
            if asset.size > self._file_limit(kind):
                raise PayloadTooLarge(
                    f"{what}: {asset.name} is {asset.size} bytes, larger than the limit of {self._file_limit(kind)} bytes"
                )
        total = sum(asset.size for asset, _ in chosen)
        if total > self._limits.max_release_bytes:
            raise PayloadTooLarge(
                f"{what}: its provider release files are {total} bytes; "
                f"[limits] max_provider_release_bytes is {self._limits.max_release_bytes}"
            )


def github_actor(payload: dict[str, Any]) -> Actor:
    """Who a GitHub job's changes are made for (``mirror.domain.audit``): the webhook delivery
    its payload names, else the GitHub actor it was queued with (a follow-up of a delivery), else
    GitHub acting through this job (reconcile, backfill)."""
    delivery = payload.get("delivery_id")
    if isinstance(delivery, str) and delivery:
        return Actor.github(delivery=delivery)
    current = current_actor()
    return current if current.kind == "github" else Actor.github(job=current.job)


def as_github(
    handler: Callable[[dict[str, Any]], Awaitable[None]],
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """``handler``, run as ``github_actor`` of its payload."""

    @functools.wraps(handler)
    async def run(payload: dict[str, Any]) -> None:
        with acting_as(github_actor(payload)):
            await handler(payload)

    return run
