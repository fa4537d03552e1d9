"""The event sink ``example_events``: every event as one JSON line appended to a file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mirror.domain.models import Event
from mirror.services.sinks import ConsumerSink, EventSink, SinkContext


class Plugin:
    def validate(self, table: dict[str, Any]) -> list[str]:
        problems = [f"unknown key {key!r} (the table takes: path)" for key in table if key != "path"]
        path = table.get("path")
        if not isinstance(path, str) or not path.strip():
            problems.append(f"path must be a file path (a string), not {path!r}")
        return problems

    def create(self, context: SinkContext) -> EventSink:
        path = Path(context.table["path"])

        def append(events: list[Event]) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                for event in events:
                    out.write(json.dumps(event.to_json(), sort_keys=True) + "\n")

        async def deliver(events: list[Event]) -> None:
            await asyncio.to_thread(append, events)

        return ConsumerSink(context.store, context.name, deliver, poll_interval=0.2)


plugin = Plugin()
