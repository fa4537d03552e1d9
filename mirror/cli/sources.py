"""``mirror sources check``: verify each configured source and show what it would import.

One line per finding, ``STATUS  SOURCE: TEXT``, STATUS being ``ok``, ``warn``, ``fail`` or
``import`` (a version the source would import now). The exit status is 1 when any line is
``fail``, else 0; a bad config is one line and exit status 2, as for every command. Sources are
the built-in ones that are configured (``[github]``) and the plug-in sources with a
``[plugins.NAME]`` table; a plug-in source without ``check`` gets one line saying so. Nothing is
changed: a source's check only reads.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from mirror.cli.common import config_of


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``sources`` group to the top-level subparsers ``sub``."""
    sources = sub.add_parser("sources", help="the sources modules come from (GitHub, plug-ins)").add_subparsers(
        dest="sources_command", required=True, metavar="ACTION"
    )
    check = sources.add_parser(
        "check",
        parents=[common],
        help="check each source's credentials, permissions, webhook and naming; list what it would import",
        description="For every configured source: one line per finding, `ok|warn|fail|import  SOURCE: TEXT`. "
        "Read-only (a dry run). Exit status 1 when any line is `fail`.",
    )
    check.set_defaults(handler=_cmd_sources_check)


def _cmd_sources_check(args: argparse.Namespace) -> int:
    config = config_of(args)
    lines = asyncio.run(_check_all(config))
    for source, status, text in lines:
        print(f"{status}  {source}: {text}", flush=True)
    return 1 if any(status == "fail" for _, status, _ in lines) else 0


async def _check_all(config: Any) -> list[tuple[str, str, str]]:
    from mirror.app import plugins
    from mirror.app.sources import BUILTIN_SOURCES

    chosen: dict[str, Any] = {name: source for name, (configured, source) in BUILTIN_SOURCES.items() if configured(config)}
    chosen |= plugins.enabled(plugins.SOURCE_GROUP, config)
    if not chosen:
        return [("sources", "warn", "no source is configured ([github], or a source plug-in's [plugins.NAME])")]
    found: list[tuple[str, str, str]] = []
    for name, source in chosen.items():
        check = getattr(source, "check", None)
        if check is None:
            found.append((name, "ok", "this source offers no check"))
            continue
        try:
            lines = await check(config)
        except Exception as exc:  # a plug-in's failure is its line, not a traceback
            found.append((name, "fail", f"the check failed: {type(exc).__name__}: {' '.join(str(exc).split())}"))
            continue
        for line in lines:
            status = line.status if line.status in ("ok", "warn", "fail", "import") else "fail"
            found.append((name, status, " ".join(str(line.text).split())))
    return found
