"""``mirror dynamodb create-table``: make the DynamoDB table that ``[metadata] backend = "dynamodb"``
uses (on-demand capacity, keys PK/SK, index GSI1), and wait until it is active.

Idempotent: a table that exists already is reported and left alone (exit code 0). The table name,
region and endpoint come from ``[metadata]``; credentials from the standard AWS chain.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from mirror.cli.common import UsageError, config_of


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``dynamodb create-table`` to the top-level subparsers ``sub``; ``common`` carries ``--config``."""
    dynamodb = sub.add_parser("dynamodb", help="the DynamoDB metadata backend").add_subparsers(
        dest="dynamodb_command", required=True, metavar="ACTION"
    )
    create = dynamodb.add_parser(
        "create-table",
        parents=[common],
        help="create the [metadata] table (does nothing when it exists)",
        description="Create the DynamoDB table named by [metadata] table (on-demand capacity) and wait "
        "until it is active. A table that already exists is left as it is.",
    )
    create.set_defaults(handler=cmd_create_table)


def cmd_create_table(args: argparse.Namespace) -> int:
    from mirror.storage.dynamodb import DynamoMetadataStore

    config = config_of(args)
    metadata = config.metadata
    if metadata.backend != "dynamodb":
        raise UsageError(f'[metadata] backend is {metadata.backend!r}: set backend = "dynamodb" and a table first')
    store = DynamoMetadataStore.from_config(config)
    where = f"{metadata.table!r} in {metadata.region}" + (
        f" at {metadata.endpoint_url}" if metadata.endpoint_url else ""
    )
    if asyncio.run(store.create_table()):
        print(f"created DynamoDB table {where}")
    else:
        print(f"DynamoDB table {where} already exists; nothing to do")
    return 0
