"""The local JSONL event log: a consumer of the events table that appends every event to a file.

One line per event, in serial order: the ``Event.to_json()`` envelope encoded with orjson. Each
batch (at most ``BATCH_SIZE`` events) is flushed and fsynced before the next one is read.

Never twice after a restart: the file itself is the cursor. On open, the last complete line of the
current file (or, when it is empty or missing, of the newest rotated file) tells the last serial
written, and writing goes on after it. A torn last line (no newline: a crash mid-write) is
truncated away before anything is appended. After a failed write the same recovery runs again
before the next write, so a half-written batch is neither lost nor duplicated. The cursor is also
mirrored into the store (consumer ``"log"``) after each batch, for lag reporting only.

Rotation by size loses nothing: before a line would take the file past ``max_bytes``, the file is
fsynced, closed and renamed to ``<path>.<N>`` (N one higher than any rotated file there; mirror
never deletes them), the directory is fsynced, and a new file is started. A line is never split
across files; a single line larger than ``max_bytes`` gets a file of its own.

An exclusive ``flock`` on ``<path>.lock`` keeps a second process from writing the same log.

``EventLogWriter`` is the built-in event sink ``log`` (``mirror.services.sinks.EventSink``:
``start``, ``wake``, ``stop``), started by ``mirror.app.sinks`` when ``[events] log_path`` is set.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
from pathlib import Path
from typing import IO, Protocol

import orjson
import structlog

from mirror.domain.models import Consumer, Event
from mirror.domain.errors import MirrorError, StorageUnavailable

log = structlog.get_logger("mirror.eventlog")

#: the consumer name of the log's cursor in the store
CONSUMER_NAME = "log"
#: events per write + fsync
BATCH_SIZE = 1000
#: bytes read at a time when looking for the last line from the end of a file
TAIL_CHUNK = 64 * 1024
#: longest wait after a failed write before trying again
MAX_RETRY_SECONDS = 30.0
#: the log, its rotated files and its lock are created readable by this user only (a new
#: directory for them 0700): events name private modules and their sources
FILE_MODE = 0o600


class EventSource(Protocol):
    """What the log needs from the store: the events and its own cursor."""

    async def events_after(self, serial: int, limit: int, types: tuple[str, ...] = ()) -> list[Event]: ...

    async def latest_serial(self) -> int: ...

    async def consumer(self, name: str, *, start_serial: int = 0) -> Consumer: ...

    async def advance_consumer(self, name: str, serial: int) -> bool: ...

    async def delete_consumer(self, name: str) -> None: ...


def encode(event: Event) -> bytes:
    """One log line, newline included."""
    return orjson.dumps(event.to_json(), option=orjson.OPT_APPEND_NEWLINE)


def rotated_files(path: Path) -> list[tuple[int, Path]]:
    """The rotated files ``<path>.<N>`` beside ``path``, oldest (lowest N) first."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d{1,18})")
    found = []
    try:
        entries = list(path.parent.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def log_files(path: Path) -> list[Path]:
    """Every file of the log in order: the rotated ones oldest first, then the current one."""
    files = [file for _, file in rotated_files(path)]
    return files + [path] if path.exists() else files


def last_serial_in(path: Path) -> int | None:
    """The serial of the last complete line of ``path``; None when it has none (or is missing).

    A torn tail (bytes after the last newline) is ignored here, not removed.
    """
    try:
        with path.open("rb") as handle:
            line = _last_complete_line(handle)
    except FileNotFoundError:
        return None
    if line is None:
        return None
    try:
        return int(orjson.loads(line)["serial"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StorageUnavailable(f"the event log {path} ends in a line that is not an event: {exc}") from None


def _last_complete_line(handle: IO[bytes]) -> bytes | None:
    """The last newline-terminated line of a file opened in binary mode, without its newline."""
    end = handle.seek(0, os.SEEK_END)
    last_newline = _rfind_newline(handle, end)
    if last_newline is None:
        return None
    start = _rfind_newline(handle, last_newline)
    begin = 0 if start is None else start + 1
    handle.seek(begin)
    return handle.read(last_newline - begin)


def _rfind_newline(handle: IO[bytes], before: int) -> int | None:
    """Offset of the last b"\\n" strictly before offset ``before``."""
    position = before
    while position > 0:
        start = max(0, position - TAIL_CHUNK)
        handle.seek(start)
        chunk = handle.read(position - start)
        index = chunk.rfind(b"\n")
        if index >= 0:
            return start + index
        position = start
    return None


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LogFile:
    """The blocking file side (run in a thread): recovery, appends with fsync, rotation."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None
        self._handle: IO[bytes] | None = None
        self._size = 0
        #: the serial of the last line in the log (0: none yet)
        self.serial = 0

    @property
    def is_open(self) -> bool:
        return self._handle is not None

    def lock(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageUnavailable(f"another process is writing the event log {self.path}") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def open(self) -> None:
        """Open the current file for appending, after cutting a torn tail; learn the last serial."""
        self.close()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        created = not self.path.exists()
        # read-write so that the tail can be inspected; O_APPEND so that every write goes at the end
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            self._size = self._repair(fd)
            if created:
                _fsync_directory(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        self._handle = os.fdopen(fd, "ab")
        serial = last_serial_in(self.path)
        if serial is None:
            rotated = rotated_files(self.path)
            serial = (last_serial_in(rotated[-1][1]) if rotated else None) or 0
        self.serial = serial

    def _repair(self, fd: int) -> int:
        """Truncate bytes after the last newline (a torn write); return the resulting size."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        with open(fd, "rb", closefd=False) as reader:
            last_newline = _rfind_newline(reader, size)
        keep = 0 if last_newline is None else last_newline + 1
        if keep != size:
            log.warning("cutting a torn line off the event log", path=str(self.path), bytes=size - keep)
            os.ftruncate(fd, keep)
            os.fsync(fd)
        return keep

    def append(self, lines: list[tuple[int, bytes]]) -> None:
        """Write ``(serial, line)`` pairs, rotating as needed, then flush and fsync."""
        assert self._handle is not None, "the event log is not open"
        pending: list[bytes] = []
        pending_bytes = 0
        for serial, line in lines:
            if self._size + pending_bytes > 0 and self._size + pending_bytes + len(line) > self.max_bytes:
                self._write(pending)
                pending, pending_bytes = [], 0
                self._rotate()
            pending.append(line)
            pending_bytes += len(line)
        self._write(pending)
        self._sync()
        if lines:
            self.serial = lines[-1][0]

    def _write(self, pending: list[bytes]) -> None:
        if pending:
            data = b"".join(pending)
            assert self._handle is not None
            self._handle.write(data)
            self._size += len(data)

    def _sync(self) -> None:
        assert self._handle is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def _rotate(self) -> None:
        self._sync()
        assert self._handle is not None
        self._handle.close()
        self._handle = None
        rotated = rotated_files(self.path)
        number = rotated[-1][0] + 1 if rotated else 1
        target = self.path.with_name(f"{self.path.name}.{number}")
        os.rename(self.path, target)
        self._handle = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE), "ab")
        self._size = 0
        _fsync_directory(self.path.parent)  # both the rename and the new file
        log.info("event log rotated", path=str(self.path), rotated_to=str(target))

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError:
                pass
            self._handle = None


class EventLogWriter:
    """Appends every event of ``store`` to the JSONL file at ``path`` (see the module docstring).

    ``start`` recovers the cursor from the file and runs a task that writes new events as they
    come (it looks every ``poll_interval`` seconds, or at once after ``wake``); ``catch_up``
    writes everything up to the latest serial now; ``stop`` writes what is pending, then closes.
    """

    def __init__(self, store: EventSource, path: Path, *, max_bytes: int, poll_interval: float = 0.25) -> None:
        self._store = store
        self._file = _LogFile(Path(path), max_bytes)
        self._poll_interval = poll_interval
        self._lock = asyncio.Lock()
        self._wake_event = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._locked = False

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def serial(self) -> int:
        """The serial of the last event in the log (as far as this writer knows)."""
        return self._file.serial

    def wake(self) -> None:
        """Look for new events now rather than at the next poll."""
        self._wake_event.set()

    async def start(self) -> None:
        async with self._lock:
            await self._open()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="mirror-event-log")

    async def stop(self) -> None:
        """Stop the task, write what is pending, close the file and release its lock."""
        self._stopping = True
        self.wake()
        task, self._task = self._task, None
        if task is not None:
            await task
        try:
            await self.catch_up()
        except (MirrorError, OSError) as exc:
            log.warning("event log: cannot write the last events before stopping", error=str(exc))
        async with self._lock:
            self._file.close()
            if self._locked:
                self._file.unlock()
                self._locked = False

    async def catch_up(self) -> int:
        """Write every event up to the latest serial; return the last serial in the log."""
        async with self._lock:
            if not self._file.is_open:
                await self._open()
            target = await self._store.latest_serial()
            while self._file.serial < target:
                events = await self._store.events_after(self._file.serial, BATCH_SIZE)
                if not events:
                    break
                lines = [(event.serial, encode(event)) for event in events]
                try:
                    await asyncio.to_thread(self._file.append, lines)
                except OSError as exc:
                    # Part of the batch may be in the file: recover from the file before writing again.
                    self._file.close()
                    raise StorageUnavailable(f"cannot write the event log {self.path}: {exc}") from exc
                await self._store.advance_consumer(CONSUMER_NAME, self._file.serial)
            return self._file.serial

    async def _open(self) -> None:
        """Lock, open and recover the file; mirror its cursor into the store."""
        try:
            if not self._locked:
                await asyncio.to_thread(self._file.lock)
                self._locked = True
            await asyncio.to_thread(self._file.open)
        except OSError as exc:
            raise StorageUnavailable(f"cannot open the event log {self.path}: {exc}") from exc
        serial = self._file.serial
        consumer = await self._store.consumer(CONSUMER_NAME, start_serial=serial)
        if consumer.serial > serial:  # the file is the authority (it was moved away or restored)
            await self._store.delete_consumer(CONSUMER_NAME)
            await self._store.consumer(CONSUMER_NAME, start_serial=serial)
        elif consumer.serial < serial:
            await self._store.advance_consumer(CONSUMER_NAME, serial)
        log.info("event log open", path=str(self.path), serial=serial)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake_event.clear()
            delay = self._poll_interval
            try:
                await self.catch_up()
                failures = 0
            except (MirrorError, OSError) as exc:
                failures += 1
                delay = min(MAX_RETRY_SECONDS, self._poll_interval * 2**failures)
                log.warning("event log: write failed, will retry", error=str(exc), retry_in=delay)
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._wake_event.wait(), delay)
            except TimeoutError:
                pass
