"""Files in a sandbox: upload, download, list, delete, mkdir, move.

Everything happens inside the container's own filesystem, as the sandbox's user. A sandbox whose
PID 1 is sandboxd has it do the work (runtime driver's file_* calls): the kernel checks every path
operation as the user, tmpfs mounts such as /tmp work, no shell is needed, a written file replaces
the old one only once whole, and a tar's entries stay below their directory. Without a running
sandboxd (a sandbox made without it; a download from a stopped sandbox), uploads and downloads go
through the engine's archive API (which resolves paths and symlinks within the container, and
cannot see tmpfs mounts) and the rest runs as shell commands in the sandbox as its user. Either
way `..`, symlinks to `/` and the like can only ever reach the sandbox's own files, never the
host's.
"""

import logging
import mimetypes
import posixpath
import re
import secrets
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from vibebox import exceptions as errors

from . import events, tarstream
from .execution import require_not_paused, require_running, run_internal
from .lifecycle import container_running
from .models import Sandbox
from .runtime import FileInfo, PathStat, get_driver

logger = logging.getLogger(__name__)

WORKSPACE = "/workspace"
SPOOL_IN_MEMORY = 8 * 1024 * 1024
# In-memory mounts the engine's archive API cannot see (it reads and writes underneath them).
TMPFS_PATHS = ("/tmp", "/dev/shm")  # noqa: S108 (paths inside the sandbox)


@dataclass
class Download:
    chunks: Iterator[bytes]
    content_type: str
    filename: str
    length: int | None
    source: Iterator[bytes]  # the engine's stream: close it if the download is abandoned

    def close(self) -> None:
        self.source.close()


def resolve(path: str | None) -> str:
    """An absolute, normalised path; relative paths start at /workspace."""
    if path is None or path == "":
        return WORKSPACE
    if "\0" in path or "\n" in path:
        raise errors.InvalidPath("Paths may not contain NUL or newline characters.")
    return posixpath.normpath(posixpath.join(WORKSPACE, path))


def _archive_path(path: str | None) -> str:
    """resolve(), refusing tmpfs mounts where an archive transfer would silently miss."""
    target = resolve(path)
    if any(target == mount or target.startswith(mount + "/") for mount in TMPFS_PATHS):
        raise errors.InvalidPath(
            f"{target} is on an in-memory filesystem that file transfers cannot reach; "
            "use /workspace, or write it with a command (exec).",
            details={"path": target},
        )
    return target


# ---- uploads ----
#
# The engine writes archives as root, resolving links inside the container as it goes, so it never
# writes where a user of the sandbox points it: only into a fresh, randomly named directory in
# STAGING (root's, writable by all but not listable, sticky), which nothing in the sandbox can
# know or redirect while the engine writes. The sandbox user then moves what was written into
# place with its own permissions, so an upload can change exactly what that user could (a
# CHECK_SCRIPT first gives a clear answer in the usual cases). The engine also never chowns
# anything but the staged files to the sandbox user.

STAGING = "/.vibebox-uploads"
CHECK_SCRIPT = r"""t=$1 kind=$2
if [ -e "$t" ]; then
  if [ "$kind" = file ] && [ -d "$t" ]; then echo "$t is a directory" >&2; exit 21; fi
  if [ "$kind" = dir ] && [ ! -d "$t" ]; then echo "$t exists and is not a directory" >&2; exit 21; fi
  [ -w "$t" ] || { echo "$t" >&2; exit 13; }
  [ "$kind" = file ] || exit 0
fi
d=$(dirname -- "$t")
while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done
[ -d "$d" ] || { echo "$d exists and is not a directory" >&2; exit 21; }
[ -w "$d" ] && [ -x "$d" ] || { echo "$d" >&2; exit 13; }
"""
# The staged file goes to a temporary name beside the target, then is renamed over it: where the
# two are on different filesystems (a workspace volume) mv copies, and a copy that fails half-way
# (a full disk, a killed mv) must leave the target as it was, not truncated.
PLACE_FILE = r"""d=$(dirname -- "$2") && mkdir -p -- "$d" && t=$(mktemp -- "$d/.vibebox-upload.XXXXXXXX") || exit 1
mv -fT -- "$1" "$t" && mv -fT -- "$t" "$2" && exit 0
s=$?; rm -f -- "$t"; exit "$s"
"""
# A tree is first copied beside its target (a copy that fails half-way changes nothing), then hard
# linked into place (same filesystem: each file replaced whole), after a check that every file
# it replaces is the sandbox user's to write (linking over would only need the directory's).
PLACE_TREE = r"""mkdir -p -- "$2" && t=$(mktemp -d -- "$2/.vibebox-upload.XXXXXXXX") || exit 1
(
  cd -- "$1" && find . -mindepth 1 ! -type d | while IFS= read -r f; do
    if [ -e "$2/$f" ] && [ ! -w "$2/$f" ]; then echo "$2/${f#./}" >&2; exit 13; fi
  done &&
  cp -dRp -- "$1/." "$t/" && cp -dRpl --remove-destination -- "$t/." "$2/"
); s=$?
chmod -R u+rwX -- "$t" 2>/dev/null; rm -rf -- "$t"; exit "$s"
"""
DISCARD = 'chmod -R u+rwX -- "$1" 2>/dev/null; rm -rf -- "$1"'
DISCARD_ALL = 'for d; do chmod -R u+rwX -- "$d" 2>/dev/null; rm -rf -- "$d"; done'
LEFTOVERS_MAX = 100
LEFTOVERS_TTL = 30 * 24 * 3600


def _disk_full(message: str) -> bool:
    """A command's error for a full disk: ENOSPC, or EDQUOT where a quota limits it."""
    return "No space left on device" in message or "Disk quota exceeded" in message


def _denied(message: str) -> bool:
    """A command's error for a place the sandbox user may not change: EACCES, EPERM, or EROFS (a
    read-only mount such as sandboxd's /opt/vibebox)."""
    return any(text in message for text in ("Permission denied", "Operation not permitted", "Read-only file system"))


def _as_user(sandbox: Sandbox, script: str, *args: str, timeout: float = 60):
    """A file operation of an upload, as the sandbox user; maps its failures to API errors."""
    result = run_internal(sandbox, ("/bin/sh", "-c", script, "sh", *args), timeout=timeout, output_limit=64 * 1024)
    if result.timed_out:
        raise errors.FileConflict("The file operation took too long.")
    if result.exit_code == 0:
        return
    lines = result.stderr.decode(errors="replace").strip().splitlines()
    text = lines[-1][:500] if lines else "failed"
    if _disk_full(text):
        raise errors.DiskFull(details={"path": args[-1]})
    if result.exit_code == 13 or _denied(text):
        raise errors.PathNotWritable(
            "The sandbox user cannot write there.", details={"path": text if result.exit_code == 13 else args[-1]}
        )
    raise errors.FileConflict(text, details={"path": args[-1]})


def _staged(entries) -> Iterator[bytes]:
    """The tar that makes STAGING (if need be), then `entries` (tar chunks: the upload's own
    directory in it and what goes below)."""
    top = tarstream.directory_entry(STAGING.lstrip("/"), 0, 0, 0o1733)
    yield top.tobuf(tarfile.PAX_FORMAT)
    yield from entries


def _upload_dir() -> str:
    return f"{STAGING}/{secrets.token_hex(16)}"


def _user(sandbox: Sandbox) -> str:
    return sandbox.template.user or ""


def file_upload(*, sandbox: Sandbox, path: str, fileobj, size: int, mode: int | None = None) -> PathStat | FileInfo:
    """Writes one file (streamed), creating missing parent directories owned by the sandbox user."""
    require_running(sandbox)
    target = resolve(path)
    if target == "/":
        raise errors.InvalidPath("Cannot write to /.")
    with container_running(sandbox):
        info = get_driver().file_write(
            sandbox.container_name,
            target,
            fileobj,
            size,
            user=_user(sandbox),
            mode=mode,
            timeout=settings.VIBEBOX_EXEC_MAX_TIMEOUT,
        )
        if info is None:  # no sandboxd to take it: the engine's archive API
            return _file_upload(sandbox, _archive_path(path), fileobj, size, mode)
    _published_upload(sandbox, target, size)
    return info


def _published_upload(sandbox: Sandbox, target: str, size: int) -> None:
    events.publish(
        sandbox=sandbox, type="file.uploaded", text=f"uploaded {target}", data={"path": target, "size": size}
    )


def _file_upload(sandbox: Sandbox, target: str, fileobj, size: int, mode: int | None) -> PathStat:
    _discard_leftovers(sandbox)
    _as_user(sandbox, CHECK_SCRIPT, target, "file")
    template = sandbox.template
    staging = _upload_dir()
    entries = [
        (tarstream.directory_entry(staging.lstrip("/"), template.uid, template.gid, 0o700), None),
        (
            tarstream.file_entry(
                f"{staging.lstrip('/')}/f", size, template.uid, template.gid, 0o644 if mode is None else mode
            ),
            fileobj,
        ),
    ]
    try:
        get_driver().put_archive(sandbox.container_name, "/", _staged(tarstream.build(entries)))
        _as_user(sandbox, PLACE_FILE, f"{staging}/f", target, timeout=settings.VIBEBOX_EXEC_MAX_TIMEOUT)
    finally:
        _discard(sandbox, staging)
    _published_upload(sandbox, target, size)
    return get_driver().path_stat(sandbox.container_name, target)


def _discard(sandbox: Sandbox, staging: str) -> None:
    try:
        _as_user(sandbox, DISCARD, staging)
    except errors.ApplicationError as exc:
        # The sandbox cannot list STAGING to free that space itself: the next upload removes it.
        logger.warning("could not remove the upload staging directory of %s: %s", sandbox.id, exc.message)
        _leftovers_change(sandbox, add=staging)


def _leftovers_key(sandbox: Sandbox) -> str:
    return f"upload-leftovers:{sandbox.id}"


def _leftovers_change(sandbox: Sandbox, *, add: str | None = None, remove: list[str] = ()) -> list[str]:
    """The staging directories of this sandbox an upload could not remove (kept in the cache,
    shared by every process); best effort: without Redis they stay on the sandbox's disk."""
    try:
        names = [n for n in cache.get(_leftovers_key(sandbox)) or [] if n not in remove]
        if add:
            names = [*names, add][-LEFTOVERS_MAX:]
        if names and (add or remove):
            cache.set(_leftovers_key(sandbox), names, LEFTOVERS_TTL)
        elif remove:
            cache.delete(_leftovers_key(sandbox))
        return names
    except Exception as exc:  # whatever the cache raises, the upload goes on
        logger.warning("upload leftovers of %s: the cache failed: %s", sandbox.id, exc)
        return []


def _discard_leftovers(sandbox: Sandbox) -> None:
    names = _leftovers_change(sandbox)
    if not names:
        return
    try:
        _as_user(sandbox, DISCARD_ALL, *names)
    except errors.ApplicationError as exc:
        logger.warning("could not remove earlier upload staging directories of %s: %s", sandbox.id, exc.message)
        return
    _leftovers_change(sandbox, remove=names)


def archive_upload(*, sandbox: Sandbox, path: str, stream, limit: int) -> dict:
    """Extracts a tar (or tar.gz) at `path`. Unsafe entries reject the whole archive, before
    anything is written."""
    require_running(sandbox)
    target = resolve(path)
    template = sandbox.template
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        size = copy_limited(stream, spool, limit)
        spool.seek(0)
        count = tarstream.check(spool)
        spool.seek(0)
        with container_running(sandbox):
            if _untar_by_daemon(sandbox, target, spool, size, count):
                events.publish(
                    sandbox=sandbox,
                    type="file.uploaded",
                    text=f"extracted {count} entries at {target}",
                    data={"path": target},
                )
                return {"path": target, "entries": count}
            spool.seek(0)
            target = _archive_path(path)
            _discard_leftovers(sandbox)
            _as_user(sandbox, CHECK_SCRIPT, target, "dir")
            staging = _upload_dir()

            def chunks():
                yield tarstream.directory_entry(staging.lstrip("/"), template.uid, template.gid, 0o700).tobuf(
                    tarfile.PAX_FORMAT
                )
                yield from tarstream.rewrite(spool, prefix=staging.lstrip("/"), uid=template.uid, gid=template.gid)

            try:
                get_driver().put_archive(sandbox.container_name, "/", _staged(chunks()))
                _as_user(sandbox, PLACE_TREE, staging, target, timeout=settings.VIBEBOX_EXEC_MAX_TIMEOUT)
            finally:
                _discard(sandbox, staging)
    events.publish(
        sandbox=sandbox, type="file.uploaded", text=f"extracted {count} entries at {target}", data={"path": target}
    )
    return {"path": target, "entries": count}


def _untar_by_daemon(sandbox: Sandbox, target: str, spool, size: int, count: int) -> bool:
    """The checked archive (plain or gzipped as sent; another compression is rewritten plain)
    extracted by sandboxd; False when there is none to take it."""
    compression = tarfile_compression(spool)
    spool.seek(0)
    driver = get_driver()
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
        return extract(spool, size, compression == "gz") is not None
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as plain:
        for chunk in tarstream.rewrite(spool, prefix="", uid=0, gid=0):
            plain.write(chunk)
        length = plain.tell()
        plain.seek(0)
        return extract(plain, length, False) is not None


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
    download = _download_by_daemon(sandbox, resolve(path), as_tar, gzip)
    if download is not None:
        return download
    # No running sandboxd (a stopped sandbox keeps its files): the engine's archive API.
    target = _archive_path(path)
    driver = get_driver()
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


def _download_by_daemon(sandbox: Sandbox, target: str, as_tar: bool, gzip: bool) -> Download | None:
    driver, name, user = get_driver(), sandbox.container_name, _user(sandbox)
    timeout = settings.VIBEBOX_EXEC_MAX_TIMEOUT
    stat = driver.file_stat(name, target, user=user, follow=not as_tar)
    if stat is None:
        return None
    filename = posixpath.basename(target) or "root"
    if stat.is_dir or as_tar:
        stream = driver.tar_out(name, target, user=user, timeout=timeout)
        if stream is None:
            return None
        chunks = iter(stream)
        if gzip:
            return Download(_gzipped(chunks), "application/gzip", f"{filename}.tar.gz", None, stream)
        return Download(chunks, "application/x-tar", f"{filename}.tar", None, stream)
    opened = driver.file_read(name, target, user=user, timeout=timeout)
    if opened is None:
        return None
    info, stream = opened
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


# ---- operations run as commands in the sandbox ----

MISSING = '[ -e "$1" ] || [ -L "$1" ] || { echo "$1: No such file or directory" >&2; exit 2; }'
LIST_SCRIPT = MISSING + '; find "$1" -mindepth 0 $2 -printf \'%p\\0%s\\0%y\\0%m\\0%T@\\0%l\\0\' | head -z -n "$3"'
DELETE_SCRIPT = MISSING + '; rm $2 -- "$1"'
MOVE_SCRIPT = (
    MISSING
    + """
if [ "$3" != 1 ] && { [ -e "$2" ] || [ -L "$2" ]; }; then echo "$2 already exists" >&2; exit 17; fi
mkdir -p -- "$(dirname -- "$2")" && mv -T -- "$1" "$2\""""
)


def _sh(sandbox: Sandbox, script: str, *args: str, limit: int = 1024 * 1024) -> bytes:
    require_running(sandbox)
    result = run_internal(sandbox, ("/bin/sh", "-c", script, "sh", *args), output_limit=limit)
    if result.timed_out:
        raise errors.FileConflict("The file operation took too long.")
    if result.exit_code != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        text = message[-1] if message else "failed"
        if _disk_full(text):
            raise errors.DiskFull(details={"path": args[0]})
        if "No such file" in text:
            raise errors.FileNotFound(text)
        if _denied(text):
            raise errors.FilePermissionDenied(text)
        raise errors.FileConflict(text)
    return result.stdout


_TYPES = {"d": "directory", "f": "file", "l": "symlink"}
_MODE = re.compile(r"^[0-7]{1,4}$")
_MTIME = re.compile(r"^-?[0-9]{1,12}(\.[0-9]{1,10})?$")


def _entry(info: FileInfo) -> dict:
    return {
        "path": info.path,
        "name": info.name or "/",
        "size": info.size,
        "isDir": info.is_dir,
        "type": info.type,
        "mode": f"{info.mode:04o}",
        "modifiedAt": info.modified_at,
        "symlinkTarget": info.link_target or None,
    }


def file_list(*, sandbox: Sandbox, path: str, recursive: bool = False) -> list[dict]:
    target = resolve(path)
    limit = settings.VIBEBOX_FILE_LIST_LIMIT + 1
    require_running(sandbox)
    with container_running(sandbox):
        listed = get_driver().file_list(
            sandbox.container_name, target, user=_user(sandbox), recursive=recursive, limit=limit
        )
    if listed is not None:
        return [_entry(info) for info in listed[0]]
    depth = "" if recursive else "-maxdepth 1"
    raw = _sh(sandbox, LIST_SCRIPT, target, depth, str(limit * 6), limit=64 * 1024 * 1024)
    entries = parse_listing(raw, target=target)
    if entries and entries[0]["isDir"] and entries[0]["path"] == target:
        entries = entries[1:]  # a directory: its contents, not itself
    return entries


def parse_listing(raw: bytes, *, target: str) -> list[dict]:
    """LIST_SCRIPT's output: six NUL-terminated fields per entry. What `find` printed comes from the
    sandbox: numbers are checked, not trusted (a 500 otherwise)."""
    fields = raw.split(b"\0")
    entries = []
    for i in range(0, len(fields) - 5, 6):
        entry_path, size, kind, mode, mtime, link = (f.decode(errors="replace") for f in fields[i : i + 6])
        if not (size.isascii() and size.isdigit() and _MODE.match(mode) and _MTIME.match(mtime)):
            raise errors.RuntimeFailure("The sandbox answered a malformed file listing.", details={"path": target})
        entries.append(
            {
                "path": entry_path,
                "name": posixpath.basename(entry_path) or "/",
                "size": int(size),
                "isDir": kind == "d",
                "type": _TYPES.get(kind, "other"),
                "mode": mode.rjust(4, "0"),
                "modifiedAt": float(mtime),
                "symlinkTarget": link or None,
            }
        )
    return entries


def file_delete(*, sandbox: Sandbox, path: str, recursive: bool = False) -> None:
    target = resolve(path)
    if target in ("/", WORKSPACE):
        raise errors.InvalidPath(f"Refusing to delete {target}.")
    require_running(sandbox)
    with container_running(sandbox):
        if not get_driver().file_delete(sandbox.container_name, target, user=_user(sandbox), recursive=recursive):
            _sh(sandbox, DELETE_SCRIPT, target, "-rf" if recursive else "-f")


def file_mkdir(*, sandbox: Sandbox, path: str) -> None:
    target = resolve(path)
    require_running(sandbox)
    with container_running(sandbox):
        if not get_driver().file_mkdir(sandbox.container_name, target, user=_user(sandbox)):
            _sh(sandbox, 'mkdir -p -- "$1"', target)


def file_move(*, sandbox: Sandbox, source: str, destination: str, overwrite: bool = False) -> None:
    source, destination = resolve(source), resolve(destination)
    require_running(sandbox)
    with container_running(sandbox):
        done = get_driver().file_move(
            sandbox.container_name, source, destination, user=_user(sandbox), overwrite=overwrite
        )
        if not done:
            _sh(sandbox, MOVE_SCRIPT, source, destination, "1" if overwrite else "0")
