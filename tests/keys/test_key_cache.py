"""A key seen before is authenticated without a database query (apps/keys/keycache.py), and
whatever stops or narrows a key takes effect on the next request, in this process and in others."""

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.keys import keycache, usage
from apps.keys.models import ApiKey
from apps.keys.services import api_key_revoke, api_key_rotate, api_key_use
from tests.conftest import _client
from tests.test_redis_failures import _point_at, own_redis  # noqa: F401 (own_redis: a fixture)
from vibebox import redisdb


def queries_of(fn):
    with CaptureQueriesContext(connection) as captured:
        result = fn()
    return result, len(captured)


def another_process_changed_keys():
    """What another server process's keycache.bump() does once its change commits."""
    redisdb.client(django_settings.REDIS_URL).incr(keycache.generation_key())


def test_a_key_seen_before_costs_no_query_and_is_still_counted(owner, make_key):
    key, secret = make_key(owner, name="cached")
    first, reads = queries_of(lambda: api_key_use(secret=secret))
    assert first.pk == key.pk and reads >= 1
    for _ in range(3):
        again, reads = queries_of(lambda: api_key_use(secret=secret))
        assert again.pk == key.pk and again.user == owner
        assert reads == 0
    assert usage.pending(key=key)[timezone.now().date()] == 4


def test_each_request_gets_its_own_copy(owner, make_key):
    _, secret = make_key(owner)
    one, two = api_key_use(secret=secret), api_key_use(secret=secret)
    one.scopes.clear()
    one.name = "changed by a request"
    fresh = api_key_use(secret=secret)
    assert fresh.name != "changed by a request" and fresh.scopes
    assert two is not one and two.scopes
    assert two.user is not one.user and two.user == one.user


def test_a_revoke_or_rotation_here_takes_effect_at_once(owner, make_key):
    revoked, revoked_secret = make_key(owner, name="revoked")
    rotated, rotated_secret = make_key(owner, name="rotated")
    assert api_key_use(secret=revoked_secret) and api_key_use(secret=rotated_secret)
    api_key_revoke(key=revoked)
    assert api_key_use(secret=revoked_secret) is None
    api_key_rotate(key=rotated, grace_seconds=0)
    assert api_key_use(secret=rotated_secret) is None


def test_a_change_made_by_another_process_takes_effect_on_the_next_request(owner, make_key):
    key, secret = make_key(owner, scopes=["sandboxes:read", "sandboxes:write"])
    assert api_key_use(secret=secret).scopes == ["sandboxes:read", "sandboxes:write"]
    # Another process narrows and then revokes it: the rows change, its bump moves the counter.
    ApiKey.objects.filter(pk=key.pk).update(scopes=["sandboxes:read"])
    another_process_changed_keys()
    narrowed, reads = queries_of(lambda: api_key_use(secret=secret))
    assert narrowed.scopes == ["sandboxes:read"] and reads >= 1
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    another_process_changed_keys()
    assert api_key_use(secret=secret) is None


def test_admin_edits_and_a_deactivated_user_take_effect(owner, make_key, django_capture_on_commit_callbacks):
    key, secret = make_key(owner)
    assert api_key_use(secret=secret)
    generation = keycache.current()
    with django_capture_on_commit_callbacks(execute=True):
        key.scopes = ["keys:manage"]
        key.save()  # as the admin does
    assert keycache.current() != generation  # other processes are told too
    assert api_key_use(secret=secret).scopes == ["keys:manage"]
    owner.is_active = False
    owner.save()
    assert api_key_use(secret=secret) is None
    assert _client(secret).get("/api/v1/sandboxes").status_code == 401


def test_a_sign_in_or_a_last_use_does_not_empty_the_cache(owner, make_key, django_capture_on_commit_callbacks):
    _, secret = make_key(owner)
    api_key_use(secret=secret)
    with django_capture_on_commit_callbacks(execute=True):
        owner.last_login = timezone.now()
        owner.save(update_fields=["last_login"])
    assert queries_of(lambda: api_key_use(secret=secret))[1] == 0


def test_expiry_is_checked_on_every_request(owner, make_key, monkeypatch):
    _, secret = make_key(owner, expires_at=timezone.now() + dt.timedelta(hours=1))
    assert api_key_use(secret=secret)
    later = timezone.now() + dt.timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert api_key_use(secret=secret) is None


def test_an_entry_is_read_again_after_its_max_age(owner, make_key, monkeypatch):
    _, secret = make_key(owner)
    api_key_use(secret=secret)
    monkeypatch.setattr(keycache, "MAX_AGE", 0.0)
    assert queries_of(lambda: api_key_use(secret=secret))[1] >= 1


def test_last_use_is_written_at_most_once_a_minute(owner, make_key):
    key, secret = make_key(owner)
    api_key_use(secret=secret)
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    for _ in range(3):
        assert queries_of(lambda: api_key_use(secret=secret))[1] == 0  # no UPDATE either
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_every_request_reads_the_database(own_redis, owner, make_key, settings):  # noqa: F811
    _point_at(settings, own_redis.url)
    key, secret = make_key(owner)
    assert api_key_use(secret=secret)
    own_redis.kill()
    for _ in range(2):
        found, reads = queries_of(lambda: api_key_use(secret=secret))
        assert found.pk == key.pk and reads >= 1  # nothing trusted that Redis cannot confirm
    api_key_revoke(key=key)  # cannot bump the counter: this process forgets, and re-reads anyway
    assert api_key_use(secret=secret) is None
