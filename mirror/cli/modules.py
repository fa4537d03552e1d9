"""``mirror modules show|set``: a module's owner source and upload allowance, over HTTP.

The token comes from ``$MIRROR_TOKEN`` (read scope to show, admin to set); the registry from
``--registry``, ``$MIRROR_REGISTRY`` or the config's own address, as for ``mirror publish``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import quote

import aiohttp

from mirror.cli.common import REGISTRY_HELP, UsageError, remote
from mirror.domain.addresses import ModuleAddress
from mirror.domain.provenance import Owner
from mirror.domain.errors import MirrorError

TIMEOUT = aiohttp.ClientTimeout(total=30)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    modules = sub.add_parser("modules", help="a module's owner source and upload allowance").add_subparsers(
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


def _print(module: dict[str, Any]) -> None:
    address = f"{module['namespace']}/{module['name']}/{module['provider']}"
    uploads = "allowed" if module["allow_uploads"] else "refused (unless it is the owner)"
    print(f"{address}: owner source {module['owner_source']} ({module['owner']}); uploads {uploads}")


async def _call(args: argparse.Namespace, method: str, body: dict[str, Any] | None) -> dict[str, Any]:
    try:
        address = ModuleAddress.parse(args.address)
    except MirrorError as exc:
        raise UsageError(str(exc)) from None
    registry, token = remote(args, "the read scope to show, admin to set")
    parts = (address.namespace, address.name, address.provider)
    url = registry.rstrip("/") + "/api/v1/modules/" + "/".join(quote(p, safe="") for p in parts)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.request(
                method, url, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as response:
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = {}
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise MirrorError(f"cannot reach the registry at {registry}: {exc or 'timed out'}") from None
    if response.status >= 400 or not isinstance(answer, dict) or "module" not in answer:
        errors = answer.get("errors") if isinstance(answer, dict) else None
        message = "; ".join(str(e) for e in errors) if errors else response.reason
        raise MirrorError(f"the registry refused ({response.status}): {message}")
    return answer["module"]
