"""Files in a sandbox: upload, download, list, delete, mkdir, move.

Everything happens inside the container's own filesystem, as the sandbox's user: its sandboxd
does the work (runtime driver's file_* calls), the kernel checks every path operation as the user,
tmpfs mounts such as /tmp work, no shell is needed, a written file replaces the old one only once
whole, and a tar's entries stay below their directory. A stopped sandbox's files still download,
through the engine's archive API (which resolves paths and symlinks within the container, and
cannot see tmpfs mounts). Either way `..`, symlinks to `/` and the like can only ever reach the
sandbox's own files, never the host's. A sandbox made before sandboxd answers 409
sandbox_outdated for everything but a stopped sandbox's downloads.
"""

import contextlib
import dataclasses
import mimetypes
import posixpath
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from apps.audit.services import record
from vibebox import exceptions as errors
from vibebox import metrics

from .. import events, exceeded, tarstream
from ..models import Sandbox
from ..runtime import FileInfo, driver_for
from .exec import require_not_paused, require_running
from .lifecycle import container_running

WORKSPACE = "/workspace"
SPOOL_IN_MEMORY = 8 * 1024 * 1024
# In-memory mounts the engine's archive API cannot see (it reads underneath them).
TMPFS_PATHS = ("/tmp", "/dev/shm")  # noqa: S108 (paths inside the sandbox)


@dataclass
class Download:
    chunks: Iterator[bytes]
    content_type: str
    filename: str
    length: int | None
    source: Iterator[bytes]  # the engine's stream: close it if the download is abandoned
    # What went out, for vibebox_file_transfer_* (counted as `chunks` is read, recorded at close()).
    sent: int = 0
    started: float = dataclasses.field(default_factory=time.perf_counter)
    recorded: bool = False

    def __post_init__(self):
        self.chunks = self._counted(self.chunks)

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.source.close()
        if not self.recorded:
            self.recorded = True
            _transferred("download", self.sent, self.started)


def _transferred(direction: str, size: int, started: float) -> None:
    metrics.FILE_TRANSFER_BYTES.labels(direction).inc(size)
    metrics.FILE_TRANSFER_SECONDS.labels(direction).observe(time.perf_counter() - started)


def resolve(path: str | None) -> str:
    """An absolute, normalised path; relative paths start at /workspace."""
    if path is None or path == "":
        return WORKSPACE
    if "\0" in path or "\n" in path:
        raise errors.InvalidPath("Paths may not contain NUL or newline characters.")
    return posixpath.normpath(posixpath.join(WORKSPACE, path))


def _archive_path(path: str | None) -> str:
    """resolve(), refusing tmpfs mounts where an archive transfer would silently miss (a stopped
    sandbox has none: what was there is gone)."""
    target = resolve(path)
    if any(target == mount or target.startswith(mount + "/") for mount in TMPFS_PATHS):
        raise errors.InvalidPath(
            f"{target} is on an in-memory filesystem, empty while the sandbox is stopped.",
            details={"path": target},
        )
    return target


# ---- uploads ----


def _user(sandbox: Sandbox) -> str:
    return sandbox.template.user or ""


@contextlib.contextmanager
def _disk_limit(sandbox: Sandbox, target: str):
    """A write refused for a full disk (507 disk_full) of a sandbox with a disk limit is its own
    limit: `sandbox.limit_exceeded` (disk) is recorded before the error goes on."""
    try:
        yield
    except errors.DiskFull:
        if sandbox.disk:
            with transaction.atomic():
                exceeded.publish(sandbox, "disk", path=target)
        raise


def file_upload(*, sandbox: Sandbox, path: str, fileobj, size: int, mode: int | None = None) -> FileInfo:
    """Writes one file (streamed), creating missing parent directories owned by the sandbox user;
    answers the file written (its path: the one asked for, resolved)."""
    require_running(sandbox)
    target = resolve(path)
    if target == "/":
        raise errors.InvalidPath("Cannot write to /.")
    started = time.perf_counter()
    with _disk_limit(sandbox, target), container_running(sandbox):
        info = driver_for(sandbox).file_write(
            sandbox.container_name,
            target,
            fileobj,
            size,
            user=_user(sandbox),
            mode=mode,
            timeout=settings.VIBEBOX_EXEC_MAX_TIMEOUT,
        )
    _transferred("upload", size, started)
    with transaction.atomic():  # the entry and its webhook deliveries together
        record("file.written", target=sandbox, changes={"path": target, "size": size})
        events.publish(
            sandbox=sandbox, type="file.uploaded", text=f"uploaded {target}", data={"path": target, "size": size}
        )
    return dataclasses.replace(info, path=target)


def archive_upload(*, sandbox: Sandbox, path: str, stream, limit: int) -> dict:
    """Extracts a tar (or tar.gz) at `path`. Unsafe entries reject the whole archive, before
    anything is written. Answers {path, entries} (the directory, how many entries were written)."""
    require_running(sandbox)
    target = resolve(path)
    started = time.perf_counter()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        size = copy_limited(stream, spool, limit)
        spool.seek(0)
        count = tarstream.check(spool)
        spool.seek(0)
        with _disk_limit(sandbox, target), container_running(sandbox):
            _untar_by_daemon(sandbox, target, spool, size, count)
    _transferred("upload", size, started)
    with transaction.atomic():  # the entry and its webhook deliveries together
        record("archive.extracted", target=sandbox, changes={"path": target, "entries": count, "size": size})
        events.publish(
            sandbox=sandbox, type="file.uploaded", text=f"extracted {count} entries at {target}", data={"path": target}
        )
    return {"path": target, "entries": count}


def _untar_by_daemon(sandbox: Sandbox, target: str, spool, size: int, count: int) -> None:
    """The checked archive (plain or gzipped as sent; another compression is rewritten plain)
    extracted by sandboxd."""
    compression = tarfile_compression(spool)
    spool.seek(0)
    driver = driver_for(sandbox)
    user, timeout = _user(sandbox), settings.VIBEBOX_EXEC_MAX_TIMEOUT

    def extract(fileobj, length: int, gzipped: bool):
        return driver.tar_in(
            sandbox.container_name,
            target,
            fileobj,
            length,
            user=user,
            max_entries=count + 1,
            timeout=timeout,
            gzip=gzipped,
        )

    if compression in ("", "gz"):
        extract(spool, size, compression == "gz")
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as plain:
        for chunk in tarstream.rewrite(spool, prefix="", uid=0, gid=0):
            plain.write(chunk)
        length = plain.tell()
        plain.seek(0)
        extract(plain, length, False)


def tarfile_compression(fileobj) -> str:
    """The compression of a tar by its magic number: "gz", "bz2", "xz", or "" (none)."""
    head = fileobj.read(6)
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return ""


def copy_limited(source, destination, limit: int) -> int:
    """Copies a stream, answering 413 past `limit` bytes."""
    total = 0
    while chunk := source.read(tarstream.CHUNK):
        total += len(chunk)
        if total > limit:
            raise errors.RequestTooLarge(details={"limit": limit})
        destination.write(chunk)
    return total


def file_download(*, sandbox: Sandbox, path: str, as_tar: bool = False, gzip: bool = False) -> Download:
    """A file as itself, or a directory (or anything with as_tar) as a tar stream."""
    require_not_paused(sandbox)
    try:
        return _download_by_daemon(sandbox, resolve(path), as_tar, gzip)
    except errors.SandboxNotRunning:
        pass
    # A stopped sandbox keeps its files: the engine's archive API.
    target = _archive_path(path)
    driver = driver_for(sandbox)
    for _ in range(10):  # follow symlinks to files, inside the container
        stat = driver.path_stat(sandbox.container_name, target)
        if stat is None:
            raise errors.FileNotFound(details={"path": target})
        if not stat.is_symlink or as_tar:
            break
        target = posixpath.normpath(posixpath.join(posixpath.dirname(target), stat.link_target))
    name = posixpath.basename(target) or "root"
    if stat.is_dir or as_tar:
        chunks, _ = driver.get_archive(sandbox.container_name, target)
        if gzip:
            return Download(_gzipped(chunks), "application/gzip", f"{name}.tar.gz", None, chunks)
        return Download(chunks, "application/x-tar", f"{name}.tar", None, chunks)
    chunks, _ = driver.get_archive(sandbox.container_name, target)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Download(_single_file(chunks), content_type, name, stat.size, chunks)


def _download_by_daemon(sandbox: Sandbox, target: str, as_tar: bool, gzip: bool) -> Download:
    """Through sandboxd; 409 sandbox_not_running from the driver when the container is not running."""
    driver, name, user = driver_for(sandbox), sandbox.container_name, _user(sandbox)
    timeout = settings.VIBEBOX_EXEC_MAX_TIMEOUT
    stat = driver.file_stat(name, target, user=user, follow=not as_tar)
    filename = posixpath.basename(target) or "root"
    if stat.is_dir or as_tar:
        stream = driver.tar_out(name, target, user=user, timeout=timeout)
        chunks = iter(stream)
        if gzip:
            return Download(_gzipped(chunks), "application/gzip", f"{filename}.tar.gz", None, stream)
        return Download(chunks, "application/x-tar", f"{filename}.tar", None, stream)
    info, stream = driver.file_read(name, target, user=user, timeout=timeout)
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return Download(iter(stream), content_type, filename, info.size, stream)


def _single_file(chunks: Iterator[bytes]) -> Iterator[bytes]:
    with tarfile.open(fileobj=tarstream.IteratorReader(chunks), mode="r|") as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None else None
        if handle is None:
            return
        while data := handle.read(tarstream.CHUNK):
            yield data


def _gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        if data := compressor.compress(chunk):
            yield data
    yield compressor.flush()


# ---- operations on paths ----


def file_list(*, sandbox: Sandbox, path: str, recursive: bool = False) -> list[FileInfo]:
    """The directory's entries (everything below it with `recursive`), as sandboxd lists them: at
    most VIBEBOX_FILE_LIST_LIMIT + 1 of them."""
    target = resolve(path)
    limit = settings.VIBEBOX_FILE_LIST_LIMIT + 1
    require_running(sandbox)
    with container_running(sandbox):
        entries, _ = driver_for(sandbox).file_list(
            sandbox.container_name, target, user=_user(sandbox), recursive=recursive, limit=limit
        )
    return entries


def file_delete(*, sandbox: Sandbox, path: str, recursive: bool = False) -> None:
    target = resolve(path)
    if target in ("/", WORKSPACE):
        raise errors.InvalidPath(f"Refusing to delete {target}.")
    require_running(sandbox)
    with container_running(sandbox):
        driver_for(sandbox).file_delete(sandbox.container_name, target, user=_user(sandbox), recursive=recursive)
    record("file.deleted", target=sandbox, changes={"path": target, "recursive": recursive})


def file_mkdir(*, sandbox: Sandbox, path: str) -> str:
    """Creates the directory and its parents; answers its path, resolved."""
    target = resolve(path)
    require_running(sandbox)
    with container_running(sandbox):
        driver_for(sandbox).file_mkdir(sandbox.container_name, target, user=_user(sandbox))
    record("directory.created", target=sandbox, changes={"path": target})
    return target


def file_move(*, sandbox: Sandbox, source: str, destination: str, overwrite: bool = False) -> str:
    """Renames source to destination; answers the new path, resolved."""
    source, destination = resolve(source), resolve(destination)
    require_running(sandbox)
    with container_running(sandbox):
        driver_for(sandbox).file_move(
            sandbox.container_name, source, destination, user=_user(sandbox), overwrite=overwrite
        )
    record("file.moved", target=sandbox, changes={"from": source, "to": destination, "overwrite": overwrite})
    return destination
