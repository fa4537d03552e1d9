"""The ``mirror`` command line: the parser assembled from one module per command group, and the
dispatch to the chosen command's handler.

Every failure ends in one readable line on stderr and a non-zero exit: 2 for bad usage or
configuration, 1 for anything else.

Command groups: ``serve`` (``mirror.cli.serve``), ``publish`` (``publish``), ``token``
(``tokens``), ``jobs`` (``jobs``), ``modules`` and friends (``modules``), ``events`` (``events``),
``webhooks`` (``webhooks``), ``import``/``sync`` (``sync``), bundles (``bundles``), ``dynamodb``
(``dynamodb``), ``github`` (``github``), ``sources`` (``sources``); each module has ``add_commands(sub, common)``.

Plug-ins add commands through the entry-point group ``mirror.cli_commands``: the entry point
names a callable that is given the subparsers object and adds its command
(``subparsers.add_parser("NAME", ...)``, then ``set_defaults(handler=function)``; the function
takes the parsed arguments and returns the exit status). Its parser gets ``--config`` like every
other. A plug-in command that cannot be loaded, or whose name is taken, is left out with one
warning line on stderr; the other commands work.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mirror import __version__
from mirror.cli.common import CONFIG_ENV, UsageError
from mirror.domain.errors import ConfigError, MirrorError


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

    from mirror.cli import (
        audit,
        bundles,
        dynamodb,
        events,
        github,
        jobs,
        modules,
        providers,
        publish,
        serve,
        sources,
        sync,
        tokens,
        webhooks,
    )

    for group in (serve, publish, providers, tokens, jobs, modules, events, audit, webhooks, sync, bundles, dynamodb, github, sources):
        group.add_commands(sub, common)
    _plugin_commands(sub)
    _config_everywhere(parser)
    return parser


CONFIG_HELP = f"TOML configuration file, before or after the command; the last one given wins (default: ${CONFIG_ENV}, else built-in defaults)"


def _plugin_commands(sub: Any) -> None:
    """The commands of the entry-point group ``mirror.cli_commands``, after the built-in ones."""
    from mirror.app.plugins import CLI_GROUP, installed

    for name, ep in sorted(installed(CLI_GROUP).items()):
        try:
            ep.load()(sub)
        except Exception as exc:  # a broken plug-in leaves the other commands working
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            print(f"mirror: warning: the plug-in command {name!r} ({ep.value}) is left out: {reason}", file=sys.stderr)


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


if __name__ == "__main__":
    sys.exit(main())
