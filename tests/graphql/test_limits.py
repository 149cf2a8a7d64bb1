"""Depth, cost, page size and introspection limits refuse a document before it runs (issue 27)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.graphql.conftest import error_codes, gql


def test_a_query_deeper_than_the_limit_is_refused_before_any_sql(owner, api_client, settings):
    settings.VIBEBOX_GRAPHQL_MAX_DEPTH = 5
    ok = gql(api_client, "{ sandboxes(first: 1) { edges { node { executions(first: 1) { totalCount } } } } }")
    assert error_codes(ok) == []
    deep = "{ sandboxes(first: 1) { edges { node { executions(first: 1) { edges { node { id } } } } } } }"
    with CaptureQueriesContext(connection) as captured:
        refused = gql(api_client, deep)
    assert refused["data"] is None
    assert error_codes(refused) == ["graphql_too_deep"]
    extensions = refused["errors"][0]["extensions"]
    assert extensions["status"] == 400 and extensions["details"] == {"depth": 7, "limit": 5}
    assert not [q for q in captured.captured_queries if "sandboxes_execution" in q["sql"]]


def test_fragments_count_where_they_are_spread(owner, api_client, settings):
    settings.VIBEBOX_GRAPHQL_MAX_DEPTH = 4
    query = """
      fragment Exec on Sandbox { executions(first: 1) { edges { node { id } } } }
      { sandboxes(first: 1) { edges { node { ...Exec } } } }"""
    assert error_codes(gql(api_client, query)) == ["graphql_too_deep"]


def test_the_default_depth_limit_is_ten(owner, api_client, settings):
    assert settings.VIBEBOX_GRAPHQL_MAX_DEPTH == 10
    ok = "{ sandboxes { edges { node { executions { edges { node { id } } } } } } }"  # 7
    assert error_codes(gql(api_client, ok)) == []
    cyclic = '{ node(id: "x") { ... on Sandbox { executions { edges { node { id } } } } } }'
    assert "graphql_too_deep" not in error_codes(gql(api_client, cyclic))


def test_a_query_costing_more_than_the_limit_is_refused(owner, api_client, settings):
    settings.VIBEBOX_GRAPHQL_MAX_COST = 1000
    cheap = "{ sandboxes(first: 10) { edges { node { name executions(first: 5) { nodes { id } } } } } }"
    assert error_codes(gql(api_client, cheap)) == []
    costly = (
        "query($n: Int) { sandboxes(first: $n) { edges { node { name"
        " executions(first: 100) { nodes { id command } } } } } }"
    )
    refused = gql(api_client, costly, {"n": 100})
    assert error_codes(refused) == ["graphql_too_complex"] and refused["data"] is None
    details = refused["errors"][0]["extensions"]["details"]
    assert details["limit"] == 1000 and details["cost"] > 1000
    assert error_codes(gql(api_client, costly, {"n": 1})) == []  # the page size from the variables: 304
    without_first = "{ sandboxes { nodes { executions { nodes { id command stdout stderr } } } } }"
    assert error_codes(gql(api_client, without_first)) == ["graphql_too_complex"]  # 20 x 20 x 5 by default
    aliased = "{ " + " ".join(f"a{n}: sandboxes(first: 100) {{ totalCount }}" for n in range(20)) + " }"
    assert error_codes(gql(api_client, aliased)) == ["graphql_too_complex"]  # aliases are no way around it


def test_a_variables_declared_default_is_costed_and_sandbox_work_weighs_more(owner, api_client):
    # `first: $n` with `$n` left out takes the declared default: costed as first: 100 (review: it was 20).
    by_default = "query($n: Int = 100) { sandboxes(first: $n) { nodes { executions(first: $n) { nodes { id } } } } }"
    assert error_codes(gql(api_client, by_default)) == ["graphql_too_complex"]
    assert error_codes(gql(api_client, by_default, {"n": 2})) == []
    # Each metrics read asks the sandbox and weighs 40: one page of 100 fits, twice that does not.
    one_page = "{ sandboxes(first: 100) { nodes { metrics { status } } } }"
    assert error_codes(gql(api_client, one_page)) == []
    aliased = "{ sandboxes(first: 100) { nodes { a: metrics { status } b: metrics { status } } } }"
    assert error_codes(gql(api_client, aliased)) == ["graphql_too_complex"]


def test_one_document_carries_at_most_ten_mutations(owner, api_client):
    def writes(count: int) -> str:
        write = 'setEnv(sandboxId: "sbx_none", variables: [{name: "A", value: "1"}]) { name }'
        return "mutation { " + " ".join(f"w{n}: {write}" for n in range(count)) + " }"

    refused = gql(api_client, writes(11))
    assert error_codes(refused) == ["graphql_too_complex"] and refused["data"] is None
    ran = gql(api_client, writes(10))  # runs: each write answers for itself (no such sandbox)
    assert set(error_codes(ran)) == {"sandbox_not_found"}


def test_introspection_is_on_by_default_and_can_be_switched_off(owner, api_client, settings):
    on = gql(api_client, "{ __schema { queryType { name } } }")
    assert on["data"]["__schema"]["queryType"]["name"] == "Query"
    settings.VIBEBOX_GRAPHQL_INTROSPECTION = False
    for query in ("{ __schema { queryType { name } } }", '{ __type(name: "Sandbox") { name } }'):
        off = gql(api_client, query)
        assert error_codes(off) == ["graphql_introspection_disabled"] and off["data"] is None
    assert gql(api_client, "{ viewer { __typename username } }")["data"]["viewer"]["__typename"] == "Viewer"


def test_a_huge_document_is_refused_while_parsing_not_with_a_500(owner, api_client):
    deep = "{ viewer " + "{ organization " * 3000 + "}" * 3001
    body = gql(api_client, deep)
    assert error_codes(body) == ["graphql_invalid"] and body["data"] is None
