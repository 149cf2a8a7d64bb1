"""A real sandbox's life through the API produces its webhook events, in order, each with the
data the API itself shows (the sandbox as GET /sandboxes/{id}, the execution as its GET)."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.sandboxes.reconcile import sandbox_reconcile
from apps.webhooks import delivery as sender
from apps.webhooks.models import Delivery
from tests.conftest import sandbox_row

pytestmark = pytest.mark.django_db

EVENTS = [
    "sandbox.created",
    "sandbox.started",
    "sandbox.stopped",
    "sandbox.destroyed",
    "execution.completed",
    "execution.failed",
    "resource.limit_exceeded",
]


def test_a_sandbox_life_is_told_in_order(api_client, create_sandbox, hook, receiver):
    webhook = hook(events=EVENTS)
    sandbox = create_sandbox(template="python-3", metadata={"ci": "run-1"})
    sid = sandbox["id"]

    def run(**body):
        response = api_client.post(f"/api/v1/sandboxes/{sid}/exec", body, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    ok = run(command="echo hi")
    bad = run(command="exit 3")
    slow = run(command="sleep 30", timeout="1s")
    assert (ok["status"], bad["status"], slow["status"]) == ("completed", "failed", "timeout")
    assert api_client.post(f"/api/v1/sandboxes/{sid}/stop").status_code == 200
    stopped = api_client.get(f"/api/v1/sandboxes/{sid}").json()
    assert api_client.delete(f"/api/v1/sandboxes/{sid}").status_code in (200, 204)

    sender.deliver_webhook(webhook["id"])
    assert all(request["verified"] for request in receiver.requests)
    told = [(request["json"]["type"], request["json"]["data"]) for request in receiver.requests]
    assert [kind for kind, _ in told] == [
        "sandbox.created",
        "sandbox.started",
        "execution.completed",
        "execution.failed",
        "execution.failed",
        "resource.limit_exceeded",
        "sandbox.stopped",
        "sandbox.destroyed",
    ]
    created, started = told[0][1], told[1][1]
    assert created["id"] == sid and created["metadata"] == {"ci": "run-1"} and started["status"] == "running"
    assert set(created) == set(sandbox)  # the same JSON as the API's
    completed = told[2][1]
    assert completed["executionId"] == ok["executionId"] and completed["exitCode"] == 0
    assert completed["stdout"] == "hi\n" and completed["sandboxId"] == sid
    assert told[3][1]["exitCode"] == 3 and told[4][1]["status"] == "timeout"
    limit = told[5][1]
    assert limit == {
        "sandboxId": sid,
        "limit": "timeout",
        "executionId": slow["executionId"],
        "sandbox": limit["sandbox"],
    }
    assert limit["sandbox"]["id"] == sid and set(limit["sandbox"]) == set(sandbox)
    assert told[6][1] == stopped
    assert told[7][1]["status"] == "destroyed"


def test_the_reconcile_pass_tells_of_vanished_and_expired_sandboxes(owner, templates, hook, receiver):
    webhook = hook(events=["sandbox.error", "sandbox.destroyed", "sandbox.expired"])
    vanished = sandbox_row(owner, templates["python-3"], name="vanished")  # running, no container
    past = timezone.now() - dt.timedelta(minutes=1)
    expired = sandbox_row(owner, templates["python-3"], name="expired", status="error", expires_at=past)
    report = sandbox_reconcile()
    assert report.vanished == [vanished.id] and report.expired == [expired.id]

    sender.deliver_webhook(webhook["id"])
    told = [(request["json"]["type"], request["json"]["data"]["id"]) for request in receiver.requests]
    assert [kind for kind, sid in told if sid == vanished.id] == ["sandbox.error"]
    assert [kind for kind, sid in told if sid == expired.id] == ["sandbox.destroyed", "sandbox.expired"]
    data = {request["json"]["type"]: request["json"]["data"] for request in receiver.requests}
    assert data["sandbox.error"]["status"] == "error" and data["sandbox.error"]["statusReason"] == "container vanished"
    assert data["sandbox.expired"]["status"] == "destroyed"


def test_a_finished_agent_run_is_told(api_client, hook, receiver):
    webhook = hook(events=["agent_run.finished"])
    run = api_client.post("/api/v1/agent-runs", {"name": "r", "tasks": [{"name": "t"}]}, format="json").json()
    assert not Delivery.objects.exists()
    finished = api_client.patch(f"/api/v1/agent-runs/{run['id']}", {"status": "completed"}, format="json")
    assert finished.status_code == 200, finished.content
    sender.deliver_webhook(webhook["id"])
    [request] = receiver.requests
    data = request["json"]["data"]
    assert request["json"]["type"] == "agent_run.finished" and data["id"] == run["id"]
    assert data["status"] == "completed" and "tasks" not in data and data["counts"]
