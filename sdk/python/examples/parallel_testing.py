"""The same Node project's tests, sharded across N sandboxes in parallel.

    python parallel_testing.py [PROJECT_DIR] [--workers 3]

PROJECT_DIR holds a Node project whose tests are `test/*.test.js` (node:test). Without one, a demo
project with 9 test files is made. Each worker sandbox gets the project once and runs its share of
the test files; the results come back in order. Needs VIBEBOX_API_URL and VIBEBOX_API_KEY.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from vibebox_sdk.agent import VibeBoxAgent


def demo_project(root: Path, files: int = 9) -> Path:
    (root / "test").mkdir(parents=True)
    (root / "package.json").write_text('{"name": "demo", "version": "1.0.0", "type": "commonjs"}\n')
    (root / "sum.js").write_text("module.exports = (a, b) => a + b;\n")
    for n in range(files):
        (root / "test" / f"sum{n}.test.js").write_text(
            "const test = require('node:test');\nconst assert = require('node:assert');\n"
            f"const sum = require('../sum');\ntest('sum {n}', () => assert.strictEqual(sum({n}, 1), {n + 1}));\n"
        )
    return root


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?")
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(args.project) if args.project else demo_project(Path(scratch) / "demo")
        test_files = sorted(p.relative_to(project).as_posix() for p in (project / "test").glob("*.test.js"))
        uploaded: set[str] = set()

        def run_test(test_file: str, sandbox) -> dict:
            if sandbox.id not in uploaded:  # each worker's sandbox gets the project once
                sandbox.files.upload(project, "/workspace/project", exclude=["node_modules", ".git"])
                uploaded.add(sandbox.id)
            result = sandbox.exec(f"node --test {test_file}", cwd="/workspace/project", timeout=300)
            return {"file": test_file, "passed": result.exit_code == 0, "sandbox": sandbox.id}

        with VibeBoxAgent(max_parallel_sandboxes=args.workers) as agent:
            results = agent.map(test_files, run_test, parallelism=args.workers, template="node-20")
    for result in results:
        print(f"{'PASS' if result['passed'] else 'FAIL'}  {result['file']}  ({result['sandbox']})")
    summary = {
        "files": len(results),
        "passed": sum(r["passed"] for r in results),
        "sandboxes": len({r["sandbox"] for r in results}),
    }
    print(f"{summary['passed']}/{summary['files']} test files passed on {summary['sandboxes']} sandboxes")
    return summary


if __name__ == "__main__":
    main()
