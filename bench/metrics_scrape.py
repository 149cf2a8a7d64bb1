"""What scraping GET /metrics costs: the server's CPU time under a steady API load (an
authenticated `GET /api/v1/sandboxes?limit=50` at a fixed rate) without scraping, and with a
scraper at 10 scrapes a second on top, in alternating rounds of the same run. Two uvicorn workers
in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, as `make run` sets it), 50 sandbox rows with meter
samples so the scrape's database gauges have rows to read.

.venv/bin/python bench/metrics_scrape.py [--seconds 10] [--rounds 2] [--rate 20] [--scrapes 10]

CPU is the server's (the uvicorn master and its workers: utime + stime from /proc), per wall
second; the load generator and the scraper run in this process and are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import urllib.request

from common import live_server, percentile

SEED = """
from django.contrib.auth import get_user_model
from django.utils import timezone
from apps.billing.models import MeterSample
from apps.marketplace.selectors import template_get
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Sandbox
owner = get_user_model().objects.get(username="{user}")
org = personal_org_ensure(user=owner)
template = template_get(name="python-3")  # the alias: whichever python-3.x it names
rows = Sandbox.objects.bulk_create(
    [Sandbox(owner=owner, org=org, template=template, name=f"bench-{{i}}", image=template.image, cpu=1, memory=2**30,
             status="stopped") for i in range({count})]
)
now = timezone.now()
MeterSample.objects.bulk_create(
    [MeterSample(sandbox=row, org=org, taken_at=now, state="stopped", workspace_bytes=4096) for row in rows]
)
"""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its children (uvicorn's workers), in seconds."""
    total = 0.0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            pids += [int(child) for child in handle.read().split()]
    except OSError:
        pass
    for one in pids:
        try:
            with open(f"/proc/{one}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def paced(rate: float, stop: threading.Event, request, latencies: list[float] | None = None) -> None:
    """Calls `request` `rate` times a second until `stop`."""
    interval, due = 1 / rate, time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        request()
        if latencies is not None:
            latencies.append(time.monotonic() - started)
        due += interval
        pause = due - time.monotonic()
        if pause > 0:
            stop.wait(pause)
        else:
            due = time.monotonic()  # behind: do not burst to catch up


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20, help="API requests per second (the steady load)")
    parser.add_argument("--scrapes", type=float, default=10, help="scrapes per second")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="vibebox-metrics-bench-") as metrics_dir,
        live_server("benchmet", VIBEBOX_WEB_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=metrics_dir) as server,
    ):
        server.manage("shell", "-c", SEED.format(user="benchmet", count=50))
        listing = urllib.request.Request(
            f"{server.url}/api/v1/sandboxes?limit=50", headers={"Authorization": f"Bearer {server.key}"}
        )

        def load():
            with urllib.request.urlopen(listing, timeout=30) as response:
                response.read()

        def scrape():
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as response:
                return response.read()

        for _ in range(20):  # warm both workers up (imports, caches, the scrape's first queries)
            load()
            scrape()
        size = len(scrape())
        phases: dict[str, list[float]] = {"without": [], "with": []}
        scrape_latency: list[float] = []
        for _ in range(args.rounds):
            for phase in ("without", "with"):
                stop = threading.Event()
                threads = [threading.Thread(target=paced, args=(args.rate, stop, load))]
                if phase == "with":
                    threads.append(threading.Thread(target=paced, args=(args.scrapes, stop, scrape, scrape_latency)))
                before, started = cpu_seconds(server.pid), time.monotonic()
                for thread in threads:
                    thread.start()
                stop.wait(args.seconds)
                stop.set()
                for thread in threads:
                    thread.join()
                phases[phase].append((cpu_seconds(server.pid) - before) / (time.monotonic() - started))
    without = sum(phases["without"]) / len(phases["without"])
    with_scrapes = sum(phases["with"]) / len(phases["with"])
    cores = os.cpu_count() or 1
    print(
        json.dumps(
            {
                "workers": 2,
                "api_rate_per_s": args.rate,
                "scrapes_per_s": args.scrapes,
                "seconds_per_phase": args.seconds,
                "rounds": args.rounds,
                "exposition_bytes": size,
                "scrape_p50_ms": round(percentile(scrape_latency, 50) * 1000, 2),
                "scrape_p95_ms": round(percentile(scrape_latency, 95) * 1000, 2),
                "server_cpu_per_s_without": [round(v, 4) for v in phases["without"]],
                "server_cpu_per_s_with": [round(v, 4) for v in phases["with"]],
                "ratio_cpu_with_vs_without": round(with_scrapes / without, 3),
                "added_cpu_percent_of_one_core": round((with_scrapes - without) * 100, 2),
                "added_cpu_percent_of_machine": round((with_scrapes - without) * 100 / cores, 2),
                "cores": cores,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
