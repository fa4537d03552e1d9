"""The blob store ``example``: archives as files under a directory of their own."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mirror.domain.errors import NotFound, StorageUnavailable

CHUNK = 64 * 1024
TABLE = "example"


class DirectoryBlobStore:
    """``mirror.storage.protocols.BlobStore`` on a directory: ``<root>/<key>``."""

    kind = "example"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    async def open_client(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"example store: {self.root} is not writable")

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise NotFound(f"no blob {key!r}")
        return path

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> None:
        await asyncio.to_thread(self._copy, Path(path), self._path(key))

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as data:
                shutil.copyfileobj(data, out, CHUNK)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def open(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self._path(key).open, "rb")
        except FileNotFoundError:
            raise NotFound(f"no blob {key!r}") from None
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    def url(self, key: str) -> str:
        return self._path(key).as_uri()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


class Plugin:
    """The entry point's object: checks ``[plugins.example]``, builds the store."""

    def validate(self, table: dict[str, Any]) -> list[str]:
        problems = [f"unknown key {key!r} (the table takes: root)" for key in table if key != "root"]
        root = table.get("root")
        if root is None:
            problems.append("root is required: the directory that holds the archives")
        elif not isinstance(root, str) or not root.strip():
            problems.append(f"root must be a directory path (a string), not {root!r}")
        return problems

    def __call__(self, config: Any) -> DirectoryBlobStore:
        return DirectoryBlobStore(Path(config.plugins[TABLE]["root"]))


plugin = Plugin()
