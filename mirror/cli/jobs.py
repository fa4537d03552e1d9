"""``mirror jobs list|show|retry``: the background jobs, straight in the metadata store."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from mirror.cli.common import UsageError, config_of, print_table, with_store
from mirror.domain.errors import MirrorError
from mirror.domain.models import JOB_STATES

MAX_JOBS_LISTED = 1000
#: longer errors are cut in `jobs list`
ERROR_COLUMN_CHARS = 80


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``jobs`` group to the top-level subparsers ``sub``."""
    jobs = sub.add_parser("jobs", help="inspect background jobs and retry failed ones").add_subparsers(
        dest="jobs_command", required=True, metavar="ACTION"
    )
    jobs_list = jobs.add_parser("list", parents=[common], help="list jobs, newest first")
    jobs_list.add_argument("--state", choices=JOB_STATES, default=None, help="only jobs in this state")
    jobs_list.add_argument("--limit", type=int, default=50, help=f"at most this many jobs (1..{MAX_JOBS_LISTED})")
    jobs_list.set_defaults(handler=_cmd_jobs_list)
    jobs_show = jobs.add_parser("show", parents=[common], help="print one job whole: every field, payload, full error")
    jobs_show.add_argument("job_id", metavar="ID", type=_job_id)
    jobs_show.set_defaults(handler=_cmd_jobs_show)
    jobs_retry = jobs.add_parser("retry", parents=[common], help="queue a failed job again with fresh attempts")
    jobs_retry.add_argument("job_id", metavar="ID", type=_job_id)
    jobs_retry.set_defaults(handler=_cmd_jobs_retry)


def _job_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"invalid job id {text!r}")
    return int(text)


def _cmd_jobs_list(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_JOBS_LISTED:
        raise UsageError(f"--limit must be between 1 and {MAX_JOBS_LISTED}, not {args.limit}")
    jobs = asyncio.run(with_store(config_of(args), lambda store: store.list_jobs(args.state, args.limit)))
    rows = [("ID", "KIND", "STATE", "ATTEMPTS", "UPDATED", "LAST ERROR")]
    rows += [
        (str(j.id), j.kind, j.state, str(j.attempts), j.updated_at, _one_line(j.last_error or "", ERROR_COLUMN_CHARS))
        for j in jobs
    ]
    print_table(rows)
    return 0


def _cmd_jobs_show(args: argparse.Namespace) -> int:
    job = asyncio.run(with_store(config_of(args), lambda store: store.get_job(args.job_id)))
    if job is None:
        raise MirrorError(f"no job with id {args.job_id}")
    fields = job.to_json()  # the jobs API's shape: every field, under the same names
    payload = fields.pop("payload")
    width = max(len(name) for name in fields) + 2
    for name, value in fields.items():
        text = "-" if value is None else _printable(str(value))
        print(f"{name + ':':<{width}}" + text.replace("\n", "\n" + " " * width))
    print("payload:")
    print(json.dumps(payload, indent=2))
    return 0


def _cmd_jobs_retry(args: argparse.Namespace) -> int:
    from mirror.services.jobs import requeue_failed_job

    job = asyncio.run(with_store(config_of(args), requeue_failed_job, args.job_id))
    print(f"job {job.id} ({job.kind}) is queued again")
    return 0


def _printable(text: str) -> str:
    """``text`` with control characters other than newlines escaped, so stored text (an error
    quoting an archive member's name) cannot drive the terminal."""
    return "".join(
        c if c == "\n" or c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text.replace("\r\n", "\n")
    )


def _one_line(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
