"""`vibebox git hook add|list|rm` and the SDK's sandbox.git.add_hook/hooks/remove_hook, against a live
server; the hook's URL is then called the way GitHub calls it (the pull itself: tests/sandboxes/test_git_hooks.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from conftest import cli
from vibebox_sdk import Sandbox, VibeBox


def data(env: dict[str, str], *args: str) -> dict | list:
    result = cli(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def repo_box(vb: VibeBox) -> Iterator[Sandbox]:
    sandbox = vb.sandbox("python-3", name=f"cli-hook-{uuid.uuid4().hex[:6]}")
    sandbox.run("git init -q -b main /repo && git -C /repo -c user.name=a -c user.email=a@b commit -qm 1 --allow-empty")
    yield sandbox
    sandbox.destroy()


def github_push(hook: dict, branch: str) -> httpx.Response:
    body = json.dumps({"ref": f"refs/heads/{branch}", "after": uuid.uuid4().hex + "00000000"}).encode()
    signature = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
    }
    return httpx.post(hook["url"], content=body, headers=headers, timeout=30)


def test_hook_add_list_rm(cli_env, repo_box):
    name = repo_box.name
    refused = cli(cli_env, "git", "hook", "add", name)  # not cloned through the API: name the branch
    assert refused.returncode != 0 and "(validation_error)" in refused.stderr

    hook = data(cli_env, "git", "hook", "add", name, "--branch", "main", "--provider", "github")
    assert hook["branch"] == "main" and hook["path"] == "/repo" and hook["secret"].startswith("vbgh_")
    assert hook["url"].startswith(cli_env["VIBEBOX_API_URL"]) and hook["url"].endswith(f"/git-hooks/{hook['id']}")

    answer = github_push(hook, "main")
    assert answer.status_code == 202 and answer.json()["status"] == "queued", answer.text
    assert github_push(hook, "develop").json()["status"] == "ignored"
    wrong = github_push({**hook, "secret": "vbgh_wrong"}, "main")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "git_hook_signature_invalid"
    # The body cap is enforced by the server's ASGI stack before the body is read.
    big = httpx.post(hook["url"], content=b"{" + b" " * (2 * 1024 * 1024) + b"}", timeout=30,
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    listed = data(cli_env, "git", "hook", "list", name)
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    assert listed[0]["deliveries"][0]["status"] == "queued"
    table = cli(cli_env, "git", "hook", "list", name)
    assert table.returncode == 0 and hook["id"] in table.stdout and "queued" in table.stdout
    assert [h["id"] for h in repo_box.git.hooks()] == [hook["id"]]  # the SDK's own call

    removed = cli(cli_env, "git", "hook", "rm", name, hook["id"])
    assert removed.returncode == 0, removed.stderr
    assert data(cli_env, "git", "hook", "list", name) == []
    assert github_push(hook, "main").status_code == 404


def test_sdk_add_and_remove_hook(repo_box):
    hook = repo_box.git.add_hook(branch="main", provider="gitlab")
    assert hook["provider"] == "gitlab" and hook["secret"]
    token = {"X-Gitlab-Token": hook["secret"], "X-Gitlab-Event": "Push Hook", "Content-Type": "application/json"}
    body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40})
    assert httpx.post(hook["url"], content=body, headers=token, timeout=30).status_code == 202
    repo_box.git.remove_hook(hook["id"])
    assert repo_box.git.hooks() == []
