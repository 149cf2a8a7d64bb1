"""Auto-pull webhooks (issue 29 item 2, product spec 1.3; docs/api.md "Auto-pull webhooks").

Signed payloads are posted the way GitHub, GitLab and Gitea post them, by an unauthenticated client;
the pulls run against the tests' local git server (tests/gitservers.py) on the real engine,
through the Celery task's function (tests run no worker: VIBEBOX_GIT_HOOK_DISPATCH is off)."""

import hashlib
import hmac
import json
import secrets
import uuid

import pytest
from django.test import Client

from apps.audit.models import AuditEntry
from apps.orgs.services import personal_org_ensure
from apps.sandboxes import events, tasks
from apps.sandboxes.models import GitHook, GitHookDelivery, SandboxGitConfig
from apps.webhooks.models import Delivery, Webhook
from tests.conftest import sandbox_row
from tests.gitservers import run_in
from vibebox import bodylimit


def hooks_url(sandbox_id: str) -> str:
    return f"/api/v1/sandboxes/{sandbox_id}/git/hooks"


def make_hook(api_client, sandbox_id: str, **body) -> dict:
    response = api_client.post(hooks_url(sandbox_id), body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def push_payload(branch: str, after: str | None = None) -> bytes:
    after = after or secrets.token_hex(20)
    return json.dumps(
        {"ref": f"refs/heads/{branch}", "before": "1" * 40, "after": after, "repository": {"name": "project"}}
    ).encode()


def github_post(hook: dict, body: bytes, *, secret=None, event="push", delivery=None, signature=None):
    digest = hmac.new((secret or hook["secret"]).encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature if signature is not None else f"sha256={digest}",
        "User-Agent": "GitHub-Hookshot/abc",
    }
    return Client().post(_path(hook), body, content_type="application/json", headers=headers)


def gitlab_post(hook: dict, body: bytes, *, token=None, event="Push Hook"):
    headers = {
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token if token is not None else hook["secret"],
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
    }
    return Client().post(_path(hook), body, content_type="application/json", headers=headers)


def gitea_post(hook: dict, body: bytes, *, secret=None):
    digest = hmac.new((secret or hook["secret"]).encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Gitea-Event": "push",
        "X-Gitea-Delivery": str(uuid.uuid4()),
        "X-Gitea-Signature": digest,
        # Gitea sends GitHub's and Gogs' headers too (without GitHub's signature): it is told apart by its own.
        "X-GitHub-Event": "push",
        "X-Gogs-Event": "push",
    }
    return Client().post(_path(hook), body, content_type="application/json", headers=headers)


def _path(hook: dict) -> str:
    assert hook["url"].endswith(f"/api/v1/git-hooks/{hook['id']}")
    return f"/api/v1/git-hooks/{hook['id']}"


def code(response) -> str:
    return response.json()["error"]["code"]


# ---- managing hooks, and checking deliveries (rows: no container needed) ----


@pytest.fixture
def row(owner, templates):
    sandbox = sandbox_row(owner, templates["python-3"])
    SandboxGitConfig.objects.create(sandbox=sandbox, path="/repo", repo_url="http://x/p.git", branch="main")
    return sandbox


def test_create_list_delete_with_audit_and_tenancy(api_client, outsider_client, row):
    hook = make_hook(api_client, row.id, path="/repo")
    assert hook["branch"] == "main" and hook["path"] == "/repo" and hook["provider"] == "auto"
    assert hook["secret"].startswith("vbgh_") and len(hook["secret"]) > 40
    stored = GitHook.objects.get(pk=hook["id"])
    assert stored.secret != hook["secret"] and hook["secret"] not in stored.secret  # encrypted at rest
    listed = api_client.get(hooks_url(row.id)).json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0] and listed[0]["deliveries"] == []

    # another organization's caller: 404, nothing changed; anonymous: 401
    assert outsider_client.get(hooks_url(row.id)).status_code == 404
    assert outsider_client.post(hooks_url(row.id), {}, format="json").status_code == 404
    assert outsider_client.delete(f"{hooks_url(row.id)}/{hook['id']}").status_code == 404
    assert Client().get(hooks_url(row.id)).status_code == 401

    assert api_client.delete(f"{hooks_url(row.id)}/{hook['id']}").status_code == 204
    gone = api_client.delete(f"{hooks_url(row.id)}/{hook['id']}")
    assert gone.status_code == 404 and code(gone) == "git_hook_not_found"
    assert code(github_post(hook, push_payload("main"))) == "git_hook_not_found"  # its URL is dead
    actions = list(AuditEntry.objects.filter(target_id=row.id, action__startswith="git.hook").values_list("action"))
    assert actions == [("git.hook_created",), ("git.hook_deleted",)]


def test_create_refuses_bad_input(api_client, row):
    cases = [
        ({"provider": "bitbucket"}, "validation_error"),
        ({"branch": "--upload-pack=x"}, "invalid_git_ref"),
        ({"path": "/elsewhere"}, "validation_error"),  # not cloned through the API: name the branch
        ({"secret": "mine"}, "unknown_field"),
    ]
    for body, expected in cases:
        response = api_client.post(hooks_url(row.id), body, format="json")
        assert response.status_code == 400 and code(response) == expected, (body, response.content)
    assert not GitHook.objects.exists()


@pytest.mark.parametrize("post", [github_post, gitlab_post, gitea_post])
def test_each_provider_signed_push_is_queued_once(api_client, row, post):
    hook = make_hook(api_client, row.id, path="/repo")
    body = push_payload("main")
    response = post(hook, body)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    delivery = GitHookDelivery.objects.get(hook_id=hook["id"])
    assert delivery.status == "queued" and delivery.provider == post.__name__.split("_")[0]
    assert delivery.after == json.loads(body)["after"]
    # The same body again (a captured request replayed, whatever delivery id it carries): nothing new.
    again = post(hook, body)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert GitHookDelivery.objects.count() == 1
    listed = api_client.get(hooks_url(row.id)).json()[0]
    assert listed["deliveries"][0]["status"] == "queued" and listed["lastDeliveryAt"]


def test_bad_or_missing_signatures_are_401_and_change_nothing(api_client, row):
    hook = make_hook(api_client, row.id, path="/repo")
    body = push_payload("main")
    wrong = "vbgh_" + secrets.token_urlsafe(32)
    refused = [
        github_post(hook, body, secret=wrong),
        github_post(hook, body, signature=""),
        github_post(hook, body, signature="sha1=" + hmac.new(hook["secret"].encode(), body, "sha1").hexdigest()),
        gitlab_post(hook, body, token=wrong),
        gitlab_post(hook, body, token=hook["secret"][:-1]),
        gitea_post(hook, body, secret=wrong),
        Client().post(_path(hook), body, content_type="application/json"),  # no provider's headers at all
    ]
    # A body changed after signing: the signature was for the other bytes.
    digest = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    refused.append(github_post(hook, push_payload("main"), signature=f"sha256={digest}"))
    for response in refused:
        assert response.status_code == 401 and code(response) == "git_hook_signature_invalid", response.content
    assert not GitHookDelivery.objects.exists() and GitHook.objects.get(pk=hook["id"]).last_delivery_at is None


def test_a_hook_made_for_one_provider_takes_only_its_proof(api_client, row):
    hook = make_hook(api_client, row.id, path="/repo", provider="github")
    body = push_payload("main")
    response = gitlab_post(hook, body)  # the right secret, as GitLab's token: not GitHub's signature
    assert response.status_code == 401 and code(response) == "git_hook_signature_invalid"
    assert github_post(hook, body).status_code == 202


def test_other_branches_events_and_replays_are_not_pulled(api_client, row):
    hook = make_hook(api_client, row.id, path="/repo")
    assert github_post(hook, push_payload("develop")).json() == {
        "status": "ignored",
        "reason": "another branch",
        "ref": "refs/heads/develop",
    }
    tag = json.dumps({"ref": "refs/tags/main", "after": "2" * 40}).encode()
    assert github_post(hook, tag).json()["status"] == "ignored"
    deleted = push_payload("main", after="0" * 40)
    assert github_post(hook, deleted).json()["reason"] == "the branch was deleted"
    assert github_post(hook, b"{}", event="ping").json()["status"] == "pong"
    assert github_post(hook, push_payload("main"), event="issues").json()["reason"] == "not a push event"
    assert gitlab_post(hook, push_payload("main"), event="Tag Push Hook").json()["status"] == "ignored"
    not_json = github_post(hook, b"not json")
    assert not_json.status_code == 400 and code(not_json) == "invalid_json"
    deep = github_post(hook, b"[" * 100_000 + b"]" * 100_000)  # signed, and nested past the parser
    assert deep.status_code == 400 and code(deep) == "invalid_json"
    assert not GitHookDelivery.objects.exists()
    # The same delivery id with another (signed) body: GitHub's redelivery, or a replay: taken once.
    delivery = str(uuid.uuid4())
    assert github_post(hook, push_payload("main"), delivery=delivery).status_code == 202
    assert github_post(hook, push_payload("main"), delivery=delivery).json()["status"] == "duplicate"
    assert GitHookDelivery.objects.count() == 1


def test_github_form_encoded_payloads_are_read(api_client, row):
    hook = make_hook(api_client, row.id, path="/repo")
    from urllib.parse import urlencode

    body = urlencode({"payload": push_payload("main").decode()}).encode()
    digest = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1", "X-Hub-Signature-256": f"sha256={digest}"}
    response = Client().post(_path(hook), body, content_type="application/x-www-form-urlencoded", headers=headers)
    assert response.status_code == 202, response.content


def test_the_receiving_endpoint_is_rate_limited_and_its_body_capped(api_client, row, settings):
    settings.VIBEBOX_GIT_HOOK_RATE = "2/min"
    hook = make_hook(api_client, row.id, path="/repo")
    assert github_post(hook, push_payload("main")).status_code == 202
    assert github_post(hook, push_payload("main")).status_code == 202
    limited = github_post(hook, push_payload("main"))
    assert limited.status_code == 429 and code(limited) == "rate_limited" and "Retry-After" in limited.headers
    assert GitHookDelivery.objects.count() == 2
    # Only authentic deliveries count: whoever knows the URL but not the secret cannot use up the
    # budget of the real pushes (each of theirs is a 401, however many).
    other = make_hook(api_client, row.id, path="/repo")
    for _ in range(5):
        refused = github_post(other, push_payload("main"), secret="not-its-secret")
        assert refused.status_code == 401 and code(refused) == "git_hook_signature_invalid"
    assert github_post(other, push_payload("main")).status_code == 202
    # The ASGI body limit (vibebox/bodylimit.py) gives this path its own, smaller cap.
    settings.VIBEBOX_GIT_HOOK_MAX_BYTES = 1024
    assert bodylimit.limit_for("POST", _path(hook)) == 1024
    assert bodylimit.limit_for("POST", hooks_url(row.id)) == settings.VIBEBOX_REQUEST_MAX_BYTES


def test_a_destroyed_sandboxs_hooks_go_with_it(api_client, row):
    hook = make_hook(api_client, row.id, path="/repo")
    assert github_post(hook, push_payload("main")).status_code == 202
    assert api_client.delete(f"/api/v1/sandboxes/{row.id}").status_code in (200, 202, 204)
    assert not GitHook.objects.filter(pk=hook["id"]).exists()  # its secret is not kept either
    gone = github_post(hook, push_payload("main"))
    assert gone.status_code == 404 and code(gone) == "git_hook_not_found"


# ---- real pulls: a push to the tests' git server, then its webhook ----


def sh(api_client, sandbox_id, command, cwd="/repo") -> dict:
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, "cwd": cwd}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def server_push(git, branch: str, filename: str, text: str, *, new: bool = False) -> str:
    """A commit pushed to `branch` of the HTTP git server (made from main when `new`): the sha."""
    checkout = f"git checkout -q -b {branch}" if new else f"git checkout -q {branch}"
    script = (
        "set -e; w=$(mktemp -d); git clone -q /srv/git/project.git $w; cd $w; "
        "git config user.email server@example.test; git config user.name Server; "
        f"{checkout}; printf '%s' '{text}' > {filename}; git add -A; git commit -qm 'push {filename}'; "
        f"git push -q origin {branch}; rm -rf $w"
    )
    run_in(git.http, script)
    return git.http_ref(branch)


@pytest.fixture
def run_last_delivery(django_capture_on_commit_callbacks):
    """Runs the Celery task of the hook's last delivery (its events sent as after a commit)."""

    def run(hook: dict) -> GitHookDelivery:
        delivery = GitHookDelivery.objects.filter(hook_id=hook["id"]).order_by("-id").first()
        assert delivery.status == "queued"
        with django_capture_on_commit_callbacks(execute=True):
            status = tasks.git_hook_pull(delivery.pk)
        assert status == GitHookDelivery.objects.get(pk=delivery.pk).status
        return GitHookDelivery.objects.get(pk=delivery.pk)

    return run


@pytest.fixture
def cloned(api_client, create_sandbox, git, owner):
    """A sandbox with the server's project cloned at /repo on a branch of its own (other tests push
    to main), kept credentials, and an organization webhook subscribed to the git events."""
    branch = f"hook-{secrets.token_hex(4)}"
    server_push(git, branch, "START.md", "start", new=True)
    sandbox = create_sandbox(git={"url": git.http_url, "branch": branch, "auth": git.token_auth(persist=True)})
    webhook = Webhook.objects.create(
        org=personal_org_ensure(user=owner), url="https://hooks.example/in", events=["git.pulled", "git.pull_failed"]
    )
    return sandbox["id"], branch, webhook


def test_a_push_then_its_webhook_pulls_the_new_commit(api_client, git, cloned, run_last_delivery):
    sandbox_id, branch, webhook = cloned
    hook = make_hook(api_client, sandbox_id)  # the branch it was cloned at
    assert hook["branch"] == branch
    sha = server_push(git, branch, "PUSHED.md", "from a push")
    assert github_post(hook, push_payload(branch, sha)).status_code == 202
    assert sh(api_client, sandbox_id, "test -e PUSHED.md; echo $?")["stdout"] == "1\n"  # not before the task

    delivery = run_last_delivery(hook)
    assert delivery.status == "pulled" and delivery.commit == sha, delivery.detail
    assert sh(api_client, sandbox_id, "cat PUSHED.md; git rev-parse HEAD")["stdout"] == f"from a push{sha}\n"
    kinds = [e["type"] for e in events.recent(sandbox_id)]
    assert "git.autopull.pulled" in kinds
    sent = Delivery.objects.get(webhook=webhook)
    assert sent.event == "git.pulled" and sent.payload["data"]["commit"] == sha
    assert sent.payload["data"]["sandboxId"] == sandbox_id and sent.payload["data"]["status"] == "pulled"
    listed = api_client.get(hooks_url(sandbox_id)).json()[0]["deliveries"][0]
    assert listed["status"] == "pulled" and listed["commit"] == sha

    # The same delivery's task again (Celery may run a task twice): nothing happens.
    assert tasks.git_hook_pull(delivery.pk) is None

    # GitLab and Gitea pushes pull the same way.
    for post, name in ((gitlab_post, "GITLAB.md"), (gitea_post, "GITEA.md")):
        sha = server_push(git, branch, name, name)
        assert post(hook, push_payload(branch, sha)).status_code == 202
        assert run_last_delivery(hook).commit == sha
        assert sh(api_client, sandbox_id, f"cat {name}")["stdout"] == name


def test_a_diverged_branch_is_left_alone_and_reported(api_client, git, cloned, run_last_delivery):
    sandbox_id, branch, webhook = cloned
    hook = make_hook(api_client, sandbox_id)
    # A commit in the sandbox and another on the server: not a fast-forward.
    sh(api_client, sandbox_id, "echo local > LOCAL.md && git add LOCAL.md")
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/git/commit", {"message": "local work"}, format="json"
    )  # fmt: skip
    assert response.status_code == 200, response.content
    local = response.json()["commit"]
    sh(api_client, sandbox_id, "echo dirty >> START.md")  # and an uncommitted change
    server_file = f"SERVER-{branch}.md"  # main may hold a SERVER.md of test_git.py's, on the same server
    sha = server_push(git, branch, server_file, "server")
    assert github_post(hook, push_payload(branch, sha)).status_code == 202

    delivery = run_last_delivery(hook)
    assert delivery.status == "conflict" and "fast-forward" in delivery.detail, delivery.detail
    after = sh(api_client, sandbox_id, f"git rev-parse HEAD; test -e {server_file}; echo $?; cat START.md")["stdout"]
    assert after == f"{local}\n1\nstartdirty\n"  # the tree as it was: HEAD, files and the local change
    assert "git.autopull.conflict" in [e["type"] for e in events.recent(sandbox_id)]
    sent = Delivery.objects.get(webhook=webhook)
    assert sent.event == "git.pull_failed" and sent.payload["data"]["status"] == "conflict"


def test_uncommitted_changes_in_the_way_are_a_conflict(api_client, git, cloned, run_last_delivery):
    sandbox_id, branch, _ = cloned
    hook = make_hook(api_client, sandbox_id)
    sh(api_client, sandbox_id, "echo mine > START.md")
    sha = server_push(git, branch, "START.md", "theirs")  # a fast-forward that would overwrite it
    assert gitlab_post(hook, push_payload(branch, sha)).status_code == 202
    delivery = run_last_delivery(hook)
    assert delivery.status == "conflict", (delivery.status, delivery.detail)
    assert sh(api_client, sandbox_id, "cat START.md")["stdout"] == "mine\n"


def test_a_stopped_sandbox_or_another_branch_checked_out_is_skipped(api_client, git, cloned, run_last_delivery):
    sandbox_id, branch, webhook = cloned
    hook = make_hook(api_client, sandbox_id)
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/git/checkout", {"branch": "other", "create": True},
                           format="json").status_code == 200  # fmt: skip
    sha = server_push(git, branch, "A.md", "a")
    assert github_post(hook, push_payload(branch, sha)).status_code == 202
    delivery = run_last_delivery(hook)
    assert delivery.status == "skipped" and "on other" in delivery.detail
    assert (
        sh(api_client, sandbox_id, "git rev-parse --abbrev-ref HEAD; test -e A.md; echo $?")["stdout"] == "other\n1\n"
    )

    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop").status_code == 200
    sha = server_push(git, branch, "B.md", "b")
    assert github_post(hook, push_payload(branch, sha)).status_code == 202  # taken: the host sees success
    delivery = run_last_delivery(hook)
    assert delivery.status == "skipped" and "stopped" in delivery.detail
    statuses = [d.payload["data"]["status"] for d in Delivery.objects.filter(webhook=webhook).order_by("seq")]
    assert statuses == ["skipped", "skipped"]


def test_the_queued_task_is_the_pull_task():
    """The receiver queues the task by name (tasks.py imports the service): the name is the task's."""
    from apps.sandboxes.services import git_hooks

    assert tasks.git_hook_pull.name == git_hooks.PULL_TASK
