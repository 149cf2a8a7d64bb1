"""Sign-in lockout for /login/ (the dashboard) and /admin/login/ (issue 17 item 14).

After VIBEBOX_LOGIN_MAX_FAILURES failed sign-ins for one user name from one address, that pair is
locked out for VIBEBOX_LOGIN_COOLOFF, even with the right password; other users and addresses are
not. Counters live in the shared Redis cache; each test uses its own user names, so no reset is needed.
"""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.waiting import wait_for

COOLOFF = 15  # seconds; long enough that the locked-out requests all happen inside it, on a busy machine too
ATTACKER = "203.0.113.7"  # documentation addresses: only REMOTE_ADDR values, never contacted
OTHER = "198.51.100.9"


@pytest.fixture
def limits(settings):
    settings.VIBEBOX_LOGIN_MAX_FAILURES = 3
    settings.VIBEBOX_LOGIN_COOLOFF = COOLOFF


@pytest.fixture
def person(db):
    name = f"lock-{uuid.uuid4().hex[:10]}"
    get_user_model().objects.create_user(username=name, password="right-password-1", is_staff=True)
    return name


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _post(path, username, password, address=ATTACKER, client=None):
    client = client or Client()
    response = client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)
    return client, response


def test_failures_lock_out_that_user_from_that_address_for_the_cooloff(limits, person, db):
    for _ in range(2):
        client, response = _post("/login/", person, "wrong")
        assert response.status_code == 200 and not _signed_in(client)
        assert b"do not match" in response.content
    # the third failure locks, and says so
    client, response = _post("/login/", person, "wrong")
    assert response.status_code == 429 and b"Too many failed sign-ins" in response.content
    # locked: the right password does not sign in, on the dashboard nor the admin
    client, response = _post("/login/", person, "right-password-1")
    assert response.status_code == 429 and not _signed_in(client)
    assert b"Too many failed sign-ins" in response.content and b'id="id_password"' in response.content
    assert 1 <= int(response["Retry-After"]) <= COOLOFF
    client, response = _post("/admin/login/", person, "right-password-1")
    assert response.status_code == 429 and not _signed_in(client)
    assert b"Too many failed sign-ins" in response.content

    # another address, or another user from the same address, is not affected
    client, response = _post("/login/", person, "right-password-1", address=OTHER)
    assert response.status_code == 302 and _signed_in(client)
    other_user = f"other-{uuid.uuid4().hex[:10]}"
    get_user_model().objects.create_user(username=other_user, password="other-password-1")
    client, response = _post("/login/", other_user, "other-password-1")
    assert response.status_code == 302 and _signed_in(client)

    # after the cool-off the right password works again (tries while locked do not count)
    def signs_in():
        client, response = _post("/login/", person, "right-password-1")
        return response.status_code == 302 and _signed_in(client)

    wait_for(signs_in, timeout=COOLOFF + 60, interval=0.5, what="the cool-off to end")


def test_the_admin_login_counts_and_locks_too(limits, person, db):
    for _ in range(3):
        client, response = _post("/admin/login/", person, "wrong")
        assert not _signed_in(client)
    assert response.status_code == 429 and b"Too many failed sign-ins" in response.content
    client, response = _post("/login/", person, "right-password-1")
    assert response.status_code == 429 and not _signed_in(client)


def test_a_successful_sign_in_clears_the_failures(limits, person, db):
    for _ in range(2):
        _post("/login/", person, "wrong")
    client, response = _post("/login/", person, "right-password-1")
    assert response.status_code == 302 and _signed_in(client)
    for _ in range(2):
        _, response = _post("/login/", person, "wrong")
        assert response.status_code == 200
    client, response = _post("/login/", person, "right-password-1")
    assert response.status_code == 302 and _signed_in(client)


def test_user_name_case_does_not_escape_the_lock(limits, person, db):
    for variant in (person.upper(), person.title(), person):
        _post("/login/", variant, "wrong")
    client, response = _post("/login/", person, "right-password-1")
    assert response.status_code == 429 and not _signed_in(client)
