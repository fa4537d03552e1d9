"""The provider operations of the route table (``models.routes`` appends them)."""

from __future__ import annotations

from mirror.http.models import browse, protocol, provider_browse, providers
from mirror.http.models.base import SHA256_PATTERN
from mirror.http.models.route import OPEN, READ_NOTE, Route

PROVIDER = ("namespace", "type")
PROVIDER_PATH = "/v1/providers/{namespace}/{type}"
MIRROR_PATH = "/v1/mirror/{hostname}/{namespace}/{type}"
_SIGNED = "No bearer token: the `expires` and `signature` query parameters authorize it."
_MIRROR_NOTE = (
    READ_NOTE + " `hostname` is this registry's own (`[server] registry_host`, by default `public_url`'s host "
    "or the request's `Host`); other hosts are a 404. Terraform uses a network mirror over https only."
)


def _binary(media_type: str, description: str) -> dict:
    return {"description": description,
            "headers": {"ETag": {"description": "The quoted SHA-256", "schema": {"type": "string"}}},
            "content": {media_type: {"schema": {"type": "string", "contentMediaType": media_type}}}}


PROVIDER_ROUTES: list[Route] = [
    # -- terraform
    Route("get", PROVIDER_PATH + "/versions", "listProviderVersions", "A provider's live versions (providers.v1)",
          "terraform", READ_NOTE, params=PROVIDER,
          responses={200: (providers.ProviderVersions, "The versions, newest first")}, errors=(400, 401, 403, 404)),
    Route("get", PROVIDER_PATH + "/{version}/download/{os}/{arch}", "downloadProvider",
          "Where to download a provider version for a platform, with its signed SHA256SUMS and keys", "terraform",
          READ_NOTE + " The three URLs authenticate themselves (Terraform sends no token to them).",
          params=(*PROVIDER, "version", "os", "arch"),
          responses={200: (providers.ProviderDownload, "The package")}, errors=(400, 401, 403, 404)),
    Route("get", "/v1/provider-files/{namespace}/{type}/{version}/{name}", "downloadProviderFile",
          "A provider version's SHA256SUMS or its binary signature, by signed URL", "terraform", _SIGNED,
          security=OPEN,
          params=(*PROVIDER, "version", {"name": "name", "in": "path", "required": True,
                                         "schema": {"type": "string", "maxLength": 255}}),
          query=protocol.ArchiveQuery,
          responses={200: {"description": "The file, byte for byte as it was signed",
                           "content": {"text/plain": {"schema": {"type": "string"}},
                                       "application/octet-stream": {"schema": {"type": "string"}}}}},
          errors=(400, 401, 404)),
    Route("get", "/v1/archives/{sha256}.zip", "downloadProviderArchive",
          "A provider zip by signed URL (proxy download mode)", "terraform", _SIGNED, security=OPEN,
          params=({"name": "sha256", "in": "path", "required": True,
                   "description": "The zip's SHA-256, 64 lowercase hex digits",
                   "schema": {"type": "string", "pattern": SHA256_PATTERN}},),
          query=protocol.ArchiveQuery, responses={200: _binary("application/zip", "The zip")}, errors=(401, 404)),
    Route("get", MIRROR_PATH + "/index.json", "mirrorProviderIndex", "A provider's versions (network mirror)",
          "terraform", _MIRROR_NOTE, params=("hostname", *PROVIDER),
          responses={200: (providers.MirrorIndex, "The versions")}, errors=(400, 401, 403, 404)),
    Route("get", MIRROR_PATH + "/{version}.json", "mirrorProviderVersion",
          "A provider version's archives and their hashes (network mirror)", "terraform", _MIRROR_NOTE,
          params=("hostname", *PROVIDER, "version"),
          responses={200: (providers.MirrorVersion, "The archives")}, errors=(400, 401, 403, 404)),
    Route("get", MIRROR_PATH + "/{version}/{platform}.zip", "mirrorPulledArchive",
          "An upstream provider's zip by signed URL: fetched from the upstream on its first download", "terraform",
          _SIGNED + " The zip is fetched once for every concurrent requester, checked against the signed "
          "SHA256SUMS and kept; later downloads never leave the site. 502 when the upstream cannot give it or "
          "it does not match.", security=OPEN,
          params=("hostname", *PROVIDER, "version", {"name": "platform", "in": "path", "required": True,
                                                     "description": "OS_ARCH, e.g. linux_amd64",
                                                     "schema": {"type": "string", "maxLength": 65}}),
          query=protocol.ArchiveQuery, responses={200: _binary("application/zip", "The zip")},
          errors=(400, 401, 404, 502, 503)),
    # -- providers
    Route("post", "/api/v1/providers/{namespace}/keys", "addProviderKey", "Add a signing key to a namespace",
          "providers", "Admin scope on the namespace. One ASCII-armored OpenPGP public key (RSA, ECDSA; Ed25519 "
          "with a warning: Terraform before 1.11 cannot verify it). Adding a key the namespace has is a 200.",
          params=("namespace",),
          body={"required": True, "description": "The armored public key, as text or as `{\"ascii_armor\": ...}`",
                "content": {"text/plain": {"schema": {"type": "string", "maxLength": 266240}},
                            "application/json": {"schema": {"type": "object", "required": ["ascii_armor"],
                                                            "properties": {"ascii_armor": {"type": "string"}}}}}},
          responses={201: (providers.AddedProviderKey, "Added"), 200: (providers.AddedProviderKey, "Already there")},
          errors=(400, 401, 403, 413, 415)),
    Route("get", "/api/v1/providers/{namespace}/keys", "listProviderKeys", "A namespace's signing keys",
          "providers", "Read scope on the namespace.", params=("namespace",),
          responses={200: (providers.ProviderKeyList, "The keys, in the order signatures are tried")},
          errors=(400, 401, 403)),
    Route("delete", "/api/v1/providers/{namespace}/keys/{key_id}", "removeProviderKey",
          "Remove a namespace's signing key", "providers",
          "Admin scope on the namespace. Versions it verified keep serving it.", params=("namespace", "keyId"),
          responses={204: {"description": "Removed"}}, errors=(400, 401, 403, 404)),
    Route("get", "/api/v1/providers/{namespace}/{type}/{version}/release", "getProviderRelease",
          "A provider version whole: its signed SHA256SUMS, signature, key and zips", "providers",
          "Read scope on the namespace. What a mirror following this one's event feed copies "
          "(`mirror sync --from-mirror`): the fields of a bundle's provider entry, each zip with a "
          "self-authenticating `url`. `hostname` selects a copy of another registry's provider (empty: "
          "this registry's own).", params=(*PROVIDER, "version"), query=providers.ReleaseQuery,
          responses={200: (providers.ProviderRelease, "The version")}, errors=(400, 401, 403, 404)),
    Route("post", "/api/v1/providers/{namespace}/{type}/{version}/deprecate", "deprecateProvider",
          "Deprecate a provider version: Terraform prints the reason on init", "providers",
          "Publish scope on the namespace for providers published over the API; admin scope for any owner "
          "source. Posting again replaces the reason. Writes `provider.version_deprecated`.",
          params=(*PROVIDER, "version"), body=providers.DeprecationBody,
          responses={200: (providers.Deprecated, "Deprecated")}, errors=(400, 401, 403, 404, 409, 413, 415)),
    Route("post", "/api/v1/providers/{namespace}/{type}/{version}/revoke", "revokeProvider",
          "Revoke a provider version: gone from versions and downloads", "providers",
          "Publish scope on the namespace for providers published over the API; admin scope for any owner "
          "source. Writes `provider.version_revoked`.", params=(*PROVIDER, "version"),
          responses={204: {"description": "Revoked"}}, errors=(400, 401, 403, 404, 409)),
    Route("delete", "/api/v1/providers/{namespace}/{type}", "deleteProvider",
          "Delete this registry's own provider with all its versions", "providers",
          "Admin scope on the namespace, whatever owns the provider. Zips no other provider version lists are "
          "removed from the blob store; the namespace's signing keys stay. Writes `provider.deleted`.",
          params=PROVIDER, responses={204: {"description": "Deleted"}}, errors=(400, 401, 403, 404)),
    Route("post", "/api/v1/providers/{namespace}/{type}/{version}", "publishProvider",
          "Publish a provider version from GoReleaser's release files", "providers",
          "Publish scope on the namespace. One part per file, named by its file name: "
          "`terraform-provider-TYPE_VERSION_OS_ARCH.zip` (one or more), `..._SHA256SUMS`, `..._SHA256SUMS.sig` "
          "(binary) and the optional `..._manifest.json`. Everything is checked before anything is stored. "
          "The same SHA256SUMS again is a 200 (new platforms are added).",
          params=(*PROVIDER, "version"),
          body={"required": True, "description": "The release files",
                "content": {"multipart/form-data": {"schema": {
                    "type": "object", "additionalProperties": {"type": "string", "format": "binary"}}}}},
          responses={201: (providers.ProviderPublishOutcome, "Published"),
                     200: (providers.ProviderPublishOutcome, "Already published (platforms may have been added)")},
          errors=(400, 401, 403, 404, 409, 413, 415, 422, 503)),
]

# -- browse: this registry's own providers, in the public registry's /v1/providers shape
_BROWSE_NOTE = READ_NOTE + " Only this registry's own providers (not copies of an upstream's)."
#: a version of the browse route; ``versions`` is the providers.v1 route's literal segment
_BROWSE_VERSION = {"name": "version", "in": "path", "required": True,
                   "description": "SemVer such as 1.2.0, v1.2.0 or 1.2.0-beta.1 (at most 128 characters)",
                   "schema": {"type": "string", "maxLength": 128, "not": {"const": "versions"}}}
PROVIDER_ROUTES += [
    Route("get", "/v1/providers", "listProviders", "Providers with their latest version", "browse",
          _BROWSE_NOTE + " A namespace token lists only its own namespace.", query=provider_browse.ProviderListQuery,
          responses={200: (provider_browse.ProviderList, "A page of providers")}, errors=(400, 401, 403)),
    Route("get", "/v1/providers/{namespace}", "listNamespaceProviders",
          "A namespace's providers with their latest version", "browse", _BROWSE_NOTE, params=("namespace",),
          query=browse.PageQuery, responses={200: (provider_browse.ProviderList, "A page of providers")},
          errors=(400, 401, 403)),
    Route("get", PROVIDER_PATH, "getLatestProvider",
          "A provider's latest version in detail (highest release, else prerelease)", "browse", _BROWSE_NOTE,
          params=PROVIDER, responses={200: (provider_browse.ProviderDetail, "The version")},
          errors=(400, 401, 403, 404)),
    Route("get", PROVIDER_PATH + "/{version}", "getProviderVersion",
          "A provider version in detail: its platforms, protocols and the provider's versions", "browse",
          _BROWSE_NOTE, params=(*PROVIDER, _BROWSE_VERSION),
          responses={200: (provider_browse.ProviderDetail, "The version")}, errors=(400, 401, 403, 404)),
]
