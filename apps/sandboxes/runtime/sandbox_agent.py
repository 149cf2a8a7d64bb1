"""The exec agent: a small HTTP server that runs inside every sandbox (python3 stdlib only).

It is copied into each container at create (/opt/vibebox/agent.py, root-owned and read-only) and
started beside the container's main process, as the sandbox user. The server sends it simple
commands (no streaming, no interactive stdin, as the sandbox user) over the sandbox network:
starting a process from an already running program costs a few milliseconds, where a Docker exec
costs tens. It also ends commands on the server's behalf (POST /kill), for the Docker path too:
it is already running when a command has filled the sandbox's pids limit, when nothing new (a
`docker exec` of a killer, a `pkill` from a shell) can start.

Protocol (docker_agent.py is the other side; the token is an HMAC of the server's secret and the
container name, in /opt/vibebox/token, the name in /opt/vibebox/container):
- GET /hello?nonce=<server nonce> answers {container, nonce: <agent nonce>, proof}, proof =
  HMAC(token, "hello\\n<container>\\n<server nonce>\\n<agent nonce>"): the server checks it before
  it sends anything else, so a command never goes to another sandbox that now holds the address.
- POST /exec and POST /kill on the same connection carry X-VibeBox-Container and
  X-VibeBox-Signature = HMAC(token, "<exec|kill>\\n<container>\\n<agent nonce>\\n<sha256 of body>");
  an agent nonce is good for one request (no replays).
- Answers carry X-VibeBox-Signature = HMAC(token, "answer\\n<container>\\n<server nonce>\\n<exec id>\\n
  <sha256 of body>"). /exec answers a JSON header line then the kept stdout and stderr bytes.

Semantics are those of the Docker path (runtime/scripts.py): the command runs in its own session
with VIBEBOX_EXEC_ID=<id> in its environment; it is done when it has exited and its output is
closed (a background child still holding stdout keeps it running, as with `$(...)`); output is
kept up to a limit per stream and counted beyond; exit codes of signalled commands are 128 + the
signal; an exit 137 during which the cgroup's OOM-kill count grew is an OOM kill. At the deadline
`end()` stops, then kills, every process of the command (see its docstring).
"""

import base64
import contextlib
import glob
import hashlib
import hmac
import json
import os
import queue
import re
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT = 49983
MARKER = "VIBEBOX_EXEC_ID"
OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")
MAX_REQUEST = 64 * 1024 * 1024
RESERVE_WORKERS = 2  # serve connections when no thread can start (the pids limit is reached)
KILL_SECONDS = 4.0  # how long end() may keep stopping processes before it kills what it has
EXEC_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
SIGNALS = {"INT", "TERM", "KILL", "HUP", "QUIT", "USR1", "USR2", "STOP", "CONT"}

_live: dict = {}  # exec id -> session id of the commands this agent runs
_live_lock = threading.Lock()


def oom_count() -> str:
    for path in OOM_FILES:
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith("oom_kill "):
                        return line.strip()
        except OSError:
            continue
    return ""


# ---- processes ----


def _stat(pid: int):
    """(state, ppid, pgrp, session, uid) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), uid


def _marker(pid: int):
    """The process's VIBEBOX_EXEC_ID, "" when it has none, None when its environment is unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return None
    for item in environ.split(b"\0"):
        if item.startswith(MARKER.encode() + b"="):
            return item[len(MARKER) + 1 :].decode(errors="replace")
    return ""


def _holds(pid: int, pipes: set) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            info = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in pipes:
            return True
    return False


def _recorded_session(exec_id: str):
    """The session a Docker-path supervisor recorded for its command (scripts.WRAPPER)."""
    try:
        with open(f"/tmp/.vbx-{exec_id}.pid") as handle:  # noqa: S108 (the sandbox's own /tmp)
            return int(handle.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _other_sessions(exec_id: str) -> set:
    """Sessions of the other commands running now (this agent's and the Docker path's)."""
    with _live_lock:
        sessions = {sid for other, sid in _live.items() if other != exec_id}
    with contextlib.suppress(OSError):
        for name in os.listdir("/tmp"):  # noqa: S108
            if name.startswith(".vbx-") and name.endswith(".pid") and name[5:-4] != exec_id:
                sid = _recorded_session(name[5:-4])
                if sid:
                    sessions.add(sid)
    return sessions


def _members(exec_id: str, sessions: set, pipes: set, sweep: bool, protected: set) -> dict:
    """pid -> state of every process of the command: its sessions or process groups, its marker,
    holders of its output pipes, their descendants, and with `sweep` every process of this user
    that carries no marker at all and is not the agent, the container's main process or in
    another live command's session (what `setsid env -i` left behind)."""
    me, uid = {1, os.getpid(), os.getppid()}, os.getuid()
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in me:
            info = _stat(int(name))
            if info is not None:
                table[int(name)] = info
    chosen = {}
    for pid, (state, _, pgrp, session, owner) in table.items():
        if session in sessions or pgrp in sessions:
            chosen[pid] = state
            continue
        marker = _marker(pid)
        ours = marker == exec_id or (pipes and _holds(pid, pipes))
        escaped = sweep and marker == "" and owner == uid and session not in protected
        if ours or escaped:
            chosen[pid] = state
    children: dict = {}
    for pid, info in table.items():
        children.setdefault(info[1], []).append(pid)
    stack = list(chosen)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in chosen:
                chosen[child] = table[child][0]
                stack.append(child)
    return chosen


def end(exec_id: str, *, sessions=(), pipes=(), sweep: bool = False) -> int:
    """Ends every process of a command, however fast it forks; answers how many it signalled.

    A fork bomb at the pids limit outruns any scan-and-kill: a killed process's slot is taken by
    a sibling's fork before the scan ends. Stopped processes cannot fork, so: SIGSTOP each
    session's process group (one signal the kernel delivers to the whole group, which no fork can
    slip out of), then scan /proc and SIGSTOP every member still running, again until a scan
    finds none running (or KILL_SECONDS pass), then SIGKILL them all. Nothing here starts a
    process or a thread, so it works when nothing new can start.
    """
    # Never the agent's own group or session (a pid file in /tmp is the sandbox's to write).
    sessions = {s for s in sessions if s and s > 1} - {os.getpgid(0), os.getsid(0)}
    pipes = set(pipes)
    protected = _other_sessions(exec_id) - sessions if sweep else set()
    deadline = time.monotonic() + KILL_SECONDS
    seen: set = set()
    while True:
        for session in sessions:
            with contextlib.suppress(OSError):
                os.killpg(session, signal.SIGSTOP)
        members = _members(exec_id, sessions, pipes, sweep, protected)
        running = [pid for pid, state in members.items() if state not in ("T", "t", "Z", "X", "x")]
        seen.update(members)
        for pid in running:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        if not running or time.monotonic() > deadline:
            break
        time.sleep(0.005)  # what still runs is leaving the kernel (stopped ones cannot fork meanwhile)
    for session in sessions:
        with contextlib.suppress(OSError):
            os.killpg(session, signal.SIGKILL)
    for pid in seen:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(seen)


def send_signal(exec_id: str, name: str, *, sweep: bool = False) -> int:
    """Signals a command: KILL ends it all (end()); other signals go to its session and marked
    processes."""
    with _live_lock:
        session = _live.get(exec_id)
    sessions = {s for s in (session, _recorded_session(exec_id)) if s}
    if name == "KILL":
        count = end(exec_id, sessions=sessions, sweep=sweep)
        for path in glob.glob(f"/tmp/.vbx-{exec_id}.*") + glob.glob(f"/tmp/vbx-{exec_id}.*"):  # noqa: S108
            with contextlib.suppress(OSError):
                os.unlink(path)  # the supervisor's files and execute's code file, as KILLER does
        return count
    number = getattr(signal, f"SIG{name}")
    members = _members(exec_id, sessions, set(), False, set())
    for pid in members:
        with contextlib.suppress(OSError):
            os.kill(pid, number)
    return len(members)


# ---- running a command ----


def _pump(process, stdin: bytes, limit: int, deadline: float):
    """Feeds stdin and reads both outputs until both close or the deadline passes."""
    kept = {"stdout": bytearray(), "stderr": bytearray()}
    totals = {"stdout": 0, "stderr": 0}
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, "stdout")
    selector.register(process.stderr, selectors.EVENT_READ, "stderr")
    pending = memoryview(stdin or b"")
    if process.stdin is not None:
        if pending:
            os.set_blocking(process.stdin.fileno(), False)
            selector.register(process.stdin, selectors.EVENT_WRITE, "stdin")
        else:
            process.stdin.close()
    reading = 2
    timed_out = False
    try:
        while reading:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(left):
                if key.data == "stdin":
                    try:
                        pending = pending[os.write(key.fileobj.fileno(), pending[:65536]) :]
                    except BlockingIOError:
                        continue
                    except OSError:  # the command exited without reading it all
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(key.fileobj)
                        key.fileobj.close()
                    continue
                chunk = os.read(key.fileobj.fileno(), 262144)
                if not chunk:
                    selector.unregister(key.fileobj)
                    reading -= 1
                    continue
                totals[key.data] += len(chunk)
                room = limit - len(kept[key.data])
                if room > 0:
                    kept[key.data] += chunk[:room]
    finally:
        selector.close()
    return kept, totals, timed_out


def run(request: dict):
    """(answer header, stdout, stderr) of one command."""
    exec_id = request["exec_id"]
    env = {**os.environ, **(request.get("env") or {}), MARKER: exec_id}
    env.pop("VIBEBOX_AGENT", None)
    stdin = request.get("stdin")
    limit = int(request.get("output_limit", 10 * 1024 * 1024))
    before = oom_count()
    deadline = time.monotonic() + float(request["timeout"])
    process = subprocess.Popen(
        request["argv"],
        cwd=request.get("workdir") or None,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    with _live_lock:
        _live[exec_id] = process.pid
    try:
        pipes = {
            (os.fstat(pipe.fileno()).st_dev, os.fstat(pipe.fileno()).st_ino)
            for pipe in (process.stdout, process.stderr)
        }
        kept, totals, timed_out = _pump(process, base64.b64decode(stdin) if stdin else b"", limit, deadline)
        if not timed_out:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # it closed its output but runs on
                timed_out = True
        if timed_out:
            end(exec_id, sessions={process.pid}, pipes=pipes, sweep=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=KILL_SECONDS)
    finally:
        with _live_lock:
            _live.pop(exec_id, None)
        for pipe in (process.stdout, process.stderr):
            pipe.close()
    code = process.returncode
    exit_code = None if timed_out or code is None else (128 - code if code < 0 else code)
    header = {
        "exec_id": exec_id,
        "exit_code": exit_code,
        "stdout_len": len(kept["stdout"]),
        "stderr_len": len(kept["stderr"]),
        "stdout_bytes": totals["stdout"],
        "stderr_bytes": totals["stderr"],
        "truncated": any(totals[k] > len(kept[k]) for k in kept),
        "timed_out": timed_out,
        "oom_killed": exit_code == 137 and oom_count() not in ("", before),
    }
    return header, bytes(kept["stdout"]), bytes(kept["stderr"])


# ---- HTTP ----


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle connection is dropped
    # Headers and body are two writes; with Nagle the body would wait for the server's delayed
    # ACK (40 ms) on the connection's second exchange (the hello is the first).
    disable_nagle_algorithm = True
    token = ""
    container = ""

    def setup(self) -> None:
        super().setup()
        self.server_nonce = ""
        self.agent_nonce = ""

    def _sign(self, *parts: str) -> str:
        return hmac.new(self.token.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()

    def _answer(self, status: int, body: bytes, *, exec_id: str = "", content_type: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-VibeBox-Container", self.container)
        if status == 200 and exec_id:
            digest = hashlib.sha256(body).hexdigest()
            signature = self._sign("answer", self.container, self.server_nonce, exec_id, digest)
            self.send_header("X-VibeBox-Signature", signature)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._answer(status, json.dumps({"error": message}).encode())

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/hello":
            self._answer(200, b'{"ok": true}')  # a health check
            return
        nonce = (parse_qs(url.query).get("nonce") or [""])[0]
        if not re.fullmatch(r"[0-9a-f]{16,128}", nonce):
            self._error(400, "nonce is 16 to 128 hex digits")
            return
        self.server_nonce, self.agent_nonce = nonce, secrets.token_hex(16)
        proof = self._sign("hello", self.container, nonce, self.agent_nonce)
        body = {"container": self.container, "nonce": self.agent_nonce, "proof": proof}
        self._answer(200, json.dumps(body).encode())

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST:
            self.close_connection = True
            self._error(413, "body too large")
            return
        body = self.rfile.read(length)
        kind = urlsplit(self.path).path.strip("/")
        if self.headers.get("X-VibeBox-Container", "") != self.container:
            self._error(421, "this is another container's agent")  # misdirected: nothing ran
            return
        nonce, self.agent_nonce = self.agent_nonce, ""  # one request per hello
        expected = self._sign(kind, self.container, nonce, hashlib.sha256(body).hexdigest())
        if not nonce or not hmac.compare_digest(self.headers.get("X-VibeBox-Signature", ""), expected):
            self._error(401, "unauthorized")
            return
        try:
            request = json.loads(body)
            exec_id = request["exec_id"]
            if not isinstance(exec_id, str) or not EXEC_ID.match(exec_id):
                raise ValueError("exec_id")
        except (ValueError, KeyError, TypeError):
            self._error(400, "invalid request")
            return
        if kind == "exec":
            self._exec(request, exec_id)
        elif kind == "kill":
            name = str(request.get("signal", "KILL"))
            if name not in SIGNALS:
                self._error(400, "unknown signal")
                return
            count = send_signal(exec_id, name, sweep=bool(request.get("sweep")))
            self._answer(200, json.dumps({"exec_id": exec_id, "signalled": count}).encode(), exec_id=exec_id)
        else:
            self._error(404, "no such endpoint")

    def _exec(self, request: dict, exec_id: str) -> None:
        try:
            header, stdout, stderr = run(request)
        except OSError as exc:  # could not start it (cwd, argv, no pids left): nothing ran
            self._error(422, f"{type(exc).__name__}: {exc}")
            return
        body = json.dumps(header).encode() + b"\n" + stdout + stderr
        self._answer(200, body, exec_id=exec_id, content_type="application/vnd.vibebox.exec")

    def log_message(self, *args) -> None:
        pass


class Server(ThreadingHTTPServer):
    """A thread per connection; when no thread can start (the sandbox is at its pids limit, say
    under a fork bomb), the connection goes to a worker started in advance, so a kill still lands."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.reserve: queue.Queue = queue.Queue(maxsize=16)
        for _ in range(RESERVE_WORKERS):
            threading.Thread(target=self._reserve_worker, daemon=True).start()

    def _reserve_worker(self) -> None:
        while True:
            request, client_address = self.reserve.get()
            self.process_request_thread(request, client_address)

    def process_request(self, request, client_address) -> None:
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # can't start new thread
            try:
                self.reserve.put_nowait((request, client_address))
            except queue.Full:
                self.shutdown_request(request)


def main() -> None:
    directory = os.path.dirname(sys.argv[1])
    with open(sys.argv[1]) as handle:
        Handler.token = handle.read().strip()
    with open(os.path.join(directory, "container")) as handle:
        Handler.container = handle.read().strip()
    server = Server(("0.0.0.0", PORT), Handler)  # noqa: S104 (reached over the sandbox network)
    server.serve_forever()


if __name__ == "__main__":
    main()
