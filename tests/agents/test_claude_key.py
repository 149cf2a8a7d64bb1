"""The VibeBox key `claude/enable` makes for the sandbox's MCP server (issue 17 item 8).

It used to be a live, never-expiring read/write/exec key whatever the caller, kept after the
sandbox was gone. Now it is derived from the calling key (never broader), expires with the sandbox,
and is revoked when Claude is enabled again or the sandbox is destroyed.
"""

import datetime as dt

from django.utils import timezone
from rest_framework.test import APIClient

from apps.agents.models import ClaudeSetup
from apps.keys.models import ApiKey
from apps.keys.scopes import ALL_SCOPES, EXECUTE, SANDBOXES_READ, SANDBOXES_WRITE
from apps.keys.secrets import hash_key
from apps.sandboxes.models import Sandbox
from vibebox import crypto

TEMPLATE = "node-22-claude-code"
MCP_SCOPES = [SANDBOXES_READ, SANDBOXES_WRITE, EXECUTE]


def _enable(client, sandbox_id, **body):
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/claude/enable", body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def _bound(sandbox_id):
    return list(ApiKey.objects.filter(sandbox_id=sandbox_id).order_by("created_at"))


def _active_mcp_key(sandbox_id) -> ApiKey:
    """The one active key bound to the sandbox, checked to be the one the gateway acts with."""
    active = [key for key in _bound(sandbox_id) if key.is_active()]
    assert len(active) == 1, active
    setup = ClaudeSetup.objects.get(sandbox_id=sandbox_id)
    assert hash_key(crypto.decrypt(setup.mcp_key)) == active[0].key_hash
    return active[0]


def test_the_mcp_key_is_never_broader_than_the_calling_key(owner, make_key, client_for, create_sandbox):
    # A test key without `execute`, expiring after the sandbox, with a low rate limit.
    later = timezone.now() + dt.timedelta(hours=2)
    caller = client_for(
        owner, [SANDBOXES_READ, SANDBOXES_WRITE], test=True, expires_at=later, rate_limit="100/min", name="narrow"
    )
    sandbox_id = create_sandbox(client=caller, template=TEMPLATE, timeout="1h")["id"]
    sandbox = Sandbox.objects.get(pk=sandbox_id)

    assert _enable(caller, sandbox_id, mcp=True)["mcp"] is True
    first = _active_mcp_key(sandbox_id)
    assert first.scopes == [SANDBOXES_READ, SANDBOXES_WRITE]  # narrower: the caller has no `execute`
    assert first.is_test  # a test key makes a test key
    assert first.expires_at == sandbox.expires_at  # the sandbox ends before the caller does
    assert first.rate_limit == "100/min"

    # Enabling again (another test key, all scopes, expiring before the sandbox): the old key is
    # revoked, the new one follows the new caller.
    sooner = timezone.now() + dt.timedelta(minutes=10)
    _, secret = make_key(owner, ALL_SCOPES, test=True, expires_at=sooner, name="short")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert _enable(other, sandbox_id, mcp=True)["mcp"] is True
    second = _active_mcp_key(sandbox_id)
    assert second.pk != first.pk
    first.refresh_from_db()
    assert first.revoked_at is not None
    assert second.scopes == MCP_SCOPES and second.is_test and second.expires_at == sooner

    # Enabling without MCP: no key is left for this sandbox.
    assert _enable(other, sandbox_id, mcp=False)["mcp"] is False
    assert all(key.revoked_at is not None for key in _bound(sandbox_id))
    assert ClaudeSetup.objects.get(sandbox_id=sandbox_id).mcp_key == ""


def test_the_mcp_key_is_revoked_when_the_sandbox_is_destroyed(owner, create_sandbox, api_client):
    # A signed-in user (the dashboard) is not limited by a key, but the sandbox's expiry still counts.
    session = APIClient()
    session.force_login(owner)
    sandbox_id = create_sandbox(template=TEMPLATE, timeout="1h")["id"]
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    _enable(session, sandbox_id, mcp=True)
    key = _active_mcp_key(sandbox_id)
    assert key.scopes == MCP_SCOPES and not key.is_test and key.expires_at == sandbox.expires_at

    assert api_client.delete(f"/api/v1/sandboxes/{sandbox_id}").status_code == 204
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.is_active()
    assert not [bound for bound in _bound(sandbox_id) if bound.is_active()]


def test_a_live_caller_without_expiry_on_a_sandbox_without_timeout(owner, create_sandbox, api_client, api_key):
    sandbox_id = create_sandbox(template=TEMPLATE)["id"]
    _enable(api_client, sandbox_id, mcp=True)
    key = _active_mcp_key(sandbox_id)
    assert key.scopes == MCP_SCOPES and not key.is_test and key.expires_at is None
    assert api_client.delete(f"/api/v1/sandboxes/{sandbox_id}").status_code == 204
    key.refresh_from_db()
    assert key.revoked_at is not None
