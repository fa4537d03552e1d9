"""``mirror provider publish|keys``: publish a GoReleaser provider release and manage the
namespaces' signing keys, over HTTP.

The token comes from ``$MIRROR_TOKEN`` (publish scope to publish, admin to add or remove keys,
read to list them); the registry from ``--registry``, ``$MIRROR_REGISTRY`` or the config's own
address, as for ``mirror publish``.

``publish NS/TYPE VERSION DIR`` takes from DIR (GoReleaser's ``dist``) the files of that release
only: ``terraform-provider-TYPE_VERSION_OS_ARCH.zip``, ``..._SHA256SUMS``, ``..._SHA256SUMS.sig``
and ``..._manifest.json`` when present; everything else there is left alone. Before any request
it checks that SHA256SUMS and its signature are there and that every zip is listed in SHA256SUMS
with its sha256; the registry checks everything again (the signature with the namespace's keys,
the zips' contents) and stays the judge.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from tqdm import tqdm

from mirror.cli.common import REGISTRY_HELP, UsageError, print_table, registry_request, remote
from mirror.domain.errors import MirrorError

UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
CHUNK = 256 * 1024


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    provider = sub.add_parser("provider", help="publish providers and manage their signing keys").add_subparsers(
        dest="provider_command", required=True, metavar="ACTION"
    )
    publish = provider.add_parser(
        "publish",
        parents=[common],
        help="publish a provider release from GoReleaser's output directory",
        description="Publish a provider version: the zips, SHA256SUMS, SHA256SUMS.sig and manifest.json of "
        "that version in DIR. The token comes from $MIRROR_TOKEN (publish scope).",
    )
    publish.add_argument("address", metavar="NS/TYPE")
    publish.add_argument("version", metavar="VERSION")
    publish.add_argument("directory", metavar="DIR", type=Path)
    _registry_option(publish)
    publish.set_defaults(handler=_cmd_publish)

    deprecate = provider.add_parser(
        "deprecate", parents=[common], help="deprecate a provider version (Terraform prints the reason on init)",
        description="Deprecate a provider version (publish scope; admin for a provider another source owns).",
    )
    deprecate.add_argument("address", metavar="NS/TYPE")
    deprecate.add_argument("version", metavar="VERSION")
    deprecate.add_argument("--reason", required=True, help="why; Terraform prints it on every init")
    deprecate.add_argument("--replacement", default=None, metavar="VERSION", help="what to use instead")
    _registry_option(deprecate)
    deprecate.set_defaults(handler=_cmd_deprecate)
    revoke = provider.add_parser(
        "revoke", parents=[common], help="revoke a provider version (gone from versions and downloads)",
        description="Revoke a provider version (publish scope; admin for a provider another source owns).",
    )
    revoke.add_argument("address", metavar="NS/TYPE")
    revoke.add_argument("version", metavar="VERSION")
    _registry_option(revoke)
    revoke.set_defaults(handler=_cmd_revoke)
    delete = provider.add_parser(
        "delete", parents=[common], help="delete a provider with all its versions (admin)",
        description="Delete this registry's own provider, all its versions and the zips nothing else lists "
        "(admin token in $MIRROR_TOKEN). The namespace's signing keys stay.",
    )
    delete.add_argument("address", metavar="NS/TYPE")
    _registry_option(delete)
    delete.set_defaults(handler=_cmd_delete)

    keys = provider.add_parser("keys", help="a namespace's provider signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    add = keys.add_parser(
        "add", parents=[common], help="add an ASCII-armored public key (admin)",
        description="Add a signing key to a namespace (admin token in $MIRROR_TOKEN). RSA and ECDSA keys verify "
        "on every Terraform; Ed25519 keys are accepted with a warning (Terraform before 1.11 cannot verify them).",
    )
    add.add_argument("namespace", metavar="NS")
    add.add_argument("keyfile", metavar="KEYFILE", type=Path, help="the armored public key ('-' reads stdin)")
    _registry_option(add)
    add.set_defaults(handler=_cmd_keys_add)
    listing = keys.add_parser("list", parents=[common], help="list a namespace's signing keys")
    listing.add_argument("namespace", metavar="NS")
    _registry_option(listing)
    listing.set_defaults(handler=_cmd_keys_list)
    remove = keys.add_parser("remove", parents=[common], help="remove a signing key (admin)")
    remove.add_argument("namespace", metavar="NS")
    remove.add_argument("key_id", metavar="KEY_ID")
    _registry_option(remove)
    remove.set_defaults(handler=_cmd_keys_remove)


def _registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=None, help=REGISTRY_HELP)


# keys --------------------------------------------------------------------------------------------


def _cmd_keys_add(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if str(args.keyfile) == "-" else args.keyfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the key file {args.keyfile}: {getattr(exc, 'strerror', None) or exc}") from None
    answer = asyncio.run(_call(args, "POST", f"/api/v1/providers/{_part(args.namespace)}/keys", {"ascii_armor": text}))
    verb = "added" if answer.get("status") == "created" else "already there"
    print(f"{verb}: key {answer['key_id']} ({answer['algorithm']}) for namespace {answer['namespace']}")
    for warning in answer.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _cmd_keys_list(args: argparse.Namespace) -> int:
    answer = asyncio.run(_call(args, "GET", f"/api/v1/providers/{_part(args.namespace)}/keys", None))
    keys = answer.get("keys", [])
    if not keys:
        print(f"namespace {args.namespace} has no provider signing keys")
        return 0
    print_table(
        [("KEY ID", "ALGORITHM", "ADDED", "FINGERPRINT")]
        + [(k["key_id"], k["algorithm"], k["created_at"], k["fingerprint"]) for k in keys]
    )
    return 0


def _cmd_keys_remove(args: argparse.Namespace) -> int:
    path = f"/api/v1/providers/{_part(args.namespace)}/keys/{_part(args.key_id)}"
    asyncio.run(_call(args, "DELETE", path, None))
    print(f"removed key {args.key_id.upper()} from namespace {args.namespace}")
    return 0


def _part(text: str) -> str:
    return quote(text, safe="")


async def _call(
    args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None, needs: str | None = None
) -> dict[str, Any]:
    needs = needs or ("read scope" if method == "GET" else "the admin scope on the namespace")
    registry, token = remote(args, needs)
    return await registry_request(registry, token, method, path, body, refused="the registry refused the request")


def _raise_for(response: aiohttp.ClientResponse, answer: Any, what: str) -> None:
    if response.status >= 400:
        errors = answer.get("errors") if isinstance(answer, dict) else None
        message = "; ".join(str(e) for e in errors) if errors else response.reason
        raise MirrorError(f"the registry refused {what} ({response.status}): {message}")


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return {}


# lifecycle ---------------------------------------------------------------------------------------


def _version_path(args: argparse.Namespace) -> str:
    from mirror.domain.providers import ProviderAddress
    from mirror.domain.versions import normalize

    try:
        address = ProviderAddress.parse(args.address)
        version = normalize(args.version)
    except MirrorError as exc:
        raise UsageError(str(exc)) from None
    return f"/api/v1/providers/{_part(address.namespace)}/{_part(address.type)}/{_part(version)}"


def _cmd_deprecate(args: argparse.Namespace) -> int:
    body = {"reason": args.reason, "replacement": args.replacement}
    answer = asyncio.run(_call(args, "POST", _version_path(args) + "/deprecate", body, "the publish scope"))
    replacement = answer["deprecation"].get("replacement")
    print(f"deprecated: {answer['id']}" + (f" (use {replacement} instead)" if replacement else ""))
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    path = _version_path(args)
    asyncio.run(_call(args, "POST", path + "/revoke", None, "the publish scope"))
    print(f"revoked: {args.address} {args.version}")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    from mirror.domain.providers import ProviderAddress

    try:
        address = ProviderAddress.parse(args.address)
    except MirrorError as exc:
        raise UsageError(str(exc)) from None
    asyncio.run(_call(args, "DELETE", f"/api/v1/providers/{_part(address.namespace)}/{_part(address.type)}", None))
    print(f"deleted: {address}")
    return 0


# publish -----------------------------------------------------------------------------------------


def _cmd_publish(args: argparse.Namespace) -> int:
    from mirror.domain.providers import ProviderAddress
    from mirror.domain.versions import normalize

    try:
        address = ProviderAddress.parse(args.address)
        version = normalize(args.version)
    except MirrorError as exc:
        raise UsageError(str(exc)) from None
    registry, token = remote(args, "the publish scope")
    files = release_files(args.directory, address.type, version)
    answer = asyncio.run(upload(registry, token, address.namespace, address.type, version, files))
    added = f" (added {', '.join(answer['added'])})" if answer.get("status") == "extended" else ""
    print(f"{answer['status']}: {answer['id']} platforms={','.join(answer['platforms'])} key={answer['key_id']}{added}")
    return 0


def release_files(directory: Path, type_: str, version: str) -> dict[str, Path]:
    """The release's files in ``directory``, checked as far as can be without the keys: one
    SHA256SUMS, its .sig, at least one zip, each zip listed in SHA256SUMS with its sha256."""
    from mirror.domain.providers import parse_shasums, shasums_name, signature_name

    if not directory.is_dir():
        raise MirrorError(f"{directory} is not a directory (give GoReleaser's dist directory)")
    stem = f"terraform-provider-{type_}_{version}_"
    files = {entry.name: entry for entry in sorted(directory.iterdir()) if entry.name.startswith(stem) and entry.is_file()}
    sums_name, sig_name = shasums_name(type_, version), signature_name(type_, version)
    wanted = {name: path for name, path in files.items()
              if name.endswith(".zip") or name in (sums_name, sig_name, f"{stem}manifest.json")}
    for needed in (sums_name, sig_name):
        if needed not in wanted:
            raise MirrorError(f"{directory}: no {needed} (GoReleaser's standard Terraform provider set-up writes it)")
    zips = [name for name in wanted if name.endswith(".zip")]
    if not zips:
        raise MirrorError(f"{directory}: no {stem}OS_ARCH.zip")
    try:
        sums = parse_shasums(wanted[sums_name].read_bytes())
    except MirrorError as exc:
        raise MirrorError(f"{sums_name}: {exc} (checked locally; nothing was uploaded)") from None
    for name in zips:
        listed = sums.get(name)
        if listed is None:
            raise MirrorError(f"{name}: not listed in {sums_name} (checked locally; nothing was uploaded)")
        if _sha256(wanted[name]) != listed:
            raise MirrorError(
                f"{name}: its sha256 is not the one {sums_name} lists (checked locally; nothing was uploaded)"
            )
    return wanted


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


async def upload(registry: str, token: str, namespace: str, type_: str, version: str, files: dict[str, Path]) -> dict[str, Any]:
    url = registry.rstrip("/") + "/api/v1/providers/" + "/".join(_part(p) for p in (namespace, type_, version))
    total = sum(path.stat().st_size for path in files.values())
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"{namespace}/{type_} {version}", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        with aiohttp.MultipartWriter("form-data") as form:
            for name, path in files.items():
                part = form.append(_read(path, bar), {"Content-Type": "application/octet-stream"})
                part.set_content_disposition("form-data", name="file", filename=name)
            try:
                async with aiohttp.ClientSession(timeout=UPLOAD_TIMEOUT) as session:
                    async with session.post(url, data=form, headers={"Authorization": f"Bearer {token}"}) as response:
                        answer = await _json(response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise MirrorError(f"cannot reach the registry at {registry}: {exc or type(exc).__name__}") from None
    _raise_for(response, answer, "the release")
    return answer


async def _read(path: Path, bar: tqdm) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            bar.update(len(chunk))
            yield chunk
