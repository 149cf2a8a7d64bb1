"""Every built-in role, a custom role and an outsider against every endpoint family, on another
member's running sandbox and on the organization: allowed is a 2xx, a missing permission a 403
naming it, another organization's object a 404 (issue 20's table-driven test)."""

import pytest
from django.contrib.auth import get_user_model

from apps.keys.scopes import ALL_SCOPES
from apps.orgs import services
from tests.conftest import _client

pytestmark = pytest.mark.django_db

OK = "ok"
WHO = ("owner", "admin", "developer2", "viewer", "billing", "auditor", "outsider")


def _denied(permission):
    return (403, permission)


NOT_FOUND = (404, None)

# family -> what each of WHO gets, in order
READ = (OK, OK, OK, OK, _denied("sandboxes.read"), OK, NOT_FOUND)
USE = (
    OK,
    OK,
    _denied("sandboxes.manage_all"),
    _denied("sandboxes.exec"),
    _denied("sandboxes.exec"),
    _denied("sandboxes.exec"),
    NOT_FOUND,
)
MANAGE = (OK, OK, *[_denied("sandboxes.manage_all")] * 4, NOT_FOUND)


def _org_only(permission, *allowed):
    return tuple(NOT_FOUND if who == "outsider" else OK if who in allowed else _denied(permission) for who in WHO)


@pytest.fixture
def acme(owner, outsider, make_key, create_sandbox):
    org = services.org_create(user=owner, name="Acme", slug="acme")
    users = {"owner": owner}
    for name, role in (("admin", "admin"), ("developer", "developer"), ("developer2", "developer"),
                       ("viewer", "viewer"), ("billing", "billing")):  # fmt: skip
        users[name] = get_user_model().objects.create_user(username=f"{name}-user")
        services.member_add(org=org, user_ref=users[name].username, role=role)
    services.role_create(org=org, name="auditor", permissions=["sandboxes.read", "audit.read"])
    users["auditor"] = get_user_model().objects.create_user(username="auditor-user")
    services.member_add(org=org, user_ref="auditor-user", role="auditor")
    clients = {name: _client(make_key(user, ALL_SCOPES, org=org)[1]) for name, user in users.items()}
    clients["outsider"] = _client(make_key(outsider, ALL_SCOPES)[1])
    sandbox = create_sandbox(client=clients["developer"], template="python-3")
    return clients, sandbox["id"]


def _outcome(response):
    if 200 <= response.status_code < 300:
        return OK
    error = response.json().get("error", {})
    return (response.status_code, error.get("details", {}).get("permission"))


def test_every_role_against_every_endpoint_family(acme):
    clients, sid = acme
    base = f"/api/v1/sandboxes/{sid}"
    calls = {
        # family: (expected per WHO, request(client, who))
        "read the sandbox": (READ, lambda c, w: c.get(base)),
        "list its files": (READ, lambda c, w: c.get(f"{base}/files?path=/workspace")),
        "read its environment": (READ, lambda c, w: c.get(f"{base}/env")),
        "list its executions": (READ, lambda c, w: c.get(f"{base}/executions")),
        "read its metrics": (READ, lambda c, w: c.get(f"{base}/metrics")),
        "list its grants": (READ, lambda c, w: c.get(f"{base}/grants")),
        "run a command": (USE, lambda c, w: c.post(f"{base}/exec", {"command": ["true"]}, format="json")),
        "run code": (USE, lambda c, w: c.post(f"{base}/execute", {"code": "1", "language": "python"}, format="json")),
        "upload a file": (
            USE,
            lambda c, w: c.post(f"{base}/files?path=/workspace/{w}.txt", b"x", content_type="application/octet-stream"),
        ),
        "make a directory": (
            USE,
            lambda c, w: c.post(f"{base}/files/mkdir", {"path": f"/workspace/d-{w}"}, format="json"),
        ),
        "start a process": (
            USE,
            lambda c, w: c.post(f"{base}/exec", {"command": ["sleep", "0"], "background": True}, format="json"),
        ),
        "change metadata": (MANAGE, lambda c, w: c.patch(base, {"metadata": {"by": w}}, format="json")),
        "set a variable": (MANAGE, lambda c, w: c.patch(f"{base}/env", {"BY": w}, format="json")),
        "share it": (
            MANAGE,
            lambda c, w: c.post(f"{base}/grants", {"user": "viewer-user", "access": "read"}, format="json"),
        ),
        "list members' keys": (
            tuple(OK if w in ("owner", "admin", "outsider") else _denied("keys.manage") for w in WHO),
            lambda c, w: c.get("/api/v1/keys?all=true"),  # the outsider's own organization: theirs to list
        ),
        "list webhooks": (
            tuple(OK if w in ("owner", "admin", "outsider") else _denied("webhooks.manage") for w in WHO),
            lambda c, w: c.get("/api/v1/webhooks"),  # the outsider's own organization: theirs to list
        ),
        "create a webhook": (
            tuple(OK if w in ("owner", "admin", "outsider") else _denied("webhooks.manage") for w in WHO),
            lambda c, w: c.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["*"]}, format="json"),
        ),
        "read the audit log": (
            _org_only("audit.read", "owner", "admin", "auditor"),
            lambda c, w: c.get("/api/v1/orgs/acme/audit-log"),
        ),
        "make a custom role": (
            _org_only("members.manage", "owner", "admin"),
            lambda c, w: c.post("/api/v1/orgs/acme/roles", {"name": f"r-{w}", "permissions": []}, format="json"),
        ),
        "rename the organization": (
            _org_only("org.manage", "owner"),
            lambda c, w: c.patch("/api/v1/orgs/acme", {"name": "Acme"}, format="json"),
        ),
    }
    wrong = []
    for family, (expected, call) in calls.items():
        for who, want in zip(WHO, expected, strict=True):
            got = _outcome(call(clients[who], who))
            if want == NOT_FOUND:
                got = (got[0], None) if got != OK else got
            if got != want:
                wrong.append(f"{family} as {who}: got {got}, expected {want}")
    assert not wrong, "\n".join(wrong)
