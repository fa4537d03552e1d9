"""The command ``mirror example-blobs``: how many archives the example store holds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mirror.domain.errors import MirrorError


def add_command(subparsers: Any) -> None:
    parser = subparsers.add_parser("example-blobs", help="count the archives in the example blob store")
    parser.set_defaults(handler=_count)


def _count(args: argparse.Namespace) -> int:
    from mirror.cli.common import config_of

    table = config_of(args).plugins.get("example")
    if table is None:
        raise MirrorError("the example blob store is not configured ([plugins.example] in the config)")
    root = Path(table["root"])
    count = sum(1 for path in root.rglob("*.tar.gz") if path.is_file()) if root.is_dir() else 0
    print(f"example store {root}: {count} archive{'' if count == 1 else 's'}")
    return 0
