"""The Actor (apps/orgs/actors.py) of a request or a WebSocket: the organization its API key acts
in, or for a signed-in user the organization chosen in their session (the dashboard's switcher;
their personal one until they choose one)."""

from apps.orgs.actors import Actor, actor_in
from apps.orgs.models import Organization

from .models import ApiKey
from .services import acting_org

SESSION_ORG = "vibebox_org"  # the session key holding the signed-in user's chosen organization (slug)


def actor_for(*, user, key: ApiKey | None = None, session=None, fresh: bool = False) -> Actor:
    """`fresh`: the permissions read now, not those the key was authenticated with (a long-lived
    connection's re-check)."""
    permissions = getattr(key, "permissions", None)
    if key is not None and key.org_id is not None and permissions is not None and not fresh:
        return Actor(user=user, org=key.org, permissions=permissions)
    if key is None and session is not None and session.get(SESSION_ORG):
        chosen = Organization.objects.filter(slug=session[SESSION_ORG], memberships__user=user).first()
        if chosen is not None:
            return actor_in(user=user, org=chosen)
    return actor_in(user=user, org=acting_org(user=user, key=key))


def actor_of(request) -> Actor:
    """The request's Actor, built once per request (DRF and Django requests alike)."""
    actor = getattr(request, "vibebox_actor", None)
    if actor is None:
        auth = getattr(request, "auth", None)
        key = auth if isinstance(auth, ApiKey) else None
        actor = actor_for(user=request.user, key=key, session=getattr(request, "session", None))
        request.vibebox_actor = actor
    return actor
