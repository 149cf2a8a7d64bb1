"""A change of what a member may do takes effect at once, through every key (their permissions
are cached with the key, and every change of a membership, role or team, the admin's included,
has every key read again) and on their open streams (re-checked with the key)."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model

from apps.keys.scopes import ALL_SCOPES
from apps.orgs import services
from apps.orgs.models import Membership
from tests.conftest import _client
from tests.ws import Communicator
from vibebox.asgi import application


@pytest.fixture
def acme(owner, make_key):
    org = services.org_create(user=owner, name="Acme", slug="acme")
    admin = get_user_model().objects.create_user(username="admin-user")
    developer = get_user_model().objects.create_user(username="dev-user")
    services.member_add(org=org, user_ref="admin-user", role="admin")
    services.member_add(org=org, user_ref="dev-user", role="developer")
    return org, admin, developer


@pytest.mark.django_db
def test_a_demotion_a_role_edit_and_a_team_reach_a_cached_key_at_once(acme, make_key, owner):
    org, admin, _developer = acme
    _, secret = make_key(admin, ALL_SCOPES, org=org)
    client = _client(secret)
    membership = Membership.objects.get(org=org, user=admin)

    def listing_members_of_keys():  # keys.manage: admin yes, developer and the custom role no
        return client.get("/api/v1/keys?all=true").status_code

    assert listing_members_of_keys() == 200  # the key is now cached with its permissions
    services.member_update(membership=membership, role="developer", by=owner)
    assert listing_members_of_keys() == 403

    role = services.role_create(org=org, name="keeper", permissions=["keys.manage"], by=owner)
    services.member_update(membership=membership, role="keeper", by=owner)
    assert listing_members_of_keys() == 200
    services.role_update(role=role, permissions=["sandboxes.read"], by=owner)
    assert listing_members_of_keys() == 403

    team = services.team_create(org=org, name="keys", role="admin", by=owner)
    services.team_member_add(team=team, user_ref="admin-user", by=owner)
    assert listing_members_of_keys() == 200
    services.team_member_remove(team=team, user_ref="admin-user", by=owner)
    assert listing_members_of_keys() == 403

    # The admin's form saves the membership directly, without the services: still read again.
    membership.refresh_from_db()
    membership.role, membership.custom_role = "admin", None
    membership.save()
    assert listing_members_of_keys() == 200


@pytest.mark.django_db(transaction=True)
def test_an_open_stream_ends_when_its_user_may_no_longer_use_the_sandbox(acme, make_key, create_sandbox, settings):
    settings.VIBEBOX_WS_RECHECK_SECONDS = 0.5
    org, admin, developer = acme
    sandbox = create_sandbox(client=_client(make_key(developer, ALL_SCOPES, org=org)[1]))
    _, secret = make_key(admin, ALL_SCOPES, org=org)  # admin: uses the developer's sandbox by manage_all

    async def scenario(demote):
        headers = [(b"authorization", f"Bearer {secret}".encode())]
        comm = Communicator(application, f"/ws/sandboxes/{sandbox['id']}/terminal", headers=headers)
        connected, _ = await comm.connect()
        assert connected
        while json.loads((await comm.receive_output())["text"]).get("type") != "session":
            pass
        await demote()
        while True:  # what the shell prints meanwhile, then the close, within a re-check or two
            output = await comm.receive_output()
            if output["type"] == "websocket.close":
                return output

    from channels.db import database_sync_to_async

    @database_sync_to_async
    def demote():
        membership = Membership.objects.get(org=org, user=admin)
        services.member_update(membership=membership, role="developer")

    closed = async_to_sync(scenario)(demote)
    assert closed["code"] == 4403 and closed.get("reason") == "permission_denied"
