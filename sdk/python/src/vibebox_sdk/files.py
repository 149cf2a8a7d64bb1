"""`sandbox.files` (sync): list, read, write, upload, download, delete, mkdir, move, watch.

Relative sandbox paths start at `/workspace`.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from . import archive, calls, errors
from .archive import Progress
from .durations import Duration
from .models import FileEntry
from .watch import FileEvent, FileWatch, watch_url

if TYPE_CHECKING:
    from .sandbox import Sandbox

ARCHIVE_TYPES = ("application/x-tar", "application/gzip")


def is_archive(response: httpx.Response) -> bool:
    return response.headers.get("Content-Type", "").split(";")[0].strip() in ARCHIVE_TYPES


def total_size(response: httpx.Response) -> int:
    return int(response.headers.get("Content-Length") or 0)


def file_target(remote: str, local: str | os.PathLike[str]) -> Path:
    """Where a downloaded file goes: into `local` when it is a directory (or ends with a separator)."""
    text = os.fspath(local)
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        return path / posixpath.basename(remote.rstrip("/"))
    return path


def upload_call(sandbox_id: str, selection: archive.Selection, progress: Progress | None) -> tuple[calls.Call, Any]:
    """The request for an upload and the open file it reads from (closed by the caller)."""
    if selection.single_file:
        handle = (selection.base / selection.files[0]).open("rb")
        size = os.fstat(handle.fileno()).st_size
        call = calls.upload_file(
            sandbox_id, selection.remote, lambda: archive.chunks(handle, size, progress), size, None
        )
        return call, handle
    packed, size = archive.pack(selection)
    return calls.upload_archive(
        sandbox_id, selection.remote, lambda: archive.chunks(packed, size, progress), size
    ), packed


class Files:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def _send(self, call: calls.Call) -> Any:
        return self._sandbox._send(call)

    def list(self, path: str = "/workspace", *, recursive: bool = False) -> list[FileEntry]:
        return self._send(calls.list_files(self._sandbox.id, path, recursive))

    def exists(self, path: str) -> bool:
        parent, name = posixpath.split(posixpath.join("/workspace", path).rstrip("/"))
        try:
            return any(entry.name == name for entry in self.list(parent or "/"))
        except errors.SandboxFileNotFoundError:
            return False

    def write(self, path: str, data: bytes | str, *, mode: int | None = None) -> dict[str, Any]:
        """Writes `data` to the file at `path` (parents are created)."""
        content = data.encode() if isinstance(data, str) else data
        return self._send(calls.upload_file(self._sandbox.id, path, lambda: content, len(content), mode))

    def read(self, path: str, *, progress: Progress | None = None) -> bytes:
        """A file's bytes (a directory comes as a tar archive)."""
        response = self._send(calls.download(self._sandbox.id, path))
        try:
            total, done, parts = total_size(response), 0, []
            for chunk in response.iter_bytes():
                parts.append(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            return b"".join(parts)
        finally:
            response.close()

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def upload(
        self,
        local: str | os.PathLike[str],
        remote: str | None = None,
        *,
        exclude: list[str] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Uploads a file, a directory (as one archive) or the files matching a glob pattern.

        files.upload("./package.json")                # /workspace/package.json
        files.upload("./src")                         # /workspace/src/...
        files.upload("./local.json", "/app/config.json")
        files.upload("./**/*.py", exclude=["node_modules", ".venv"])
        """
        call, handle = upload_call(self._sandbox.id, archive.select(local, remote, exclude), progress)
        try:
            return self._send(call)
        finally:
            handle.close()

    def upload_dir(
        self,
        local: str | os.PathLike[str],
        remote: str | None = None,
        *,
        exclude: list[str] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        if not Path(local).is_dir():
            raise NotADirectoryError(f"not a directory: {os.fspath(local)!r}")
        return self.upload(local, remote, exclude=exclude, progress=progress)

    def download(self, remote: str, local: str | os.PathLike[str], *, progress: Progress | None = None) -> Path:
        """Writes a sandbox file to `local` (a file path or a directory), or a sandbox directory's
        contents into the directory `local`. Returns where it went."""
        response = self._send(calls.download(self._sandbox.id, remote))
        try:
            total, done = total_size(response), 0
            if is_archive(response):
                with tempfile.TemporaryFile() as spool:
                    for chunk in response.iter_bytes():
                        spool.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                    spool.seek(0)
                    archive.extract(spool, Path(local), strip_top=True)
                return Path(local)
            target = file_target(remote, local)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            return target
        finally:
            response.close()

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._send(calls.delete_file(self._sandbox.id, path, recursive))

    def mkdir(self, path: str) -> dict[str, Any]:
        return self._send(calls.mkdir(self._sandbox.id, path))

    def move(self, source: str, destination: str, *, overwrite: bool = False) -> dict[str, Any]:
        return self._send(calls.move(self._sandbox.id, source, destination, overwrite))

    def watch(
        self,
        path: str = "/workspace",
        callback: Callable[[FileEvent], Any] | None = None,
        *,
        recursive: bool = True,
        excludes: list[str] | None = None,
        timeout: Duration | None = None,
    ) -> FileWatch:
        """Watches a directory (relative paths start at /workspace) for changes: `callback` is
        called from a background thread with each `FileEvent`; without one, iterate the answer.
        The watch is in place when this returns; `.stop()` ends it (also `with`). `excludes`: glob
        patterns left out (`node_modules`, `*.pyc`; with a `/`, a path below the directory).
        `timeout`: end the watch after this long (default: until stopped). See vibebox_sdk.watch.

            watch = sandbox.files.watch("/workspace", lambda e: print(e.type, e.path))
            sandbox.exec("touch /workspace/a.txt")
            watch.stop()
        """
        root = posixpath.normpath(posixpath.join("/workspace", path))
        client = self._sandbox._client
        url = watch_url(client.base_url, self._sandbox.id, root, recursive, excludes, timeout)
        return FileWatch(url, client.api_key, root, callback, timeout=timeout)
