"""The platform's other reads through /graphql: each answers what its REST endpoint answers, with
the REST endpoint's scope (issue 27)."""

from apps.keys.scopes import SANDBOXES_READ, TEMPLATES_READ
from tests.graphql.conftest import error_codes, global_id, gql


def test_templates_and_the_marketplace_are_rests(owner, api_client, templates):
    body = gql(api_client, "{ templates { id name displayName buildState official } }")
    assert error_codes(body) == []
    rest = api_client.get("/api/v1/templates").json()
    assert [t["name"] for t in body["data"]["templates"]] == [t["name"] for t in rest]
    first = body["data"]["templates"][0]
    assert first["id"] == global_id("Template", first["name"]) and first["buildState"] == rest[0]["buildState"]
    market = gql(api_client, "{ marketplaceTemplates(first: 3) { totalCount nodes { name official details } } }")
    assert error_codes(market) == []
    rest_market = api_client.get("/api/v1/marketplace/templates?limit=3").json()
    assert [n["name"] for n in market["data"]["marketplaceTemplates"]["nodes"]] == [
        t["name"] for t in rest_market["results"]
    ]
    assert market["data"]["marketplaceTemplates"]["totalCount"] == rest_market["count"]


def test_api_keys_never_show_secrets_and_need_keys_manage(owner, api_key, api_client, client_for):
    body = gql(api_client, "{ apiKeys { id keyId name prefix scopes active createdAt } }")
    keys = body["data"]["apiKeys"]
    assert [k["keyId"] for k in keys] == [k["id"] for k in api_client.get("/api/v1/keys").json()]
    assert api_key[0].pk in [k["keyId"] for k in keys] and api_key[1] not in str(body)
    refused = gql(client_for(owner, [SANDBOXES_READ]), "{ apiKeys { id } }")
    assert refused["data"] == {"apiKeys": None} and error_codes(refused) == ["insufficient_scope"]


def test_webhooks_with_deliveries_audit_log_agent_runs_and_usage(owner, api_client, outsider_client, hook):
    created = hook(events=["sandbox.created"], description="ci")
    assert api_client.post(f"/api/v1/webhooks/{created['id']}/test").status_code == 202
    query = """{ webhooks { webhookId url events description active
                  deliveries(first: 5) { totalCount nodes { deliveryId event status attempts } } } }"""
    body = gql(api_client, query)
    assert error_codes(body) == []
    [webhook] = body["data"]["webhooks"]
    assert webhook["webhookId"] == created["id"] and webhook["events"] == ["sandbox.created"]
    rest_deliveries = api_client.get(f"/api/v1/webhooks/{created['id']}/deliveries").json()["results"]
    assert [d["deliveryId"] for d in webhook["deliveries"]["nodes"]] == [d["id"] for d in rest_deliveries]
    assert webhook["deliveries"]["totalCount"] == len(rest_deliveries) >= 1
    assert "secret" not in str(body).lower()
    assert gql(outsider_client, "{ webhooks { webhookId } }")["data"]["webhooks"] == []  # their own org's

    audit = gql(api_client, "{ auditLog(first: 50) { totalCount nodes { seq action targetId } } }")
    assert error_codes(audit) == []
    slug = gql(api_client, "{ organization { slug } }")["data"]["organization"]["slug"]
    rest_audit = api_client.get(f"/api/v1/orgs/{slug}/audit-log?limit=50").json()["results"]
    assert [e["seq"] for e in audit["data"]["auditLog"]["nodes"]] == [e["seq"] for e in rest_audit]
    assert any(e["targetId"] == created["id"] for e in audit["data"]["auditLog"]["nodes"])

    runs = gql(api_client, "{ agentRuns { totalCount nodes { runId } } }")
    assert runs["data"]["agentRuns"] == {"totalCount": 0, "nodes": []}

    window = {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}
    usage = gql(
        api_client,
        """query($start: DateTime, $end: DateTime) { usage(start: $start, end: $end, groupBy: "resource") {
            from to groupBy items { key label resource quantity unit } } }""",
        window,
    )
    assert error_codes(usage) == []
    rest_usage = api_client.get(
        "/api/v1/billing/usage", {"groupBy": "resource", "from": window["start"], "to": window["end"]}
    ).json()
    assert usage["data"]["usage"] == rest_usage  # typed, and each field REST's value
    assert error_codes(gql(api_client, '{ usage(groupBy: "nope") { groupBy } }')) == ["unknown_group_by"]


def test_a_key_without_the_scope_gets_nulls_not_data(owner, client_for, hook):
    hook()
    client = client_for(owner, [TEMPLATES_READ])
    body = gql(client, "{ webhooks { url } auditLog { totalCount } usage { groupBy } }")
    assert body["data"] == {"webhooks": None, "auditLog": None, "usage": None}
    assert error_codes(body) == ["insufficient_scope"] * 3


def test_a_live_sandboxs_files_env_metrics_processes_git_and_claude(owner, api_client, create_sandbox):
    sandbox = create_sandbox(env={"VISIBLE": "1"}, resources={"memory": "3g"})  # a limit past GraphQL's Int
    executed = api_client.post(
        f"/api/v1/sandboxes/{sandbox['id']}/exec", {"command": "echo hi > /workspace/hello.txt"}, format="json"
    )
    assert executed.status_code == 200, executed.content
    query = """query($id: ID) { sandbox(id: $id) {
        status env
        files(path: "") { path entries { path name size isDir type mode modifiedAt symlinkTarget } }
        metrics {
            sandboxId status timestamp cpu { limit onlineCpus } memory { usage limit }
            disk { limit } pids { current limit }
        }
        processes { processId command running }
        cost { sandboxId since total ratePerHour currency }
        lastExecution { exitCode command }
        claude { sessions { sessionId } pendingChanges { id } }
        git { status { branch } }
    } }"""
    body = gql(api_client, query, {"id": sandbox["id"]})
    found = body["data"]["sandbox"]
    assert found["status"] == "RUNNING" and found["env"] == ["VISIBLE"]
    rest_files = api_client.get(f"/api/v1/sandboxes/{sandbox['id']}/files").json()
    assert found["files"] == rest_files and "hello.txt" in str(found["files"])
    assert found["lastExecution"] == {"exitCode": 0, "command": "echo hi > /workspace/hello.txt"}
    rest_metrics = api_client.get(f"/api/v1/sandboxes/{sandbox['id']}/metrics").json()
    assert set(found["metrics"]) == set(rest_metrics)
    assert found["metrics"]["memory"]["limit"] == rest_metrics["memory"]["limit"] > 2**31  # Long: past GraphQL's Int
    assert found["metrics"]["pids"]["limit"] == rest_metrics["pids"]["limit"]
    assert found["processes"] == api_client.get(f"/api/v1/sandboxes/{sandbox['id']}/processes").json()["processes"]
    rest_cost = api_client.get(f"/api/v1/sandboxes/{sandbox['id']}/cost").json()
    assert found["cost"] == rest_cost
    assert found["claude"] == {"sessions": [], "pendingChanges": []}
    # /repo is not a repository here: REST's code for that, on the field alone
    rest_git = api_client.get(f"/api/v1/sandboxes/{sandbox['id']}/git/status")
    assert found["git"] is None
    [error] = body["errors"]
    assert error["path"] == ["sandbox", "git", "status"]
    assert error["extensions"]["code"] == rest_git.json()["error"]["code"]
    assert error["extensions"]["status"] == rest_git.status_code


def test_node_refetches_templates_keys_and_webhooks_and_hides_other_orgs(
    owner, api_key, api_client, outsider_client, hook, templates
):
    created = hook()
    ids = {
        "Template": global_id("Template", "python-3.13"),
        "ApiKey": global_id("ApiKey", api_key[0].pk),
        "Webhook": global_id("Webhook", created["id"]),
    }
    query = "query($id: ID!) { node(id: $id) { id __typename } }"
    for type_name, node_id in ids.items():
        body = gql(api_client, query, {"id": node_id})
        assert body["data"]["node"] == {"id": node_id, "__typename": type_name}, body
    assert error_codes(gql(outsider_client, query, {"id": ids["ApiKey"]})) == ["key_not_found"]
    assert error_codes(gql(outsider_client, query, {"id": ids["Webhook"]})) == ["webhook_not_found"]
    assert gql(outsider_client, query, {"id": ids["Template"]})["data"]["node"]["id"] == ids["Template"]  # built-in
