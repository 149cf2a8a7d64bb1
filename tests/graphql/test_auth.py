"""/graphql authenticates, throttles and refuses exactly as REST does (issue 27)."""

import re

import pytest
from django.test import Client
from graphql import GraphQLError
from rest_framework.test import APIClient

from apps.graphql_api.errors import to_graphql_error
from apps.keys import throttles
from tests.graphql.conftest import error_codes, gql
from vibebox import exceptions as app

VIEWER = "{ viewer { username } }"


def test_anonymous_and_bad_keys_get_rests_401_codes(db):
    anonymous = gql(APIClient(), VIEWER, expect=401)
    assert error_codes(anonymous) == ["not_authenticated"] and anonymous["data"] is None
    assert anonymous["errors"][0]["extensions"]["status"] == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer vb_live_not-a-real-key")
    response = bad.post("/graphql", {"query": VIEWER}, format="json")
    assert response.status_code == 401
    assert error_codes(response.json()) == ["invalid_api_key"]


def test_x_api_key_header_works_and_keys_in_the_query_string_do_not(owner, api_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key[1])
    assert gql(client, VIEWER)["data"]["viewer"]["username"] == "owner"
    in_query = APIClient().get("/graphql", {"query": VIEWER, "api_key": api_key[1], "key": api_key[1]})
    assert in_query.status_code == 401 and error_codes(in_query.json()) == ["not_authenticated"]


def test_malformed_requests_are_rests_400s(owner, api_client):
    assert error_codes(gql(api_client, "", expect=400)) == ["validation_error"]
    assert error_codes(gql(api_client, VIEWER, variables=["x"], expect=400)) == ["validation_error"]
    junk = api_client.post("/graphql", {"query": VIEWER, "extra": 1}, format="json")
    assert junk.status_code == 400 and error_codes(junk.json()) == ["unknown_field"]
    not_json = api_client.post("/graphql", b"{", content_type="application/json")
    assert not_json.status_code == 400 and error_codes(not_json.json()) == ["invalid_json"]
    syntax = gql(api_client, "{ viewer { username ")
    assert error_codes(syntax) == ["graphql_invalid"] and syntax["data"] is None
    unknown = gql(api_client, "{ viewer { password } }")
    assert error_codes(unknown) == ["graphql_invalid"]


def test_session_post_needs_the_csrf_token_and_the_browser_gets_graphiql(owner):
    browser = Client(enforce_csrf_checks=True)
    signed_out = browser.get("/graphql", HTTP_ACCEPT="text/html")
    assert signed_out.status_code == 302 and signed_out["Location"] == "/login/?next=/graphql"

    browser.force_login(owner)
    page = browser.get("/graphql", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    html = page.content.decode()
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    scripts = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("graphiql" in src for src in scripts)
    assert all(src.startswith("/static/") for src in scripts), scripts  # no CDN: the machine may be offline
    for src in scripts:
        assert browser.get(src).status_code == 200, src

    refused = browser.post("/graphql", {"query": VIEWER}, content_type="application/json")
    assert refused.status_code == 403 and error_codes(refused.json()) == ["permission_denied"]
    token = browser.cookies["csrftoken"].value
    body = gql(browser, VIEWER, HTTP_X_CSRFTOKEN=token)
    assert body["data"]["viewer"]["username"] == "owner"
    scopes = gql(browser, "{ viewer { scopes apiKeyId } }", HTTP_X_CSRFTOKEN=token)["data"]["viewer"]
    assert scopes["apiKeyId"] is None and "keys:manage" in scopes["scopes"]  # a session acts with every scope


@pytest.fixture
def limited_key(owner, make_key):
    key, secret = make_key(owner, rate_limit="3/hour")
    throttles.forget(key.pk)
    yield key, secret
    throttles.forget(key.pk)


def test_the_rate_limit_is_one_budget_with_rest(limited_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {limited_key[1]}")
    assert client.get("/api/v1/sandboxes").status_code == 200
    assert gql(client, VIEWER)["data"]["viewer"]["username"] == "owner"
    assert client.get("/api/v1/sandboxes").status_code == 200
    refused = client.post("/graphql", {"query": VIEWER}, format="json")
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 3600
    assert (
        error_codes(refused.json()) == ["rate_limited"] and refused.json()["errors"][0]["extensions"]["status"] == 429
    )
    assert client.get("/api/v1/sandboxes").status_code == 429


def test_unexpected_errors_are_internal_error_without_their_text():
    leaked = GraphQLError("boom", path=["viewer"], original_error=RuntimeError("secret detail /etc/passwd"))
    mapped = to_graphql_error(leaked).formatted
    assert mapped["message"] == "Internal server error."
    assert mapped["extensions"] == {"code": "internal_error", "status": 500}
    assert "secret" not in str(mapped) and mapped["path"] == ["viewer"]
    known = to_graphql_error(GraphQLError("x", original_error=app.SandboxNotFound(details={"sandbox": "s"}))).formatted
    assert known["extensions"] == {"code": "sandbox_not_found", "status": 404, "details": {"sandbox": "s"}}
