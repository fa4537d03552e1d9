"""``mirror github reconcile``: queue a reconcile for the server's workers, and wait for it."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from mirror.cli.common import UsageError, config_of, with_store
from mirror.domain.errors import MirrorError


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``github`` group to the top-level subparsers ``sub``."""
    github = sub.add_parser("github", help="the GitHub integration").add_subparsers(
        dest="github_command", required=True, metavar="ACTION"
    )
    reconcile = github.add_parser(
        "reconcile",
        parents=[common],
        help="bring modules in line with GitHub (all namespaces, or one)",
        description="Queue a reconcile for the server's workers: repositories and tags are listed "
        "and the registry brought in line (missed deliveries, bulk tag pushes).",
    )
    reconcile.add_argument("namespace", metavar="NAMESPACE", nargs="?", default=None)
    reconcile.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait for the reconcile to finish")
    reconcile.set_defaults(handler=_cmd_github_reconcile)


def _cmd_github_reconcile(args: argparse.Namespace) -> int:
    from mirror.domain.addresses import valid_namespace
    from mirror.integrations.github.sync import RECONCILE

    if args.namespace is not None and not valid_namespace(args.namespace):
        raise UsageError(f"invalid namespace {args.namespace!r}")
    if not config_of(args).github.enabled:
        raise UsageError("the GitHub integration is not configured ([github] in the config)")
    job = asyncio.run(with_store(config_of(args), lambda store: store.enqueue_job(RECONCILE, {"namespace": args.namespace})))
    print(f"queued reconcile job {job.id}; a running `mirror serve` with this config carries it out")
    if args.wait > 0:
        state = asyncio.run(with_store(config_of(args), _wait_for_job, job.id, args.wait))
        if state != "done":
            raise MirrorError(f"reconcile job {job.id} is {state} after {args.wait:g} s (see `mirror jobs list`)")
        print(f"reconcile job {job.id} done")
    return 0


async def _wait_for_job(store, job_id: int, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        job = await store.get_job(job_id)
        if job is None or job.state in ("done", "failed") or time.monotonic() > deadline:
            return job.state if job else "gone"
        await asyncio.sleep(0.2)
