"""Helpers for the GraphQL tests (issue 27): every query goes through the real `/graphql` view."""

import base64

import pytest

from tests.conftest import live_server as _live_server


def gql(client, query: str, variables: dict | None = None, *, expect: int = 200, method: str = "post", **extra):
    """POSTs (or GETs) `query` to /graphql with `client` (DRF's APIClient, or a Django test Client
    signed in) and answers the parsed JSON body; the HTTP status must be `expect`."""
    if method == "get":
        params = {"query": query}
        if variables is not None:
            import json

            params["variables"] = json.dumps(variables)
        response = client.get("/graphql", params, HTTP_ACCEPT="application/json", **extra)
    else:
        body = {"query": query}
        if variables is not None:
            body["variables"] = variables
        response = (
            client.post("/graphql", body, format="json", **extra)
            if hasattr(client, "credentials")
            else (client.post("/graphql", body, content_type="application/json", **extra))
        )
    assert response.status_code == expect, response.content
    return response.json()


def error_codes(body: dict) -> list[str]:
    """The `extensions.code` of every error of a response, in order."""
    return [error["extensions"]["code"] for error in body.get("errors") or []]


def global_id(type_name: str, pk) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


@pytest.fixture
def graphql_live_server(transactional_db):
    """The real web server process on loopback (see tests/conftest.py live_server): yields its URL,
    for clients that need a socket (`gql`'s transports, WebSockets, the benchmark)."""
    with _live_server() as (url, _pid):
        yield url


# The webhooks tests' local receiver and `hook` factory (a webhook created through REST).
from tests.webhooks.conftest import hook, receiver  # noqa: E402, F401
