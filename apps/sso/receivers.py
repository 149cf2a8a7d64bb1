"""After a sign-in through an organization's connection: membership with the default role, and the
organization chosen in the dashboard session."""

from allauth.account.signals import user_logged_in
from django.dispatch import receiver

from apps.audit.services import record
from apps.keys.actors import SESSION_ORG
from apps.orgs.services import personal_org_ensure
from apps.orgs.signals import org_deleting

from . import selectors, services


@receiver(user_logged_in, dispatch_uid="sso-member")
def land_in_org(sender, request, user, sociallogin=None, **kwargs):
    if sociallogin is None:
        return
    connection = selectors.connection_for_provider(sociallogin.account.provider)
    if connection is None:
        return
    personal_org_ensure(user=user)  # every user has one (made on first need elsewhere)
    services.sso_member_ensure(connection=connection, user=user)
    # Beside the login.succeeded every sign-in records: which organization's IdP vouched for them.
    record(
        "sso.login",
        target=connection.org,
        user=user,
        changes={"protocol": connection.protocol, "email": user.email},
    )
    request.session[SESSION_ORG] = connection.org.slug


@receiver(org_deleting, dispatch_uid="sso-org-deleting")
def drop_connection(sender, org, **kwargs):
    """The organization's connection goes with it, and allauth's record of its IdP too (the
    connection holds that one, PROTECTed)."""
    if selectors.connection_of(org=org) is not None:
        services.sso_connection_delete(org=org)
