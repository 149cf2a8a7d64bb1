"""API throughput: an authenticated `GET /api/v1/sandboxes?limit=50` (50 sandboxes listed) under 10
concurrent clients, against `/healthz` on the same server as the baseline (no authentication, no
database: what uvicorn and Django's middleware cost alone), measured with wrk (C, so the load
generator takes little of the two cores from the server).

.venv/bin/python bench/api_load.py [--workers 2] [--seconds 10] [--connections 10]

wrk comes from Debian (`apt-get install wrk`; done here when missing and running as root).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys

from common import live_server

SEED = """
from django.contrib.auth import get_user_model
from apps.marketplace.selectors import template_get
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Sandbox
owner = get_user_model().objects.get(username="{user}")
org = personal_org_ensure(user=owner)
template = template_get(name="python-3")  # the alias: whichever python-3.x it names
Sandbox.objects.bulk_create(
    [Sandbox(owner=owner, org=org, template=template, name=f"bench-{{i}}", image=template.image, cpu=1, memory=2**30,
             status="stopped") for i in range({count})]
)
"""

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=True)
    return shutil.which("wrk") or sys.exit("wrk is not installed")


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(number) * UNITS[unit], 2)


def wrk(url: str, *, seconds: int, connections: int, key: str = "") -> dict:
    command = [ensure_wrk(), "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if key:
        command[1:1] = ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": round(rate, 1),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    with live_server("benchapi", VIBEBOX_WEB_WORKERS=str(args.workers)) as server:
        server.manage("shell", "-c", SEED.format(user="benchapi", count=50))
        wrk(f"{server.url}/healthz", seconds=2, connections=args.connections)  # warm both workers up
        baseline = wrk(f"{server.url}/healthz", seconds=args.seconds, connections=args.connections)
        listing = wrk(
            f"{server.url}/api/v1/sandboxes?limit=50",
            seconds=args.seconds,
            connections=args.connections,
            key=server.key,
        )
    print(
        json.dumps(
            {
                "workers": args.workers,
                "connections": args.connections,
                "baseline_healthz": {"name": "GET /healthz (baseline)", **baseline},
                "list_sandboxes": {
                    "name": "GET /api/v1/sandboxes?limit=50, authenticated",
                    **listing,
                    "ratio_rate_vs_baseline": round(listing["requests_per_s"] / baseline["requests_per_s"], 3),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
