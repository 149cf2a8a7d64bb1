"""`sandbox.files.watch(...)`: a sandbox's file changes as they happen (the WebSocket
`/ws/sandboxes/{id}/files/watch`; docs/api.md "File watch").

    def changed(event):
        print(event.type, event.path)

    watch = sandbox.files.watch("/workspace", changed)   # the watch is in place when this returns
    ...
    watch.stop()

    with sandbox.files.watch("/workspace") as watch:    # or iterate
        for event in watch:
            if event.type == "create" and event.path.endswith(".py"):
                break

The watch survives a pause and resume of the sandbox (the connection stays open; what changed
comes after the resume). When the connection drops, or the server's time limit for one watch (an
hour) ends it, the SDK opens a new one and reports an `overflow` event with reason `reconnect`:
changes in between may have been missed, so rescan. A watch ends (an `end` event, then the
iteration stops) when the directory goes away (`root_removed`, `root_moved`, `unmounted`), the
sandbox stops (`sandbox_stopped`), the `timeout` you gave passes (`timeout`), or on `stop()`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed

from . import errors
from .calls import segment
from .durations import Duration
from .streams import open_ws, refused, ws_url

RECONNECT_ATTEMPTS = 5  # a dropped watch is opened again this many times (with backoff) before giving up
FINAL_REASONS = {"root_removed", "root_moved", "unmounted", "sandbox_stopped", "error"}


@dataclass(frozen=True)
class FileEvent:
    """One change: `type` is create, write, remove, rename, chmod, overflow, or end (the last).

    `path` is absolute in the sandbox; `from_path` the old path of a rename; `reason` says why
    for an overflow (queue, kernel, watch_limit, path_limit, reconnect: events were lost, rescan)
    and an end (root_removed, root_moved, unmounted, sandbox_stopped, timeout, error)."""

    type: str
    path: str = ""
    is_dir: bool = False
    time: str = ""
    from_path: str | None = None
    reason: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> FileEvent:
        return cls(
            type=str(data.get("type", "")),
            path=str(data.get("path", "")),
            is_dir=bool(data.get("isDir", False)),
            time=str(data.get("time", "")),
            from_path=data.get("from"),
            reason=data.get("reason"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's shape (camelCase; `from` and `reason` only where they apply)."""
        data: dict[str, Any] = {"type": self.type}
        if self.type != "end":
            data.update(path=self.path, isDir=self.is_dir, time=self.time)
        if self.from_path is not None:
            data["from"] = self.from_path
        if self.reason is not None:
            data["reason"] = self.reason
        return data


def watch_url(
    base_url: str,
    sandbox_id: str,
    path: str,
    recursive: bool,
    excludes: list[str] | None,
    timeout: Duration | None,
) -> str:
    params: list[tuple[str, str]] = [("path", path), ("recursive", "true" if recursive else "false")]
    params += [("exclude", pattern) for pattern in excludes or ()]
    if timeout is not None:
        params.append(("timeout", str(timeout)))
    return ws_url(base_url, f"/ws/sandboxes/{segment(sandbox_id)}/files/watch") + "?" + urlencode(params)


class WatchProtocol:
    """What both watches (sync and async) do with the server's messages: events, the end, errors,
    and whether an end or a dropped connection calls for a new watch."""

    def __init__(self, root: str, timeout: Duration | None) -> None:
        self.root = root
        self.timeout = timeout
        self.ended: str | None = None  # why the watch ended, once it has
        self.stopped = False

    def feed(self, raw: str | bytes) -> FileEvent:
        message = json.loads(raw)
        if message.get("type") == "error":
            raise errors.from_payload(400, {"error": message.get("error") or {}})
        return FileEvent.from_api(message)

    def renews(self, event: FileEvent) -> bool:
        """An `end` that a new watch follows: the server's own time limit when the caller set none."""
        return event.type == "end" and event.reason == "timeout" and self.timeout is None and not self.stopped

    def reconnected(self) -> FileEvent:
        return FileEvent(type="overflow", path=self.root, is_dir=True, time="", reason="reconnect")

    @staticmethod
    def close_error(error: ConnectionClosed) -> errors.VibeBoxError | None:
        """The error for a refusal (a 4xxx close); None for a connection that merely dropped."""
        code = error.rcvd.code if error.rcvd else None
        if code is not None and 4000 <= code < 5000:
            return refused(code, error.rcvd.reason if error.rcvd else "")
        return None


class FileWatch(WatchProtocol):
    """An open file watch (see the module). With a callback, a background thread calls it with
    each `FileEvent`; without one, iterate the watch. `stop()` ends it (also `with`)."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        root: str,
        callback: Callable[[FileEvent], Any] | None = None,
        *,
        timeout: Duration | None = None,
    ) -> None:
        super().__init__(root, timeout)
        self._url, self._api_key = url, api_key
        self._ws = open_ws(url, api_key)  # accepted: the watch is in place
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if callback is not None:
            self._thread = threading.Thread(target=self._run, args=(callback,), daemon=True, name="vibebox-watch")
            self._thread.start()

    def _run(self, callback: Callable[[FileEvent], Any]) -> None:
        try:
            for event in self._events():
                callback(event)
        except BaseException as error:  # kept for wait() and stop()
            self.error = error

    def _reopen(self) -> bool:
        for attempt in range(RECONNECT_ATTEMPTS):
            if self.stopped:
                return False
            try:
                connection = open_ws(self._url, self._api_key)
            except errors.ConnectionError:
                time.sleep(min(5.0, 0.5 * 2**attempt))
                continue
            with self._lock:
                if self.stopped:
                    connection.close()
                    return False
                self._ws = connection
            return True
        raise errors.ConnectionError("the file watch's connection dropped and could not be opened again")

    def _events(self) -> Iterator[FileEvent]:
        while True:
            try:
                for raw in self._ws:
                    event = self.feed(raw)
                    if event.type == "end":
                        if self.renews(event):
                            break
                        self.ended = event.reason or "error"
                        yield event
                        return
                    yield event
                else:
                    if self.stopped:
                        self.ended = self.ended or "stopped"
                        return
            except ConnectionClosed as error:
                if self.stopped:
                    self.ended = self.ended or "stopped"
                    return
                problem = self.close_error(error)
                if problem is not None:
                    raise problem from error
            finally:
                self._ws.close()  # done with this connection however it went (a new one may follow)
            if self.stopped or not self._reopen():
                self.ended = self.ended or "stopped"
                return
            yield self.reconnected()

    def __iter__(self) -> Iterator[FileEvent]:
        if self._thread is not None:
            raise TypeError("this watch calls its callback; iterate a watch opened without one")
        return self._events()

    def stop(self) -> None:
        """Ends the watch (the server frees it in the sandbox at once)."""
        with self._lock:
            self.stopped = True
            self._ws.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def wait(self, timeout: float | None = None) -> str | None:
        """Blocks until a callback watch ends (or `timeout` seconds); answers why it ended (None if
        it goes on). Raises what stopped it, if it failed."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.ended

    def __enter__(self) -> FileWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
