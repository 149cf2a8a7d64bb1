"""Many sandboxes at once, through the API, against raw docker-py in the same run:

- burst: 100 creates from 10 client threads, taken from a warm pool of 100, vs 100 raw
  `containers.run` from 10 threads;
- density: N idle sandboxes (default 200; `--n 1000` for the full run): memory per sandbox, and
  the p95 of `GET /api/v1/sandboxes` at that load next to `GET /healthz`.

.venv/bin/python bench/scale.py [--burst 100] [--n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import docker
from common import api, live_server, summary, timed

TEMPLATE = "python-3"
THREADS = 10


def container_memory_kib(container_id: str) -> int:
    """What the container's processes use (its memory cgroup, without the page cache)."""
    for base in (
        f"/sys/fs/cgroup/memory/docker/{container_id}",
        f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope",
    ):
        try:
            with open(f"{base}/memory.stat") as handle:
                stat = dict(line.split() for line in handle)
            return int(stat.get("total_rss", stat.get("anon", 0))) // 1024
        except FileNotFoundError:
            continue
    return 0


def shim_memory_kib(container_ids: set[str]) -> int:
    """The engine's own cost per container: the resident memory of its containerd shim."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            if b"containerd-shim" in argv[0] and any(arg.decode() in container_ids for arg in argv):
                with open(f"/proc/{pid}/status") as handle:
                    total += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def burst(url: str, key: str, n: int) -> tuple[float, list[float], int]:
    def create(_):
        started = time.perf_counter()
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": TEMPLATE})
        return time.perf_counter() - started, sandbox

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(create, range(n)))
    total = time.perf_counter() - started
    ids = {sandbox["id"] for _, sandbox in results}
    assert len(ids) == n, "two creates got the same sandbox"
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda sid: api(url, key, "DELETE", f"/api/v1/sandboxes/{sid}"), ids))
    return total, [latency for latency, _ in results], sum(sandbox["warm"] for _, sandbox in results)


def raw_burst(client: docker.DockerClient, image: str, n: int) -> tuple[float, list[float]]:
    def run(index):
        started = time.perf_counter()
        container = client.containers.run(image, ["sleep", "infinity"], detach=True, name=f"vbx-bench-burst-{index}")
        return time.perf_counter() - started, container

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(run, range(n)))
    total = time.perf_counter() - started
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda item: item[1].remove(force=True), results))
    return total, [latency for latency, _ in results]


def density(url: str, key: str, n: int, repeat: int, client: docker.DockerClient) -> dict:
    ids = []
    with ThreadPoolExecutor(4) as pool:
        for _, sandbox in pool.map(
            lambda i: api(url, key, "POST", "/api/v1/sandboxes", {"template": TEMPLATE, "name": f"idle-{i}"}), range(n)
        ):
            ids.append(sandbox["id"])
    time.sleep(5)  # let the engine settle
    full_ids = {client.containers.get(sandbox_id).id for sandbox_id in ids}
    in_sandboxes = sum(container_memory_kib(container_id) for container_id in full_ids)
    shims = shim_memory_kib(full_ids)
    listing = summary(
        f"GET /api/v1/sandboxes?limit=100 with {n} sandboxes",
        timed(lambda: api(url, key, "GET", "/api/v1/sandboxes?limit=100"), repeat),
    )
    health = summary(
        f"GET /healthz with {n} sandboxes (baseline)", timed(lambda: api(url, key, "GET", "/healthz"), repeat)
    )
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda sid: api(url, key, "DELETE", f"/api/v1/sandboxes/{sid}"), ids))
    return {
        "sandboxes": n,
        "memory_in_sandbox_kib_each": round(in_sandboxes / n),
        "engine_shim_kib_each": round(shims / n),
        "list": {**listing, "ratio_p50_vs_baseline": round(listing["p50_ms"] / health["p50_ms"], 2)},
        "baseline": health,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    client = docker.from_env()
    env = {
        "VIBEBOX_POOL_ENABLED": "1",
        "VIBEBOX_POOL_SIZES": f"{TEMPLATE}={args.burst}",
        "VIBEBOX_POOL_REFILL_AFTER_TAKE": "0",
        # The owner quotas (sandboxes, CPU, memory, disk) fit the run's sandboxes.
        "VIBEBOX_MAX_SANDBOXES_PER_OWNER": str(max(args.n, args.burst) + 10),
        "VIBEBOX_MAX_CPU_PER_OWNER": str(max(args.n, args.burst) * 2 + 10),
        "VIBEBOX_MAX_MEMORY_PER_OWNER": f"{max(args.n, args.burst) + 10}g",
        "VIBEBOX_MAX_DISK_PER_OWNER": f"{(max(args.n, args.burst) + 10) * 100}g",
        "VIBEBOX_DEFAULT_MEMORY": "256m",
    }
    with live_server("bench", **env) as server:
        image = api(server.url, server.key, "GET", f"/api/v1/templates/{TEMPLATE}")[1]["image"]
        raw_total, raw_latencies = raw_burst(client, image, args.burst)
        server.manage("warmpools", "--fill")
        total, latencies, warm = burst(server.url, server.key, args.burst)
        server.manage("warmpools", "--drain")
        api_row = summary(f"API create x{args.burst}, {THREADS} threads, pool of {args.burst} ({warm} warm)", latencies)
        raw_row = summary(f"docker-py containers.run x{args.burst}, {THREADS} threads (baseline)", raw_latencies)
        api_row.update(total_s=round(total, 2), ratio_total_vs_baseline=round(total / raw_total, 2))
        raw_row.update(total_s=round(raw_total, 2))
        dense = density(server.url, server.key, args.n, args.repeat, client)
    print(json.dumps({"burst": [raw_row, api_row], "density": dense}, indent=2))


if __name__ == "__main__":
    main()
