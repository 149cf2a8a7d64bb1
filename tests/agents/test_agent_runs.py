"""/api/v1/agent-runs: the records of orchestration runs and their tasks (no Docker needed)."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from apps.agents.api.run_serializers import AgentRunSerializer, AgentRunSummarySerializer, AgentTaskSerializer
from apps.agents.models import AgentRun, AgentTask
from tests.ws import Communicator
from vibebox.asgi import application

RUNS = "/api/v1/agent-runs"
RUN_KEYS = {
    "id",
    "name",
    "kind",
    "status",
    "parallelism",
    "template",
    "metadata",
    "counts",
    "createdAt",
    "finishedAt",
    "durationMs",
}
TASK_KEYS = {
    "id",
    "index",
    "name",
    "status",
    "sandboxId",
    "attempts",
    "error",
    "result",
    "metadata",
    "startedAt",
    "finishedAt",
    "durationMs",
}


def create_run(client, expect=201, **body):
    body.setdefault("name", "a run")
    response = client.post(RUNS, body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def patch_task(client, run, task, expect=200, **body):
    response = client.patch(f"{RUNS}/{run['id']}/tasks/{task['id']}", body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def code(response) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
def run(api_client):
    return create_run(api_client, name="three", tasks=[{"name": "a"}, {"name": "b"}, {"name": "c"}])


# ---- create, read, list ----


def test_create_with_tasks(api_client, api_key):
    body = create_run(
        api_client,
        name="analyse repos",
        kind="orchestrate",
        parallelism=3,
        template="node-20",
        metadata={"team": "ml"},
        tasks=[{"name": "repo-a", "metadata": {"url": "git://a"}}, {"name": "repo-b"}, {"name": ""}],
    )
    assert set(body) == RUN_KEYS | {"tasks"}
    assert body["id"].startswith("run_") and len(body["id"]) == 24
    assert body["name"] == "analyse repos" and body["kind"] == "orchestrate" and body["status"] == "running"
    assert body["parallelism"] == 3 and body["template"] == "node-20" and body["metadata"] == {"team": "ml"}
    assert body["counts"] == {"pending": 3, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 3}
    assert body["createdAt"].endswith("Z") and body["finishedAt"] is None and body["durationMs"] is None
    tasks = body["tasks"]
    assert [t["index"] for t in tasks] == [0, 1, 2] and [t["name"] for t in tasks] == ["repo-a", "repo-b", ""]
    assert all(set(t) == TASK_KEYS for t in tasks)
    first = tasks[0]
    assert first["id"].startswith("task_") and first["status"] == "pending" and first["metadata"] == {"url": "git://a"}
    assert first["sandboxId"] is None and first["error"] is None and first["result"] is None
    assert first["attempts"] == 0 and first["startedAt"] is None and first["durationMs"] is None
    stored = AgentRun.objects.get(pk=body["id"])
    assert stored.owner == api_key[0].user and stored.api_key == api_key[0]


def test_create_defaults(api_client):
    body = create_run(api_client, name="bare")
    assert body["kind"] == "map" and body["parallelism"] is None and body["template"] is None
    assert body["metadata"] == {} and body["tasks"] == [] and body["counts"]["total"] == 0
    body = create_run(api_client, name="nulls", parallelism=None, template=None)
    assert body["parallelism"] is None and body["template"] is None


def test_create_the_most_tasks(api_client):
    body = create_run(api_client, name="big", tasks=[{"name": f"item {i}"} for i in range(10_000)])
    assert body["counts"]["total"] == 10_000 and body["tasks"][-1]["index"] == 9_999
    response = api_client.post(RUNS, {"name": "too big", "tasks": [{"name": "x"}] * 10_001}, format="json")
    assert response.status_code == 400 and code(response) == "validation_error"


def test_get_has_tasks_in_index_order(api_client, run):
    api_client.post(f"{RUNS}/{run['id']}/tasks", {"tasks": [{"name": "d"}]}, format="json")
    body = api_client.get(f"{RUNS}/{run['id']}").json()
    assert [t["name"] for t in body["tasks"]] == ["a", "b", "c", "d"]
    assert [t["index"] for t in body["tasks"]] == [0, 1, 2, 3]
    assert body["counts"]["total"] == 4
    task = body["tasks"][1]
    assert api_client.get(f"{RUNS}/{run['id']}/tasks/{task['id']}").json() == task


def test_list_paginates_newest_first_without_tasks(api_client, outsider_client):
    made = [create_run(api_client, name=f"run {i}", tasks=[{"name": "t"}] * i) for i in range(3)]
    create_run(outsider_client, name="theirs")
    body = api_client.get(RUNS).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3 and body["previous"] is None and body["next"] is None
    assert [r["id"] for r in body["results"]] == [r["id"] for r in reversed(made)]
    assert all(set(r) == RUN_KEYS for r in body["results"])
    assert [r["counts"]["total"] for r in body["results"]] == [2, 1, 0]
    page = api_client.get(RUNS, {"limit": 2}).json()
    assert len(page["results"]) == 2 and "offset=2" in page["next"]
    rest = api_client.get(RUNS, {"limit": 2, "offset": 2}).json()
    assert [r["id"] for r in rest["results"]] == [made[0]["id"]] and rest["next"] is None


def test_list_filters(api_client):
    done = create_run(api_client, name="done", kind="pool", metadata={"team": "ml"})
    api_client.patch(f"{RUNS}/{done['id']}", {"status": "completed"}, format="json")
    failed = create_run(api_client, name="failed")
    api_client.patch(f"{RUNS}/{failed['id']}", {"status": "failed"}, format="json")
    running = create_run(api_client, name="running", template="python-3")

    def ids(**params):
        return [r["id"] for r in api_client.get(RUNS, params).json()["results"]]

    assert ids(status="completed") == [done["id"]]
    assert ids(status="running,failed") == [running["id"], failed["id"]]
    assert ids(kind="pool") == [done["id"]]
    assert ids(template="python-3") == [running["id"]]
    assert ids(name="failed") == [failed["id"]]
    assert ids(**{"metadata.team": "ml"}) == [done["id"]]
    assert len(ids(status="nonsense")) == 3  # unknown statuses are ignored, as for sandboxes


# ---- tasks ----


def test_add_tasks_continues_the_indexes(api_client, run):
    response = api_client.post(
        f"{RUNS}/{run['id']}/tasks", {"tasks": [{"name": "d"}, {"name": "e", "metadata": {"k": "v"}}]}, format="json"
    )
    assert response.status_code == 201, response.content
    added = response.json()["tasks"]
    assert [t["index"] for t in added] == [3, 4] and added[1]["metadata"] == {"k": "v"}
    assert all(set(t) == TASK_KEYS and t["status"] == "pending" for t in added)
    again = api_client.post(f"{RUNS}/{run['id']}/tasks", {"tasks": [{"name": "f"}]}, format="json").json()
    assert again["tasks"][0]["index"] == 5


def test_task_transitions(api_client, run):
    task = run["tasks"][0]
    running = patch_task(api_client, run, task, status="running", sandboxId="sbx_abc")
    assert running["status"] == "running" and running["sandboxId"] == "sbx_abc"
    assert running["startedAt"] and running["finishedAt"] is None and running["attempts"] == 1  # counted
    # the attempt fails: back to pending for a retry, the error kept
    retry = patch_task(api_client, run, task, status="pending", error="ValueError('boom')")
    assert retry["status"] == "pending" and retry["error"] == "ValueError('boom')"
    assert retry["startedAt"] == running["startedAt"] and retry["finishedAt"] is None
    second = patch_task(api_client, run, task, status="running", sandboxId="sbx_def", attempts=2)
    assert second["attempts"] == 2 and second["sandboxId"] == "sbx_def"
    assert second["startedAt"] == running["startedAt"]  # the first time it ran
    again = patch_task(api_client, run, task, status="running", attempts=3)  # running -> running: a new attempt
    assert again["attempts"] == 3 and again["status"] == "running"
    done = patch_task(api_client, run, task, status="completed", result={"answer": [1, 2, 3]}, error=None)
    assert done["status"] == "completed" and done["result"] == {"answer": [1, 2, 3]} and done["error"] is None
    assert done["finishedAt"] and done["durationMs"] >= 0 and done["startedAt"] == running["startedAt"]
    # a finished task keeps its status; its other fields can still be set; same status is a no-op
    response = api_client.patch(f"{RUNS}/{run['id']}/tasks/{task['id']}", {"status": "running"}, format="json")
    assert response.status_code == 409 and code(response) == "agent_task_finished"
    same = patch_task(api_client, run, task, status="completed", result="short")
    assert same["result"] == "short" and same["finishedAt"] == done["finishedAt"]
    cleared = patch_task(api_client, run, task, sandboxId="", result=None)
    assert cleared["sandboxId"] is None and cleared["result"] is None
    # a pending task can fail or be cancelled without ever running
    failed = patch_task(api_client, run, run["tasks"][1], status="failed", error="no sandbox")
    assert failed["startedAt"] is None and failed["finishedAt"] and failed["durationMs"] is None
    assert failed["attempts"] == 0
    body = api_client.get(f"{RUNS}/{run['id']}").json()
    assert body["counts"] == {"pending": 1, "running": 0, "completed": 1, "failed": 1, "cancelled": 0, "total": 3}


def test_task_result_and_error_limits(api_client, run):
    task = run["tasks"][0]
    url = f"{RUNS}/{run['id']}/tasks/{task['id']}"
    fits = "x" * (64 * 1024 - 2)  # with its quotes: exactly 64 KiB of JSON
    assert patch_task(api_client, run, task, result=fits)["result"] == fits
    response = api_client.patch(url, {"result": "x" * (64 * 1024), "status": "completed"}, format="json")
    assert response.status_code == 413 and code(response) == "request_too_large"
    assert response.json()["error"]["details"]["limit"] == 64 * 1024
    response = api_client.patch(url, {"error": "e" * 10_001}, format="json")
    assert response.status_code == 400 and code(response) == "validation_error"
    stored = AgentTask.objects.get(pk=task["id"])
    assert stored.status == "pending" and stored.result == fits and stored.error == ""
    assert patch_task(api_client, run, task, error="e" * 10_000)["error"] == "e" * 10_000


# ---- the run's end ----


def test_cancel_cancels_open_tasks(api_client, run):
    a, b, _ = run["tasks"]
    patch_task(api_client, run, a, status="running")
    patch_task(api_client, run, b, status="running")
    patch_task(api_client, run, b, status="completed", result=1)
    response = api_client.patch(f"{RUNS}/{run['id']}", {"status": "cancelled"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled" and body["finishedAt"] and body["durationMs"] >= 0
    assert [t["status"] for t in body["tasks"]] == ["cancelled", "completed", "cancelled"]
    assert body["tasks"][0]["finishedAt"] == body["finishedAt"] and body["tasks"][2]["startedAt"] is None
    assert body["counts"] == {"pending": 0, "running": 0, "completed": 1, "failed": 0, "cancelled": 2, "total": 3}


def test_completed_run_leaves_tasks_as_they_are(api_client, run):
    body = api_client.patch(f"{RUNS}/{run['id']}", {"status": "completed"}, format="json").json()
    assert body["status"] == "completed" and {t["status"] for t in body["tasks"]} == {"pending"}


def test_a_finished_run_is_frozen(api_client, run):
    url = f"{RUNS}/{run['id']}"
    finished = api_client.patch(url, {"status": "failed"}, format="json").json()
    for status in ("running", "completed", "cancelled"):
        response = api_client.patch(url, {"status": status}, format="json")
        assert response.status_code == 409 and code(response) == "agent_run_finished", status
        assert response.json()["error"]["details"]["status"] == "failed"
    same = api_client.patch(url, {"status": "failed"}, format="json")  # a retried request
    assert same.status_code == 200 and same.json()["finishedAt"] == finished["finishedAt"]
    response = api_client.patch(f"{url}/tasks/{run['tasks'][0]['id']}", {"status": "running"}, format="json")
    assert response.status_code == 409 and code(response) == "agent_run_finished"
    response = api_client.post(f"{url}/tasks", {"tasks": [{"name": "late"}]}, format="json")
    assert response.status_code == 409 and code(response) == "agent_run_finished"
    assert AgentTask.objects.filter(run_id=run["id"]).count() == 3
    assert AgentRun.objects.get(pk=run["id"]).status == "failed"


def test_running_status_on_a_running_run_changes_nothing(api_client, run):
    body = api_client.patch(f"{RUNS}/{run['id']}", {"status": "running"}, format="json").json()
    assert body["status"] == "running" and body["finishedAt"] is None


def test_delete(api_client, outsider_client, run):
    response = outsider_client.delete(f"{RUNS}/{run['id']}")
    assert response.status_code == 404 and code(response) == "agent_run_not_found"
    assert api_client.delete(f"{RUNS}/{run['id']}").status_code == 204
    response = api_client.get(f"{RUNS}/{run['id']}")
    assert response.status_code == 404 and code(response) == "agent_run_not_found"
    assert not AgentTask.objects.filter(run_id=run["id"]).exists()


# ---- who may ----


def _calls(run):
    url, task_url = f"{RUNS}/{run['id']}", f"{RUNS}/{run['id']}/tasks/{run['tasks'][0]['id']}"
    return [
        ("get", RUNS, None),
        ("post", RUNS, {"name": "x"}),
        ("get", url, None),
        ("patch", url, {"status": "completed"}),
        ("post", f"{url}/tasks", {"tasks": [{"name": "x"}]}),
        ("get", task_url, None),
        ("patch", task_url, {"status": "running"}),
        ("delete", url, None),
    ]


def _call(client, method, url, body):
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


def test_anonymous_is_401(run):
    for method, url, body in _calls(run):
        response = _call(APIClient(), method, url, body)
        assert response.status_code == 401 and code(response) == "not_authenticated", (method, url)


def test_outsider_gets_404(outsider_client, run):
    for method, url, body in _calls(run):
        if url == RUNS:
            continue
        response = _call(outsider_client, method, url, body)
        assert response.status_code == 404 and code(response) == "agent_run_not_found", (method, url)
    assert outsider_client.get(RUNS).json()["count"] == 0
    assert AgentRun.objects.get(pk=run["id"]).status == "running"


def test_read_only_key(client_for, owner, run):
    reader = client_for(owner, ["sandboxes:read"])
    for method, url, body in _calls(run):
        response = _call(reader, method, url, body)
        if method == "get":
            assert response.status_code == 200, (method, url)
        else:
            assert response.status_code == 403 and code(response) == "insufficient_scope", (method, url)
    assert AgentRun.objects.count() == 1 and AgentRun.objects.get().status == "running"


def test_unknown_task_is_404(api_client, run):
    other = create_run(api_client, name="other", tasks=[{"name": "z"}])
    for task_id in ("task_nothing", other["tasks"][0]["id"]):
        response = api_client.patch(f"{RUNS}/{run['id']}/tasks/{task_id}", {"status": "running"}, format="json")
        assert response.status_code == 404 and code(response) == "agent_task_not_found"
    response = api_client.get(f"{RUNS}/run_nothing")
    assert response.status_code == 404 and code(response) == "agent_run_not_found"


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"name": "x", "colour": "red"}, "unknown_field"),
        ({"name": "x", "tasks": [{"name": "t", "priority": 1}]}, "unknown_field"),
        ({}, "validation_error"),
        ({"name": ""}, "validation_error"),
        ({"name": "x" * 201}, "validation_error"),
        ({"name": "x", "kind": "swarm"}, "validation_error"),
        ({"name": "x", "parallelism": 0}, "validation_error"),
        ({"name": "x", "parallelism": 1001}, "validation_error"),
        ({"name": "x", "template": "t" * 65}, "validation_error"),
        ({"name": "x", "metadata": {"k": {"nested": 1}}}, "validation_error"),
        ({"name": "x", "metadata": {"bad key!": "v"}}, "invalid_metadata"),
        ({"name": "x", "tasks": [{"name": "t", "metadata": {"k": "v" * 2000}}]}, "metadata_too_large"),
        ({"name": "x", "tasks": [{"name": "t" * 501}]}, "validation_error"),
        ({"name": "x", "tasks": [{}]}, "validation_error"),
        ({"name": "x", "tasks": "all"}, "validation_error"),
    ],
)
def test_create_bad_input(api_client, body, expected):
    response = api_client.post(RUNS, body, format="json")
    assert response.status_code == 400, response.content
    assert code(response) == expected
    assert not AgentRun.objects.exists() and not AgentTask.objects.exists()


@pytest.mark.parametrize(
    "target, body, expected",
    [
        ("run", {"status": "paused"}, "validation_error"),
        ("run", {}, "validation_error"),
        ("run", {"status": "completed", "name": "renamed"}, "unknown_field"),
        ("tasks", {}, "validation_error"),
        ("tasks", {"tasks": [{"name": "t", "x": 1}]}, "unknown_field"),
        ("task", {"status": "done"}, "validation_error"),
        ("task", {"attempts": -1}, "validation_error"),
        ("task", {"sandboxId": "s" * 33}, "validation_error"),
        ("task", {"status": "running", "index": 7}, "unknown_field"),
    ],
)
def test_update_bad_input(api_client, run, target, body, expected):
    url = {
        "run": (f"{RUNS}/{run['id']}", "patch"),
        "tasks": (f"{RUNS}/{run['id']}/tasks", "post"),
        "task": (f"{RUNS}/{run['id']}/tasks/{run['tasks'][0]['id']}", "patch"),
    }[target]
    response = getattr(api_client, url[1])(url[0], body, format="json")
    assert response.status_code == 400 and code(response) == expected, response.content
    assert api_client.get(f"{RUNS}/{run['id']}").json() == run


# ---- live events ----


@pytest.mark.django_db(transaction=True)
def test_status_changes_reach_the_activity_feed(api_key, api_client, outsider, make_key):
    outsider_key = make_key(outsider)[1]

    def communicator(secret):
        return Communicator(application, "/ws/activity", headers=[(b"authorization", f"Bearer {secret}".encode())])

    async def next_event(comm) -> dict:
        output = await comm.receive_output(timeout=10)
        assert output["type"] == "websocket.send", output
        return json.loads(output["text"])

    async def scenario():
        mine, theirs = communicator(api_key[1]), communicator(outsider_key)
        assert (await mine.connect())[0] and (await theirs.connect())[0]
        run = await asyncio.to_thread(create_run, api_client, name="live", tasks=[{"name": "a"}, {"name": "b"}])
        created = await next_event(mine)
        assert created["type"] == "agent.run.created" and created["sandboxId"] is None and created["timestamp"]
        assert created["data"]["runId"] == run["id"] and created["data"]["counts"]["pending"] == 2
        a = run["tasks"][0]
        await asyncio.to_thread(patch_task, api_client, run, a, status="running", sandboxId="sbx_1")
        event = await next_event(mine)
        assert event["type"] == "agent.task.running"
        assert event["data"] == {
            "runId": run["id"],
            "taskId": a["id"],
            "index": 0,
            "name": "a",
            "status": "running",
            "sandboxId": "sbx_1",
            "attempts": 1,
            "error": None,
        }
        await asyncio.to_thread(patch_task, api_client, run, a, result={"ok": True})  # no status change: no event
        await asyncio.to_thread(patch_task, api_client, run, a, status="failed", error="boom")
        event = await next_event(mine)
        assert event["type"] == "agent.task.failed" and event["data"]["error"] == "boom"
        await asyncio.to_thread(api_client.patch, f"{RUNS}/{run['id']}", {"status": "cancelled"}, format="json")
        event = await next_event(mine)
        assert event["type"] == "agent.run.finished" and event["data"]["status"] == "cancelled"
        assert event["data"]["counts"] == {
            "pending": 0,
            "running": 0,
            "completed": 0,
            "failed": 1,
            "cancelled": 1,
            "total": 2,
        }
        assert await mine.receive_nothing(timeout=0.5)
        assert await theirs.receive_nothing(timeout=0.5)
        await mine.disconnect()
        await theirs.disconnect()

    async_to_sync(scenario)()


# ---- schema and admin ----


def test_in_the_openapi_schema(db, api_client, run):
    schema = Client().get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    operations = {
        ("/api/v1/agent-runs", "get"): "agent_runs_list",
        ("/api/v1/agent-runs", "post"): "agent_runs_create",
        ("/api/v1/agent-runs/{run_id}", "get"): "agent_runs_retrieve",
        ("/api/v1/agent-runs/{run_id}", "patch"): "agent_runs_update",
        ("/api/v1/agent-runs/{run_id}", "delete"): "agent_runs_destroy",
        ("/api/v1/agent-runs/{run_id}/tasks", "post"): "agent_runs_tasks_create",
        ("/api/v1/agent-runs/{run_id}/tasks/{task_id}", "get"): "agent_runs_tasks_retrieve",
        ("/api/v1/agent-runs/{run_id}/tasks/{task_id}", "patch"): "agent_runs_tasks_update",
    }
    for (path, method), operation_id in operations.items():
        assert paths[path][method]["operationId"] == operation_id
    components = schema["components"]["schemas"]
    # the documented bodies are the rendered ones
    stored = AgentRun.objects.get(pk=run["id"])
    assert set(components["AgentRun"]["properties"]) == set(AgentRunSerializer(stored, context={"tasks": []}).data)
    assert set(components["AgentRunSummary"]["properties"]) == set(AgentRunSummarySerializer(stored).data)
    assert set(components["AgentTask"]["properties"]) == set(AgentTaskSerializer(stored.tasks.first()).data)
    listing = paths["/api/v1/agent-runs"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"status", "limit", "offset"}
    assert "ExecStatusEnum" in components  # the pinned enum names (ENUM_NAME_OVERRIDES) are kept


def test_admin_pages(client, db, run):
    admin = get_user_model().objects.create_superuser(username="root", password="pw-root-1234")
    client.force_login(admin)
    task_id = run["tasks"][0]["id"]
    for url in (
        "/admin/agents/agentrun/",
        f"/admin/agents/agentrun/{run['id']}/change/",
        "/admin/agents/agenttask/",
        f"/admin/agents/agenttask/{task_id}/change/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert run["id"].encode() in response.content
