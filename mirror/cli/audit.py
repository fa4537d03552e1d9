"""``mirror audit``: who changed what, from the registry's audit trail over HTTP (``GET /api/v1/audit``).

The token comes from $MIRROR_TOKEN (read scope; a namespace token sees its namespace's changes),
the registry from --registry, else $MIRROR_REGISTRY, else the config (as ``mirror events tail``).
One line per change, oldest first: serial, time, type, what changed, who (``--json``: the
changes as JSON lines). Every page is read until the registry has no more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, TextIO

import aiohttp
import orjson

from mirror.cli.common import REGISTRY_HELP, UsageError, remote
from mirror.domain.errors import MirrorError

REQUEST_TIMEOUT = 30.0
PAGE = 1000


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``audit`` to the top-level subparsers ``sub``; ``common`` carries ``--config``."""
    parser = sub.add_parser(
        "audit",
        parents=[common],
        help="list changes and who made them",
        description="List the registry's changes (its events) with who made each, oldest first: a token (id and "
        "description), a GitHub delivery, an upstream (sync, pull-through), a bundle (import), the CLI or the "
        "system. The token comes from $MIRROR_TOKEN (read scope; a namespace token sees only its namespace).",
    )
    parser.add_argument("--actor", default=None, metavar="A",
                        help="only this actor's changes: a kind (token, github, upstream, bundle, cli, system), "
                        "a token id, a GitHub delivery id, an upstream host or a bundle file name")
    parser.add_argument("--namespace", default=None, metavar="NS", help="only the changes in this namespace")
    parser.add_argument("--since", default=None, metavar="T", help="only changes at or after this RFC 3339 time")
    parser.add_argument("--until", default=None, metavar="T", help="only changes at or before this RFC 3339 time")
    parser.add_argument("--json", action="store_true", help="print the changes as JSON lines")
    parser.add_argument("--registry", default=None, help=REGISTRY_HELP)
    parser.set_defaults(handler=cmd_audit)


def cmd_audit(args: argparse.Namespace) -> int:
    registry, token = remote(args, "the read scope")
    filters = {"actor": args.actor, "namespace": args.namespace, "since": args.since, "until": args.until}
    for name, value in filters.items():
        if value is not None and not value.strip():
            raise UsageError(f"--{name} must not be empty")
    try:
        asyncio.run(audit(registry, token, filters, as_json=args.json))
    except BrokenPipeError:  # `mirror audit | head`: the reader is gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


async def audit(
    registry: str, token: str, filters: dict[str, str | None], *, as_json: bool = False, out: TextIO | None = None
) -> int:
    """Print every change the filters admit to ``out`` (stdout); return how many were printed.
    Raises MirrorError with the registry's message on failure."""
    out = out or sys.stdout
    url = registry.rstrip("/") + "/api/v1/audit"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    params = {name: value for name, value in filters.items() if value is not None}
    printed, after = 0, 0
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session:
        while True:
            page = await _page(session, url, registry, {**params, "after": str(after), "limit": str(PAGE)})
            for change in page["events"]:
                out.write((orjson.dumps(change).decode() if as_json else line(change)) + "\n")
                printed += 1
            out.flush()
            previous, after = after, max(after, int(page["next_after"]))
            if after <= previous or after >= int(page["latest"]):
                return printed


def line(change: dict[str, Any]) -> str:
    """``SERIAL  TIME  TYPE  SUBJECT  ACTOR`` for one change."""
    data = change.get("data") or {}
    parts = [data.get("hostname") or "", data.get("namespace", ""), data.get("name") or data.get("type") or "",
             data.get("provider", "")]
    subject = "/".join(str(part) for part in parts if part)
    if data.get("version"):
        subject += f" {data['version']}"
    return f"{change['serial']:>6}  {change['occurred_at']}  {change['type']:<28} {subject:<40} {describe(change.get('actor'))}"


def describe(actor: Any) -> str:
    """An actor in a few words: ``token tok_1 (ci)``, ``github delivery 72d3…``, ``upstream HOST``..."""
    if not isinstance(actor, dict):
        return "(not recorded)"
    kind = actor.get("kind", "?")
    if kind == "token":
        note = f" ({actor['description']})" if actor.get("description") else ""
        return f"token {actor.get('id', '?')}{note}"
    if kind == "github":
        return f"github delivery {actor['delivery']}" if actor.get("delivery") else f"github job {actor.get('job', '?')}"
    for field in ("host", "file", "job"):
        if actor.get(field):
            return f"{kind} {actor[field]}"
    return str(kind)


async def _page(session: aiohttp.ClientSession, url: str, registry: str, params: dict[str, str]) -> dict[str, Any]:
    try:
        async with session.get(url, params=params) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = {}
            status, reason = response.status, response.reason
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise MirrorError(f"cannot reach the registry at {registry}: {exc or type(exc).__name__}") from None
    if status >= 400:
        errors = body.get("errors") if isinstance(body, dict) else None
        message = "; ".join(str(e) for e in errors) if errors else reason
        raise MirrorError(f"the registry refused to list changes ({status}): {message}")
    if not (isinstance(body, dict) and isinstance(body.get("events"), list) and "next_after" in body and "latest" in body):
        raise MirrorError(f"unexpected answer from {url} (is {registry} a mirror registry?)")
    return body
