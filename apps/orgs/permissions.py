"""The fixed list of permissions a member can hold in an organization, and the built-in roles.

A member's permissions are their role's, united with the roles of the teams they are in. An API key
acts with its scopes intersected with its user's current permissions in the key's organization.
Custom roles (per organization) are a name and a subset of PERMISSIONS.
"""

PERMISSIONS: dict[str, str] = {
    "sandboxes.read": "See the organization's sandboxes, their executions, files and logs.",
    "sandboxes.create": "Create sandboxes, and start, stop, pause and destroy the ones you created.",
    "sandboxes.exec": "Run commands and code, use files, git and terminals in sandboxes you may use.",
    "sandboxes.manage_all": "Use, change and destroy every sandbox of the organization.",
    "keys.manage": "See and revoke every member's API keys in the organization.",
    "members.manage": "Invite, remove and change the roles of members; manage teams and custom roles.",
    "webhooks.manage": "Create, change and delete the organization's webhooks.",
    "templates.submit": "Submit templates to the marketplace on the organization's behalf.",
    "billing.read": "See usage, costs and invoices.",
    "billing.manage": "Change the plan and the payment details.",
    "audit.read": "Read and export the audit log.",
    "org.manage": "Rename the organization and change its settings (single sign-on included).",
    "org.delete": "Delete the organization.",
}

OWNER = "owner"
ADMIN = "admin"
DEVELOPER = "developer"
VIEWER = "viewer"
BILLING = "billing"

_EVERYTHING = frozenset(PERMISSIONS)
BUILTIN_ROLES: dict[str, frozenset[str]] = {
    OWNER: _EVERYTHING,
    ADMIN: _EVERYTHING - {"billing.manage", "org.manage", "org.delete"},
    DEVELOPER: frozenset({"sandboxes.read", "sandboxes.create", "sandboxes.exec", "templates.submit"}),
    VIEWER: frozenset({"sandboxes.read"}),
    BILLING: frozenset({"billing.read", "billing.manage"}),
}


def unknown(permissions) -> list[str]:
    return sorted(set(permissions) - set(PERMISSIONS))
