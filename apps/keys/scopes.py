"""API key scopes. Each endpoint declares the scopes it needs per HTTP method."""

SANDBOXES_READ = "sandboxes:read"
SANDBOXES_WRITE = "sandboxes:write"
EXECUTE = "execute"
KEYS_MANAGE = "keys:manage"
TEMPLATES_READ = "templates:read"
# Submit templates to the marketplace, review, yank and deprecate them (with templates.submit).
TEMPLATES_SUBMIT = "templates:submit"
# Create organizations, change them and their members (as the key's user may, by their role).
ORGS_MANAGE = "orgs:manage"
# Read and export an organization's audit log (with the audit.read permission).
AUDIT_READ = "audit:read"
# Create, change and delete the organization's webhooks, and read their deliveries (with webhooks.manage).
WEBHOOKS_MANAGE = "webhooks:manage"
# Read usage, costs, plans and exports (with billing.read).
BILLING_READ = "billing:read"
# Change the organization's plan (with billing.manage).
BILLING_MANAGE = "billing:manage"

ALL_SCOPES = [
    SANDBOXES_READ,
    SANDBOXES_WRITE,
    EXECUTE,
    KEYS_MANAGE,
    TEMPLATES_READ,
    TEMPLATES_SUBMIT,
    ORGS_MANAGE,
    AUDIT_READ,
    WEBHOOKS_MANAGE,
    BILLING_READ,
    BILLING_MANAGE,
]
# What a new key gets when the caller names no scopes.
DEFAULT_SCOPES = [SANDBOXES_READ, SANDBOXES_WRITE, EXECUTE, TEMPLATES_READ]


def parse_scopes(value: str | list[str]) -> list[str]:
    """`"all"`, a comma-separated string or a list -> a sorted list of known scopes."""
    if isinstance(value, str):
        if value.strip() == "all":
            return list(ALL_SCOPES)
        value = [item.strip() for item in value.split(",") if item.strip()]
    unknown = sorted(set(value) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(ALL_SCOPES)}")
    return sorted(set(value), key=ALL_SCOPES.index)
