"""The calls every driver makes to a sandbox's sandboxd (docs/sandboxd.md): commands, background
processes, terminals, file watches and files, and the translation of sandboxd's refusals and
failures into application errors. The engine is not involved: only how to find a sandbox's sandboxd
differs between engines, so a driver mixes SandboxdCalls in and provides

- `_daemon(name)`: where the container's sandboxd listens (an address, or a sandboxd_client.Relayed),
  raising SandboxNotRunning / SandboxPaused / SandboxOutdated as the engine tells;
- `_daemons`: its cache of those addresses (name -> address), dropped here when one fails;
- `_engine()`: a context manager translating the engine's own errors;
- `_secret`: what each container's token derives from;
- `inspect(name)`: the container's state (whether a broken stream means it stopped).

Moved out of runtime/docker.py so that runtime/kubernetes.py reaches sandboxd the same way.
"""

import http.client
import logging
import time
from collections.abc import Iterator

from vibebox import exceptions as errors

from . import bounded, sandboxd_client
from .base import (
    ExecRequest,
    ExecResult,
    FileInfo,
    ProcessInfo,
    TerminalExit,
    TerminalInfo,
    WatchEvent,
    WatchRequest,
    WatchStream,
)

logger = logging.getLogger(__name__)

DAEMON_WAIT_SECONDS = 10.0  # how long a running container's sandboxd may take to answer (just started)


def _flag(entry: dict, key: str) -> bool:
    if type(entry[key]) is not bool:
        raise ValueError(f"{key} is not a boolean")
    return entry[key]


def _count(entry: dict, key: str, high: int = (1 << 62) - 1) -> int:
    if type(entry[key]) is not int or not 0 <= entry[key] <= high:
        raise ValueError(f"{key} is not a count")
    return entry[key]


def _exec_id_and_exit(entry: dict) -> tuple[str, int | None]:
    exec_id, exit_code = entry["exec_id"], entry["exit_code"]
    if not isinstance(exec_id, str) or len(exec_id) > 128:
        raise ValueError("exec_id is not an id")
    if exit_code is not None and (type(exit_code) is not int or not 0 <= exit_code <= 255):
        raise ValueError("exit_code is not an exit code")
    return exec_id, exit_code


def _process_info(entry: dict) -> ProcessInfo:
    """One entry of sandboxd's process list, its fields checked (they come from the sandbox)."""
    exec_id, exit_code = _exec_id_and_exit(entry)
    return ProcessInfo(
        exec_id=exec_id,
        running=_flag(entry, "running"),
        exit_code=exit_code,
        timed_out=_flag(entry, "timed_out"),
        oom_killed=_flag(entry, "oom_killed"),
        stdout_bytes=_count(entry, "stdout_bytes"),
        stderr_bytes=_count(entry, "stderr_bytes"),
    )


def _terminal_info(entry: dict) -> TerminalInfo:
    """One entry of sandboxd's terminal list, its fields checked (they come from the sandbox)."""
    exec_id, exit_code = _exec_id_and_exit(entry)
    argv, started_at = entry["argv"], entry["started_at"]
    if not isinstance(argv, list) or len(argv) > 64 or not all(isinstance(a, str) and len(a) <= 4096 for a in argv):
        raise ValueError("argv is not a command")
    if not isinstance(started_at, str) or len(started_at) > 64:
        raise ValueError("started_at is not a time")
    output_bytes, buffered_from = _count(entry, "output_bytes"), _count(entry, "buffered_from")
    if buffered_from > output_bytes:
        raise ValueError("buffered_from is past output_bytes")
    cols, rows = _count(entry, "cols", 1000), _count(entry, "rows", 1000)
    if not cols or not rows:
        raise ValueError("cols and rows are from 1 to 1000")
    return TerminalInfo(
        exec_id=exec_id,
        argv=tuple(argv),
        running=_flag(entry, "running"),
        exit_code=exit_code,
        idle=_flag(entry, "idle"),
        cols=cols,
        rows=rows,
        attached=_count(entry, "attached", 1 << 31),
        output_bytes=output_bytes,
        buffered_from=buffered_from,
        started_at=started_at,
    )


_FILE_ERRORS = {
    "not_found": errors.FileNotFound,
    "conflict": errors.FileConflict,
    "disk_full": errors.DiskFull,
    "invalid": errors.InvalidPath,
    "bad_archive": errors.InvalidArchive,
    "too_large": errors.RequestTooLarge,
}


def _not_started(request: ExecRequest, reason: str) -> ExecResult:
    """The answer for a command sandboxd could not start, as a shell gives it: 127, the reason."""
    program = request.argv[0] if request.argv else ""
    stderr = f"{program}: {reason or 'could not start the command'}\n".encode()[: max(0, request.output_limit)]
    return ExecResult(
        exit_code=127,
        stdout=b"",
        stderr=stderr,
        stdout_bytes=0,
        stderr_bytes=len(stderr),
        truncated=False,
        timed_out=False,
        oom_killed=False,
        duration_ms=0,
    )


def _file_error(exc: "sandboxd_client.FileRefused", denied) -> errors.ApplicationError:
    """sandboxd's refusal of a file request as the API's error (its message is the sandbox's)."""
    kind = denied if exc.code == "denied" else _FILE_ERRORS.get(exc.code)
    if kind is None and exc.status == 429:  # sandboxd serves 8 file requests at once
        kind = errors.RateLimited
    details = {"path": exc.path} if exc.path else {}
    if kind is None:
        return errors.RuntimeFailure(
            f"sandboxd refused the file request: {exc}"[:300], details={"reason": "sandboxd_refused", **details}
        )
    if kind in (errors.FileNotFound, errors.DiskFull, errors.PathNotWritable):
        return kind(details=details)  # the API's own words; the path is in details
    return kind(exc.message or None, details=details)


def _file_info(data: object) -> FileInfo:
    """One path's Info from sandboxd, its fields checked (they come from the sandbox)."""
    if not isinstance(data, dict):
        raise errors.RuntimeFailure("sandboxd's file entry is malformed.", details={"reason": "sandboxd_malformed"})
    path, name, kind, link = (data.get(key, "") for key in ("path", "name", "type", "link"))
    size, mode, mtime = data.get("size"), data.get("mode"), data.get("mtime")
    if not (
        isinstance(path, str)
        and isinstance(name, str)
        and kind in ("file", "directory", "symlink", "other")
        and isinstance(link, str)
        and type(size) is int
        and 0 <= size < 1 << 63
        and type(mode) is int
        and 0 <= mode <= 0o7777
        and type(mtime) in (int, float)
        and abs(mtime) < 1e12
    ):
        raise errors.RuntimeFailure("sandboxd's file entry is malformed.", details={"reason": "sandboxd_malformed"})
    return FileInfo(path=path, name=name, type=kind, size=size, mode=mode, modified_at=float(mtime), link_target=link)


class _TranslatedStream:
    """A sandboxd FileStream whose failures come out as application errors."""

    def __init__(self, driver: "SandboxdCalls", name: str, stream: "sandboxd_client.FileStream"):
        self._driver, self._name, self._stream = driver, name, stream
        self.header = stream.header

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except sandboxd_client.FileRefused as exc:
            raise _file_error(exc, errors.FilePermissionDenied) from None
        except bounded.HostileOutput as exc:
            self._driver._daemons.pop(self._name, None)
            raise errors.RuntimeFailure(
                f"The sandbox's sandboxd answered badly: {exc}"[:300], details={"reason": f"sandboxd_{exc.reason}"}
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self._driver._daemons.pop(self._name, None)
            raise errors.RuntimeFailure(
                f"the sandbox's sandboxd failed: {exc}"[:300], details={"reason": "sandboxd_failed"}
            ) from None

    def close(self) -> None:
        self._stream.close()


class SandboxdCalls:
    """Commands, processes, terminals, watches and files through the container's sandboxd (see the
    module's docstring for what the driver provides)."""

    def exec(self, name: str, request: ExecRequest) -> ExecResult:
        """The command through the container's sandboxd (a stream when it streams). One sandboxd
        could not start (no such program or working directory, an unknown user, the pids limit
        full: nothing ran) answers as a shell would: exit code 127, its reason on stderr."""
        call = sandboxd_client.run if sandboxd_client.whole(request) else sandboxd_client.stream
        with self._engine():
            try:
                return self._call_daemon(name, lambda address: call(address, self._secret, name, request))
            except sandboxd_client.Refused as exc:
                if exc.status != 422:
                    raise errors.RuntimeFailure(
                        f"sandboxd refused the command: {exc}"[:300], details={"reason": "sandboxd_refused"}
                    ) from None
                return _not_started(request, exc.message)

    def _call_daemon(self, name: str, call):
        """`call(address)` against the container's sandboxd. A sandboxd that cannot be greeted
        (nothing was sent: not listening yet, restarted on a new address, another container's)
        is looked up again and greeted again for up to DAEMON_WAIT_SECONDS, then a RuntimeFailure;
        so is what it answers badly."""
        deadline = time.monotonic() + DAEMON_WAIT_SECONDS
        while True:
            address = self._daemon(name)
            try:
                return self._answer(name, call, address)
            except sandboxd_client.Unavailable as exc:
                self._daemons.pop(name, None)
                if time.monotonic() > deadline:
                    logger.warning("sandboxd of %s does not answer: %s", name, exc)
                    raise errors.RuntimeFailure(
                        "The sandbox's sandboxd does not answer.", details={"reason": "sandboxd_unavailable"}
                    ) from None
                time.sleep(0.1)

    def _answer(self, name: str, call, address: str):
        try:
            return call(address)
        except bounded.HostileOutput as exc:
            self._daemons.pop(name, None)
            if not self._running(name):  # a stop or kill cut the stream: nothing hostile in that
                logger.info("sandboxd of %s went away with its container: %s", name, exc)
                raise errors.RuntimeFailure(
                    "The sandbox stopped while the command ran.", details={"reason": "sandbox_stopped"}
                ) from None
            logger.warning("sandboxd of %s answered badly (%s): %s", name, exc.reason, exc)
            raise errors.RuntimeFailure(
                f"The sandbox's sandboxd answered badly: {exc}"[:300], details={"reason": f"sandboxd_{exc.reason}"}
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self._daemons.pop(name, None)
            raise errors.RuntimeFailure(
                f"the sandbox's sandboxd failed: {exc}"[:300], details={"reason": "sandboxd_failed"}
            ) from None

    def _running(self, name: str) -> bool:
        """Whether the container still runs, a moment after its sandboxd's stream broke: the
        engine notes a kill a little after the socket closes."""
        for _ in range(5):
            try:
                info = self.inspect(name)
            except errors.ApplicationError:
                return True  # the engine cannot tell: keep the stricter reading
            if info is None or info.status != "running":
                return False
            time.sleep(0.2)
        return True

    # ---- background processes and terminals (sandboxd's) ----

    def _start_in_daemon(self, name: str, start, what: str, plural: str) -> None:
        """`start(address)` (process_start or terminal_open), its refusals as application errors."""

        def call(address):
            try:
                return start(address)
            except sandboxd_client.Refused as exc:
                if exc.status == 429:
                    raise errors.TooManyStreams(
                        f"The sandbox runs as many {plural} as it may.", details={"limit": "sandbox"}
                    ) from None
                reason = what.split()[-1]
                raise errors.RuntimeFailure(
                    f"sandboxd did not start the {what}: {exc}"[:300], details={"reason": f"{reason}_not_started"}
                ) from None

        with self._engine():
            self._call_daemon(name, call)

    def process_start(self, name: str, request: ExecRequest) -> None:
        self._start_in_daemon(
            name,
            lambda address: sandboxd_client.process_start(address, self._secret, name, request),
            "background process",
            "background processes",
        )

    def terminal_open(self, name: str, request: ExecRequest, *, cols: int, rows: int, idle_timeout: float) -> None:
        def start(address):
            return sandboxd_client.terminal_open(
                address, self._secret, name, request, cols=cols, rows=rows, idle_timeout=idle_timeout
            )

        self._start_in_daemon(name, start, "terminal", "terminals")

    def _listed(self, name: str, listing, parse, what: str):
        with self._engine():
            listed = self._call_daemon(name, lambda address: listing(address, self._secret, name))
        try:
            return [parse(entry) for entry in listed]
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.RuntimeFailure(
                f"sandboxd's {what} list is malformed: {exc}"[:300], details={"reason": "sandboxd_malformed"}
            ) from None

    def process_list(self, name: str) -> list[ProcessInfo]:
        return self._listed(name, sandboxd_client.process_list, _process_info, "process")

    def terminal_list(self, name: str) -> list[TerminalInfo]:
        return self._listed(name, sandboxd_client.terminal_list, _terminal_info, "terminal")

    def _attach(self, name: str, exec_id: str, attach, unknown: errors.ApplicationError):
        try:
            with self._engine():
                attached = self._call_daemon(name, attach)
        except sandboxd_client.Detached:
            return None
        except sandboxd_client.Refused as exc:
            raise unknown from exc
        return attached[0]

    def process_attach(self, name, exec_id, *, request, start="start", stop=None, on_lost=None) -> ExecResult | None:
        def attach(address):
            return sandboxd_client.process_attach(
                address, self._secret, name, exec_id, start=start, request=request, stop=stop, on_lost=on_lost
            )

        return self._attach(
            name, exec_id, attach, errors.ExecutionNotFound("No such process.", details={"processId": exec_id})
        )

    def terminal_attach(self, name, exec_id, *, request, start="start", stop=None, on_lost=None) -> TerminalExit | None:
        def attach(address):
            return sandboxd_client.terminal_attach(
                address, self._secret, name, exec_id, start=start, request=request, stop=stop, on_lost=on_lost
            )

        return self._attach(
            name, exec_id, attach, errors.TerminalNotFound("No such terminal.", details={"sessionId": exec_id})
        )

    def process_kill(self, name: str, exec_id: str, signal: str = "KILL") -> bool:
        with self._engine():
            return bool(
                self._call_daemon(
                    name, lambda address: sandboxd_client.process_kill(address, self._secret, name, exec_id, signal)
                )
            )

    def terminal_kill(self, name: str, exec_id: str, signal: str = "KILL") -> bool:
        with self._engine():
            return bool(
                self._call_daemon(
                    name, lambda address: sandboxd_client.terminal_kill(address, self._secret, name, exec_id, signal)
                )
            )

    def watch(self, name: str, request: WatchRequest) -> WatchStream:
        def call(address):
            try:
                return sandboxd_client.watch(address, self._secret, name, request)
            except sandboxd_client.WatchRefused as exc:
                raise _watch_refusal(exc, request) from None

        with self._engine():
            return _DaemonWatch(self, name, self._call_daemon(name, call))

    # ---- files through sandboxd (see base.RuntimeDriver) ----

    def _files(self, name: str, call, *, denied=errors.FilePermissionDenied):
        """`call(address)` against the container's sandboxd, its refusals as application errors."""
        try:
            with self._engine():
                return self._call_daemon(name, call)
        except sandboxd_client.FileRefused as exc:
            raise _file_error(exc, denied) from None
        except sandboxd_client.ShortBody:
            raise errors.ValidationFailed("The upload ended early.") from None

    def file_stat(self, name: str, path: str, *, user: str = "", follow: bool = False) -> FileInfo:
        body = {"path": path, "user": user or None, "follow": follow}
        return _file_info(
            self._files(
                name, lambda address: sandboxd_client.file_call(address, self._secret, name, "files/stat", body)
            )
        )

    def file_list(
        self, name: str, path: str, *, user: str = "", recursive: bool = False, limit: int = 10000
    ) -> tuple[list[FileInfo], bool]:
        body = {"path": path, "user": user or None, "recursive": recursive, "limit": limit}
        result = self._files(
            name, lambda address: sandboxd_client.file_call(address, self._secret, name, "files/list", body)
        )
        entries, truncated = result.get("entries"), result.get("truncated")
        if not isinstance(entries, list) or len(entries) > limit or type(truncated) is not bool:
            raise errors.RuntimeFailure("sandboxd's listing is malformed.", details={"reason": "sandboxd_malformed"})
        return [_file_info(entry) for entry in entries], truncated

    def _file_done(self, name: str, kind: str, body: dict) -> None:
        self._files(name, lambda address: sandboxd_client.file_call(address, self._secret, name, kind, body))

    def file_mkdir(self, name: str, path: str, *, user: str = "") -> None:
        self._file_done(name, "files/mkdir", {"path": path, "user": user or None})

    def file_move(self, name: str, source: str, destination: str, *, user: str = "", overwrite: bool = False) -> None:
        body = {"path": source, "destination": destination, "overwrite": overwrite, "user": user or None}
        self._file_done(name, "files/move", body)

    def file_delete(self, name: str, path: str, *, user: str = "", recursive: bool = False) -> None:
        self._file_done(name, "files/delete", {"path": path, "recursive": recursive, "user": user or None})

    def file_write(
        self, name: str, path: str, fileobj, size: int, *, user: str = "", mode: int | None = None, timeout: float
    ) -> FileInfo:
        body = {"path": path, "user": user or None, "mode": mode}

        def call(address):
            return sandboxd_client.file_upload(
                address, self._secret, name, "files/write", body, fileobj, size, timeout=timeout
            )

        return _file_info(self._files(name, call, denied=errors.PathNotWritable))

    def tar_in(
        self,
        name: str,
        path: str,
        fileobj,
        size: int,
        *,
        user: str = "",
        max_entries: int = 0,
        timeout: float,
        gzip: bool = False,
    ) -> int:
        body = {"path": path, "user": user or None, "max_entries": max_entries, "gzip": gzip}

        def call(address):
            return sandboxd_client.file_upload(
                address, self._secret, name, "files/untar", body, fileobj, size, timeout=timeout
            )

        entries = self._files(name, call, denied=errors.PathNotWritable).get("entries")
        if type(entries) is not int or entries < 0:
            raise errors.RuntimeFailure("sandboxd's tar answer is malformed.", details={"reason": "sandboxd_malformed"})
        return entries

    def _file_stream(self, name: str, kind: str, body: dict, timeout: float):
        def call(address):
            return sandboxd_client.file_stream(address, self._secret, name, kind, body, timeout=timeout)

        return _TranslatedStream(self, name, self._files(name, call))

    def file_read(
        self, name: str, path: str, *, user: str = "", timeout: float
    ) -> tuple[FileInfo, "_TranslatedStream"]:
        stream = self._file_stream(name, "files/read", {"path": path, "user": user or None}, timeout)
        try:
            return _file_info(stream.header), stream
        except BaseException:
            stream.close()
            raise

    def tar_out(self, name: str, path: str, *, user: str = "", timeout: float) -> "_TranslatedStream":
        return self._file_stream(name, "files/tar", {"path": path, "user": user or None}, timeout)


def _watch_refusal(exc, request: WatchRequest) -> errors.ApplicationError:
    """The application error for a watch sandboxd refused (sandboxd_client.WatchRefused)."""
    details = {"path": request.path}
    if exc.status == 429:
        return errors.TooManyStreams("The sandbox has as many file watches as it may.", details={"limit": "sandbox"})
    if exc.reason == "not_found":
        return errors.FileNotFound(details=details)
    if exc.reason == "permission":
        return errors.FilePermissionDenied("The sandbox user cannot read that directory.", details=details)
    if exc.reason in ("not_directory", "invalid"):
        return errors.InvalidPath("The path is not a directory that can be watched.", details=details)
    return errors.RuntimeFailure(
        f"sandboxd did not start the watch: {exc}"[:300], details={"reason": f"watch_{exc.reason or exc.status}"}
    )


class _DaemonWatch:
    """A watch stream of sandboxd's (sandboxd_client._WatchStream), its failures application
    errors: one that ends because the container stopped just ends (`ended` "sandbox_stopped")."""

    def __init__(self, driver: "SandboxdCalls", name: str, stream):
        self._driver, self._name, self._stream = driver, name, stream
        self._ended: str | None = None

    @property
    def ended(self) -> str | None:
        return self._ended or self._stream.ended

    def __iter__(self) -> Iterator[WatchEvent]:
        try:
            yield from self._stream
        except (bounded.HostileOutput, OSError, http.client.HTTPException) as exc:
            self._stream.close()
            if not self._driver._running(self._name):
                self._ended = "sandbox_stopped"
                return
            reason = exc.reason if isinstance(exc, bounded.HostileOutput) else "failed"
            logger.warning("sandboxd of %s broke a watch (%s): %s", self._name, reason, exc)
            raise errors.RuntimeFailure(
                f"The sandbox's file watch failed: {exc}"[:300], details={"reason": f"sandboxd_{reason}"}
            ) from None

    def close(self) -> None:
        self._stream.close()
