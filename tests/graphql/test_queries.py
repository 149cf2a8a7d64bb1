"""Queries through the real /graphql view as owner, outsider and a read-only key (issue 27)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.agents import runs
from apps.keys.scopes import SANDBOXES_READ, TEMPLATES_READ
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Execution
from tests.conftest import sandbox_row
from tests.graphql.conftest import error_codes, global_id, gql

LIST = """
query($first: Int, $after: String, $filter: SandboxFilter) {
  sandboxes(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id sandboxId name status template } }
  }
}"""


def _executions(sandbox, count: int) -> list[Execution]:
    return [
        Execution.objects.create(sandbox=sandbox, kind="exec", command=f"echo {n}", status="completed", exit_code=n)
        for n in range(count)
    ]


def test_viewer_is_the_key_owner_in_their_personal_org(owner, api_client):
    body = gql(api_client, "{ viewer { username organization { slug personal } scopes apiKeyId } }")
    assert error_codes(body) == []
    viewer = body["data"]["viewer"]
    assert viewer["username"] == "owner"
    assert viewer["organization"]["personal"] is True
    assert "sandboxes:read" in viewer["scopes"]
    assert viewer["apiKeyId"]


def test_sandboxes_lists_the_owners_and_pages_with_cursors(owner, api_client, templates):
    rows = [sandbox_row(owner, templates["python-3"], name=f"s{n}") for n in range(5)]
    first = gql(api_client, LIST, {"first": 2})
    assert error_codes(first) == []
    page = first["data"]["sandboxes"]
    assert page["totalCount"] == 5
    assert page["pageInfo"]["hasNextPage"] is True and page["pageInfo"]["hasPreviousPage"] is False
    assert [edge["node"]["name"] for edge in page["edges"]] == ["s4", "s3"]  # newest first, as REST
    rest = api_client.get("/api/v1/sandboxes?limit=2").json()["results"]
    assert [edge["node"]["sandboxId"] for edge in page["edges"]] == [item["id"] for item in rest]
    assert page["edges"][0]["node"]["id"] == global_id("Sandbox", rows[4].pk)
    assert page["edges"][0]["node"]["status"] == "RUNNING"

    second = gql(api_client, LIST, {"first": 2, "after": page["pageInfo"]["endCursor"]})["data"]["sandboxes"]
    assert [edge["node"]["name"] for edge in second["edges"]] == ["s2", "s1"]
    assert second["pageInfo"]["hasPreviousPage"] is True
    last = gql(api_client, LIST, {"first": 2, "after": second["pageInfo"]["endCursor"]})["data"]["sandboxes"]
    assert [edge["node"]["name"] for edge in last["edges"]] == ["s0"]
    assert last["pageInfo"]["hasNextPage"] is False


def test_sandboxes_filter_as_rest(owner, api_client, templates):
    sandbox_row(owner, templates["python-3"], name="keep", metadata={"team": "ml"})
    sandbox_row(owner, templates["python-3"], name="other", metadata={"team": "web"}, status="stopped")
    by_meta = gql(api_client, LIST, {"filter": {"metadata": {"team": "ml"}}})["data"]["sandboxes"]
    assert [edge["node"]["name"] for edge in by_meta["edges"]] == ["keep"]
    by_status = gql(api_client, LIST, {"filter": {"status": ["STOPPED"]}})["data"]["sandboxes"]
    assert [edge["node"]["name"] for edge in by_status["edges"]] == ["other"]
    bad = gql(api_client, LIST, {"filter": {"metadata": {"team": 3}}})
    assert error_codes(bad) == ["invalid_metadata"] and bad["data"] == {"sandboxes": None}


def test_page_size_above_the_maximum_is_refused_as_rest_refuses_a_limit(owner, api_client, settings):
    body = gql(api_client, LIST, {"first": settings.VIBEBOX_GRAPHQL_MAX_PAGE_SIZE + 1})
    assert error_codes(body) == ["validation_error"]
    assert body["errors"][0]["extensions"]["status"] == 400
    assert body["errors"][0]["extensions"]["details"]["fields"]["first"]
    assert error_codes(gql(api_client, LIST, {"after": "not-a-cursor"})) == ["validation_error"]


def test_sandbox_by_id_name_and_node_with_nested_executions(owner, api_client, templates):
    sandbox = sandbox_row(owner, templates["python-3"], name="nested")
    executions = _executions(sandbox, 3)
    query = """query($id: ID, $name: String) { sandbox(id: $id, name: $name) {
        name resources { cpu memoryBytes }
        lastExecution { executionId exitCode status kind }
        executions(first: 2) { totalCount pageInfo { hasNextPage } nodes { executionId command stdout } }
        snapshots { id }
    } }"""
    for variables in ({"id": sandbox.pk}, {"id": global_id("Sandbox", sandbox.pk)}, {"name": "nested"}):
        body = gql(api_client, query, variables)
        assert error_codes(body) == [], variables
        found = body["data"]["sandbox"]
        assert found["name"] == "nested"
        assert found["lastExecution"]["executionId"] == executions[-1].pk
        assert found["lastExecution"]["status"] == "COMPLETED" and found["lastExecution"]["kind"] == "EXEC"
        assert found["executions"]["totalCount"] == 3 and found["executions"]["pageInfo"]["hasNextPage"]
        assert [n["executionId"] for n in found["executions"]["nodes"]] == [e.pk for e in executions[::-1][:2]]
        assert found["snapshots"] == []

    execution_id = global_id("Execution", f"{sandbox.pk}/{executions[0].pk}")
    node = gql(
        api_client, "query($id: ID!) { node(id: $id) { id ... on Execution { command } } }", {"id": execution_id}
    )
    assert node["data"]["node"] == {"id": execution_id, "command": "echo 0"}


def test_another_orgs_sandbox_is_null_with_rests_404_code(owner, outsider, api_client, outsider_client, templates):
    sandbox = sandbox_row(owner, templates["python-3"], name="private")
    _executions(sandbox, 1)
    rest = outsider_client.get(f"/api/v1/sandboxes/{sandbox.pk}")
    assert rest.status_code == 404
    for query, variables in [
        ("query($id: ID) { sandbox(id: $id) { name } }", {"id": sandbox.pk}),
        ("query($id: ID) { sandbox(id: $id) { name } }", {"id": global_id("Sandbox", sandbox.pk)}),
        ("query($name: String) { sandbox(name: $name) { name } }", {"name": "private"}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": global_id("Sandbox", sandbox.pk)}),
    ]:
        body = gql(outsider_client, query, variables)
        assert list(body["data"].values()) == [None], (query, body)
        error = body["errors"][0]
        assert error["extensions"]["code"] == rest.json()["error"]["code"] == "sandbox_not_found"
        assert error["extensions"]["status"] == 404
        assert "private" not in str(error["message"]) or variables.get("name") == "private"
    execution = Execution.objects.get(sandbox=sandbox)
    node = gql(
        outsider_client,
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": global_id("Execution", f"{sandbox.pk}/{execution.pk}")},
    )
    assert node["data"]["node"] is None and error_codes(node) == ["sandbox_not_found"]
    listed = gql(outsider_client, LIST)["data"]["sandboxes"]
    assert listed["edges"] == [] and listed["totalCount"] == 0
    assert error_codes(gql(outsider_client, '{ node(id: "garbage!") { id } }')) == ["not_found"]


def test_read_only_key_reads_and_a_key_without_the_scope_gets_insufficient_scope(owner, client_for, templates):
    sandbox_row(owner, templates["python-3"], name="seen")
    read_only = client_for(owner, [SANDBOXES_READ])
    assert [e["node"]["name"] for e in gql(read_only, LIST)["data"]["sandboxes"]["edges"]] == ["seen"]
    templates_only = client_for(owner, [TEMPLATES_READ])
    body = gql(templates_only, "{ viewer { username } sandboxes { totalCount } }")
    assert body["data"]["viewer"] == {"username": "owner"}  # the other fields still answer
    assert body["data"]["sandboxes"] is None
    assert error_codes(body) == ["insufficient_scope"]
    assert body["errors"][0]["extensions"]["status"] == 403
    assert body["errors"][0]["extensions"]["details"]["missing"] == [SANDBOXES_READ]
    assert body["errors"][0]["path"] == ["sandboxes"]


def test_one_hundred_sandboxes_with_nested_executions_cost_a_constant_number_of_queries(owner, api_client, templates):
    query = """{ sandboxes(first: 100) { edges { node {
        name lastExecution { exitCode }
        executions(first: 3) { totalCount nodes { command exitCode } }
        snapshots { name }
    } } } }"""

    def queries_for(count: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            body = gql(api_client, query)
        assert error_codes(body) == []
        edges = body["data"]["sandboxes"]["edges"]
        assert len(edges) == count
        assert all(len(edge["node"]["executions"]["nodes"]) == 3 for edge in edges)
        assert all(edge["node"]["executions"]["totalCount"] == 4 for edge in edges)
        return len(captured.captured_queries)

    python = templates["python-3"]
    gql(api_client, "{ viewer { username } }")  # the key's lookups, cached after its first request
    for n in range(10):
        _executions(sandbox_row(owner, python, name=f"a{n}"), 4)
    ten = queries_for(10)
    for n in range(90):
        _executions(sandbox_row(owner, python, name=f"b{n}"), 4)
    hundred = queries_for(100)
    assert hundred == ten, f"{ten} queries for 10 sandboxes, {hundred} for 100: one query per row somewhere"
    assert hundred <= 15, hundred


def test_agent_runs_with_their_tasks_cost_a_constant_number_of_queries(owner, api_client):
    query = "{ agentRuns(first: 50) { nodes { name tasks(first: 2) { totalCount nodes { name index } } } } }"
    org = personal_org_ensure(user=owner)

    def queries_for(count: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            body = gql(api_client, query)
        assert error_codes(body) == []
        nodes = body["data"]["agentRuns"]["nodes"]
        assert len(nodes) == count
        assert all(n["tasks"]["totalCount"] == 3 for n in nodes)
        assert all([t["index"] for t in n["tasks"]["nodes"]] == [0, 1] for n in nodes)  # each run's own first two
        return len(captured.captured_queries)

    gql(api_client, "{ viewer { username } }")
    tasks = [{"name": f"t{i}"} for i in range(3)]
    for n in range(5):
        runs.agent_run_create(owner=owner, org=org, name=f"a{n}", tasks=tasks)
    five = queries_for(5)
    for n in range(45):
        runs.agent_run_create(owner=owner, org=org, name=f"b{n}", tasks=tasks)
    fifty = queries_for(50)
    assert fifty == five, f"{five} queries for 5 runs, {fifty} for 50: one query per run somewhere"


def test_get_runs_queries_and_refuses_mutations(owner, api_client):
    body = gql(
        api_client, "query($x: Int) { viewer { username } sandboxes(first: $x) { totalCount } }", {"x": 1}, method="get"
    )
    assert body["data"] == {"viewer": {"username": "owner"}, "sandboxes": {"totalCount": 0}}
    refused = api_client.get("/graphql", {"query": "mutation { noop }"}, HTTP_ACCEPT="application/json")
    assert refused.status_code == 405
    assert refused.json()["errors"][0]["extensions"]["code"] == "method_not_allowed"
