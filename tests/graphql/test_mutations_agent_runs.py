"""The agent-run mutations (docs/graphql.md, "Mutations"): createAgentRun, addAgentTasks,
updateAgentTask, finishAgentRun, deleteAgentRun through the real /graphql view, calling the same
functions as /api/v1/agent-runs (apps/agents/runs.py `*_from`). The effect is checked in the
database, in the audit log and through REST's GET; another organization's run is
agent_run_not_found and nothing changes; a read-only key is 403 insufficient_scope naming
sandboxes:write; an organization's roles refuse as REST's do. No Docker needed."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.agents.models import AgentRun, AgentTask
from apps.audit.models import AuditEntry
from apps.keys.scopes import ALL_SCOPES
from apps.orgs import services as org_services
from tests.graphql.conftest import global_id
from tests.graphql.test_mutations import ok, refused

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/agent-runs"
RUN_FIELDS = "id runId name kind status parallelism template metadata counts createdAt finishedAt durationMs"
TASK_FIELDS = "id index name status sandboxId attempts error result metadata startedAt finishedAt durationMs"
# The REST fields whose values GraphQL answers as REST does (times: DateTime's own format).
SAME = ("id", "index", "name", "status", "sandboxId", "attempts", "error", "result", "metadata", "durationMs")

CREATE = (
    "mutation($input: CreateAgentRunInput!) { createAgentRun(input: $input) { "
    + RUN_FIELDS
    + " tasks { totalCount nodes { "
    + TASK_FIELDS
    + " } } } }"
)
ADD = "mutation($id: ID!, $tasks: [AgentTaskInput!]!) { addAgentTasks(runId: $id, tasks: $tasks) { " + TASK_FIELDS
ADD += " } }"
UPDATE = "mutation($id: ID!, $task: String!, $input: UpdateAgentTaskInput!) { updateAgentTask(runId: $id, "
UPDATE += "taskId: $task, input: $input) { " + TASK_FIELDS + " } }"
FINISH = "mutation($id: ID!, $status: String!) { finishAgentRun(id: $id, status: $status) { " + RUN_FIELDS
FINISH += " tasks(first: 10) { nodes { id status finishedAt } } } }"
DELETE = "mutation($id: ID!) { deleteAgentRun(id: $id) { id deleted } }"


def rest(client, path: str = "", expect: int = 200) -> dict:
    response = client.get(f"{RUNS}{path}")
    assert response.status_code == expect, response.content
    return response.json()


def actions(org_id) -> list[str]:
    return list(
        AuditEntry.objects.filter(org_id=org_id, action__startswith="agent_")
        .order_by("seq")
        .values_list("action", flat=True)
    )


@pytest.fixture
def run(api_client):
    """A run of the owner's with two tasks, made through REST."""
    response = api_client.post(RUNS, {"name": "theirs", "tasks": [{"name": "a"}, {"name": "b"}]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_owner_creates_adds_updates_finishes_and_deletes_a_run(api_client, api_key, owner):
    key, _secret = api_key
    made = ok(
        api_client,
        CREATE,
        input={
            "name": "analyse repos",
            "kind": "orchestrate",
            "parallelism": 3,
            "template": "node-20",
            "metadata": {"team": "ml"},
            "tasks": [{"name": "repo-a", "metadata": {"url": "git://a"}}, {"name": "repo-b"}],
        },
    )["createAgentRun"]
    run_id = made["runId"]
    assert made["id"] == global_id("AgentRun", run_id) and run_id.startswith("run_")
    assert (made["name"], made["kind"], made["status"], made["parallelism"], made["template"]) == (
        "analyse repos",
        "orchestrate",
        "running",
        3,
        "node-20",
    )
    assert made["metadata"] == {"team": "ml"} and made["finishedAt"] is None
    assert made["counts"] == {"pending": 2, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 2}
    assert made["tasks"]["totalCount"] == 2
    first, second = made["tasks"]["nodes"]
    assert [first["index"], second["index"]] == [0, 1] and first["metadata"] == {"url": "git://a"}

    stored = AgentRun.objects.get(pk=run_id)
    assert (stored.owner_id, stored.org_id, stored.api_key_id, stored.kind) == (
        owner.pk,
        key.org_id,
        key.pk,
        "orchestrate",
    )
    over_rest = rest(api_client, f"/{run_id}")
    assert {name: over_rest[name] for name in ("name", "kind", "status", "parallelism", "template", "metadata")} == {
        "name": "analyse repos",
        "kind": "orchestrate",
        "status": "running",
        "parallelism": 3,
        "template": "node-20",
        "metadata": {"team": "ml"},
    }
    assert [task["id"] for task in over_rest["tasks"]] == [first["id"], second["id"]]
    assert all(
        {name: rest_task[name] for name in SAME} == {name: gql_task[name] for name in SAME}
        for rest_task, gql_task in zip(over_rest["tasks"], (first, second), strict=True)
    )

    # tasks appended, by the global id; their indexes continue
    added = ok(api_client, ADD, id=made["id"], tasks=[{"name": "repo-c", "metadata": {"k": "v"}}])["addAgentTasks"]
    assert [(t["index"], t["name"], t["status"], t["metadata"]) for t in added] == [
        (2, "repo-c", "pending", {"k": "v"})
    ]
    assert list(AgentTask.objects.filter(run_id=run_id).order_by("index").values_list("name", flat=True)) == [
        "repo-a",
        "repo-b",
        "repo-c",
    ]

    # a task's progress, by the REST id; a sandbox's global id is its REST id
    running = ok(
        api_client,
        UPDATE,
        id=run_id,
        task=first["id"],
        input={"status": "running", "sandboxId": global_id("Sandbox", "sbx_abc")},
    )["updateAgentTask"]
    assert (running["status"], running["sandboxId"], running["attempts"]) == ("running", "sbx_abc", 1)
    assert running["startedAt"] and running["finishedAt"] is None
    done = ok(
        api_client, UPDATE, id=run_id, task=first["id"], input={"status": "completed", "result": {"answer": [1, 2]}}
    )["updateAgentTask"]
    assert done["status"] == "completed" and done["result"] == {"answer": [1, 2]} and done["finishedAt"]
    row = AgentTask.objects.get(pk=first["id"])
    assert (row.status, row.sandbox_id, row.attempts, row.result) == ("completed", "sbx_abc", 1, {"answer": [1, 2]})
    over_rest = rest(api_client, f"/{run_id}/tasks/{first['id']}")
    assert {name: over_rest[name] for name in SAME} == {name: done[name] for name in SAME}
    # a finished task keeps its status: REST's 409
    error = refused(api_client, UPDATE, "agent_task_finished", id=run_id, task=first["id"], input={"status": "running"})
    assert error["extensions"]["status"] == 409

    # cancelled: its open tasks too
    finished = ok(api_client, FINISH, id=made["id"], status="cancelled")["finishAgentRun"]
    assert finished["status"] == "cancelled" and finished["finishedAt"] and finished["durationMs"] >= 0
    assert finished["counts"] == {"pending": 0, "running": 0, "completed": 1, "failed": 0, "cancelled": 2, "total": 3}
    assert [t["status"] for t in finished["tasks"]["nodes"]] == ["completed", "cancelled", "cancelled"]
    assert AgentRun.objects.get(pk=run_id).status == "cancelled"
    over_rest = rest(api_client, f"/{run_id}")
    assert over_rest["status"] == "cancelled" and over_rest["counts"] == finished["counts"]
    # asking for the status it has changes nothing; another is REST's 409; so are its tasks
    assert (
        ok(api_client, FINISH, id=run_id, status="cancelled")["finishAgentRun"]["finishedAt"] == finished["finishedAt"]
    )
    error = refused(api_client, FINISH, "agent_run_finished", id=run_id, status="completed")
    assert error["extensions"]["status"] == 409 and error["extensions"]["details"]["status"] == "cancelled"
    refused(api_client, ADD, "agent_run_finished", id=run_id, tasks=[{"name": "late"}])
    refused(api_client, UPDATE, "agent_run_finished", id=run_id, task=second["id"], input={"error": "late"})
    assert AgentTask.objects.filter(run_id=run_id).count() == 3

    assert actions(key.org_id) == [
        "agent_run.created",
        "agent_run.tasks_added",
        "agent_task.updated",
        "agent_task.updated",
        "agent_run.finished",
    ]
    entries = AuditEntry.objects.filter(org_id=key.org_id, action__startswith="agent_")
    assert {(entry.source, entry.key_id) for entry in entries} == {("api", key.pk)}

    assert ok(api_client, DELETE, id=made["id"])["deleteAgentRun"] == {"id": run_id, "deleted": True}
    assert not AgentRun.objects.filter(pk=run_id).exists() and not AgentTask.objects.filter(run_id=run_id).exists()
    assert rest(api_client, f"/{run_id}", expect=404)["error"]["code"] == "agent_run_not_found"
    assert actions(key.org_id)[-1] == "agent_run.deleted"
    refused(api_client, DELETE, "agent_run_not_found", id=run_id)


def test_rest_validation_errors(api_client, run):
    refused(api_client, CREATE, "validation_error", input={"name": "x", "kind": "sideways"})
    refused(api_client, CREATE, "validation_error", input={"name": "x", "parallelism": 0})
    refused(api_client, CREATE, "validation_error", input={"name": "x", "metadata": "not an object"})
    refused(api_client, FINISH, "validation_error", id=run["id"], status="paused")
    task = run["tasks"][0]["id"]
    refused(api_client, UPDATE, "validation_error", id=run["id"], task=task, input={"attempts": -1})
    refused(api_client, UPDATE, "validation_error", id=run["id"], task=task, input={"status": "asleep"})
    error = refused(api_client, UPDATE, "request_too_large", id=run["id"], task=task, input={"result": "x" * 65536})
    assert error["extensions"]["status"] == 413 and error["extensions"]["details"]["limit"] == 65536
    refused(api_client, UPDATE, "agent_task_not_found", id=run["id"], task="task_nothing", input={"attempts": 1})
    refused(api_client, ADD, "agent_run_not_found", id="run_nothing", tasks=[{"name": "x"}])
    assert AgentRun.objects.count() == 1
    stored = AgentTask.objects.get(pk=task)
    assert (stored.status, stored.attempts, stored.result) == ("pending", 0, None)


def _writes(run: dict) -> list[tuple[str, dict]]:
    task = run["tasks"][0]["id"]
    return [
        (ADD, {"id": run["id"], "tasks": [{"name": "x"}]}),
        (UPDATE, {"id": run["id"], "task": task, "input": {"status": "running"}}),
        (FINISH, {"id": run["id"], "status": "cancelled"}),
        (DELETE, {"id": run["id"]}),
    ]


def _unchanged(run: dict, org_id) -> tuple:
    stored = AgentRun.objects.get(pk=run["id"])
    tasks = list(AgentTask.objects.filter(run=stored).order_by("index").values_list("status", "attempts"))
    return stored.status, tasks, AuditEntry.objects.filter(org_id=org_id).count()


def test_outsider_gets_not_found_and_nothing_changes(api_client, api_key, outsider_client, run):
    org_id = api_key[0].org_id
    before = _unchanged(run, org_id)
    for document, variables in _writes(run):
        for ref in (run["id"], global_id("AgentRun", run["id"])):
            error = refused(outsider_client, document, "agent_run_not_found", **{**variables, "id": ref})
            assert error["extensions"]["status"] == 404 and "theirs" not in str(error)
    made = ok(outsider_client, CREATE, input={"name": "mine"})["createAgentRun"]  # in the outsider's own organization
    assert made["runId"] != run["id"] and rest(api_client)["count"] == 1
    assert _unchanged(run, org_id) == before


def test_a_read_only_key_is_insufficient_scope(api_key, client_for, owner, run):
    reader = client_for(owner, ["sandboxes:read"])
    before = _unchanged(run, api_key[0].org_id)
    for document, variables in [(CREATE, {"input": {"name": "x"}}), *_writes(run)]:
        error = refused(reader, document, "insufficient_scope", **variables)
        assert error["extensions"]["status"] == 403, error
        assert error["extensions"]["details"]["missing"] == ["sandboxes:write"], error
    assert AgentRun.objects.count() == 1 and _unchanged(run, api_key[0].org_id) == before
    # reading stays allowed
    assert rest(reader, f"/{run['id']}")["status"] == "running"


def test_roles_refuse_as_rest_does(owner, make_key):
    org = org_services.org_create(user=owner, name="Runs", slug="runs")
    clients = {}
    for role in ("owner", "developer", "viewer"):
        user = owner if role == "owner" else get_user_model().objects.create_user(username=f"{role}-runs")
        if role != "owner":
            org_services.member_add(org=org, user_ref=user.username, role=role)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(user, ALL_SCOPES, org=org)[1]}")
        clients[role] = client
    error = refused(clients["viewer"], CREATE, "permission_denied", input={"name": "x"})
    assert error["extensions"]["details"]["permission"] == "sandboxes.create"
    made = ok(clients["owner"], CREATE, input={"name": "the owner's", "tasks": [{"name": "a"}]})["createAgentRun"]
    task = AgentTask.objects.get(run_id=made["runId"]).pk
    # another member's run: a developer may read it but not change it (REST's sandboxes.manage_all)
    for document, variables in [
        (FINISH, {"id": made["id"], "status": "cancelled"}),
        (UPDATE, {"id": made["id"], "task": task, "input": {"status": "running"}}),
        (DELETE, {"id": made["id"]}),
    ]:
        error = refused(clients["developer"], document, "permission_denied", **variables)
        assert error["extensions"]["details"]["permission"] == "sandboxes.manage_all", error
    assert AgentRun.objects.get(pk=made["runId"]).status == "running"
    assert ok(clients["developer"], CREATE, input={"name": "mine"})["createAgentRun"]["status"] == "running"


def test_a_runs_tasks_are_read_through_the_queries_too(api_client, outsider_client, run):
    query = (
        "{ agentRuns { nodes { runId tasks(first: 1) { totalCount pageInfo { hasNextPage } nodes { id name } } } } }"
    )
    (found,) = ok(api_client, query)["agentRuns"]["nodes"]
    assert found["runId"] == run["id"] and found["tasks"]["totalCount"] == 2
    assert found["tasks"]["pageInfo"]["hasNextPage"] is True
    assert found["tasks"]["nodes"] == [{"id": run["tasks"][0]["id"], "name": "a"}]
    assert ok(outsider_client, query)["agentRuns"]["nodes"] == []
