"""File watching: a stream of the changes under a directory of a running sandbox, from its
sandboxd's inotify watch (docs/sandboxd.md, "File watch").

This is the service the public API of issue 25 (`GET …/files/watch` as a WebSocket and SSE, the
SDKs' `files.watch`, the CLI's `vibebox watch`) will sit on; there is no public endpoint yet.
The stream holds nothing on the server but its connection to sandboxd: any web process can open
one, and closing it frees the watch in the sandbox.
"""

from django.conf import settings

from vibebox import exceptions as errors
from vibebox.ids import random_id

from .models import Sandbox
from .runtime import get_driver
from .runtime.base import WatchRequest, WatchStream
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
        return get_driver().watch(sandbox.container_name, request)
