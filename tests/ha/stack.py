"""Several processes behind HAProxy, for real (docs/operations.md, "Several processes and HAProxy"):
web processes (the Procfile's uvicorn line, each on a loopback port of its own, all on this test
session's database and Redis), optionally Celery workers (the Procfile's `worker` line), and
Debian's HAProxy in front with deploy/haproxy/haproxy.cfg as it is (its addresses from the
environment). `make test-ha` (scripts/test-ha.sh) runs pytest on PostgreSQL and a Redis of its own
with VIBEBOX_TEST_HA=1, so that tests.conftest.live_server yields HAProxy's URL instead of one
server's: the existing REST, WebSocket, terminal and process tests run through the load balancer.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port, listens, procfile_server
from tests.database import child_database_url
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
WEB_PROCESSES = 3


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(path, os.X_OK)), None
    )


@dataclasses.dataclass
class Web:
    name: str  # web1..: the `server` line of haproxy.cfg
    port: int
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclasses.dataclass
class Stack:
    url: str
    webs: list[Web]
    haproxy: subprocess.Popen
    stats_socket: Path
    workers: list[subprocess.Popen]
    env: dict

    def stats(self) -> dict[str, dict]:
        """HAProxy's `show stat` for the web backend's servers: name -> row (status, stot, ...)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        text = data.decode().lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {row["svname"]: row for row in rows if row["pxname"] == "web" and row["svname"].startswith("web")}

    def up(self) -> set[str]:
        return {name for name, row in self.stats().items() if row["status"].startswith("UP")}


def _terminate(process: subprocess.Popen, *, group: bool = False) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL) if group else process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def ha_stack(
    *, output=None, web: int = WEB_PROCESSES, celery: int = 0, beat: Path | None = None, **extra_env
) -> Iterator[Stack]:
    """`web` web processes (at most the `server` lines of haproxy.cfg: 3) and `celery` Celery
    workers (the Procfile's `worker` line on every queue; with `beat`, a schedule file, the first
    one embeds Celery beat), HAProxy in front; waits until HAProxy sees every web process up. Needs a transactional
    test (the processes read this session's test database)."""
    binary = haproxy_binary()
    assert binary, "haproxy is not installed (make proxies)"
    directory = Path(tempfile.mkdtemp(prefix="vibebox-ha-"))
    haproxy_port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": child_database_url(),
        # The server's own origins (WebSocket Origin checks, links) are HAProxy's: clients see it.
        "VIBEBOX_PORT": str(haproxy_port),
        **extra_env,
    }
    # The processes' output: `output`, else a file of the stack's own (its tail goes with a failure
    # to start), not this process's stderr (pytest's capsys replaces it with a stream without fileno).
    log_path = directory / "processes.log"
    out = output or open(log_path, "ab")  # noqa: SIM115 (closed in finally)
    webs: list[Web] = []
    workers: list[subprocess.Popen] = []
    haproxy = None
    try:
        for index in range(1, web + 1):
            port = free_port()
            process = subprocess.Popen(
                [*procfile_server(), "vibebox.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=out,
            )
            webs.append(Web(f"web{index}", port, process))
        for index in range(celery):
            from tests.webhooks.conftest import worker_command

            workers.append(
                subprocess.Popen(
                    ["bash", "-c", worker_command(beat_schedule=beat if index == 0 else None)],
                    cwd=ROOT,
                    env={**env, "VIBEBOX_PORT": str(index + 1)},  # names the worker (Procfile): worker-1@...
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                )
            )
        stats_socket = directory / "haproxy.sock"
        haproxy_env = {
            **os.environ,
            "VIBEBOX_HAPROXY_BIND": f"127.0.0.1:{haproxy_port}",
            "VIBEBOX_HAPROXY_STATS": str(stats_socket),
            # Servers past `web` point at a port nothing listens on: HAProxy marks them down.
            **{f"VIBEBOX_WEB{i}": f"127.0.0.1:{webs[i - 1].port if i <= web else free_port()}" for i in (1, 2, 3)},
        }
        haproxy = subprocess.Popen(
            [binary, "-W", "-db", "-f", str(CONFIG)], cwd=directory, env=haproxy_env, stdout=out, stderr=out
        )
        stack = Stack(f"http://127.0.0.1:{haproxy_port}", webs, haproxy, stats_socket, workers, env)

        def all_up():
            assert haproxy.poll() is None, "haproxy exited"
            for item in webs:
                assert item.process.poll() is None, f"{item.name} exited"
                if not listens(item.process.pid, item.port):
                    return False
                try:  # HAProxy starts with its servers UP: each process must answer first
                    with urllib.request.urlopen(f"http://127.0.0.1:{item.port}/healthz", timeout=2):
                        pass
                except OSError:
                    return False
            try:
                return stack.up() >= {item.name for item in webs}
            except OSError:
                return False

        # Generous: on a loaded 2-core machine three Django starts at once take a while.
        try:
            wait_for(all_up, timeout=180, interval=0.3, what="HAProxy to see every web process up")
        except AssertionError as exc:
            tail = log_path.read_text(errors="replace")[-4000:] if output is None else ""
            raise AssertionError(f"{exc}\n-- the processes' output:\n{tail}") from exc
        if workers:
            from vibebox.celery import app

            def workers_answer():
                for worker in workers:
                    assert worker.poll() is None, "a Celery worker exited"
                return len(app.control.ping(timeout=1)) >= len(workers)

            wait_for(workers_answer, timeout=180, interval=0.5, what="every Celery worker to answer a ping")
        with urllib.request.urlopen(f"{stack.url}/healthz", timeout=10) as answer:
            assert answer.status == 200
        yield stack
    finally:
        if haproxy is not None:
            _terminate(haproxy)
        for item in webs:
            _terminate(item.process)
        for worker in workers:
            _terminate(worker, group=True)
        if output is None:
            out.close()
        shutil.rmtree(directory, ignore_errors=True)
