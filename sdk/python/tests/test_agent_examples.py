"""The orchestrator's examples (sdk/python/examples) run end to end against the live server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(example: str, env: dict, cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def env(cli_env):
    return {**cli_env, "PYTHONWARNINGS": "ignore"}


def test_parallel_testing(env, tmp_path):
    output = run("parallel_testing.py", env, tmp_path, "--workers", "3")
    assert "9/9 test files passed on 3 sandboxes" in output


def test_distributed_build(env, tmp_path):
    output = run("distributed_build.py", env, tmp_path, "--workers", "2", "--out", "dist")
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["cli.js", "server.js", "shared.js", "worker.js"]
    assert "hello" in (tmp_path / "dist" / "shared.js").read_text()
    assert len({line.split("(")[-1] for line in output.splitlines()}) <= 2  # two workers built everything


def test_multi_repo_analysis(env, tmp_path):
    output = run("multi_repo_analysis.py", env, tmp_path)
    assert "total: 3 repos, 6 commits" in output
    assert "'py': 1" in output and "'js': 2" in output and "'md': 3" in output
