"""The object types. Each wraps a model row (a `Private` field) and resolves through the same
selectors as the REST views; no business logic here."""

import strawberry
from strawberry.types import Info

from apps.keys.scopes import ALL_SCOPES

from .relay import Node, to_global_id


@strawberry.type(description="An organization: everything you can see belongs to one.")
class Organization(Node):
    slug: str
    name: str
    personal: bool

    @classmethod
    def of(cls, org) -> "Organization":
        return cls(
            id=to_global_id("Organization", org.pk),
            slug=org.slug,
            name=org.name,
            personal=org.personal_for_id is not None,
        )


@strawberry.type(description="Who is asking: the user, the organization they act in, and what they may do there.")
class Viewer:
    username: str
    email: str

    @strawberry.field(description="The organization the request acts in (the API key's, or the session's choice).")
    def organization(self, info: Info) -> Organization:
        return Organization.of(info.context.org)

    @strawberry.field(description="The permissions the viewer has in that organization (its role's).")
    def permissions(self, info: Info) -> list[str]:
        return sorted(info.context.actor.permissions)

    @strawberry.field(description="The API key's scopes; every scope for a signed-in browser session.")
    def scopes(self, info: Info) -> list[str]:
        key = info.context.key
        return list(key.scopes) if key is not None else list(ALL_SCOPES)

    @strawberry.field(description="The API key's global id, or null for a browser session.")
    def api_key_id(self, info: Info) -> strawberry.ID | None:
        key = info.context.key
        return to_global_id("ApiKey", key.pk) if key is not None else None
