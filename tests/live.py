"""A real ``mirror serve`` process for end-to-end tests."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.request import urlopen

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T] | T], what: str, *, timeout: float, logs: Callable[[], str] = lambda: ""
) -> T:
    """Poll ``check`` (a coroutine function or a plain one) every 50 ms until it returns something
    truthy, and return that; after ``timeout`` seconds fail with the last value and ``logs()`` (the
    servers' logs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}\n{logs()}")
        await asyncio.sleep(0.05)


def wait_until(check: Callable[[], T], what: str, *, timeout: float, logs: Callable[[], str] = lambda: "") -> T:
    """``eventually`` for blocking code: poll ``check`` every 50 ms until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}\n{logs()}")
        time.sleep(0.05)


class ManualClock:
    """A clock the test moves: pass ``clock=`` to a service instead of sleeping through its TTLs."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, timeout: float = 20) -> int | None:
    """SIGTERM, wait for a graceful exit, SIGKILL after ``timeout``; the exit code."""
    if process is None or process.poll() is not None:
        return process.returncode if process else None
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class MirrorServer:
    """``mirror serve --config FILE`` in a subprocess, stopped with SIGTERM."""

    config_file: Path
    port: int
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"
    process: subprocess.Popen | None = None
    log_file: Path | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> MirrorServer:
        self.log_file = self.workdir / f"mirror-{self.port}-{time.monotonic_ns()}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("MIRROR_")}
        env.update(self.env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mirror", "serve", "--config", str(self.config_file)],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log_file.open("wb"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mirror serve exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"mirror serve did not start:\n{self.logs()}")
        if self.scheme == "http":
            with urlopen(f"{self.url}/healthz", timeout=5) as response:
                assert response.status == 200
        return self

    def stop(self) -> int | None:
        return stop_process(self.process)

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file and self.log_file.exists() else ""


def create_database(path: Path) -> Path:
    """Make an empty SQLite registry database at ``path``, as ``mirror serve`` does at its first
    start (admin commands such as ``mirror token create`` never create one)."""
    from mirror.storage.sqlite import SqliteMetadataStore

    async def create() -> None:
        store = SqliteMetadataStore(path)
        await store.open()
        await store.close()

    asyncio.run(create())
    return path


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """The CLI failed with ``code``, one ``mirror: ...`` line holding ``fragments``, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mirror: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("MIRROR_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mirror", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def serve_in_thread(app: Any, what: str = "the stand-in server") -> Iterator[str]:
    """Serve the aiohttp ``app`` on 127.0.0.1 from a thread with its own event loop (for a live
    ``mirror serve`` or a blocking client to reach); its URL."""
    from aiohttp import web

    ready = threading.Event()
    state: dict[str, Any] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = runner.addresses[0][1]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), f"{what} did not start"
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        thread.join(10)
