"""``mirror events tail``: read the registry's event feed over HTTP, one JSON line per event.

The token comes from $MIRROR_TOKEN (read scope; a namespace token sees its namespace's events), the
registry from --registry, else $MIRROR_REGISTRY, else the config (as ``mirror publish``). Without
``--follow`` it prints every event after ``--after`` and exits once caught up; with ``--follow``
it then asks again every second until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import aiohttp
import orjson

from mirror.cli.common import REGISTRY_HELP, remote
from mirror.domain.errors import MirrorError

MAX_LIMIT = 1000
FOLLOW_INTERVAL = 1.0
REQUEST_TIMEOUT = 30.0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``events tail`` to the top-level subparsers ``sub``; ``common`` carries ``--config``."""
    events = sub.add_parser("events", help="read the event feed").add_subparsers(
        dest="events_command", required=True, metavar="ACTION"
    )
    tail_parser = events.add_parser(
        "tail",
        parents=[common],
        help="print events as JSON lines (one per event)",
        description="Print the registry's events as JSON lines, oldest first. The token comes from "
        "$MIRROR_TOKEN (read scope; a namespace token sees only its namespace's events).",
    )
    tail_parser.add_argument("--after", type=_serial, default=0, metavar="SERIAL",
                             help="start after this serial (default 0: from the beginning)")
    tail_parser.add_argument("--type", dest="types", action="append", default=[], metavar="TYPE",
                             help="only events of this type (repeat for several)")
    tail_parser.add_argument("--follow", "-f", action="store_true",
                             help="keep polling (every second) for new events until interrupted")
    tail_parser.add_argument("--limit", type=_limit, default=100, metavar="N",
                             help=f"events asked for per request (1..{MAX_LIMIT}, default 100)")
    tail_parser.add_argument(
        "--registry",
        default=None,
        help=REGISTRY_HELP,
    )
    tail_parser.set_defaults(handler=cmd_tail)


def _serial(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) >= 2**63:
        raise argparse.ArgumentTypeError(f"invalid serial {text!r} (a whole number >= 0)")
    return int(text)


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"invalid limit {text!r} (1..{MAX_LIMIT})")
    return int(text)


def cmd_tail(args: argparse.Namespace) -> int:
    registry, token = remote(args, "the read scope")
    try:
        asyncio.run(
            tail(registry, token, after=args.after, types=args.types, limit=args.limit, follow=args.follow)
        )
    except BrokenPipeError:  # `mirror events tail | head`: the reader is gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


async def tail(
    registry: str,
    token: str,
    *,
    after: int = 0,
    types: Sequence[str] = (),
    limit: int = 100,
    follow: bool = False,
    out: TextIO | None = None,
    interval: float = FOLLOW_INTERVAL,
) -> int:
    """Print events after ``after`` to ``out`` (stdout) as JSON lines; return the last serial seen.

    Stops once caught up unless ``follow``; raises MirrorError with the registry's message on failure.
    """
    out = out or sys.stdout
    url = registry.rstrip("/") + "/api/v1/events"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        while True:
            page = await _page(session, url, registry, after, types, limit)
            for event in page["events"]:
                out.write(orjson.dumps(event).decode() + "\n")
            out.flush()
            previous, after = after, max(after, int(page["next_after"]))
            if after > previous and after < int(page["latest"]):
                continue  # the registry scanned on and more may be waiting: ask again at once
            if not follow:
                return after
            await asyncio.sleep(interval)


async def _page(
    session: aiohttp.ClientSession, url: str, registry: str, after: int, types: Sequence[str], limit: int
) -> dict[str, Any]:
    params = [("after", str(after)), ("limit", str(limit))] + [("type", t) for t in types]
    try:
        async with session.get(url, params=params) as response:
            body = await _json(response)
            status, reason = response.status, response.reason
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise MirrorError(f"cannot reach the registry at {registry}: {exc or type(exc).__name__}") from None
    if status >= 400:
        errors = body.get("errors") if isinstance(body, dict) else None
        message = "; ".join(str(e) for e in errors) if errors else reason
        raise MirrorError(f"the registry refused to list events ({status}): {message}")
    if not (isinstance(body, dict) and isinstance(body.get("events"), list) and "next_after" in body):
        raise MirrorError(f"unexpected answer from {url} (is {registry} a mirror registry?)")
    return body


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return {}
