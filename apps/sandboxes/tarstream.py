"""Tar archives as streams: read, checked and rewritten without holding files in memory."""

import io
import posixpath
import tarfile
import time
from collections.abc import Iterable, Iterator

from vibebox import exceptions as errors

CHUNK = 1024 * 1024
BLOCK = tarfile.BLOCKSIZE


class IteratorReader(io.RawIOBase):
    """A read-only file object over an iterator of byte chunks (for tarfile's stream mode).

    The chunks come from a sandbox's filesystem: a chunk is consumed through a
    view (tarfile reads headers 512 bytes at a time; slicing the rest off each time would copy a
    1 MiB chunk two thousand times), and nothing beyond the current chunk is held."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def directory_entry(name: str, uid: int, gid: int, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = int(time.time())
    return info


def _copy(fileobj, size: int) -> Iterator[bytes]:
    remaining = size
    while remaining > 0:
        chunk = fileobj.read(min(CHUNK, remaining))
        if not chunk:
            raise errors.ValidationFailed("The upload ended early.")
        remaining -= len(chunk)
        yield chunk
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


def _unsafe(member: tarfile.TarInfo) -> str | None:
    name = member.name
    if name.startswith("/") or ".." in posixpath.normpath(name).split("/"):
        return "entries may not be absolute or contain '..'"
    if member.ischr() or member.isblk():
        return "device entries are not allowed"
    if member.islnk() and (member.linkname.startswith("/") or ".." in member.linkname.split("/")):
        return "hard links may not point outside the archive"
    return None


def _through_links(member: tarfile.TarInfo, symlinks: set[str], files: set[str]) -> str | None:
    """The engine extracts as root and follows links the archive itself made: no entry may go
    through a symlink of the archive, and a hard link may only be to an earlier file of it."""
    name = posixpath.normpath(member.name)
    parts = name.split("/")
    if any("/".join(parts[:i]) in symlinks for i in range(1, len(parts))):
        return "entries may not be below a symlink of the archive"
    if member.islnk() and posixpath.normpath(member.linkname) not in files:
        return "a hard link must point to an earlier file of the archive"
    return None


def check(fileobj) -> int:
    """Reads a whole (possibly compressed) tar; raises InvalidArchive on unsafe entries. Returns the count."""
    count = 0
    symlinks: set[str] = set()
    files: set[str] = set()
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
            for member in tar:
                problem = _unsafe(member) or _through_links(member, symlinks, files)
                if problem:
                    raise errors.InvalidArchive(f"{problem}: {member.name!r}", details={"entry": member.name})
                name = posixpath.normpath(member.name)
                (symlinks if member.issym() else files if member.isfile() else set()).add(name)
                if not member.issym():
                    symlinks.discard(name)
                if not member.isfile():
                    files.discard(name)
                count += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise errors.InvalidArchive(f"Not a readable tar archive: {exc}") from None
    return count


def rewrite(fileobj, *, prefix: str, uid: int, gid: int) -> Iterator[bytes]:
    """The checked archive again, under `prefix`, owned by uid:gid (modes kept): a bzip2 or xz
    archive rewritten plain for sandboxd. Directories the archive only implies get an entry of
    their own."""
    made: set[str] = set()
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            parts = posixpath.normpath(member.name).split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent not in made:
                    made.add(parent)
                    name = posixpath.join(prefix, parent) if prefix else parent
                    yield directory_entry(name, uid, gid).tobuf(tarfile.PAX_FORMAT)
            if member.isdir():
                made.add("/".join(parts))
            member.uid, member.gid = uid, gid
            member.uname = member.gname = ""
            # A long or non-ASCII name came in a PAX record, which tobuf would write over the new name.
            member.pax_headers = {k: v for k, v in member.pax_headers.items() if k not in ("path", "linkpath")}
            member.name = posixpath.join(prefix, member.name) if prefix else member.name
            if member.islnk():
                member.linkname = posixpath.join(prefix, member.linkname) if prefix else member.linkname
            yield member.tobuf(tarfile.PAX_FORMAT)
            if member.isfile():
                yield from _copy(tar.extractfile(member), member.size)
    yield b"\0" * (BLOCK * 2)
