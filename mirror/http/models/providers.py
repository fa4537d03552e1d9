"""Providers: the two protocols Terraform speaks (``providers.v1`` and the network mirror), the
signing keys and the publish outcome. The protocol handlers validate nothing per request beyond
the path; these models document the shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mirror.http.models.base import Request, Response


class PlatformName(Response):
    os: str
    arch: str


class ProviderVersionEntry(Response):
    version: str
    protocols: list[str]
    platforms: list[PlatformName]


class ProviderVersions(Response):
    id: Annotated[str, Field(examples=["acme/widget"])]
    versions: list[ProviderVersionEntry]
    warnings: Annotated[list[str] | None, Field(description="Printed by `terraform init` (deprecation)")] = None


class GpgPublicKey(Response):
    key_id: str
    ascii_armor: str
    trust_signature: str
    source: str
    source_url: str | None


class SigningKeys(Response):
    gpg_public_keys: list[GpgPublicKey]


class ProviderDownload(Response):
    protocols: list[str]
    os: str
    arch: str
    filename: str
    download_url: str
    shasums_url: str
    shasums_signature_url: str
    shasum: str
    signing_keys: SigningKeys


class MirrorIndex(Response):
    versions: Annotated[dict[str, dict], Field(description='`{"1.0.0": {}}`, newest first')]


class MirrorArchive(Response):
    url: str
    hashes: list[str]


class MirrorVersion(Response):
    archives: Annotated[dict[str, MirrorArchive], Field(description="By `OS_ARCH`")]


class ProviderKey(Response):
    namespace: str
    key_id: Annotated[str, Field(description="Long key id, 16 upper-case hex digits")]
    fingerprint: str
    algorithm: Literal["rsa", "ecdsa", "eddsa"]
    ascii_armor: str
    created_at: str


class AddedProviderKey(ProviderKey):
    status: Literal["created", "exists"]
    warnings: list[str]


class ProviderKeyList(Response):
    keys: list[ProviderKey]


class ProviderPublishOutcome(Response):
    id: str
    namespace: str
    type: str
    version: str
    protocols: list[str]
    platforms: list[str]
    added: Annotated[list[str], Field(description="Platforms this upload added")]
    key_id: str
    published_at: str
    status: Annotated[Literal["created", "extended", "unchanged"], Field(description="`created` is a 201")]


class ReleaseQuery(Request):
    hostname: Annotated[str, Field(max_length=260, description="The provider's registry hostname; empty for this registry's own")] = ""


class ReleasePlatform(Response):
    os: str
    arch: str
    filename: str
    sha256: str
    size: int
    h1: str
    url: Annotated[str, Field(description="The zip, by a self-authenticating URL")]


class ReleaseVersion(Response):
    version: str
    protocols: list[str]
    shasums: Annotated[str, Field(description="SHA256SUMS, base64")]
    signature: Annotated[str, Field(description="Its binary detached signature, base64")]
    key_id: str
    key_armor: str
    published_at: str
    source: str | None
    platforms: list[ReleasePlatform]


class ProviderRelease(Response):
    hostname: str
    namespace: str
    type: str
    versions: Annotated[list[ReleaseVersion], Field(description="The one version asked for")]


class DeprecationBody(Request):
    reason: Annotated[str, Field(min_length=1, max_length=1000, description="Printed by terraform init")]
    replacement: Annotated[str | None, Field(max_length=200, description="What to use instead, e.g. 2.0.0")] = None


class DeprecationRecord(Response):
    reason: str
    replacement: str | None
    deprecated_at: str


class Deprecated(Response):
    id: str
    version: str
    deprecation: DeprecationRecord
