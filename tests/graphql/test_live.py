"""The docs' Python example: the `gql` client over HTTP against the real server process (issue 27)."""

import pytest
from gql import Client
from gql import gql as document
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport

from tests.conftest import sandbox_row

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_gql_client_lists_sandboxes_and_gets_rest_codes(graphql_live_server, owner, outsider, make_key, templates):
    sandbox = sandbox_row(owner, templates["python-3"], name="live")
    _key, secret = make_key(owner)
    transport = HTTPXTransport(url=f"{graphql_live_server}/graphql", headers={"Authorization": f"Bearer {secret}"})
    with Client(transport=transport, fetch_schema_from_transport=True) as session:
        result = session.execute(
            document("query($first: Int) { sandboxes(first: $first) { nodes { sandboxId name } } }"),
            variable_values={"first": 10},
        )
        assert result == {"sandboxes": {"nodes": [{"sandboxId": sandbox.pk, "name": "live"}]}}

    _other, outsider_secret = make_key(outsider)
    transport = HTTPXTransport(
        url=f"{graphql_live_server}/graphql", headers={"Authorization": f"Bearer {outsider_secret}"}
    )
    with Client(transport=transport) as session, pytest.raises(TransportQueryError) as refused:
        session.execute(document("query($id: ID) { sandbox(id: $id) { name } }"), variable_values={"id": sandbox.pk})
    assert refused.value.errors[0]["extensions"]["code"] == "sandbox_not_found"
    assert refused.value.data == {"sandbox": None}
