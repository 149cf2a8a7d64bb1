"""Queries through the real /graphql view as owner, outsider and a read-only key (issue 27)."""

from tests.graphql.conftest import error_codes, gql


def test_viewer_is_the_key_owner_in_their_personal_org(owner, api_client):
    body = gql(api_client, "{ viewer { username organization { slug personal } scopes } }")
    assert "errors" not in body
    viewer = body["data"]["viewer"]
    assert viewer["username"] == "owner"
    assert viewer["organization"]["personal"] is True
    assert "sandboxes:read" in viewer["scopes"]
    assert error_codes(body) == []
