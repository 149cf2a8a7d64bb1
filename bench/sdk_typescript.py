"""The TypeScript SDK's overhead: its calls timed in Node against raw docker-py in the same run.

Rows: `sandbox.exec(['true'])` (HTTP), the same streamed over the WebSocket, `sandbox.run('1')`
(Python code with its value), against docker-py's exec_run on the same container; and create +
exec + destroy from the warm pool against docker-py's containers.run + exec_run + remove. Also
the Node process's RSS after the run.

.venv/bin/python bench/sdk_typescript.py [--repeat 50]
"""

import argparse
import json
import os
import subprocess
from pathlib import Path

import docker
from common import ROOT, api, live_server, summary, timed

HERE = Path(__file__).resolve().parent
PKG = ROOT / "sdk" / "typescript"


def build() -> None:
    subprocess.run(["bash", str(ROOT / "scripts/typescript-setup.sh")], check=True)
    subprocess.run(["node", "node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], cwd=PKG, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    build()
    client = docker.from_env()
    with live_server("bench", VIBEBOX_POOL_ENABLED="1", VIBEBOX_POOL_SIZES="python-3=3") as server:
        server.manage("warmpools", "--fill")
        url, key = server.url, server.key
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": "python-3"})
        try:
            container = client.containers.get(sandbox["id"])
            image = container.image.id
            for _ in range(5):
                container.exec_run(["true"])
            baseline = summary("docker-py exec_run(['true'])", timed(lambda: container.exec_run(["true"]), args.repeat))
            env = {**os.environ, "VIBEBOX_API_URL": url, "VIBEBOX_API_KEY": key}
            done = subprocess.run(
                ["node", str(HERE / "sdk_typescript.mjs"), str(args.repeat), sandbox["id"]],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=900,
            )
            node = json.loads(done.stdout)

            def lifecycle() -> None:
                box = client.containers.run(image, ["sleep", "infinity"], detach=True, labels={"vibebox.bench": "1"})
                box.exec_run(["true"])
                box.remove(force=True)

            small = max(5, args.repeat // 5)
            baseline_lifecycle = summary("docker-py run + exec_run + remove", timed(lifecycle, small))
        finally:
            api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
    rows = [
        summary("TS SDK sandbox.exec(['true'])", node["exec"]),
        summary("TS SDK exec(['true'], {stream: true})", node["stream"]),
        summary("TS SDK sandbox.run('1') (Python value)", node["run"]),
    ]
    for row in rows:
        row["ratio_p50_vs_baseline"] = round(row["p50_ms"] / baseline["p50_ms"], 2)
    create = summary("TS SDK vb.sandbox() + exec + destroy (warm pool)", node["lifecycle"])
    create["ratio_p50_vs_baseline"] = round(create["p50_ms"] / baseline_lifecycle["p50_ms"], 2)
    print(
        json.dumps(
            {
                "baseline": baseline,
                "results": rows,
                "lifecycle": {"baseline": baseline_lifecycle, "results": [create]},
                "node_rss_mib": round(node["rssBytes"] / 2**20, 1),
                "node_heap_used_mib": round(node["heapUsedBytes"] / 2**20, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
