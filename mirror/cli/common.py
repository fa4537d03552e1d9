"""What every CLI command shares: the config, the metadata store, the registry URL, tables.

The config is read as the server reads it, plug-in tables checked (``mirror.app.plugins``), and
the stores are opened through the composition root (``mirror.app.stores``): an admin command
never creates a missing database; ``serve``, ``import`` and ``sync`` pass ``create=True``.

It lives apart from ``mirror.cli.main`` so that command modules can import it: under
``python -m mirror`` that module is ``__main__``, and importing it again would make a second copy
(with a second ``UsageError`` class that ``main`` would not catch).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mirror.domain.errors import MirrorError

if TYPE_CHECKING:  # imported when used: ``mirror --help`` stays quick
    from mirror.app.services import OfflineRegistry, offline_registry
    from mirror.config import Config

__all__ = ["OfflineRegistry", "offline_registry", "open_store", "with_store"]

CONFIG_ENV = "MIRROR_CONFIG"
T = TypeVar("T")


class UsageError(MirrorError):
    """Bad command-line input: one line on stderr and exit code 2."""

    status = 400


def cli_config(config_path: Path | None) -> Config:
    """The config named by ``--config``, else ``$MIRROR_CONFIG``, else the built-in defaults;
    every installed backend allowed, each plug-in's ``[plugins.NAME]`` checked by the plug-in."""
    from mirror.app.plugins import load_app_config

    path = config_path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    return load_app_config(path)


def config_of(args: argparse.Namespace) -> Config:
    return cli_config(getattr(args, "config", None))


def default_registry(config: Config) -> str:
    """The registry URL from the config: ``[server] public_url``, else http(s)://HOST:PORT."""
    server = config.server
    if server.public_url:
        return server.public_url
    scheme = "https" if server.tls_cert else "http"
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    return f"{scheme}://{host}:{server.port}"


#: the ``--registry`` option's help, for every command that talks to a registry over HTTP
REGISTRY_HELP = "registry URL (default: $MIRROR_REGISTRY, else [server] public_url, else http://HOST:PORT from config)"


def remote(args: argparse.Namespace, needs: str) -> tuple[str, str]:
    """The registry URL and the token of a command that talks to a registry over HTTP: the token
    from ``$MIRROR_TOKEN`` (``needs`` says which scope, for the message when it is unset), the URL
    from ``--registry``, else ``$MIRROR_REGISTRY``, else the config's own address."""
    token = os.environ.get("MIRROR_TOKEN", "")
    if not token:
        raise UsageError(f"set MIRROR_TOKEN to a token with {needs}")
    return args.registry or os.environ.get("MIRROR_REGISTRY") or default_registry(config_of(args)), token


async def open_store(config: Config, *, create: bool = False) -> Any:
    """The config's metadata store, opened. An admin command never makes a new, empty registry:
    unless ``create`` (``serve``, and commands that fill a new registry: ``import``, ``sync``), a
    SQLite database that is not there is one line saying where it was looked for."""
    from mirror.app.stores import open_metadata_store

    _acting_as_cli()
    return await open_metadata_store(config, create=create)


async def with_store(config: Config, action: Callable[..., Awaitable[T]], *extra: Any, create: bool = False) -> T:
    """Open the config's metadata store (never creating one unless ``create``), run
    ``action(store, *extra)``, close the store."""
    from mirror.app.stores import metadata_store

    _acting_as_cli()
    async with metadata_store(config, create=create) as store:
        return await action(store, *extra)


def _acting_as_cli() -> None:
    """The changes a command makes through the store it opened are the CLI's (``mirror.domain.audit``)."""
    from mirror.domain.audit import CLI, actor_is_set, set_actor

    if not actor_is_set():
        set_actor(CLI)


async def registry_request(
    registry: str, token: str, method: str, path: str, body: Any = None, *, refused: str, timeout: float = 30.0
) -> dict[str, Any]:
    """One JSON request to the registry's API with the bearer ``token``: its answer (``{}`` for a
    204). Failures are one readable MirrorError: the registry out of reach, or a refusal as
    ``"{refused} (STATUS): the registry's own errors"``."""
    import asyncio

    import aiohttp

    url = registry.rstrip("/") + path
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.request(method, url, json=body, headers=headers) as response:
                status, reason = response.status, response.reason
                try:
                    answer = await response.json(content_type=None) if status != 204 else {}
                except ValueError:
                    answer = None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise MirrorError(f"cannot reach the registry at {registry}: {exc or type(exc).__name__}") from None
    if status >= 400:
        errors = answer.get("errors") if isinstance(answer, dict) else None
        message = "; ".join(str(e) for e in errors) if errors else reason
        raise MirrorError(f"{refused} ({status}): {message}")
    if not isinstance(answer, dict):
        raise MirrorError(f"unexpected answer from {url} (is {registry} a mirror registry?)")
    return answer


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one, free text, is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


def __getattr__(name: str) -> Any:
    """``offline_registry`` and ``OfflineRegistry`` (``mirror.app.services``), imported when
    first used."""
    if name in ("offline_registry", "OfflineRegistry"):
        from mirror.app import services

        return getattr(services, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
