"""Limits are one budget across several server processes (issue 18): two real uvicorn processes
share the test database and Redis; a key's request rate, and a user's streams and background
processes, are counted once across both, not once per process."""

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from apps.keys import throttles
from apps.sandboxes import limits
from tests.conftest import live_server
from vibebox import redisdb

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def two_servers(**env):
    with live_server(**env) as (first, _), live_server(**env) as (second, _):
        yield first, second


def get(url: str, secret: str) -> requests.Response:
    return requests.get(f"{url}/api/v1/sandboxes", headers={"Authorization": f"Bearer {secret}"}, timeout=60)


@pytest.fixture
def limited_key(owner, make_key):
    key, secret = make_key(owner, rate_limit="10/hour")  # a window no slow run can outlast
    throttles.forget(key.pk)  # key ids are random, but a rerun must not see an old window
    yield key, secret
    throttles.forget(key.pk)


def test_a_keys_rate_is_one_budget_across_processes(limited_key):
    _key, secret = limited_key
    with two_servers() as (first, second):
        # five on each: every one passes, and the budget is then spent on both
        for url in (first, second):
            for _ in range(5):
                response = get(url, secret)
                assert response.status_code == 200, response.content
        for url in (first, second):  # each process alone has seen only 5 of its 10
            refused = get(url, secret)
            assert refused.status_code == 429, refused.content
            assert refused.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(refused.headers["Retry-After"]) <= 3600


def test_concurrent_requests_to_both_processes_never_pass_the_limit(limited_key):
    """Counting is atomic in Redis: requests racing on two processes cannot both take the last
    place (a read-then-write count lets both through)."""
    _key, secret = limited_key
    with two_servers() as (first, second):
        urls = [first, second] * 15
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(lambda url: get(url, secret).status_code, urls))
    assert sorted(set(statuses)) == [200, 429], statuses
    assert statuses.count(200) == 10, statuses


@pytest.fixture
def fresh_slots(owner):
    def clear():
        for kind in (limits.STREAMS, limits.TERMINALS, limits.PROCESSES):
            redisdb.client(django_settings.REDIS_URL).delete(limits._key(kind, owner.pk))

    clear()
    yield
    clear()  # the servers are gone; their leases would otherwise outlive the test database


def test_streams_per_owner_are_counted_across_processes(api_key, fresh_slots):
    headers = {"Authorization": f"Bearer {api_key[1]}"}
    with two_servers(VIBEBOX_MAX_STREAMS_PER_OWNER="2") as (first, second):

        async def scenario():
            held = [
                await connect(f"{url.replace('http', 'ws')}/ws/activity", additional_headers=headers)
                for url in (first, second)
            ]
            try:
                refusals = []
                for url in (first, second):  # each process holds one of the two
                    with pytest.raises(InvalidStatus) as refused:
                        await connect(f"{url.replace('http', 'ws')}/ws/activity", additional_headers=headers)
                    refusals.append(refused.value.response)
                return refusals
            finally:
                for connection in held:
                    await connection.close()

        for response in async_to_sync(scenario)():
            assert response.status_code == 429
            error = json.loads(response.body)["error"]
            assert error["code"] == "too_many_streams"
            assert error["details"] == {"kind": "streams", "limit": 2, "current": 2}


def test_background_processes_per_owner_are_counted_across_processes(api_key, create_sandbox, fresh_slots):
    sandbox_id = create_sandbox(template="python-3")["id"]
    headers = {"Authorization": f"Bearer {api_key[1]}"}

    def start(url):
        return requests.post(
            f"{url}/api/v1/sandboxes/{sandbox_id}/exec",
            json={"command": "sleep 300", "background": True},
            headers=headers,
            timeout=120,
        )

    with two_servers(VIBEBOX_MAX_PROCESSES_PER_OWNER="2") as (first, second):
        assert start(first).status_code == 202
        assert start(second).status_code == 202
        for url in (first, second):
            refused = start(url)
            assert refused.status_code == 429, refused.content
            assert refused.json()["error"]["code"] == "too_many_streams"
            assert refused.json()["error"]["details"] == {"kind": "processes", "limit": 2, "current": 2}
