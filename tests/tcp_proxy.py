"""A TCP forwarder on 127.0.0.1 that a test can take down and bring back, for outages over real sockets.

Point a client at ``proxy.url`` instead of the service. ``down()`` closes the listening socket
(new connections are refused, as when a host is unreachable) and resets every forwarded
connection (pooled keep-alive connections fail at their next use); ``up()`` listens again on the
same port. Setting ``latency`` holds each chunk a client sends for that many seconds before it
is forwarded (a slow link: requests stay in flight). It runs in the test's event loop, so the loop must not be blocked while clients use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        #: seconds each chunk from a client waits before it is forwarded
        self.latency = 0.0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._server is not None

    async def up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        writers = [client_writer]
        self._writers.add(client_writer)
        try:
            try:
                target_reader, target_writer = await asyncio.open_connection(*self._target)
            except OSError:
                _reset(client_writer)
                return
            writers.append(target_writer)
            self._writers.add(target_writer)
            await asyncio.gather(
                _pipe(client_reader, target_writer, lambda: self.latency), _pipe(target_reader, client_writer)
            )
        finally:
            self._tasks.discard(task)
            for writer in writers:
                self._writers.discard(writer)
                writer.close()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: Callable[[], float] = lambda: 0.0
) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            if delay := latency():
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN: the peer sees "connection reset", as when the far side vanishes."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
