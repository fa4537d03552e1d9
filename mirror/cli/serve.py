"""``mirror serve``: run the registry server, with ``--host`` and ``--port`` for this run."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from mirror.cli.common import UsageError, config_of

if TYPE_CHECKING:
    from mirror.config import Config


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``serve`` to the top-level subparsers ``sub``; ``common`` carries ``--config``."""
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
