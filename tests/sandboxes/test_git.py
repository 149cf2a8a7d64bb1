"""Git in sandboxes against local git servers (smart HTTP + token, SSH + key), real engine."""

import pytest

from apps.sandboxes.models import Sandbox, SandboxGitConfig
from tests.conftest import INSTANCE_LABEL


def git_api(api_client, sandbox_id, action, expect=200, method="post", **body):
    url = f"/api/v1/sandboxes/{sandbox_id}/git/{action}"
    if method == "get":
        query = "&".join(f"{k}={v}" for k, v in body.items())
        response = api_client.get(f"{url}?{query}" if query else url)
    else:
        response = api_client.post(url, body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def sh(api_client, sandbox_id, command, cwd="/repo"):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, "cwd": cwd}, format="json")
    return response.json()


def test_product_spec_workflow(api_client, create_sandbox, git):
    """Create with git, npm install, npm test, commit with all, push: the server has the commit."""
    sandbox = create_sandbox(template="node-20", git={"url": git.http_url, "auth": git.token_auth(persist=True)})
    assert sandbox["status"] == "running"
    install = sh(api_client, sandbox["id"], "npm install --no-audit --no-fund --offline")
    assert install["exitCode"] == 0, install
    test = sh(api_client, sandbox["id"], "npm test")
    assert test["exitCode"] == 0 and "tests passed" in test["stdout"]
    sh(api_client, sandbox["id"], "echo 'node_modules' > .gitignore")
    commit = git_api(api_client, sandbox["id"], "commit", message="test: add lockfile", all=True)
    assert len(commit["commit"]) == 40
    pushed = git_api(api_client, sandbox["id"], "push")  # kept credentials (persist) are used
    assert pushed["branch"] == "main" and git.http_ref("main") == commit["commit"]
    log = git_api(api_client, sandbox["id"], "log", method="get", limit=5)
    assert [c["message"] for c in log["commits"]][:2] == ["test: add lockfile", "initial project"]


def test_clone_at_create_with_branch_depth_path_and_url_credentials(api_client, create_sandbox, git, docker_client):
    url = git.http_url.replace("http://", f"http://{git.user}:{git.token}@")
    sandbox = create_sandbox(template="python-3", git={"url": url, "branch": "develop", "depth": 1, "path": "proj"})
    command = "cat DEVELOP.md; git rev-parse --is-shallow-repository; git branch --show-current"
    out = sh(api_client, sandbox["id"], command, cwd="/workspace/proj")["stdout"]
    assert out == "develop branch\ntrue\ndevelop\n"
    config = sh(api_client, sandbox["id"], "cat .git/config", cwd="/workspace/proj")["stdout"]
    assert git.token not in config and "http://git-http:8080/project.git" in config
    stored = SandboxGitConfig.objects.get(sandbox_id=sandbox["id"])
    assert stored.repo_url == git.http_url and stored.branch == "develop" and stored.auth == ""
    assert stored.path == "/workspace/proj"


def test_clone_at_create_shorthand(api_client, create_sandbox, git):
    url = git.http_url.replace("http://", f"http://{git.user}:{git.token}@")
    sandbox = create_sandbox(template="python-3", git=url)  # the product spec's `git: "<url>"`
    history = sh(api_client, sandbox["id"], "git log --format=%s")["stdout"].splitlines()
    assert history[-1] == "initial project"  # other tests may have pushed on top of it
    assert git_api(api_client, sandbox["id"], "status", method="get")["branch"] == "main"


def test_failed_clone_at_create_leaves_nothing(api_client, git, templates, docker_client):
    bad = {"url": git.http_url, "auth": {"type": "token", "username": git.user, "token": "wrong-token-123"}}
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3", "git": bad}, format="json")
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "git_clone_failed" and "wrong-token-123" not in response.content.decode()
    assert Sandbox.objects.count() == 0
    assert not docker_client.containers.list(all=True, filters={"label": INSTANCE_LABEL})
    # unless the caller says a failed clone is fine
    response = api_client.post(
        "/api/v1/sandboxes", {"template": "python-3", "git": {**bad, "failOnError": False}}, format="json"
    )
    assert response.status_code == 201 and response.json()["statusReason"].startswith("git clone failed")
    api_client.delete(f"/api/v1/sandboxes/{response.json()['id']}")


def test_operations_after_clone(api_client, create_sandbox, git):
    sandbox_id = create_sandbox(template="python-3")["id"]
    missing = git_api(api_client, sandbox_id, "status", expect=400, method="get")
    assert missing["error"]["code"] == "not_a_git_repository"
    cloned = git_api(api_client, sandbox_id, "clone", url=git.http_url, auth=git.token_auth())
    assert cloned["path"] == "/repo" and cloned["branch"] == "main"

    sh(api_client, sandbox_id, "echo change >> test.js && echo new > new.txt && git add new.txt")
    status = git_api(api_client, sandbox_id, "status", method="get")
    assert status["branch"] == "main" and status["upstream"] == "origin/main"
    assert status["staged"] == [{"path": "new.txt", "status": "A"}]
    assert status["unstaged"] == [{"path": "test.js", "status": "M"}] and status["clean"] is False

    diff = git_api(api_client, sandbox_id, "diff", method="get")
    assert "+change" in diff["diff"] and diff["files"] == [
        {"path": "test.js", "additions": 1, "deletions": 0, "binary": False}
    ]
    staged = git_api(api_client, sandbox_id, "diff", method="get", staged="true")
    assert staged["files"][0]["path"] == "new.txt"

    commit = git_api(api_client, sandbox_id, "commit", message="feat: change", all=True,
                     author={"name": "Ada", "email": "ada@example.test"})  # fmt: skip
    log = git_api(api_client, sandbox_id, "log", method="get", limit=1)["commits"][0]
    assert log["sha"] == commit["commit"] and log["author"] == {"name": "Ada", "email": "ada@example.test"}
    nothing = git_api(api_client, sandbox_id, "commit", expect=409, message="again")
    assert nothing["error"]["code"] == "nothing_to_commit"
    status = git_api(api_client, sandbox_id, "status", method="get")
    assert status["ahead"] == 1 and status["clean"] is True

    git_api(api_client, sandbox_id, "checkout", branch="feature/x", create=True)
    branches = git_api(api_client, sandbox_id, "branches", method="get")
    assert branches["current"] == "feature/x"
    assert {"main", "feature/x", "origin/develop"} <= {b["name"] for b in branches["branches"]}
    git_api(api_client, sandbox_id, "checkout", branch="develop")
    assert sh(api_client, sandbox_id, "cat DEVELOP.md")["stdout"] == "develop branch\n"

    pushed = git_api(api_client, sandbox_id, "push", branch="develop", auth=git.token_auth())
    assert git.http_ref("develop") == pushed["commit"]


def test_pull_a_commit_made_on_the_server(api_client, create_sandbox, git):
    sandbox_id = create_sandbox(template="python-3", git={"url": git.http_url, "auth": git.token_auth()})["id"]
    sha = git.commit_on_http_server("SERVER.md", "from the server")
    denied = git_api(api_client, sandbox_id, "pull", expect=422)  # no kept credentials
    assert denied["error"]["code"] in ("git_auth_failed", "git_error")
    pulled = git_api(api_client, sandbox_id, "pull", auth=git.token_auth())
    assert pulled["updated"] is True and pulled["commit"] == sha
    assert sh(api_client, sandbox_id, "cat SERVER.md")["stdout"] == "from the server"


def test_ssh_clone_and_push(api_client, create_sandbox, git):
    sandbox_id = create_sandbox(template="python-3", git={"url": git.ssh_url, "auth": git.ssh_auth()})["id"]
    sh(api_client, sandbox_id, "echo ssh > ssh.txt")
    commit = git_api(api_client, sandbox_id, "commit", message="over ssh", all=True)
    git_api(api_client, sandbox_id, "push", auth=git.ssh_auth())
    assert git.ssh_ref("main") == commit["commit"]
    left = sh(api_client, sandbox_id, "ls -a /tmp | grep -c 'ssh$' || true", cwd="/")
    assert left["stdout"].strip() == "0"  # the key's directory is gone

    wrong = {"type": "ssh", "privateKey": git.other_private_key, "knownHosts": git.known_hosts}
    response = git_api(api_client, sandbox_id, "pull", expect=422, auth=wrong)
    assert response["error"]["code"] == "git_auth_failed"
    assert "PRIVATE KEY" not in str(response)


def test_kept_credentials_are_encrypted(api_client, create_sandbox, git):
    sandbox_id = create_sandbox(template="python-3", git={"url": git.http_url, "auth": git.token_auth(persist=True)})[
        "id"
    ]
    stored = SandboxGitConfig.objects.get(sandbox_id=sandbox_id)
    assert stored.auth and git.token not in stored.auth
    config = sh(api_client, sandbox_id, "cat .git/config; git config --list --show-origin")["stdout"]
    assert git.token not in config and "credential" not in config


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ext::sh -c touch% /tmp/pwned"}, "invalid_git_url"),
        ({"url": "--upload-pack=touch /tmp/pwned"}, "invalid_git_url"),
        ({"url": "file:///etc"}, "invalid_git_url"),
        ({"url": "http://git-http:8080/project.git", "branch": "main; touch /tmp/pwned"}, "invalid_git_ref"),
        ({"url": "http://git-http:8080/project.git", "branch": "--upload-pack=x"}, "invalid_git_ref"),
    ],
)
def test_injection_attempts_are_rejected(api_client, create_sandbox, git, body, code):
    sandbox_id = create_sandbox(template="python-3")["id"]
    response = git_api(api_client, sandbox_id, "clone", expect=400, **body)
    assert response["error"]["code"] == code
    assert sh(api_client, sandbox_id, "ls /tmp/pwned 2>&1 || true", cwd="/")["stdout"].endswith(
        "No such file or directory\n"
    )


def test_odd_urls_and_paths_are_taken_literally(api_client, create_sandbox, git):
    sandbox_id = create_sandbox(template="python-3")["id"]
    response = git_api(
        api_client, sandbox_id, "clone", expect=422, url="http://git-http:8080/$(touch${IFS}/tmp/pwned).git",
        auth=git.token_auth(),
    )  # fmt: skip
    assert response["error"]["code"] == "git_clone_failed"
    cloned = git_api(
        api_client, sandbox_id, "clone", url=git.http_url, auth=git.token_auth(), path="/tmp/a; touch /tmp/pwned"
    )
    assert cloned["path"] == "/tmp/a; touch /tmp/pwned"
    assert sh(api_client, sandbox_id, "ls /tmp/pwned 2>&1 || true", cwd="/")["stdout"].endswith(
        "No such file or directory\n"
    )
