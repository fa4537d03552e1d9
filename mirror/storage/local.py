"""Blobs on local disk: written to a temporary file beside the target, then renamed into place."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from mirror.domain.errors import NotFound, StorageUnavailable

CHUNK = 256 * 1024


class LocalBlobStore:
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    async def open_client(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create blob directory {self.root}: {exc}") from exc

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        if not await asyncio.to_thread(os.access, self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"blob directory {self.root} is not writable")

    def path_for(self, key: str) -> Path:
        """The file of ``key``; keys come from ``archive_key`` and never leave the root."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise NotFound(f"no blob {key!r}")
        return path

    def local_path(self, key: str) -> Path | None:
        return self.path_for(key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> None:
        await asyncio.to_thread(self._put_file, self.path_for(key), Path(path))

    @staticmethod
    def _put_file(target: Path, source: Path) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                    shutil.copyfileobj(src, out, CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp_name, target)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageUnavailable(f"cannot write blob {target.name}: {exc}") from exc

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self.path_for(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound(f"no blob {key!r}") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read blob {key!r}: {exc}") from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.path_for(key).unlink, missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete blob {key!r}: {exc}") from exc

    def url(self, key: str) -> str:
        return self.path_for(key).as_uri()
