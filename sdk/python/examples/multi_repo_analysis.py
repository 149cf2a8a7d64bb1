"""Analyse several git repositories in parallel sandboxes, then reduce the results to one summary.

    python multi_repo_analysis.py [REPO ...] [--parallelism 3]

Each REPO is a local git repository (with its .git); without any, three demo repositories are
made. Each goes to a sandbox of its own (uploaded with its history), where git and the shell count
commits, files by extension and lines; `reduce` sums them up. To clone from a git server instead,
pass `git=<url>` through `agent.map(..., git=url)` (the server's sandboxes must reach it; see
docs/agents.md). Needs VIBEBOX_API_URL and VIBEBOX_API_KEY.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from vibebox_sdk.agent import VibeBoxAgent

ANALYSE = r"""set -e
cd /workspace/repo
echo "commits=$(git log --oneline | wc -l)"
echo "files=$(git ls-files | wc -l)"
echo "lines=$(git ls-files -z | xargs -0 cat 2>/dev/null | wc -l)"
git ls-files | sed -n 's/.*\.\([A-Za-z0-9]*\)$/ext=\1/p' | sort | uniq -c | awk '{print $2 "=" $1}'
"""


def demo_repos(root: Path) -> list[Path]:
    repos = []
    for n, (name, ext) in enumerate([("alpha", "py"), ("beta", "js"), ("gamma", "md")]):
        repo = root / name
        repo.mkdir(parents=True)
        env = {"GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid"}
        env |= {"GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid", "PATH": "/usr/bin:/bin"}
        subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
        for commit in range(n + 1):
            (repo / f"file{commit}.{ext}").write_text("\n".join(f"line {i}" for i in range(10 * (commit + 1))) + "\n")
            subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
            subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", f"commit {commit}"], check=True, env=env)
        repos.append(repo)
    return repos


def analyse(repo: Path, sandbox) -> dict:
    sandbox.files.upload(repo, "/workspace/repo")
    output = sandbox.exec(ANALYSE, timeout=120)
    if output.exit_code != 0:
        raise RuntimeError(output.stderr)
    found: dict = {"repo": repo.name, "extensions": {}}
    for line in output.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == "ext":  # ext=<extension>=<files>
            extension, _, count = value.partition("=")
            found["extensions"][extension] = int(count)
        elif key in ("commits", "files", "lines"):
            found[key] = int(value)
    return found


def combine(total: dict, one: dict) -> dict:
    for key in ("commits", "files", "lines"):
        total[key] = total.get(key, 0) + one[key]
    for ext, count in one["extensions"].items():
        total.setdefault("extensions", {})[ext] = total.get("extensions", {}).get(ext, 0) + count
    total["repos"] = total.get("repos", 0) + 1
    return total


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repos", nargs="*")
    parser.add_argument("--parallelism", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        repos = [Path(r) for r in args.repos] or demo_repos(Path(scratch))
        with VibeBoxAgent() as agent:
            analyses = agent.map(repos, analyse, parallelism=args.parallelism, template="python-3")
            summary = agent.reduce(analyses, combine, {})
    for one in analyses:
        print(f"{one['repo']:10} {one['commits']:4} commits {one['files']:5} files {one['lines']:7} lines")
    print(
        f"total: {summary['repos']} repos, {summary['commits']} commits, {summary['lines']} lines, "
        f"by extension {summary['extensions']}"
    )
    return summary


if __name__ == "__main__":
    main()
