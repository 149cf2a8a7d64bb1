"""Shared plumbing for benchmarks: a live VibeBox server on loopback and timing helpers.

Benchmarks are not tests: they print ratios of VibeBox's API against raw docker-py calls
measured in the same run, and docs/benchmarks.md records their output.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
# The same server and flags as the Procfile's `web` process.
SERVER = [
    str(ROOT / ".venv" / "bin" / "uvicorn"),
    "--ws",
    "websockets-sansio",
    "--lifespan",
    "off",
    "--log-level",
    "warning",
]


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server():
    """A throwaway VibeBox (own data dir and instance label) served by uvicorn; yields (url, key, pid)."""
    with tempfile.TemporaryDirectory(prefix="vibebox-bench-") as data_dir:
        env = {
            **os.environ,
            "VIBEBOX_DATA_DIR": data_dir,
            "VIBEBOX_INSTANCE": "bench",
            "VIBEBOX_CACHE_PREFIX": "vibebox-bench",
            "VIBEBOX_RATE_LIMIT": "100000/min",
        }
        manage = [str(PYTHON), str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
        subprocess.run([*manage, "buildimages", "--no-build"], env=env, check=True, cwd=ROOT, capture_output=True)
        key = subprocess.run(
            [*manage, "createapikey", "--user", "bench", "--scopes", "all"],
            env=env,
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        port = _free_port()
        server = subprocess.Popen(
            [*SERVER, "--host", "127.0.0.1", "--port", str(port), "vibebox.asgi:application"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            yield url, key, server.pid
        finally:
            subprocess.run([*manage, "reconcile"], env={**env}, cwd=ROOT, capture_output=True, check=False)
            server.terminate()
            server.wait(timeout=10)


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
