"""The exec agent: a small HTTP server that runs inside every sandbox (python3 stdlib only).

It is copied into each container at create (/opt/vibebox/agent.py) and started beside the
container's main process, as the sandbox user. The server sends it simple commands (no streaming,
no interactive stdin, as the sandbox user) over the sandbox network: starting a process from an
already running program costs a few milliseconds, where a Docker exec costs tens. Everything
else, and any command when the agent is not answering, goes through Docker's exec API.

Semantics are those of the Docker path (runtime/scripts.py): the command runs in its own session
with VIBEBOX_EXEC_ID=<id> in its environment; at the deadline its session and every process
carrying the marker are killed with SIGKILL; output is kept up to a limit per stream and counted
beyond; exit codes of signalled commands are 128 + the signal, as a shell reports them; an exit
137 during which the cgroup's OOM-kill count grew is an OOM kill.

Requests must carry the sandbox's token (Authorization: Bearer), so other sandboxes on a shared
network cannot use it. It runs with the sandbox user's rights only.
"""

import base64
import contextlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 49983
MARKER = "VIBEBOX_EXEC_ID"
OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


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


def kill_everything(session: int, exec_id: str) -> None:
    needle = f"{MARKER}={exec_id}".encode()
    for _ in range(3):
        with contextlib.suppress(OSError):
            os.killpg(session, signal.SIGKILL)
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    if needle in handle.read().split(b"\0"):
                        os.kill(int(name), signal.SIGKILL)
            except OSError:
                continue


def reader(pipe, limit: int, kept: bytearray, totals: dict, key: str) -> None:
    while chunk := pipe.read1(262144):
        totals[key] += len(chunk)
        room = limit - len(kept)
        if room > 0:
            kept += chunk[:room]
    pipe.close()


def run(request: dict) -> dict:
    env = {**os.environ, **request.get("env", {}), MARKER: request["exec_id"]}
    env.pop("VIBEBOX_AGENT", None)
    stdin = request.get("stdin")
    before = oom_count()
    started = time.monotonic()
    process = subprocess.Popen(
        request["argv"],
        cwd=request.get("workdir") or None,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    limit = int(request.get("output_limit", 10 * 1024 * 1024))
    kept = {"stdout": bytearray(), "stderr": bytearray()}
    totals = {"stdout": 0, "stderr": 0}
    threads = [
        threading.Thread(target=reader, args=(process.stdout, limit, kept["stdout"], totals, "stdout"), daemon=True),
        threading.Thread(target=reader, args=(process.stderr, limit, kept["stderr"], totals, "stderr"), daemon=True),
    ]
    for thread in threads:
        thread.start()
    if stdin is not None:
        with contextlib.suppress(OSError):  # the command may exit without reading it all
            process.stdin.write(base64.b64decode(stdin))
            process.stdin.close()
    timed_out = False
    try:
        process.wait(timeout=max(0.0, float(request["timeout"]) - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_everything(process.pid, request["exec_id"])
        process.wait()
    for thread in threads:
        thread.join(3.0)
    code = process.returncode
    exit_code = 128 - code if code < 0 else code
    oom = exit_code == 137 and not timed_out and oom_count() not in ("", before)
    return {
        "exit_code": None if timed_out else exit_code,
        "stdout": base64.b64encode(bytes(kept["stdout"])).decode(),
        "stderr": base64.b64encode(bytes(kept["stderr"])).decode(),
        "stdout_bytes": totals["stdout"],
        "stderr_bytes": totals["stderr"],
        "truncated": any(totals[k] > len(kept[k]) for k in kept),
        "timed_out": timed_out,
        "oom_killed": oom,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    token = ""

    def _answer(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # a health check
        self._answer(200, {"ok": True})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if not hmac.compare_digest(self.headers.get("Authorization", ""), f"Bearer {self.token}"):
            self._answer(401, {"error": "unauthorized"})
            return
        try:
            result = run(json.loads(body))
        except OSError as exc:  # could not start it (cwd, argv): the server falls back to Docker's exec
            self._answer(422, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._answer(200, result)

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    with open(sys.argv[1]) as handle:
        Handler.token = handle.read().strip()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 (reached over the sandbox network)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
