"""Sandbox lifecycle through the API against raw docker-py, side by side in one run:

- time-to-interactive (create + first command) from a warm pool, and with pools off, vs raw
  docker-py `containers.run` + `exec_run` of the same image;
- cold create vs raw `containers.run`;
- pause + resume vs raw pause/unpause.

.venv/bin/python bench/lifecycle.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import time

import docker
from common import api, live_server, summary

TEMPLATE = "python-3.13"  # the canonical name: the pools API answers it, not the alias python-3


def wait_pool_ready(url: str, key: str, size: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pools = api(url, key, "GET", "/api/v1/pools")[1]["pools"]
        pool = next((p for p in pools if p["template"] == TEMPLATE), None)
        if pool and pool["size"] >= size and pool["creating"] == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("the warm pool did not fill")


def time_to_interactive(url: str, key: str, repeat: int, *, warm: bool) -> tuple[list[float], list[str], int]:
    samples, made, hits = [], [], 0
    for _ in range(repeat):
        if warm:
            wait_pool_ready(url, key, 1)
        started = time.perf_counter()
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": TEMPLATE})
        _, result = api(url, key, "POST", f"/api/v1/sandboxes/{sandbox['id']}/exec", {"command": ["true"]})
        samples.append(time.perf_counter() - started)
        assert result["exitCode"] == 0, result
        hits += sandbox["warm"]
        made.append(sandbox["id"])
        api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
    return samples, made, hits


def raw_time_to_interactive(client: docker.DockerClient, image: str, repeat: int) -> list[float]:
    samples = []
    for n in range(repeat):
        started = time.perf_counter()
        container = client.containers.run(image, ["sleep", "infinity"], detach=True, name=f"vbx-bench-raw-{n}")
        container.exec_run(["true"])
        samples.append(time.perf_counter() - started)
        container.remove(force=True)
    return samples


def raw_create(client: docker.DockerClient, image: str, repeat: int) -> list[float]:
    samples = []
    for n in range(repeat):
        started = time.perf_counter()
        container = client.containers.run(image, ["sleep", "infinity"], detach=True, name=f"vbx-bench-cold-{n}")
        samples.append(time.perf_counter() - started)
        container.remove(force=True)
    return samples


def api_cold_create(url: str, key: str, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": TEMPLATE, "resources": {"cpu": 0.5}})
        samples.append(time.perf_counter() - started)
        assert sandbox["warm"] is False
        api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
    return samples


def pause_resume(url: str, key: str, client: docker.DockerClient, repeat: int) -> tuple[list[float], list[float]]:
    _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": TEMPLATE})
    base = f"/api/v1/sandboxes/{sandbox['id']}"
    api_samples, raw_samples = [], []
    container = client.containers.get(sandbox["id"])
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            container.pause()
            container.unpause()
            raw_samples.append(time.perf_counter() - started)
            started = time.perf_counter()
            api(url, key, "POST", f"{base}/pause")
            api(url, key, "POST", f"{base}/resume")
            api_samples.append(time.perf_counter() - started)
    finally:
        api(url, key, "DELETE", base)
    return api_samples, raw_samples


def ratio(row: dict, baseline: dict) -> dict:
    return {**row, "ratio_p50_vs_baseline": round(row["p50_ms"] / baseline["p50_ms"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    client = docker.from_env()
    rows = []
    pool_env = {"VIBEBOX_POOL_SIZES": f"{TEMPLATE}=3", "VIBEBOX_POOL_ENABLED": "1"}
    with live_server("bench", **pool_env) as server:
        server.manage("warmpools", "--fill")
        url, key = server.url, server.key
        image = api(url, key, "GET", f"/api/v1/templates/{TEMPLATE}")[1]["image"]
        raw_tti = summary(
            "docker-py containers.run + exec_run (baseline)", raw_time_to_interactive(client, image, args.repeat)
        )
        samples, _, hits = time_to_interactive(url, key, args.repeat, warm=True)
        warm = ratio(summary(f"API create + exec, warm pool ({hits}/{args.repeat} warm)", samples), raw_tti)
        raw_cold = summary("docker-py containers.run (baseline)", raw_create(client, image, args.repeat))
        cold = ratio(summary("API create, cold (no pool match)", api_cold_create(url, key, args.repeat)), raw_cold)
        api_pause, raw_pause = pause_resume(url, key, client, args.repeat)
        raw_pr = summary("docker-py pause + unpause (baseline)", raw_pause)
        pr = ratio(summary("API pause + resume", api_pause), raw_pr)
    with live_server("benchcold", VIBEBOX_POOL_ENABLED="0") as server:
        samples, _, hits = time_to_interactive(server.url, server.key, args.repeat, warm=False)
        no_pool = ratio(summary("API create + exec, pools off", samples), raw_tti)
    rows = {
        "time_to_interactive": [raw_tti, warm, no_pool],
        "create": [raw_cold, cold],
        "pause_resume": [raw_pr, pr],
    }
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
