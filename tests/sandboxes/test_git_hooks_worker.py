"""Auto-pull webhooks end to end with the real processes: the live server (the Procfile's uvicorn)
takes a signed push and queues the pull as it commits, a real Celery worker (the Procfile's) on a
Redis of the test's own runs it, and the sandbox's /repo has the pushed commit. The repository's
origin is a path in the sandbox (no git server needed: tests/sandboxes/test_git_hooks.py pulls
from the tests' git server through the task's function)."""

import hashlib
import hmac
import json
import uuid

import httpx
import pytest

from apps.sandboxes.models import GitHookDelivery
from tests.conftest import live_server
from tests.test_make_run import redis_server
from tests.waiting import wait_for
from tests.webhooks.conftest import QUIET_PASSES, celery_worker, worker_env

pytestmark = pytest.mark.timeout(600)

SETUP = """set -e
git config --global user.email t@example.test; git config --global user.name T
git init -q --bare -b main /workspace/origin.git
git clone -q /workspace/origin.git /repo 2>/dev/null
cd /repo; git symbolic-ref HEAD refs/heads/main
echo one > one.txt; git add one.txt; git commit -qm one; git push -q -u origin main
"""
PUSH = """set -e
git clone -q /workspace/origin.git /workspace/other; cd /workspace/other
echo two > two.txt; git add two.txt; git commit -qm two; git push -q origin main; git rev-parse HEAD
"""


def sh(api_client, sandbox_id: str, script: str) -> str:
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": script}, format="json")
    assert response.status_code == 200 and response.json()["exitCode"] == 0, response.content
    return response.json()["stdout"]


def test_a_push_is_pulled_by_a_real_worker(transactional_db, api_client, create_sandbox, tmp_path):
    sandbox_id = create_sandbox()["id"]
    sh(api_client, sandbox_id, SETUP)
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/git/hooks", {"branch": "main"}, format="json")
    assert response.status_code == 201, response.content
    hook = response.json()
    sha = sh(api_client, sandbox_id, PUSH).strip()

    with redis_server(tmp_path) as redis_url:
        env = worker_env(redis_url, **QUIET_PASSES)
        with (
            celery_worker(env, tmp_path / "worker.log"),
            live_server(REDIS_URL=redis_url, VIBEBOX_GIT_HOOK_DISPATCH="true") as (url, _pid),
        ):
            body = json.dumps({"ref": "refs/heads/main", "before": "1" * 40, "after": sha}).encode()
            digest = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
            headers = {
                "Content-Type": "application/json",
                "X-Gitea-Event": "push",
                "X-Gitea-Delivery": str(uuid.uuid4()),
                "X-Gitea-Signature": digest,
            }
            answer = httpx.post(f"{url}/api/v1/git-hooks/{hook['id']}", content=body, headers=headers, timeout=60)
            assert answer.status_code == 202, answer.text

            def finished():
                delivery = GitHookDelivery.objects.filter(hook_id=hook["id"]).first()
                return delivery if delivery and delivery.status not in ("queued", "running") else None

            try:
                delivery = wait_for(finished, timeout=240, interval=1, what="the worker's pull")
            except Exception:
                print((tmp_path / "worker.log").read_text(errors="replace")[-5000:])
                raise
    assert delivery.status == "pulled" and delivery.commit == sha, (delivery.status, delivery.detail)
    assert sh(api_client, sandbox_id, "cd /repo && cat two.txt && git rev-parse HEAD") == f"two\n{sha}\n"
