"""The page an invitation's link opens (`/invitations/<token>`): the organization, the role and
who invited, and an Accept button. Not signed in: the sign-in page first, which comes back here.
A link that no longer works, or a user it was not sent to, gets a page that says why (with the
status and code the API would answer)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from vibebox import exceptions as errors

from . import selectors, services
from .models import Invitation

# apps/keys/actors.SESSION_ORG (keys sit above orgs, so it is named here): the session key that
# holds the organization a signed-in user acts in.
SESSION_ORG = "vibebox_org"

TITLES = {
    "invitation_not_found": "This invitation link does not work",
    "invitation_expired": "This invitation has expired",
    "invitation_accepted": "This invitation was already accepted",
    "invitation_email_mismatch": "This invitation is for someone else",
    "already_member": "You are already a member",
}


def _problem(request, exc: errors.ApplicationError, invitation: Invitation | None = None):
    problem = {"code": exc.code, "message": exc.message, "title": TITLES.get(exc.code, "Invitation")}
    context = {"problem": problem, "invitation": invitation}
    return render(request, "orgs/invitation.html", context, status=exc.status)


def _enter(request, invitation: Invitation):
    """To the dashboard, acting in the invitation's organization."""
    request.session[SESSION_ORG] = invitation.org.slug
    return redirect(settings.LOGIN_REDIRECT_URL)


@require_http_methods(["GET", "HEAD", "POST"])
def invitation_page(request, token: str):
    try:
        invitation = selectors.invitation_by_token(token=token)
    except errors.InvitationNotFound as exc:
        return _problem(request, exc)
    user = request.user if request.user.is_authenticated else None
    try:
        selectors.invitation_check(invitation=invitation, user=user)
        if user is None:
            return redirect_to_login(request.get_full_path())
        if request.method == "POST":
            services.invitation_accept(invitation=invitation, user=user)
            messages.success(request, f"You joined {invitation.org.name} as {invitation.role_name}.")
            return _enter(request, invitation)
    except errors.InvitationAccepted as exc:
        if user is not None and invitation.accepted_by_id == user.pk:  # accepted twice (a second click)
            return _enter(request, invitation)
        return _problem(request, exc, invitation)
    except errors.ApplicationError as exc:
        return _problem(request, exc, invitation)
    return render(request, "orgs/invitation.html", {"invitation": invitation})
