"""``mirror modules show|set|deprecate|revoke|delete``: a module's owner source and upload
allowance, and its versions' lifecycle, over HTTP.

The token comes from ``$MIRROR_TOKEN`` (read scope to show; admin to set and delete; publish to
deprecate and revoke a module published over the API, admin for one another source owns); the
registry from ``--registry``, ``$MIRROR_REGISTRY`` or the config's own address, as for
``mirror publish``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import quote

from mirror.cli.common import REGISTRY_HELP, UsageError, registry_request, remote
from mirror.domain.addresses import ModuleAddress
from mirror.domain.provenance import Owner
from mirror.domain.errors import MirrorError
from mirror.domain.versions import normalize



def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    modules = sub.add_parser("modules", help="a module's owner source, upload allowance and lifecycle").add_subparsers(
        dest="modules_command", required=True, metavar="ACTION"
    )
    show = modules.add_parser("show", parents=[common], help="show a module's owner source")
    show.add_argument("address", metavar="NS/NAME/PROVIDER")
    _registry_option(show)
    show.set_defaults(handler=_cmd_show)
    change = modules.add_parser(
        "set",
        parents=[common],
        help="allow or refuse uploads to a module, or hand it to another source (admin)",
        description="Change a module's policy (admin token in $MIRROR_TOKEN). Uploads may add versions "
        "to a module another source owns only when allowed; --owner hands the module to another source: "
        "upload, bundle, github:REPOSITORY_ID or upstream:HOST.",
    )
    change.add_argument("address", metavar="NS/NAME/PROVIDER")
    uploads = change.add_mutually_exclusive_group()
    uploads.add_argument("--allow-uploads", dest="allow_uploads", action="store_true", default=None)
    uploads.add_argument("--refuse-uploads", dest="allow_uploads", action="store_false")
    change.add_argument("--owner", default=None, metavar="SOURCE", help="the new owner source")
    _registry_option(change)
    change.set_defaults(handler=_cmd_set)
    deprecate = modules.add_parser(
        "deprecate", parents=[common], help="deprecate a version, with a reason and a replacement",
        description="Deprecate a module version (publish scope; admin for a module another source owns). It "
        "stays installable; the reason shows on the version in the API and the web UI.",
    )
    deprecate.add_argument("address", metavar="NS/NAME/PROVIDER")
    deprecate.add_argument("version", metavar="VERSION")
    deprecate.add_argument("--reason", required=True, help="why it should no longer be chosen")
    deprecate.add_argument("--replacement", default=None, metavar="VERSION", help="what to use instead")
    _registry_option(deprecate)
    deprecate.set_defaults(handler=_cmd_deprecate)
    revoke = modules.add_parser(
        "revoke", parents=[common], help="revoke a version (gone from versions and downloads)",
        description="Revoke a module version (publish scope; admin for a module another source owns). "
        "Publishing the same archive again brings it back.",
    )
    revoke.add_argument("address", metavar="NS/NAME/PROVIDER")
    revoke.add_argument("version", metavar="VERSION")
    _registry_option(revoke)
    revoke.set_defaults(handler=_cmd_revoke)
    delete = modules.add_parser(
        "delete", parents=[common], help="delete a module with all its versions (admin)",
        description="Delete a module, all its versions and the archives nothing else uses (admin token in "
        "$MIRROR_TOKEN), whatever source owns it.",
    )
    delete.add_argument("address", metavar="NS/NAME/PROVIDER")
    _registry_option(delete)
    delete.set_defaults(handler=_cmd_delete)


def _registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=None, help=REGISTRY_HELP)


def _cmd_show(args: argparse.Namespace) -> int:
    module = asyncio.run(_call(args, "GET", None))
    _print(module)
    return 0


def _cmd_set(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.allow_uploads is not None:
        body["allow_uploads"] = args.allow_uploads
    if args.owner is not None:
        try:
            body["owner_source"] = str(Owner.parse(args.owner))
        except MirrorError as exc:
            raise UsageError(str(exc)) from None
    if not body:
        raise UsageError("nothing to change: give --allow-uploads, --refuse-uploads or --owner")
    _print(asyncio.run(_call(args, "PATCH", body)))
    return 0


def _cmd_deprecate(args: argparse.Namespace) -> int:
    body = {"reason": args.reason, "replacement": args.replacement}
    answer = asyncio.run(_request(args, "POST", _version(args) + "/deprecate", body, "the publish scope"))
    deprecation = answer.get("deprecation") if isinstance(answer, dict) else None
    if not isinstance(deprecation, dict):
        raise MirrorError("the registry's answer holds no deprecation")
    replacement = deprecation.get("replacement")
    print(f"deprecated: {answer.get('id')}" + (f" (use {replacement} instead)" if replacement else ""))
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    asyncio.run(_request(args, "POST", _version(args) + "/revoke", None, "the publish scope"))
    print(f"revoked: {args.address} {_normalized(args.version)}")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    asyncio.run(_request(args, "DELETE", "", None, "the admin scope"))
    print(f"deleted: {_address(args)}")
    return 0


def _normalized(text: str) -> str:
    try:
        return normalize(text)
    except MirrorError as exc:
        raise UsageError(str(exc)) from None


def _version(args: argparse.Namespace) -> str:
    return "/" + quote(_normalized(args.version), safe="")


def _address(args: argparse.Namespace) -> ModuleAddress:
    try:
        return ModuleAddress.parse(args.address)
    except MirrorError as exc:
        raise UsageError(str(exc)) from None


def _print(module: dict[str, Any]) -> None:
    address = f"{module['namespace']}/{module['name']}/{module['provider']}"
    uploads = "allowed" if module["allow_uploads"] else "refused (unless it is the owner)"
    print(f"{address}: owner source {module['owner_source']} ({module['owner']}); uploads {uploads}")


async def _call(args: argparse.Namespace, method: str, body: dict[str, Any] | None) -> dict[str, Any]:
    answer = await _request(args, method, "", body, "the read scope to show, admin to set")
    if not isinstance(answer, dict) or "module" not in answer:
        raise MirrorError("the registry's answer holds no module")
    return answer["module"]


async def _request(args: argparse.Namespace, method: str, tail: str, body: dict[str, Any] | None, needs: str) -> Any:
    """The module's API URL plus ``tail``; the decoded answer (``{}`` when it has no body)."""
    address = _address(args)
    registry, token = remote(args, needs)
    parts = (address.namespace, address.name, address.provider)
    path = "/api/v1/modules/" + "/".join(quote(p, safe="") for p in parts) + tail
    return await registry_request(registry, token, method, path, body, refused="the registry refused")
