"""Automatic persisted queries (apps/graphql_api/persisted.py): the protocol Apollo's and urql's
persisted-query links speak, through the real /graphql view and the shared cache (Redis)."""

import hashlib
import json
import uuid

import pytest

from tests.graphql.conftest import error_codes

pytestmark = pytest.mark.django_db

QUERY = "query Me { viewer { username } }"
HASH = hashlib.sha256(QUERY.encode()).hexdigest()


def apq(digest: str = HASH) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def post(client, body: dict):
    return client.post("/graphql", body, format="json")


def test_a_hash_then_its_query_once_then_the_hash_alone(api_client, owner):
    query = f"{QUERY} # {uuid.uuid4()}"  # a document the shared cache has never seen
    unknown = hashlib.sha256(query.encode()).hexdigest()
    missing = post(api_client, {"extensions": apq(unknown)})
    assert missing.status_code == 404
    [error] = missing.json()["errors"]
    assert error["message"] == "PersistedQueryNotFound"  # what the clients' links look for
    assert error["extensions"]["code"] == "persisted_query_not_found"

    registered = post(api_client, {"query": query, "extensions": apq(unknown)})
    assert registered.status_code == 200 and registered.json()["data"] == {"viewer": {"username": "owner"}}

    by_hash = post(api_client, {"extensions": apq(unknown)})
    assert by_hash.json() == {"data": {"viewer": {"username": "owner"}}}
    by_get = api_client.get("/graphql", {"extensions": json.dumps(apq(unknown))}, HTTP_ACCEPT="application/json")
    assert by_get.status_code == 200 and by_get.json()["data"] == {"viewer": {"username": "owner"}}


def test_a_wrong_hash_or_a_bad_extension_is_refused(api_client, settings):
    wrong = post(api_client, {"query": QUERY, "extensions": apq("0" * 64)})
    assert wrong.status_code == 400 and error_codes(wrong.json()) == ["persisted_query_hash_mismatch"]
    for extensions in ({"persistedQuery": {"version": 2, "sha256Hash": HASH}}, apq("XYZ"), "nope"):
        refused = post(api_client, {"query": QUERY, "extensions": extensions})
        assert refused.status_code == 400 and error_codes(refused.json()) == ["validation_error"], extensions
    # other extensions (a client's tracing flags) are no persisted query: the document runs
    assert post(api_client, {"query": QUERY, "extensions": {"tracing": True}}).json()["data"]["viewer"]

    settings.VIBEBOX_GRAPHQL_PERSISTED_QUERIES = False
    off = post(api_client, {"extensions": apq()})
    assert off.status_code == 400
    assert off.json()["errors"][0]["message"] == "PersistedQueryNotSupported"  # the links then stop hashing
