"""The database out of reach (issue 28): requests fail fast with `503 database_unavailable` and
Retry-After, the API, GraphQL and the dashboard alike, and the server recovers by itself.

The first test runs a real server whose database refuses every connection (PostgreSQL: a loopback
port nothing listens on; SQLite: a file that cannot be opened). The second, on PostgreSQL only
(`make test-postgres`), puts a TCP relay between a running server and the test's PostgreSQL and
stops it: the connections the server holds die under it as they would when the database restarts
or fails over, new ones are refused, and once the relay passes traffic again the same server
process answers without a restart. (`make test-ha` restarts a real PostgreSQL under several web
processes.)
"""

from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.conf import settings as django_settings

from apps.keys.secrets import generate_key
from bench.common import free_port
from tests.conftest import live_server
from tests.database import child_database_url
from tests.relay import Relay


def _assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "database_unavailable"


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_server_whose_database_refuses_answers_503_everywhere(kind, tmp_path):
    if kind == "postgres":
        database_url = f"postgres://vibebox:secret@127.0.0.1:{free_port()}/vibebox"
    else:
        database_url = f"sqlite://{tmp_path}/missing-directory/vibebox.sqlite3"
    with live_server(DATABASE_URL=database_url) as (url, _pid):
        headers = {"Authorization": f"Bearer {generate_key()}"}  # well-formed: it must be looked up
        _assert_unavailable(requests.get(f"{url}/api/v1/sandboxes", headers=headers, timeout=30))
        _assert_unavailable(requests.post(f"{url}/api/v1/sandboxes", json={}, headers=headers, timeout=30))
        # GraphQL: its own error shape, with REST's code and status in the extensions.
        graphql = requests.post(f"{url}/graphql", json={"query": "{ me { id } }"}, headers=headers, timeout=30)
        assert graphql.status_code == 503 and graphql.headers["Retry-After"] == "5", graphql.text[:300]
        assert graphql.json()["errors"][0]["extensions"]["code"] == "database_unavailable"
        # The dashboard: a page of its own (no template that reads the database), reloading itself.
        session = {"sessionid": "k" * 32}  # a signed-in browser's cookie: its session is read from the database
        page = requests.get(f"{url}/sandboxes/", cookies=session, timeout=30, allow_redirects=False)
        assert page.status_code == 503 and page.headers["Retry-After"] == "5"
        assert 'id="unavailable"' in page.text and "unreachable" in page.text
        # Readiness says why; liveness stays up (the process itself is fine).
        ready = requests.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["database"]["ok"] is False
        assert requests.get(f"{url}/healthz", timeout=30).status_code == 200


@pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="PostgreSQL only (make test-postgres): SQLite has no server to lose",
)
def test_a_running_server_answers_503_while_its_database_is_cut_and_recovers_by_itself(transactional_db, api_key):
    _key, raw_key = api_key
    database = django_settings.DATABASES["default"]
    relay = Relay((database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)))
    parts = urlsplit(child_database_url())
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{relay.port}"
    relayed = urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))
    headers = {"Authorization": f"Bearer {raw_key}"}
    try:
        with live_server(DATABASE_URL=relayed) as (url, _pid):
            listing = f"{url}/api/v1/sandboxes"
            assert requests.get(listing, headers=headers, timeout=30).status_code == 200
            relay.stop()
            for _ in range(3):  # the kept connection dies, then each new one is refused
                _assert_unavailable(requests.get(listing, headers=headers, timeout=30))
            relay.resume()
            answer = requests.get(listing, headers=headers, timeout=30)
            assert answer.status_code == 200, answer.text[:300]
            assert requests.get(f"{url}/readyz", timeout=30).json()["checks"]["database"]["ok"] is True
    finally:
        relay.close()
