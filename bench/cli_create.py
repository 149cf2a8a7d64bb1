"""`vibebox create` → a shell prompt (the product spec's Phase 3 criterion: under 10 s cold, under
1 s warm), side by side with raw `docker run -it <image> bash` to its prompt in the same run.

Each sample runs the installed `vibebox` command in a pseudo-terminal (pexpect), as a person
would type it, and stops the clock when the sandbox's shell prints its `$ ` prompt: the CLI's own
start (Python, imports), the create request, the terminal WebSocket and bash's start are all in
it. Warm: the template's warm pool has a container ready (refilled between samples); cold: pools
off, so every create starts a container.

.venv/bin/python bench/cli_create.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

import pexpect
from common import PYTHON, ROOT, api, live_server, summary
from lifecycle import wait_pool_ready

TEMPLATE = "python-3.13"
VIBEBOX = str(PYTHON.with_name("vibebox"))
PROMPT = r"\$ "


def _cli_env(url: str, key: str, config: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "sdk" / "python" / "src"),  # this checkout's CLI
        "VIBEBOX_API_URL": url,
        "VIBEBOX_API_KEY": key,
        "XDG_CONFIG_HOME": config,
        "NO_COLOR": "1",
    }


def to_prompt(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds from starting `argv` in a terminal to the shell's prompt; then `exit`."""
    started = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], env=env, timeout=120, encoding="utf-8")
    try:
        child.expect(PROMPT)
        elapsed = time.perf_counter() - started
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return elapsed


def vibebox_create(url: str, key: str, repeat: int, *, warm: bool, config: str) -> tuple[list[float], int]:
    env = _cli_env(url, key, config)
    samples, hits = [], 0
    for _ in range(repeat):
        if warm:
            wait_pool_ready(url, key, 1)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        samples.append(to_prompt([VIBEBOX, "create", TEMPLATE, name], env))
        _, sandbox = api(url, key, "GET", f"/api/v1/sandboxes/{name}")
        hits += sandbox["warm"]
        api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
    return samples, hits


def cli_start(url: str, key: str, repeat: int, *, config: str, argv: list[str] | None = None) -> list[float]:
    """The CLI's own start: `vibebox --version` (no request); with `argv`, that command instead
    (the baseline: the bare interpreter, `python -c pass`)."""
    env = _cli_env(url, key, config)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv or [VIBEBOX, "--version"], env=env, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return samples


def docker_run(image: str, repeat: int) -> list[float]:
    return [to_prompt(["docker", "run", "--rm", "-it", image, "bash"]) for _ in range(repeat)]


def ratio(row: dict, baseline: dict) -> dict:
    return {**row, "ratio_p50_vs_baseline": round(row["p50_ms"] / baseline["p50_ms"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"vibebox-bench-cli-{uuid.uuid4().hex[:6]}")
    pool_env = {"VIBEBOX_POOL_SIZES": f"{TEMPLATE}=2", "VIBEBOX_POOL_ENABLED": "1"}
    with live_server("benchcli", **pool_env) as server:
        server.manage("warmpools", "--fill")
        url, key = server.url, server.key
        image = api(url, key, "GET", f"/api/v1/templates/{TEMPLATE}")[1]["image"]
        raw = summary("docker run -it <image> bash → prompt (baseline)", docker_run(image, args.repeat))
        python = summary(
            "python -c pass (the interpreter's start: baseline)",
            cli_start(url, key, args.repeat, config=config, argv=[str(PYTHON), "-c", "pass"]),
        )
        start = ratio(
            summary("vibebox --version (the CLI's own start)", cli_start(url, key, args.repeat, config=config)), python
        )
        samples, hits = vibebox_create(url, key, args.repeat, warm=True, config=config)
        warm = ratio(summary(f"vibebox create → prompt, warm pool ({hits}/{args.repeat} warm)", samples), raw)
        print(json.dumps([raw, python, start, warm]), file=sys.stderr, flush=True)  # kept if the cold half fails
    with live_server("benchclic", VIBEBOX_POOL_ENABLED="0") as server:
        samples, hits = vibebox_create(server.url, server.key, args.repeat, warm=False, config=config)
        cold = ratio(summary(f"vibebox create → prompt, pools off ({hits} warm)", samples), raw)
    print(json.dumps({"cli_create": [raw, python, start, warm, cold]}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
