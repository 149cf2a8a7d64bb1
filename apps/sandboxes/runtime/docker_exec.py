"""Running a command in a container over Docker's exec API, with a deadline.

The attach stream is read with select() so that the deadline (a total one) holds however much or
little the command prints; stdin is written interleaved with reading, so a command that prints
while it reads cannot deadlock us. What the command prints is hostile: it is demultiplexed as it
arrives (bounded.Frames, whatever size a frame claims) and kept up to the output limit per
stream, the rest only counted. Kept apart from docker.py for size; it receives the low-level API
client and is imported only by docker.py.
"""

import select
import socket
import threading
import time
from collections.abc import Callable

from . import bounded
from .base import STDIN_BUFFER, ExecRequest, ExecResult
from .scripts import HELPER_ID, KILLER, MARKER_ENV, OOM_CHECK, SIGNAL, TIMEOUT_ENV, WRAPPER

_DRAIN_SECONDS = 6.0  # after a kill, how long to wait for the stream to close (the watchdog's grace and more)
_KILL_AGAIN_SECONDS = 1.0  # a client's KILL is sent again this often until the output closes
_WATCHDOG_GRACE = 2.0  # the supervisor's own watchdog fires this long after the server's deadline
KILL_SECONDS = 15.0  # how long a Docker-exec kill is retried while the engine cannot start it
Kill = Callable[[str, str], None]  # (exec id, signal name)


class _Collector:
    """Keeps up to `limit` bytes per stream and counts the rest."""

    def __init__(self, limit: int, on_output):
        self.limit = limit
        self.on_output = on_output
        self.kept = {"stdout": bytearray(), "stderr": bytearray()}
        self.total = {"stdout": 0, "stderr": 0}

    def add(self, stream: str, data: bytes) -> None:
        self.total[stream] += len(data)
        room = self.limit - len(self.kept[stream])
        if room > 0:
            self.kept[stream] += data[:room]
        if self.on_output is not None:
            self.on_output(stream, data)

    @property
    def truncated(self) -> bool:
        return any(self.total[s] > len(self.kept[s]) for s in self.kept)


def _raw_socket(sock):
    return getattr(sock, "_sock", sock)


def early_output(wrapper) -> bytes:
    """What the HTTP client read past the response headers of a hijacked exec: docker-py hands out
    the socket *under* its buffered reader, so a first frame that came with the headers (a busy
    client reads them late) would be lost. Call with the raw socket non-blocking."""
    reader = getattr(getattr(getattr(getattr(wrapper, "_response", None), "raw", None), "_fp", None), "fp", None)
    if reader is None:
        return b""
    try:
        return reader.read1(1 << 20) or b""
    except (OSError, ValueError):
        return b""


def _helper(api, container: str, argv: list[str], user: str, limit: int) -> tuple[bytes, int | None]:
    exec_id = api.exec_create(
        container, argv, stdout=True, stderr=True, user=user, environment={MARKER_ENV: HELPER_ID}
    )["Id"]
    output = bytearray()
    for chunk in api.exec_start(exec_id, stream=True):
        output += chunk[: max(0, limit - len(output))]
    return bytes(output), _exit_code(api, exec_id)


def run_helper(api, container: str, argv: list[str], user: str, *, limit: int = 64 * 1024) -> bytes:
    """A short helper of VibeBox's own (OOM check), marked as such; at most `limit` bytes of its
    output are kept."""
    return _helper(api, container, argv, user, limit)[0]


def kill(api, container: str, exec_id: str, signal: str, user: str, *, seconds: float = KILL_SECONDS) -> bool:
    """Signals a command with a Docker exec of KILLER (or SIGNAL), again until it ran: at the pids
    limit the engine often cannot start it, and a retry lands when a dying process frees a slot
    (KILLER's first steps are builtins, so once started it needs no other)."""
    script, args = (KILLER, [exec_id]) if signal == "KILL" else (SIGNAL, [exec_id, signal])
    deadline = time.monotonic() + seconds
    while True:
        _, code = _helper(api, container, ["/bin/sh", "-c", script, "sh", *args], user, 4096)
        if code == 0 or time.monotonic() > deadline:
            return code == 0
        time.sleep(0.1)


def _default_kill(api, container: str, user: str) -> Kill:
    def default(exec_id: str, signal: str) -> None:
        kill(api, container, exec_id, signal, user)

    return default


def _beside(kill: Kill, exec_id: str, signal: str) -> None:
    """Signals in another thread while the caller keeps draining the command's output: the engine
    may not finish a helper until that output is read, and a kill may take seconds."""
    threading.Thread(target=kill, args=(exec_id, signal), daemon=True).start()


def run(api, container: str, request: ExecRequest, *, kill: Kill | None = None) -> ExecResult:
    """Runs the command under the supervisor (scripts.WRAPPER). At the deadline, and for signals
    from `request.control`, `kill(exec_id, signal)` is called (the driver's kill contract)."""
    kill = kill or _default_kill(api, container, request.user)
    started = time.monotonic()
    deadline = started + request.timeout
    # The supervisor's watchdog kills the command's process group a little after our deadline,
    # from inside, if nothing else has (it was started before the command could fill the pids limit).
    watchdog = f"{request.timeout + _WATCHDOG_GRACE:.3f}"
    env = {**request.env, MARKER_ENV: request.exec_id, TIMEOUT_ENV: watchdog}
    exec_id = api.exec_create(
        container,
        ["/bin/sh", "-c", WRAPPER, "sh", *request.argv],
        stdout=True,
        stderr=True,
        stdin=request.stdin is not None or request.control is not None,
        tty=False,
        environment=env,
        workdir=request.workdir or None,
        user=request.user or "",
    )["Id"]
    wrapper = api.exec_start(exec_id, socket=True)
    sock = _raw_socket(wrapper)
    sock.setblocking(False)
    collector = _Collector(request.output_limit, request.on_output)
    control = request.control
    pending = memoryview(request.stdin or b"")
    stdin_open = request.stdin is not None or control is not None
    closing = control is None  # without a control, stdin ends after request.stdin
    frames = bounded.Frames()
    for stream, data in frames.feed(early_output(wrapper)):
        collector.add(stream, data)
    timed_out = False
    # A KILL that comes before the engine has started the command finds nothing to kill (exec
    # start answers first): it is sent again until the output closes.
    killed_at: float | None = None
    try:
        eof = False
        while not eof:
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out = True
                _beside(kill, request.exec_id, "KILL")
                deadline = now + _DRAIN_SECONDS
            elif timed_out and now >= deadline:
                break  # the stream did not close after the kill: give up on it
            if killed_at is not None and not timed_out and now - killed_at >= _KILL_AGAIN_SECONDS:
                _beside(kill, request.exec_id, "KILL")
                killed_at = now
            if stdin_open and closing and not pending:
                sock.shutdown(socket.SHUT_WR)
                stdin_open = False
            waiting = [sock, control.wake_fd] if control is not None else [sock]
            writing = [sock] if stdin_open and pending else []
            # stdin left in the control (over STDIN_BUFFER) is taken as soon as there is room
            ready = control is not None and control.buffered and len(pending) < STDIN_BUFFER
            wait = deadline - now if killed_at is None else min(deadline - now, killed_at + _KILL_AGAIN_SECONDS - now)
            readable, writable, _ = select.select(waiting, writing, [], 0 if ready else max(0.0, wait))
            if control is not None and (ready or control.wake_fd in readable):
                data, close, signals = control.take(max(0, STDIN_BUFFER - len(pending)))
                if data and stdin_open:
                    pending = memoryview(bytes(pending) + data)
                closing = closing or close
                for name in signals:
                    _beside(kill, request.exec_id, name)
                    killed_at = now if name == "KILL" else killed_at
            if writable:
                sent = sock.send(pending[:65536])
                pending = pending[sent:]
            if sock in readable:
                chunk = sock.recv(262144)
                if not chunk:
                    eof = True
                for stream, data in frames.feed(chunk):
                    collector.add(stream, data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command exited without reading all of its stdin
    finally:
        sock.close()
    exit_code = _exit_code(api, exec_id)
    duration_ms = int((time.monotonic() - started) * 1000)
    oom = False
    if exit_code == 137 and not timed_out:
        oom = b"oom" in run_helper(api, container, ["/bin/sh", "-c", OOM_CHECK, "sh", request.exec_id], request.user)
    return ExecResult(
        exit_code=None if timed_out else exit_code,
        stdout=bytes(collector.kept["stdout"]),
        stderr=bytes(collector.kept["stderr"]),
        stdout_bytes=collector.total["stdout"],
        stderr_bytes=collector.total["stderr"],
        truncated=collector.truncated,
        timed_out=timed_out,
        oom_killed=oom,
        duration_ms=duration_ms,
    )


def _exit_code(api, exec_id: str) -> int | None:
    for _ in range(50):
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            return info.get("ExitCode")
        time.sleep(0.02)
    return None
