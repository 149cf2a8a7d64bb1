"""Files: push (upload), pull (download) and sync (upload, then follow local changes with --watch)."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import errors
from ..archive import excluded
from . import output
from .common import JsonFlag, UsageError, get_sandbox, split_target

if TYPE_CHECKING:  # annotations only: `vibebox --help` imports neither the client nor watchfiles
    from watchfiles import Change

    from ..sandbox import Sandbox

ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude", "-x", help="Leave out matching paths: node_modules, '*.pyc' (repeatable).", metavar="GLOB"
    ),
]
TargetArg = Annotated[
    str,
    typer.Argument(
        help="<sandbox>[:<path>]; the default path is /workspace/<local name>, relative paths start at /workspace.",
        show_default=False,
    ),
]
# Editors' swap and backup files are not worth sending while watching.
EDITOR_FILES = ["*.swp", "*.swx", "*~", ".#*", "4913"]


def upload(box: Sandbox, local: str, remote: str | None, exclude: list[str] | None) -> dict[str, Any]:
    with output.transfer(f"uploading {local}") as progress:
        return box.files.upload(local, remote, exclude=exclude, progress=progress)


def describe_upload(local: str, box: Sandbox, answer: dict[str, Any]) -> str:
    if "entries" in answer:
        return f"uploaded {local} -> {box.name}:{answer.get('path')} ({answer['entries']} entries)"
    return f"uploaded {local} -> {box.name}:{answer.get('path')} ({answer.get('size', 0)} bytes)"


def push(
    local: Annotated[str, typer.Argument(help="A local file, directory or glob pattern.", show_default=False)],
    target: TargetArg,
    exclude: ExcludeOption = None,
    json: JsonFlag = False,
) -> None:
    """Upload a file or directory to a sandbox: `vibebox push ./src my-app`, `vibebox push a.json my-app:/app/`."""
    name, remote = split_target(target)
    box = get_sandbox(name)
    answer = upload(box, local, remote, exclude)
    if json:
        output.print_json(answer)
    else:
        output.line(describe_upload(local, box, answer))


def download_here(box: Sandbox, remote: str) -> Path:
    """Downloads `remote` into the current directory under its own name (a directory is merged into
    an existing one of that name)."""
    base = posixpath.basename(posixpath.normpath(remote)) or box.name
    if base in (".", ".."):
        base = box.name
    staging = Path(tempfile.mkdtemp(prefix=".vibebox-pull-", dir="."))
    try:
        with output.transfer(f"downloading {remote}") as progress:
            where = box.files.download(remote, staging, progress=progress)
        target = Path(base)
        if where == staging:  # a directory: its contents were unpacked into the staging directory
            shutil.copytree(staging, target, dirs_exist_ok=True, symlinks=True)
            return target
        if target.is_dir():
            target = target / base
        os.replace(where, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pull(
    source: Annotated[str, typer.Argument(help="<sandbox>:<path>, e.g. my-app:dist.", show_default=False)],
    local: Annotated[
        str | None, typer.Argument(help="Where to put it (default: the current directory).", show_default=False)
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Download a file or directory from a sandbox: `vibebox pull my-app:dist ./local-dist`."""
    name, remote = split_target(source)
    if remote is None:
        raise UsageError("pull takes <sandbox>:<path>, e.g. my-app:output.txt")
    box = get_sandbox(name)
    if local is None:
        where = download_here(box, remote)
    else:
        with output.transfer(f"downloading {remote}") as progress:
            where = box.files.download(remote, local, progress=progress)
    if json:
        output.print_json({"sandbox": box.id, "remote": remote, "local": str(where)})
    else:
        output.line(f"downloaded {box.name}:{remote} -> {where}")


class Syncer:
    """Mirrors local changes under `root` into the sandbox under `remote_base` (or, for a single
    file `only`, that file to `remote_base`)."""

    def __init__(
        self, box: Sandbox, root: Path, remote_base: str, exclude: list[str], json: bool, only: Path | None = None
    ) -> None:
        self.box = box
        self.root = root
        self.remote_base = remote_base
        self.exclude = exclude
        self.json = json
        self.only = only

    def report(self, action: str, remote: str, local: str) -> None:
        if self.json:
            output.print_json_line({"action": action, "path": remote, "local": local})
        else:
            output.note(f"{'uploaded' if action == 'upload' else 'deleted '} {local} -> {self.box.name}:{remote}")

    def target(self, path: str) -> tuple[str, str] | None:
        """(relative path, sandbox path) for a changed local path; None for paths not synced."""
        if self.only is not None:
            return (self.only.name, self.remote_base) if Path(path) == self.only else None
        relative = os.path.relpath(path, self.root).replace(os.sep, "/")
        if relative == "." or relative.startswith("../") or excluded(relative, self.exclude + EDITOR_FILES):
            return None
        return relative, posixpath.join(self.remote_base, relative)

    def apply(self, changes: set[tuple[Change, str]]) -> None:
        """Brings each changed path up to date from what is on disk now (so a file saved by
        rename-over counts once, as an upload)."""
        from watchfiles import Change

        kinds: dict[str, set[Change]] = {}
        for change, path in changes:
            kinds.setdefault(path, set()).add(change)
        for path in sorted(kinds):
            target = self.target(path)
            if target is None:
                continue
            relative, remote = target
            try:
                self.sync_one(path, relative, remote, added=Change.added in kinds[path])
            except errors.SandboxNotFoundError:
                raise
            except errors.VibeBoxError as error:
                output.err.print(f"error: {relative}: {error.message} ({error.code})", markup=False)

    def sync_one(self, path: str, relative: str, remote: str, *, added: bool) -> None:
        if os.path.isfile(path):
            self.box.files.upload(path, remote)
            self.report("upload", remote, relative)
        elif os.path.isdir(path):
            if added:  # a new directory (or one moved in): send it whole
                self.box.files.upload(path, remote, exclude=self.exclude)
                self.report("upload", remote, relative + "/")
        elif not os.path.lexists(path):
            with contextlib.suppress(errors.SandboxFileNotFoundError):
                self.box.files.delete(remote, recursive=True)
                self.report("delete", remote, relative)

    def watch(self) -> None:
        """Follows changes (inotify on Linux) until Ctrl-C or SIGTERM."""
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            from watchfiles import watch

            for changes in watch(self.root, watch_filter=None, debounce=400, stop_event=stop, raise_interrupt=False):
                self.apply(changes)
        finally:
            signal.signal(signal.SIGTERM, previous)


def sync(
    local: Annotated[str, typer.Argument(help="A local directory (or file).", show_default=False)],
    target: TargetArg,
    watch_: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep uploading changes (and deleting removed files) until Ctrl-C.")
    ] = False,
    exclude: ExcludeOption = None,
    json: Annotated[bool, typer.Option("--json", help="Print each upload and deletion as a JSON line.")] = False,
) -> None:
    """Upload a directory to a sandbox, then with --watch mirror every change (inotify, not polling)."""
    path = Path(local)
    if not path.exists():
        raise UsageError(f"no such file or directory: {local}")
    name, remote = split_target(target)
    box = get_sandbox(name)
    exclude = list(exclude or [])
    answer = upload(box, local, remote, exclude)
    if json:
        output.print_json_line({"action": "upload", **answer, "local": local})
    else:
        output.line(describe_upload(local, box, answer))
    if not watch_:
        return
    remote_base = str(answer["path"])
    if path.is_dir():
        syncer = Syncer(box, path.resolve(), remote_base, exclude, json)
    else:
        syncer = Syncer(box, path.resolve().parent, remote_base, exclude, json, only=path.resolve())
    output.note(f"watching {local} for changes (Ctrl-C to stop)")
    syncer.watch()


def register(app: typer.Typer) -> None:
    app.command("push", rich_help_panel="Files")(push)
    app.command("pull", rich_help_panel="Files")(pull)
    app.command("sync", rich_help_panel="Files")(sync)
