"""`sandbox.files` for the async client (see files.py)."""

from __future__ import annotations

import asyncio
import os
import posixpath
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import archive, calls, errors
from .aio_watch import AsyncFileWatch
from .archive import Progress
from .durations import Duration
from .files import file_target, is_archive, total_size, upload_call
from .models import FileEntry
from .watch import FileEvent, watch_url

if TYPE_CHECKING:
    from .aio import AsyncSandbox


class AsyncFiles:
    def __init__(self, sandbox: AsyncSandbox) -> None:
        self._sandbox = sandbox

    async def list(self, path: str = "/workspace", *, recursive: bool = False) -> list[FileEntry]:
        return await self._sandbox._send(calls.list_files(self._sandbox.id, path, recursive))

    async def exists(self, path: str) -> bool:
        parent, name = posixpath.split(posixpath.join("/workspace", path).rstrip("/"))
        try:
            return any(entry.name == name for entry in await self.list(parent or "/"))
        except errors.SandboxFileNotFoundError:
            return False

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return (await self.read(path)).decode(encoding)

    async def upload_dir(
        self, local: str | os.PathLike[str], remote: str | None = None, *, exclude: list[str] | None = None
    ) -> dict[str, Any]:
        if not Path(local).is_dir():
            raise NotADirectoryError(f"not a directory: {os.fspath(local)!r}")
        return await self.upload(local, remote, exclude=exclude)

    async def write(self, path: str, data: bytes | str, *, mode: int | None = None) -> dict[str, Any]:
        content = data.encode() if isinstance(data, str) else data
        return await self._sandbox._send(calls.upload_file(self._sandbox.id, path, lambda: content, len(content), mode))

    async def read(self, path: str) -> bytes:
        response = await self._sandbox._send(calls.download(self._sandbox.id, path))
        try:
            return b"".join([chunk async for chunk in response.aiter_bytes()])
        finally:
            await response.aclose()

    async def upload(
        self,
        local: str | os.PathLike[str],
        remote: str | None = None,
        *,
        exclude: list[str] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        selection = await asyncio.to_thread(archive.select, local, remote, exclude)
        call, handle = await asyncio.to_thread(upload_call, self._sandbox.id, selection, progress)
        try:
            return await self._sandbox._send(call)
        finally:
            handle.close()

    async def download(self, remote: str, local: str | os.PathLike[str]) -> Path:
        response = await self._sandbox._send(calls.download(self._sandbox.id, remote))
        try:
            with tempfile.TemporaryFile() as spool:
                async for chunk in response.aiter_bytes():
                    spool.write(chunk)
                spool.seek(0)
                if is_archive(response):
                    await asyncio.to_thread(archive.extract, spool, Path(local), strip_top=True)
                    return Path(local)
                target = file_target(remote, local)
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    out.write(spool.read(total_size(response) or -1))
                return target
        finally:
            await response.aclose()

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        await self._sandbox._send(calls.delete_file(self._sandbox.id, path, recursive))

    async def mkdir(self, path: str) -> dict[str, Any]:
        return await self._sandbox._send(calls.mkdir(self._sandbox.id, path))

    async def move(self, source: str, destination: str, *, overwrite: bool = False) -> dict[str, Any]:
        return await self._sandbox._send(calls.move(self._sandbox.id, source, destination, overwrite))

    async def watch(
        self,
        path: str = "/workspace",
        callback: Callable[[FileEvent], Any] | None = None,
        *,
        recursive: bool = True,
        excludes: list[str] | None = None,
        timeout: Duration | None = None,
    ) -> AsyncFileWatch:
        """Watches a directory for changes (see Files.watch): `callback` (plain or async) is called
        from a task with each `FileEvent`; without one, `async for` the answer. `await .stop()`
        ends it (also `async with`)."""
        root = posixpath.normpath(posixpath.join("/workspace", path))
        client = self._sandbox._client
        url = watch_url(client.base_url, self._sandbox.id, root, recursive, excludes, timeout)
        return await AsyncFileWatch.open(url, client.api_key, root, callback, timeout=timeout)
