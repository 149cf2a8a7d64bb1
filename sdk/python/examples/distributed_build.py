"""Build several targets at once on a pool of worker sandboxes and collect the artifacts.

    python distributed_build.py [--workers 2] [--out dist]

Each target is a small TypeScript entry point bundled and minified with esbuild (installed in the
node-20 template); the pool keeps its sandboxes between jobs (`persistent=True`), so the second
build on a worker starts warm. Artifacts are downloaded into --out. Needs VIBEBOX_API_URL and
VIBEBOX_API_KEY.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vibebox_sdk.agent import VibeBoxAgent

TARGETS = {
    "cli": "export const main = (args: string[]): number => args.length;\nconsole.log(main(process.argv));\n",
    "server": "const port: number = 3000;\nconsole.log(`listening on ${port}`);\n",
    "worker": "type Job = { id: number };\nconst jobs: Job[] = [{ id: 1 }];\nconsole.log(jobs.length);\n",
    "shared": "export function greet(name: string): string { return `hello ${name}`; }\n",
}


def build(sandbox, name: str, source: str, out: Path) -> dict:
    sandbox.files.write(f"/workspace/src/{name}.ts", source)
    result = sandbox.exec(
        f"esbuild src/{name}.ts --bundle --minify --platform=node --outfile=dist/{name}.js", timeout=120
    )
    if result.exit_code != 0:
        raise RuntimeError(f"{name}: {result.stderr}")
    artifact = sandbox.files.download(f"/workspace/dist/{name}.js", out / f"{name}.js")
    return {"target": name, "bytes": artifact.stat().st_size, "sandbox": sandbox.id}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="dist")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with VibeBoxAgent() as agent, agent.create_pool(workers=args.workers, template="node-20") as pool:
        for name, source in TARGETS.items():
            pool.submit(build, name, source, out)
        built = pool.wait_for_completion(timeout=600)
    for item in built:
        print(f"{item['target']:8} {item['bytes']:6} bytes  ({item['sandbox']})")
    return built


if __name__ == "__main__":
    main()
