"""``mirror token create|list|revoke``: API tokens, straight in the metadata store."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from mirror.cli.common import UsageError, config_of, print_table, with_store
from mirror.domain.errors import MirrorError


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``token`` group to the top-level subparsers ``sub``."""
    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    create = token.add_parser("create", parents=[common], help="create a token and print it once (last line)")
    create.add_argument("--namespace", required=True, help="namespace the token is for, or '*' for all")
    create.add_argument("--scope", required=True, choices=("read", "publish", "admin"))
    create.add_argument("--description", default="", help="a note to recognise the token by")
    create.set_defaults(handler=_cmd_token_create)
    listing = token.add_parser("list", parents=[common], help="list tokens (never their secrets)")
    listing.set_defaults(handler=_cmd_token_list)
    revoke = token.add_parser("revoke", parents=[common], help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="ID")
    revoke.set_defaults(handler=_cmd_token_revoke)


def _cmd_token_create(args: argparse.Namespace) -> int:
    from mirror.domain.addresses import valid_namespace
    from mirror.services.tokens import create_token

    if args.namespace != "*" and not valid_namespace(args.namespace):
        raise UsageError(f"invalid namespace {args.namespace!r} (use a namespace name or '*')")
    record, secret = asyncio.run(with_store(config_of(args), create_token, args.namespace, args.scope, args.description))
    print(f"created token {record.id} for namespace {record.namespace!r} with scope {record.scope!r}")
    print("the token is shown only once; store it now:")
    print(secret)
    return 0


def _cmd_token_list(args: argparse.Namespace) -> int:
    records = asyncio.run(with_store(config_of(args), lambda store: store.list_tokens()))
    rows = [("ID", "NAMESPACE", "SCOPE", "CREATED", "STATE", "DESCRIPTION")]
    rows += [
        (r.id, r.namespace, r.scope, r.created_at, "revoked" if r.revoked_at else "active", r.description)
        for r in records
    ]
    print_table(rows)
    return 0


def _cmd_token_revoke(args: argparse.Namespace) -> int:
    revoked = asyncio.run(with_store(config_of(args), lambda store: store.revoke_token(args.token_id)))
    if not revoked:
        raise MirrorError(f"no active token with id {args.token_id!r}")
    print(f"revoked token {args.token_id}")
    return 0
