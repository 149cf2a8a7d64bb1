"""File watching: a stream of the changes under a directory of a running sandbox, from its
sandboxd's inotify watch (docs/sandboxd.md, "File watch").

The public API (issue 25) sits on it: `GET /api/v1/sandboxes/{id}/files/watch` as Server-Sent
Events (api/watch_views.py) and `/ws/sandboxes/{id}/files/watch` as a WebSocket
(consumers/watch.py), both reading their query with `watch_query` and sending `event_data` /
`end_data` messages. The stream holds nothing on the server but its connection to sandboxd: any
web process can open one, and closing it frees the watch in the sandbox.
"""

import posixpath
from dataclasses import dataclass

from django.conf import settings

from vibebox import exceptions as errors
from vibebox.ids import random_id
from vibebox.units import parse_duration

from .models import Sandbox
from .runtime import driver_for
from .runtime.base import WatchEvent, WatchRequest, WatchStream
from .services.exec import require_running
from .services.files import resolve
from .services.lifecycle import container_running

MAX_PATH = 4096
MAX_EXCLUDES = 64  # sandboxd's watch.MaxExcludes
MAX_EXCLUDE = 256  # bytes of a pattern (watch.MaxExcludePattern)
DEFAULT_TIMEOUT = 3600.0  # seconds a watch lasts unless the caller says otherwise


def _excludes(excludes) -> tuple[str, ...]:
    patterns = tuple(excludes or ())
    if len(patterns) > MAX_EXCLUDES or not all(
        isinstance(p, str) and p and len(p.encode()) <= MAX_EXCLUDE and "\0" not in p for p in patterns
    ):
        raise errors.ValidationFailed(
            f"excludes are at most {MAX_EXCLUDES} non-empty glob patterns of at most {MAX_EXCLUDE} bytes.",
            details={"field": "excludes"},
        )
    return patterns


def sandbox_watch(
    *,
    sandbox: Sandbox,
    path: str | None = None,
    recursive: bool = True,
    user: str = "",
    excludes=(),
    timeout: float | None = None,
) -> WatchStream:
    """Starts watching `path` (default /workspace; relative paths start there) in a running
    sandbox, with the permissions of `user` (default: the sandbox user). The watch is in place when
    this returns: iterate the answer for its events (runtime.base.WatchEvent) until it ends, and
    close it when done. Raises SandboxNotRunning / SandboxPaused, InvalidPath, FileNotFound,
    FilePermissionDenied, TooManyStreams, SandboxOutdated (a sandbox made before sandboxd), or
    RuntimeFailure."""
    require_running(sandbox)
    target = resolve(path)
    if len(target.encode()) > MAX_PATH:
        raise errors.InvalidPath(f"Paths are at most {MAX_PATH} bytes.")
    limit = timeout if timeout is not None else DEFAULT_TIMEOUT
    if not 0 < limit <= max(settings.VIBEBOX_EXEC_MAX_TIMEOUT, DEFAULT_TIMEOUT):
        raise errors.ValidationFailed("The watch's timeout is out of range.", details={"field": "timeout"})
    request = WatchRequest(
        path=target,
        watch_id=random_id("watch_"),
        recursive=bool(recursive),
        user=user,
        excludes=_excludes(excludes),
        timeout=limit,
    )
    with container_running(sandbox):
        return driver_for(sandbox).watch(sandbox.container_name, request)


# ---- the public API's side (REST/SSE and WebSocket) ----

FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class WatchQuery:
    """What a client asked for in the query string of `…/files/watch`."""

    path: str  # absolute, normalised: the root the events' paths are joined to
    recursive: bool
    excludes: tuple[str, ...]
    timeout: float | None
    auto_resume: bool


def watch_query(values) -> WatchQuery:
    """Reads `path`, `recursive`, `exclude` (repeated), `timeout` (a duration) and `autoResume`
    from `values(name) -> list[str]` (a QueryDict's getlist, or parse_qs's lists)."""

    def last(name: str, default: str = "") -> str:
        found = values(name)
        return found[-1] if found else default

    try:
        timeout = parse_duration(last("timeout")) if last("timeout") else None
    except ValueError as exc:
        raise errors.InvalidDuration(str(exc), details={"field": "timeout"}) from None
    return WatchQuery(
        path=resolve(last("path") or None),
        recursive=last("recursive", "true").lower() not in FALSE,
        excludes=_excludes(values("exclude")),
        timeout=timeout,
        auto_resume=last("autoResume").lower() in ("1", "true", "yes"),
    )


def _absolute(root: str, relative: str) -> str:
    return root if relative == "." else posixpath.join(root, relative)


def event_data(root: str, event: WatchEvent) -> dict:
    """An event as the API sends it: paths absolute in the sandbox, fields in camelCase."""
    data = {
        "type": event.type,
        "path": _absolute(root, event.path),
        "isDir": event.is_dir,
        "time": event.time,
    }
    if event.from_path is not None:
        data["from"] = _absolute(root, event.from_path)
    if event.reason is not None:
        data["reason"] = event.reason
    return data


def end_data(reason: str | None) -> dict:
    """The last message of a watch: why it ended (sandboxd's root_removed, root_moved,
    unmounted, error; timeout; sandbox_stopped)."""
    return {"type": "end", "reason": reason or "error"}
