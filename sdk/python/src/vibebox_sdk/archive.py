"""The local side of file transfer: choosing what to send, packing it, unpacking what comes back.

Uploads of directories and glob patterns travel as one tar archive (the server checks and extracts
it); downloads of directories come back as a tar, unpacked here with tarfile's `data` filter (no
absolute paths, no `..`, no devices, no links out of the destination).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
CHUNK = 256 * 1024
MAGIC = set("*?[")
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass
class Selection:
    """What an upload sends: `files` (paths relative to `base`), packed at `remote` in the sandbox."""

    base: Path
    files: list[str]
    remote: str
    single_file: bool = False


def is_glob(pattern: str) -> bool:
    return any(ch in MAGIC for ch in pattern)


def excluded(relative: str, patterns: list[str]) -> bool:
    """True when a pattern matches the path or any of its components (`node_modules`, `*.pyc`, `dist/*`)."""
    parts = relative.split("/")
    return any(
        fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(part, pattern) for part in parts)
        for pattern in patterns
    )


def _walk(base: Path, exclude: list[str]) -> list[str]:
    found = []
    for root, dirs, files in os.walk(base):
        rel_root = os.path.relpath(root, base)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/")
        dirs[:] = sorted(d for d in dirs if not excluded(posixpath.join(rel_root, d), exclude))
        if rel_root and not files and not dirs:
            found.append(rel_root)  # an empty directory travels too
        for name in sorted(files):
            relative = posixpath.join(rel_root, name)
            if not excluded(relative, exclude):
                found.append(relative)
    return found


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    plain = []
    for part in parts:
        if is_glob(part):
            break
        plain.append(part)
    return Path(*plain) if plain else Path(".")


def select(local: str | os.PathLike[str], remote: str | None, exclude: list[str] | None = None) -> Selection:
    """Decides what `sandbox.upload(local, remote)` sends and where it lands.

    - a file: to `remote` (a path ending in `/` is a directory to put it in), default `/workspace/<name>`;
    - a directory: its contents to `remote`, default `/workspace/<directory name>`;
    - a glob pattern (`./**/*.py`): the matching files, kept at their paths relative to the pattern's
      fixed part, under `remote` (default `/workspace`).
    """
    exclude = list(exclude or [])
    text = os.fspath(local)
    if is_glob(text):
        base = _glob_base(text)
        matches = sorted(glob.glob(text, recursive=True))
        files = []
        for match in matches:
            if os.path.isfile(match):
                relative = os.path.relpath(match, base).replace(os.sep, "/")
                if not excluded(relative, exclude):
                    files.append(relative)
        if not files:
            raise FileNotFoundError(f"no files match {text!r}")
        return Selection(base=base, files=files, remote=remote or "/workspace")
    path = Path(text)
    if path.is_dir():
        name = path.resolve().name
        target = remote or f"/workspace/{name}"
        if target.endswith("/"):
            target = target + name
        return Selection(base=path, files=_walk(path, exclude), remote=target)
    if path.is_file():
        target = remote or f"/workspace/{path.name}"
        if target.endswith("/"):
            target = target + path.name
        return Selection(base=path.parent, files=[path.name], remote=target, single_file=True)
    raise FileNotFoundError(f"no such file or directory: {text!r}")


def _with_directories(files: list[str]) -> list[str]:
    """The files preceded by every directory above them, so the archive carries the directories'
    own entries (the server gives them to the sandbox user; without entries the engine would
    make them as root)."""
    entries: list[str] = []
    seen: set[str] = set()
    for relative in files:
        parts = relative.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory not in seen:
                seen.add(directory)
                entries.append(directory)
        entries.append(relative)
    return entries


def pack(selection: Selection) -> tuple[IO[bytes], int]:
    """A tar of the selection in a temporary file (in memory when small); returns (file, size)."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned to the caller
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in _with_directories(selection.files):
            source = selection.base / relative
            info = tar.gettarinfo(str(source), arcname=relative)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with source.open("rb") as handle:
                    tar.addfile(info, handle)
            elif info.issym() or info.isdir():
                tar.addfile(info)
    size = spool.tell()
    spool.seek(0)
    return spool, size


def chunks(handle: BinaryIO | IO[bytes], total: int, progress: Progress | None, start: int = 0) -> Iterator[bytes]:
    """Reads a file in chunks from its start, reporting progress."""
    handle.seek(start)
    done = 0
    if progress:
        progress(0, total)
    while True:
        chunk = handle.read(CHUNK)
        if not chunk:
            break
        done += len(chunk)
        if progress:
            progress(done, total)
        yield chunk


def extract(archive: IO[bytes], destination: Path, *, strip_top: bool) -> list[Path]:
    """Unpacks a downloaded directory into `destination`; `strip_top` drops the archive's top entry
    (the directory's own name), so `download("dist/", "./out/")` fills `./out/` with dist's contents."""
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(fileobj=archive, mode="r:*") as tar:
        members = []
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if strip_top:
                _, _, name = name.partition("/")
                if not name:
                    continue
            member.name = name
            members.append(member)
        tar.extractall(destination, members=members, filter="data")
        written = [destination / m.name for m in members if m.isfile()]
    return written
