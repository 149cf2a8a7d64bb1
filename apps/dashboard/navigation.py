"""The dashboard's navigation: the top menu, a sandbox's tabs and the organization pages' tabs,
from the routes that exist.

A page or tab appears once its URL name is routed (apps/dashboard/urls.py), so areas can land
one at a time.
"""

from django.urls import NoReverseMatch, reverse

from apps.keys.actors import actor_of
from apps.orgs import selectors as org_selectors
from apps.orgs.branding import brand_for

CREATE_SANDBOXES = "sandboxes.create"

MENU = [  # (key, label, URL name, the permission it needs to show)
    ("activity", "Agent activity", "dashboard:activity", None),
    ("claude", "Claude", "dashboard:claude", None),
    ("templates", "Templates", "dashboard:templates", None),
    ("marketplace", "Marketplace", "dashboard:marketplace", None),
    ("keys", "API keys", "dashboard:keys", None),
    ("usage", "Usage", "dashboard:usage", None),
    ("billing", "Billing", "dashboard:billing", "billing.read"),
    ("org", "Organization", "dashboard:org", None),
    ("status", "Status", "status-page", None),  # component health for all; SLOs for staff (apps/monitoring)
]

ORG_TABS = [  # (key, label, URL name, the permission it needs to show)
    ("members", "Members", "dashboard:org", None),
    ("roles", "Roles", "dashboard:org-roles", None),
    ("teams", "Teams", "dashboard:org-teams", None),
    ("audit", "Audit log", "dashboard:org-audit", "audit.read"),
    ("webhooks", "Webhooks", "dashboard:org-webhooks", "webhooks.manage"),
]

TABS = [
    ("overview", "Overview", "dashboard:sandbox"),
    ("terminal", "Terminal", "dashboard:sandbox-terminal"),
    ("files", "Files", "dashboard:sandbox-files"),
    ("exec", "Exec", "dashboard:sandbox-exec"),
    ("logs", "Logs", "dashboard:sandbox-logs"),
    ("ports", "Ports", "dashboard:sandbox-ports"),
    ("git", "Git", "dashboard:sandbox-git"),
    ("claude", "Claude", "dashboard:sandbox-claude"),
]


def _url(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def menu(request) -> dict:
    """Context processor: `dashboard_nav` for the top menu (the pages the user may see in the
    organization they act in); the user's organizations and the one they act in, for the
    switcher; whether they may create sandboxes there (the billing role may not: no "New
    sandbox" controls)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    actor = actor_of(request)
    items = [
        {"key": key, "label": label, "url": url}
        for key, label, name, permission in MENU
        if (permission is None or actor.can(permission)) and (url := _url(name))
    ]
    return {
        "dashboard_nav": items,
        "dashboard_orgs": list(org_selectors.org_list(user=request.user)),
        "current_org": actor.org,
        "can_create_sandboxes": actor.can(CREATE_SANDBOXES),
    }


def sandbox_tabs(sandbox) -> list[dict]:
    tabs = []
    for key, label, name in TABS:
        if key == "claude" and "claude" not in sandbox.template.name:
            continue
        url = _url(name, sandbox.id)
        if url:
            tabs.append({"key": key, "label": label, "url": url})
    return tabs


def org_tabs(actor) -> list[dict]:
    """The organization pages' tabs (of the organization acted in): members, roles, teams, the
    audit log for those who may read it, and webhooks for those who may manage them."""
    return [
        {"key": key, "label": label, "url": url}
        for key, label, name, permission in ORG_TABS
        if (permission is None or actor.can(permission)) and (url := _url(name))
    ]


def brand(request) -> dict:
    """Context processor: `brand` (apps/orgs/branding.Brand), the installation's with the
    overrides of the organization the signed-in user acts in."""
    org = None
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        org = actor_of(request).org
    return {"brand": brand_for(org)}
