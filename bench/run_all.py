"""`make bench`: every benchmark, one after the other, then one table of medians, p95 and ratios.

Each benchmark prints JSON (rows with `name`, `p50_ms`, `p95_ms` and, against the baseline
measured in the same run, `ratio_p50_vs_baseline`); this collects the rows. Pass `--full` for the
density run with 1000 sandboxes.

.venv/bin/python bench/run_all.py [--full]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rows(value) -> list[dict]:
    """Every measured row in a benchmark's JSON, wherever it sits."""
    if isinstance(value, dict):
        if "name" in value and "p50_ms" in value:
            return [value]
        return [row for item in value.values() for row in rows(item)]
    if isinstance(value, list):
        return [row for item in value for row in rows(item)]
    return []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="density with 1000 sandboxes")
    args = parser.parse_args()
    runs = [
        ["lifecycle.py"],
        ["exec.py"],
        ["files.py"],
        ["terminal.py"],
        ["contexts.py"],
        ["preview.py"],
        ["gateway.py"],
        ["sdk_typescript.py"],
        ["api_load.py"],
        ["graphql_vs_rest.py"],
        ["render.py"],
        ["scale.py", *(["--n", "1000"] if args.full else [])],
    ]
    table, extras = [], []
    for run in runs:
        print(f"running {' '.join(run)} ...", file=sys.stderr)
        done = subprocess.run([sys.executable, *run], cwd=HERE, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout)
        if run[0] == "api_load.py":  # throughput, not a latency row: a line of its own
            base, listing = result["baseline_healthz"], result["list_sandboxes"]
            extras.append(
                f"api throughput ({result['workers']} workers, {result['connections']} clients): "
                + "; ".join(
                    f"{row['name']}: {row['requests_per_s']} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
                    for row in (base, listing)
                )
            )
            continue
        table.extend((run[0], row) for row in rows(result))
        if isinstance(result, dict) and "density" in result:
            density = result["density"]
            extras.append(
                f"density: {density['sandboxes']} idle sandboxes, {density['memory_in_sandbox_kib_each']} KiB "
                f"in each sandbox + {density['engine_shim_kib_each']} KiB of engine shim each"
            )
        if run[0] == "files.py":
            extras.append(f"files: {json.dumps(result)}")
    print("| benchmark | what | p50 ms | p95 ms | ratio p50 vs baseline | total s |")
    print("|---|---|---|---|---|---|")
    for script, row in table:
        ratio = row.get("ratio_p50_vs_baseline", row.get("ratio_total_vs_baseline", "baseline"))
        print(f"| {script} | {row['name']} | {row['p50_ms']} | {row['p95_ms']} | {ratio} | {row.get('total_s', '')} |")
    for line in extras:
        print(f"\n{line}")


if __name__ == "__main__":
    main()
