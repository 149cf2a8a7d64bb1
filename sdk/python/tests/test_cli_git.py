"""The `vibebox` command, git: against a repository made inside the sandbox (no network)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from conftest import cli
from vibebox_sdk import Sandbox, VibeBox


def data(env: dict[str, str], *args: str) -> dict:
    result = cli(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def repo_box(vb: VibeBox) -> Iterator[Sandbox]:
    """A sandbox with a fresh repository at /repo (branch main) and one untracked file."""
    sandbox = vb.sandbox("python-3", name=f"cli-git-{uuid.uuid4().hex[:6]}")
    sandbox.run("git init -q -b main /repo && echo one > /repo/f.txt")
    yield sandbox
    sandbox.destroy()


def test_git_workflow(cli_env, repo_box):
    name = repo_box.name
    status = data(cli_env, "git", "status", name)
    assert status["branch"] == "main" and status["untracked"] == ["f.txt"] and status["clean"] is False
    assert "untracked:" in cli(cli_env, "git", "status", name).stdout

    first = data(cli_env, "git", "commit", name, "feat: first", "--all")
    assert first["message"] == "feat: first" and len(first["commit"]) == 40
    assert cli(cli_env, "git", "status", name).stdout.endswith("nothing to commit, working tree clean\n")

    repo_box.run("echo two >> /repo/f.txt")
    diff = cli(cli_env, "git", "diff", name)
    assert diff.returncode == 0 and "+two" in diff.stdout and "diff --git a/f.txt b/f.txt" in diff.stdout
    files = data(cli_env, "git", "diff", name)["files"]
    assert files == [{"path": "f.txt", "additions": 1, "deletions": 0, "binary": False}]
    assert data(cli_env, "git", "diff", name, "--staged")["diff"] == ""

    branch = data(cli_env, "git", "checkout", name, "feature-branch", "--create")
    assert branch["branch"] == "feature-branch"
    second = cli(cli_env, "git", "commit", name, "fix: second", "-a", "--author", "Ada <ada@example.com>")
    assert second.returncode == 0 and "fix: second" in second.stdout
    log = data(cli_env, "git", "log", name)["commits"]
    assert [c["message"].strip() for c in log[:2]] == ["fix: second", "feat: first"]
    assert log[0]["author"]["email"] == "ada@example.com"
    assert "feat: first" in cli(cli_env, "git", "log", name, "-n", "5").stdout

    back = cli(cli_env, "git", "checkout", name, "main")
    assert back.returncode == 0 and back.stdout.startswith("on main")
    assert repo_box.run("cat /repo/f.txt").stdout == "one\n"

    nothing = cli(cli_env, "git", "commit", name, "empty")
    assert nothing.returncode == 1 and "(nothing_to_commit)" in nothing.stderr
    assert cli(cli_env, "git", "commit", name, "x", "--author", "nobody").returncode == 2


def test_git_path_option_and_errors(cli_env, repo_box):
    name = repo_box.name
    repo_box.run("git init -q -b trunk /workspace/other")
    assert data(cli_env, "git", "status", name, "--path", "/workspace/other")["branch"] == "trunk"
    no_repo = cli(cli_env, "git", "status", name, "--path", "/tmp")
    assert no_repo.returncode == 1 and "(not_a_git_repository)" in no_repo.stderr
    # clone, pull and push need a remote; without network only the refusals can be checked
    clone = cli(cli_env, "git", "clone", name, "file:///repo", "--path", "/workspace/clone")
    assert clone.returncode == 1 and "(invalid_git_url)" in clone.stderr
    assert cli(cli_env, "git", "pull", name).returncode == 1  # no remote: git_error
    push = cli(cli_env, "git", "push", name, "--remote", "origin", "--set-upstream")
    assert push.returncode == 1 and "error:" in push.stderr
    assert cli(cli_env, "git", "status", "no-such-sandbox-t").returncode == 3
