"""A real sandbox's life through the API produces its webhook events, in order, each with the
data the API itself shows (the sandbox as GET /sandboxes/{id}, the execution as its GET)."""

import pytest

from apps.webhooks import delivery as sender

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
    assert told[5][1] == {"sandboxId": sid, "limit": "timeout", "executionId": slow["executionId"]}
    assert told[6][1] == stopped
    assert told[7][1]["status"] == "destroyed"
