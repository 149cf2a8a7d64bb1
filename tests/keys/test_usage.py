"""Requests per key are counted in Redis and moved into the database in batches (apps/keys/usage.py):
exact at every moment, never counted twice, never lost when Redis is down."""

import pytest
from django.conf import settings as django_settings

from apps.keys import usage
from apps.keys.models import ApiKeyUsage, ApiKeyUsageFlush
from tests.conftest import _client
from tests.test_redis_failures import _point_at, own_redis  # noqa: F401 (own_redis: a fixture)
from vibebox import redisdb


@pytest.fixture
def redis_client():
    return redisdb.client(django_settings.REDIS_URL)


def usage_of(client, key) -> dict:
    return client.get(f"/api/v1/keys/{key.id}/usage").json()


def test_requests_are_counted_in_redis_and_flushed_once(owner, make_key, api_client, redis_client):
    usage.flush()  # whatever earlier tests of this database left
    key, secret = make_key(owner, name="counted")
    client = _client(secret)
    for _ in range(3):
        assert client.get("/api/v1/sandboxes").status_code == 200
    assert not ApiKeyUsage.objects.filter(key=key).exists()  # no write per request
    before = usage_of(api_client, key)
    assert before["totalRequests"] == 3 and before["days"][-1]["requests"] == 3  # exact before the flush

    assert usage.flush() >= 3
    assert ApiKeyUsage.objects.get(key=key).requests == 3
    assert not list(redis_client.scan_iter(match=f"{django_settings.CACHES['default']['KEY_PREFIX']}:keyusage:*"))
    assert usage_of(api_client, key)["totalRequests"] == 3  # not counted again from Redis
    client.get("/api/v1/sandboxes")
    assert usage_of(api_client, key)["totalRequests"] == 4
    usage.flush()
    assert ApiKeyUsage.objects.get(key=key).requests == 4


def test_a_batch_left_by_a_flush_that_died_after_its_commit_is_not_counted_again(
    owner, make_key, api_client, redis_client
):
    usage.flush()
    key, secret = make_key(owner)
    for _ in range(2):
        _client(secret).get("/api/v1/sandboxes")
    contents = redis_client.hgetall(usage._pending())
    usage.flush()
    batch_id = ApiKeyUsageFlush.objects.order_by("-flushed_at").first().id
    # The flush committed, then died before deleting its batch: the batch is still in Redis.
    redis_client.hset(usage._batch(batch_id), mapping=contents)
    assert usage_of(api_client, key)["totalRequests"] == 4  # a read cannot tell it apart...
    usage.flush()
    assert ApiKeyUsage.objects.get(key=key).requests == 2  # ...but the flush does
    assert not redis_client.exists(usage._batch(batch_id))
    assert usage_of(api_client, key)["totalRequests"] == 2


def test_counts_of_a_deleted_key_are_dropped_and_the_rest_flushed(owner, make_key, redis_client):
    usage.flush()
    kept, kept_secret = make_key(owner, name="kept")
    gone, gone_secret = make_key(owner, name="gone")
    _client(kept_secret).get("/api/v1/sandboxes")
    _client(gone_secret).get("/api/v1/sandboxes")
    gone.delete()
    usage.flush()
    assert ApiKeyUsage.objects.get(key=kept).requests == 1
    assert not ApiKeyUsage.objects.filter(key_id=gone.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_a_request_is_counted_in_the_database(own_redis, owner, make_key, settings):  # noqa: F811
    _point_at(settings, own_redis.url)
    key, secret = make_key(owner)
    own_redis.kill()
    assert _client(secret).get("/api/v1/sandboxes").status_code == 200  # a read passes uncounted by the limiter
    assert ApiKeyUsage.objects.get(key=key).requests == 1
    assert usage.pending(key=key) == {}  # Redis cannot say: the database alone
