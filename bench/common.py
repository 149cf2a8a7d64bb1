"""Shared plumbing for benchmarks: a live VibeBox server on loopback and timing helpers.

Benchmarks are not tests: they print ratios of VibeBox's API against raw docker-py calls
measured in the same run, and docs/benchmarks.md records their output.
"""

import contextlib
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"


def procfile_server() -> list[str]:
    """The Procfile's `web` command: uvicorn and its flags, but those of the host, port and workers
    (tests/conftest.py's live server reads it the same way)."""
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    flags = [f for f in shlex.split(web.split("vibebox.asgi:application", 1)[1]) if "$" not in f]
    flags = [f for f in flags if f not in ("--host", "--port", "--workers")]
    return [str(ROOT / ".venv" / "bin" / "uvicorn"), *flags]


SERVER = [*procfile_server(), "--log-level", "warning"]  # no access log in the measurements


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(name: str, values: list[float]) -> dict:
    return {
        "name": name,
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on loopback's `port`. A free port is only
    free when asked: another server can take it before this one binds, answer its /healthz, and
    be tested in its place (a key "invalid" there) while this one fails to bind."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(descriptor) in inodes:
                return True
    return False


@dataclass
class LiveServer:
    """A running throwaway server: unpacks as (url, key, pid) for the benchmarks."""

    url: str
    key: str
    pid: int
    env: dict = field(repr=False)

    def __iter__(self):
        return iter((self.url, self.key, self.pid))

    def manage(self, *args: str) -> str:
        """Runs a management command against this server's database; answers its stdout."""
        command = [str(PYTHON), str(ROOT / "manage.py"), *args]
        return subprocess.run(command, env=self.env, check=True, cwd=ROOT, capture_output=True, text=True).stdout

    def create_key(self, user: str, scopes: str = "all", *, staff: bool = False) -> str:
        return self.manage("createapikey", "--user", user, "--scopes", scopes, *(["--staff"] if staff else [])).strip()


@contextmanager
def live_server(instance: str = "bench", *, gateway: bool = False, **extra_env: str):
    """A throwaway VibeBox (own data dir and instance label) served by uvicorn; yields a LiveServer.
    With `gateway`, its model gateway runs too (`manage.py rungateway`, on a free port)."""
    with tempfile.TemporaryDirectory(prefix=f"vibebox-{instance}-") as data_dir:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "vibebox.settings",
            "VIBEBOX_DATA_DIR": data_dir,
            "VIBEBOX_INSTANCE": instance,
            "VIBEBOX_CACHE_PREFIX": f"vibebox-{instance}",
            "VIBEBOX_RATE_LIMIT": "100000/min",
            # Warm pools fill in the background and would disturb other measurements; the
            # benchmarks (and tests) that need them turn them on.
            "VIBEBOX_POOL_ENABLED": "0",
            # No plan limits or prices: a benchmark makes hundreds of sandboxes (free allows two).
            "VIBEBOX_DEFAULT_PLAN": "internal",
            **extra_env,
        }
        env.pop("DATABASE_URL", None)
        if gateway:
            env["VIBEBOX_GATEWAY_PORT"] = str(free_port())
        port = free_port()
        env["VIBEBOX_PORT"] = str(port)  # where the gateway's MCP tools reach the API
        server = LiveServer(url=f"http://127.0.0.1:{port}", key="", pid=0, env=env)
        server.manage("migrate", "-v", "0")
        server.manage("buildimages", "--no-build")
        server.key = server.create_key(instance, staff=True)
        workers = ["--workers", env["VIBEBOX_WEB_WORKERS"]] if env.get("VIBEBOX_WEB_WORKERS", "1") != "1" else []
        process = subprocess.Popen(
            [*SERVER, *workers, "--host", "127.0.0.1", "--port", str(port), "vibebox.asgi:application"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
        )
        server.pid = process.pid
        helpers = []
        if gateway:
            command = [str(PYTHON), str(ROOT / "manage.py"), "rungateway"]
            helpers.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sys.stderr))
        try:
            # Generous: on a loaded 2-core machine Django's start alone has taken over 10 s.
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the VibeBox server on {server.url} did not start")
                try:
                    if listens(process.pid, port):  # not another server that took the port
                        urllib.request.urlopen(f"{server.url}/healthz", timeout=1).read()
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            yield server
        finally:
            for child in [process, *helpers]:
                child.terminate()
                child.wait(timeout=10)
            manage = [str(PYTHON), str(ROOT / "manage.py")]
            for command in (["warmpools", "--drain"], ["dropinstance", "--yes"]):
                subprocess.run([*manage, *command], env=env, cwd=ROOT, capture_output=True, check=False)


def api(url: str, key: str, method: str, path: str, body=None, data: bytes | None = None, headers=None):
    """A minimal JSON client (urllib, no extra dependency); returns (status, parsed body or bytes)."""
    request_headers = {"Authorization": f"Bearer {key}", **(headers or {})}
    if body is not None:
        data = json.dumps(body).encode()
        request_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"{url}{path}", data=data, method=method, headers=request_headers)
    with urllib.request.urlopen(request, timeout=600) as response:
        payload = response.read()
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(payload)
        return response.status, payload


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
