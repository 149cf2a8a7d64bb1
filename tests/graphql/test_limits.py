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
    aliased = "{ " + " ".join(f"a{n}: sandboxes(first: 100) {{ totalCount }}" for n in range(20)) + " }"
    assert error_codes(gql(api_client, aliased)) == ["graphql_too_complex"]  # aliases are no way around it


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
