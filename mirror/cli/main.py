"""The ``mirror`` command line.

Every failure ends in one readable line on stderr and a non-zero exit: 2 for bad usage or
configuration, 1 for anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mirror import __version__
from mirror.cli.common import CONFIG_ENV, REGISTRY_HELP, UsageError, config_of, print_table, remote, with_store
from mirror.domain.models import JOB_STATES
from mirror.domain.errors import ConfigError, MirrorError

if TYPE_CHECKING:
    from mirror.config import Config

MAX_JOBS_LISTED = 1000
#: longer errors are cut in `jobs list`
ERROR_COLUMN_CHARS = 80


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mirror: config: {problem}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"mirror: error: {exc}", file=sys.stderr)
        return 2
    except MirrorError as exc:
        print(f"mirror: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mirror: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirror",
        description="A private Terraform module registry.",
        epilog="--config FILE may come before the command, after it, or between a command and its action "
        "(`mirror --config F token list`, `mirror token list --config F`, `mirror token --config F list`); "
        f"given more than once, the last one wins. Without it: ${CONFIG_ENV}, else the built-in defaults.",
    )
    parser.add_argument("--version", action="version", version=f"mirror {__version__}")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help=CONFIG_HELP)
    # Every command parser gets the same option with no default of its own: argparse copies a
    # subparser's results over the namespace, and a default of None there would erase the value
    # given before the command. The commands' ``common`` parent carries it; _config_everywhere
    # adds it to the command groups (token, jobs, ...) that have none.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="run the registry server",
        description="Run the registry server. --host and --port override [server] host and port for this "
        "run: they win over the config file and over $MIRROR_SERVER_HOST / $MIRROR_SERVER_PORT.",
    )
    serve.add_argument("--host", default=None, help="address to listen on (overrides [server] host)")
    serve.add_argument("--port", default=None, help="port to listen on, 0..65535, 0 for any free one (overrides [server] port)")
    serve.set_defaults(handler=_cmd_serve)

    publish = sub.add_parser(
        "publish",
        parents=[common],
        help="publish a module version from a directory or a .tar.gz",
        description="Publish a module version. The token comes from $MIRROR_TOKEN (publish scope).",
    )
    publish.add_argument("address", metavar="NS/NAME/PROVIDER")
    publish.add_argument("version", metavar="VERSION")
    publish.add_argument("path", metavar="PATH", type=Path, help="module directory or .tar.gz archive")
    publish.add_argument(
        "--registry",
        default=None,
        help=REGISTRY_HELP,
    )
    publish.set_defaults(handler=_cmd_publish)

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

    from mirror.cli.bundles import add_commands as add_bundle_commands
    from mirror.cli.dynamodb import add_commands as add_dynamodb_commands
    from mirror.cli.events import add_commands as add_event_commands
    from mirror.cli.modules import add_commands as add_module_commands
    from mirror.cli.sync import add_commands as add_sync_commands
    from mirror.cli.webhooks import add_commands as add_webhook_commands

    add_module_commands(sub, common)
    add_event_commands(sub, common)
    add_webhook_commands(sub, common)
    add_sync_commands(sub, common)
    add_bundle_commands(sub, common)
    add_dynamodb_commands(sub, common)

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
    _config_everywhere(parser)
    return parser


CONFIG_HELP = f"TOML configuration file, before or after the command; the last one given wins (default: ${CONFIG_ENV}, else built-in defaults)"


def _config_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give every parser below ``parser`` a ``--config`` without a default, where it has none:
    the command groups (so ``mirror token --config F list`` works) and any command added without
    the ``common`` parent."""
    seen: set[int] = set()
    pending = _subparsers_of(parser)
    while pending:
        child = pending.pop()
        if id(child) in seen:  # an alias names the same parser twice
            continue
        seen.add(id(child))
        try:
            child.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE", help=CONFIG_HELP)
        except argparse.ArgumentError:
            pass  # it has one already (from ``common``)
        pending += _subparsers_of(child)


def _subparsers_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [
        child
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for child in action.choices.values()
    ]


# -- serve -----------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    from mirror.app.server import serve

    host, port = _listen_host(args.host), _listen_port(args.port)  # bad input before the config is read
    serve(_with_listen_address(config_of(args), host, port))
    return 0


def _listen_host(text: str | None) -> str | None:
    if text is not None and (not text or not text.isprintable() or any(c.isspace() for c in text)):
        raise UsageError(f"--host must be a host name or address, not {text!r}")
    return text


def _listen_port(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or not 0 <= int(text) <= 65535:
        raise UsageError(f"--port must be a whole number between 0 and 65535, not {text!r}")
    return int(text)


def _with_listen_address(config: Config, host: str | None, port: int | None) -> Config:
    """``config`` with ``serve --host/--port`` applied: the command line wins over the file and
    the MIRROR_SERVER_* variables, which load_config has already merged."""
    changes: dict[str, object] = {}
    if host is not None:
        changes["host"] = host
    if port is not None:
        changes["port"] = port
    if not changes:
        return config
    return dataclasses.replace(config, server=dataclasses.replace(config.server, **changes))


# -- publish ---------------------------------------------------------------------------------


def _cmd_publish(args: argparse.Namespace) -> int:
    from mirror.cli.publish import publish
    from mirror.domain.addresses import ModuleAddress
    from mirror.domain.versions import normalize

    try:
        address = ModuleAddress.parse(args.address)
        normalize(args.version)
    except MirrorError as exc:
        raise UsageError(str(exc)) from None
    registry, token = remote(args, "the publish scope")
    limits = config_of(args).limits.archive_limits()  # the server may have others: it stays the judge
    result = asyncio.run(publish(registry, token, address, args.version, args.path, limits))
    print(
        f"{result['status']}: {result['id']} sha256={result['sha256']} size={result['size']}",
    )
    return 0


# -- tokens ----------------------------------------------------------------------------------


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


# -- jobs ------------------------------------------------------------------------------------


def _job_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"invalid job id {text!r}")
    return int(text)


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
    import json

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


if __name__ == "__main__":
    sys.exit(main())
