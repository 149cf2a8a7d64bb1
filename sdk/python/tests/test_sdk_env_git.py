"""Environment variables and git through the SDK."""

from __future__ import annotations

import pytest
from vibebox_sdk import ConflictError, EnvVarNotFoundError, GitError, ValidationError


def test_env(sandbox):
    sandbox.env.set("NODE_ENV", "production")
    values = sandbox.env.set({"A": "1", "B": "2"})
    assert {name: var.value for name, var in values.items()} == {"NODE_ENV": "production", "A": "1", "B": "2"}
    secret = sandbox.env.set("TOKEN", "s3cr3t-value", secret=True)["TOKEN"]
    assert (secret.value, secret.secret) == ("********", True)
    assert sandbox.env.get("NODE_ENV").value == "production"
    assert sandbox.exec("echo $NODE_ENV $A $TOKEN").stdout == "production 1 s3cr3t-value\n"
    sandbox.env.delete("A")
    with pytest.raises(EnvVarNotFoundError):
        sandbox.env.get("A")
    sandbox.env.set({"B": None})
    assert set(sandbox.env.all()) == {"NODE_ENV", "TOKEN"}
    sandbox.env.replace({"ONLY": "this"})
    assert set(sandbox.env.all()) == {"ONLY"}
    with pytest.raises(ValidationError) as info:
        sandbox.env.set("1BAD", "x")
    assert info.value.code == "invalid_env"


def test_git_in_the_sandbox(sandbox):
    sandbox.run(
        "git init -q -b main /repo && cd /repo && git config user.email a@b.c && git config user.name A"
        " && echo one > f.txt && git add f.txt && git commit -qm first",
        language="shell",
    )
    status = sandbox.git.status()
    assert (status["branch"], status["clean"]) == ("main", True)
    sandbox.files.write("/repo/f.txt", "two\n")
    diff = sandbox.git.diff()
    assert "+two" in diff["diff"]
    assert diff["files"][0]["path"] == "f.txt"
    checkout = sandbox.git.checkout("feature", create=True)
    assert checkout["branch"] == "feature"
    commit = sandbox.git.commit("feat: two", all=True)
    assert len(commit["commit"]) == 40
    assert sandbox.git.log(limit=1)["commits"][0]["message"].startswith("feat: two")
    assert {b["name"] for b in sandbox.git.branches()["branches"]} >= {"main", "feature"}
    with pytest.raises(ConflictError) as info:
        sandbox.git.commit("nothing")
    assert info.value.code == "nothing_to_commit"
    with pytest.raises(GitError):
        sandbox.git.push()  # no remote configured
    with pytest.raises(ValidationError) as info:
        sandbox.git.clone("file:///etc")
    assert info.value.code == "invalid_git_url"
