"""``mirror token create|list|revoke``: API tokens, straight in the metadata store, or over HTTP
with ``--registry URL`` (or ``$MIRROR_REGISTRY``) and ``$MIRROR_TOKEN``, so nobody needs a shell
on the server.

Made in the store, a token never expires unless given ``--expires``; made over HTTP, it gets the
registry's default expiry (``[auth] token_default_expiry_seconds``) unless given one, and stays
within the calling token's grant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from typing import Any
from urllib.parse import quote

from mirror.cli.common import UsageError, config_of, print_table, registry_request, remote, with_store
from mirror.domain.errors import MirrorError

REQUEST_TIMEOUT = 30.0
_DURATION = re.compile(r"([0-9]{1,12})([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_REGISTRY_HELP = (
    "work over HTTP against this registry (default: $MIRROR_REGISTRY) with the token in $MIRROR_TOKEN; "
    "without either, straight in the metadata store of --config"
)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``token`` group to the top-level subparsers ``sub``."""
    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    create = token.add_parser("create", parents=[common], help="create a token and print it once (last line)")
    create.add_argument("--namespace", required=True, help="namespace the token is for, or '*' for all")
    create.add_argument("--scope", required=True, choices=("read", "publish", "admin"))
    create.add_argument("--description", default="", help="a note to recognise the token by")
    create.add_argument(
        "--expires",
        type=duration,
        default=None,
        metavar="DURATION",
        help="lifetime: seconds, or a number with s, m, h, d or w (30d, 12h). Default: never in the store, "
        "the registry's default over HTTP",
    )
    create.add_argument("--registry", default=None, metavar="URL", help=_REGISTRY_HELP)
    create.set_defaults(handler=_cmd_token_create)
    listing = token.add_parser("list", parents=[common], help="list tokens (never their secrets)")
    listing.add_argument("--registry", default=None, metavar="URL", help=_REGISTRY_HELP)
    listing.set_defaults(handler=_cmd_token_list)
    revoke = token.add_parser("revoke", parents=[common], help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="ID")
    revoke.add_argument("--registry", default=None, metavar="URL", help=_REGISTRY_HELP)
    revoke.set_defaults(handler=_cmd_token_revoke)


def duration(text: str) -> int:
    """``3600``, ``90s``, ``45m``, ``12h``, ``30d``, ``2w`` as whole seconds (at least 1)."""
    from mirror.services.tokens import LONGEST_EXPIRY

    match = _DURATION.fullmatch(text.strip().lower())
    seconds = int(match.group(1)) * _UNITS[match.group(2)] if match else 0
    if not 1 <= seconds <= LONGEST_EXPIRY:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r} (seconds, or a number with s, m, h, d or w such as 30d; at most 100 years)"
        )
    return seconds


def _over_http(args: argparse.Namespace) -> bool:
    return bool(args.registry or os.environ.get("MIRROR_REGISTRY"))


def _cmd_token_create(args: argparse.Namespace) -> int:
    from mirror.domain.addresses import valid_namespace
    from mirror.services.tokens import create_token, token_to_json

    if args.namespace != "*" and not valid_namespace(args.namespace):
        raise UsageError(f"invalid namespace {args.namespace!r} (use a namespace name or '*')")
    if _over_http(args):
        registry, token = remote(args, "a grant covering the new token")
        body: dict[str, Any] = {"namespace": args.namespace, "scope": args.scope, "description": args.description}
        if args.expires is not None:
            body["expires_in"] = args.expires
        answer = asyncio.run(_call(registry, token, "POST", "/api/v1/tokens", body, "create the token"))
        made = _field(answer, "token", dict, registry)
        secret = str(made.get("secret", ""))
    else:
        record, secret = asyncio.run(
            with_store(
                config_of(args),
                lambda store: create_token(store, args.namespace, args.scope, args.description, expires_in=args.expires),
            )
        )
        made = token_to_json(record, time.time(), {})
    expiry = f"expires at {made['expires_at']}" if made.get("expires_at") else "never expires"
    print(f"created token {made['id']} for namespace {made['namespace']!r} with scope {made['scope']!r}; {expiry}")
    print("the token is shown only once; store it now:")
    print(secret)
    return 0


def _cmd_token_list(args: argparse.Namespace) -> int:
    from mirror.services.tokens import token_to_json

    if _over_http(args):
        registry, token = remote(args, "any scope")
        answer = asyncio.run(_call(registry, token, "GET", "/api/v1/tokens", None, "list tokens"))
        tokens = _field(answer, "tokens", list, registry)
    else:
        records = asyncio.run(with_store(config_of(args), lambda store: store.list_tokens()))
        by_id, now = {record.id: record for record in records}, time.time()
        tokens = [token_to_json(record, now, by_id) for record in records]
    rows = [("ID", "NAMESPACE", "SCOPE", "STATE", "CREATED", "EXPIRES", "CREATED BY", "LAST USED", "DESCRIPTION")]
    rows += [
        (
            str(t.get("id", "")),
            str(t.get("namespace", "")),
            str(t.get("scope", "")),
            str(t.get("state", "")),
            str(t.get("created_at", "")),
            t.get("expires_at") or "never",
            _creator(t),
            t.get("last_used_at") or "-",
            str(t.get("description", "")),
        )
        for t in tokens
    ]
    print_table(rows)
    return 0


def _creator(token: dict[str, Any]) -> str:
    if not token.get("created_by"):
        return "server"
    described = token.get("created_by_description")
    return f"{token['created_by']} ({described})" if described else str(token["created_by"])


def _cmd_token_revoke(args: argparse.Namespace) -> int:
    if _over_http(args):
        registry, token = remote(args, "a grant over the token to revoke")
        path = "/api/v1/tokens/" + quote(args.token_id, safe="")
        asyncio.run(_call(registry, token, "DELETE", path, None, "revoke the token"))
    else:
        revoked = asyncio.run(with_store(config_of(args), lambda store: store.revoke_token(args.token_id)))
        if not revoked:
            raise MirrorError(f"no active token with id {args.token_id!r}")
    print(f"revoked token {args.token_id}")
    return 0


def _field(answer: dict[str, Any], key: str, kind: type, registry: str) -> Any:
    value = answer.get(key)
    if not isinstance(value, kind):
        raise MirrorError(f"unexpected answer from {registry} (no {key!r}: is it a mirror registry?)")
    return value


async def _call(registry: str, token: str, method: str, path: str, body: Any, doing: str) -> dict[str, Any]:
    """One request to the tokens API; MirrorError with the registry's own message when refused."""
    return await registry_request(
        registry, token, method, path, body, refused=f"the registry refused to {doing}", timeout=REQUEST_TIMEOUT
    )
