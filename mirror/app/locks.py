"""What a running server holds: the locks on its local data, and its TLS context."""

from __future__ import annotations

import fcntl
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mirror.config import Config
from mirror.domain.errors import MirrorError


@contextmanager
def lock_local_data(config: Config) -> Iterator[None]:
    """Hold, while a server runs, an exclusive ``flock`` on the local data that one server at a
    time may use: the SQLite database (through ``<database>.lock``, holding the owner's pid) and
    the spool directory. Replicas on DynamoDB and S3 each have their own spool, so they run side
    by side. Another holder is a MirrorError at once (the lock is never waited for)."""
    held: list[int] = []
    try:
        if config.metadata.backend == "sqlite":
            database = config.metadata.path
            held.append(_lock(database.with_name(database.name + ".lock"), f"the database {database}", directory=False))
        spool = config.server.spool_dir
        held.append(_lock(spool, f"the spool directory {spool}", directory=True))
        yield
    finally:
        for fd in held:
            os.close(fd)  # releases the flock


def _lock(path: Path, what: str, *, directory: bool) -> int:
    """An open descriptor of ``path`` (a directory, or a lock file made 0600) under ``flock``."""
    try:
        if directory:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        else:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise MirrorError(f"cannot lock {what}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise MirrorError(
            f"another mirror serve is using {what}" + (f" (pid {holder})" if holder else "")
        ) from None
    except OSError as exc:  # a file system without flock
        os.close(fd)
        raise MirrorError(f"cannot lock {what}: {exc.strerror or exc}") from None
    if not directory:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _lock_holder(fd: int) -> int | None:
    """The pid holding a ``flock`` on ``fd``'s file: from /proc/locks (Linux), else the pid the
    holder wrote into its lock file; None when neither tells."""
    info = os.fstat(fd)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
                    return int(fields[4])
    except OSError:
        pass
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def ssl_context(config: Config) -> ssl.SSLContext | None:
    server = config.server
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.tls_cert, server.tls_key)
    return context
