"""The dashboard's organization pages: the switcher, the current organization (name, members,
invitations, leave), a new organization, and its roles and teams.

A signed-in user acts in one organization at a time (their personal one until they choose), kept
in their session (apps/keys/actors.py). The pages show the current organization; every write goes
through apps/orgs/services.py with `by=` the signed-in user, so the REST API's rules hold here too
(give or take only permissions you hold, the last owner stays, a personal organization has no other
members). A missing permission is a 403 page naming it (the Actor decides, as for the API); a
refusal from a service is a message on the page. Each form carries the organization it was shown
for: one posted after switching organization in another tab changes nothing.
"""

import functools
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.keys.actors import SESSION_ORG, actor_of
from apps.orgs import branding
from apps.orgs import selectors as org_selectors
from apps.orgs import services as org_services
from apps.orgs.actors import Actor
from apps.orgs.api.serializers import EMAIL as EMAIL_PATTERN
from apps.orgs.api.serializers import NAME as NAME_PATTERN
from apps.orgs.api.serializers import NAME_MESSAGE
from apps.orgs.api.views import _base_url as invitation_base_url
from apps.orgs.models import Invitation, Membership, Team
from apps.orgs.permissions import BUILTIN_ROLES, PERMISSIONS
from vibebox import exceptions as errors

from .navigation import org_tabs

MEMBERS_MANAGE = "members.manage"
ORG_MANAGE = "org.manage"


class StaleOrg(Exception):
    """The form was shown for another organization than the one the session now acts in."""


# ---- helpers ----


def _actor(request, permission: str | None = None) -> Actor:
    """The request's Actor; for a write, the one the form was shown for (else StaleOrg), holding
    `permission` (else a 403 page naming it)."""
    actor = actor_of(request)
    if request.method == "POST" and request.POST.get("org", "") != actor.org.slug:
        raise StaleOrg()
    if permission is not None:
        try:
            actor.require(permission)
        except errors.PermissionDenied as exc:
            raise DjangoPermissionDenied(exc.message) from None
    return actor


def _refused(request, exc: errors.ApplicationError) -> None:
    messages.error(request, f"{exc.message} ({exc.code})")


def carry_out(request, page: str, call, success, *, refused=None, explain=None):
    """The shape of a write: `call()` (one service call). If the service refuses (an application
    error), its message with its code goes on the page (`explain(exc)` may word it better; None
    keeps the service's) and `refused()` may answer instead of going back to `page` (the form
    shown again with what was typed; None: back to `page`). Else `success`, a string or a function
    of the call's result (which may also update the session), is the message, and back to `page`."""
    try:
        result = call()
    except errors.ApplicationError as exc:
        wording = explain(exc) if explain is not None else None
        if wording:
            messages.error(request, wording)
        else:
            _refused(request, exc)
        response = refused() if refused is not None else None
        return response or redirect(page)
    messages.success(request, success(result) if callable(success) else success)
    return redirect(page)


def _stale(request, page: str):
    messages.error(
        request, "You switched organization since this page was loaded: nothing changed. Check the page and try again."
    )
    return redirect(page)


def writes_to(page: str):
    """Decorates a POST view: signed in, POST only, and a form shown for another organization
    sends back to `page` with a message instead of acting."""

    def decorate(view):
        @login_required
        @require_POST
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            except StaleOrg:
                return _stale(request, page)

        return wrapped

    return decorate


def _role_choices(org) -> list[str]:
    return [*BUILTIN_ROLES, *(role.name for role in org_selectors.role_list(org=org))]


def _page(request, template: str, tab: str, actor: Actor, **context):
    membership = org_selectors.membership_get(org=actor.org, user=request.user)
    context = {
        "org": actor.org,
        "my_role": membership.role_name if membership else "",
        "my_permissions": sorted(actor.permissions),
        "can_manage_members": actor.can(MEMBERS_MANAGE),
        "can_manage_org": actor.can(ORG_MANAGE),
        "branding_fields": [
            {"key": key, "label": label, "value": (actor.org.branding or {}).get(key, "")}
            for key, label in branding.LABELS.items()
        ],
        "role_choices": _role_choices(actor.org),
        "tab": tab,
        "tabs": org_tabs(actor),
        "nav": "org",
        **context,
    }
    return render(request, template, context)


def _member(actor: Actor, member_id: int) -> Membership:
    try:
        return org_selectors.member_get(org=actor.org, id=member_id)
    except errors.MemberNotFound:
        raise Http404("No such member.") from None


def _team(actor: Actor, name: str) -> Team:
    try:
        return org_selectors.team_get(org=actor.org, name=name)
    except errors.TeamNotFound:
        raise Http404("No such team.") from None


def _name_problem(name: str, what: str) -> str | None:
    """The API's rule for role and team names (they sit in URLs)."""
    if not re.match(NAME_PATTERN, name):
        return f"{what}: {NAME_MESSAGE}"
    return None


# ---- the switcher ----


@login_required
@require_POST
def org_switch(request):
    slug = request.POST.get("org", "")
    if not org_selectors.org_list(user=request.user).filter(slug=slug).exists():
        raise Http404("No such organization.")
    request.session[SESSION_ORG] = slug
    return redirect("dashboard:sandboxes")


# ---- the organization and its members ----


def _members(org) -> list[Membership]:
    """The members, each with `team_names` (the teams they are in)."""
    teams_of: dict[int, list[str]] = {}
    for team in org_selectors.team_list(org=org):
        for user in team.members.all():
            teams_of.setdefault(user.pk, []).append(team.name)
    members = list(org_selectors.member_list(org=org).order_by("user__username"))
    for membership in members:
        membership.team_names = sorted(teams_of.get(membership.user_id, []))
    return members


def _invitations(actor: Actor) -> list[Invitation]:
    """The pending invitations (expired ones too, marked), for those who may manage members."""
    if actor.org.personal or not actor.can(MEMBERS_MANAGE):
        return []
    now = timezone.now()
    invitations = list(org_selectors.invitation_list(org=actor.org).order_by("-sent_at", "id"))
    for invitation in invitations:
        invitation.expired = invitation.expires_at <= now
    return invitations


@login_required
def org_page(request, *, member_form=None, invitation_form=None):
    actor = _actor(request)
    form = member_form or {"user": "", "role": "developer"}
    return _page(
        request,
        "dashboard/org.html",
        "members",
        actor,
        members=_members(actor.org),
        member_form=form,
        invitations=_invitations(actor),
        invitation_form=invitation_form or {"email": "", "role": "developer"},
    )


@writes_to("dashboard:org")
def org_rename(request):
    actor = _actor(request, ORG_MANAGE)
    name = request.POST.get("name", "").strip()
    slug = request.POST.get("slug", "").strip()

    def renamed(org) -> str:
        request.session[SESSION_ORG] = org.slug  # the session names the organization by slug
        return f"Organization renamed to {org.name} ({org.slug})."

    return carry_out(
        request,
        "dashboard:org",
        lambda: org_services.org_update(org=actor.org, name=name, slug=slug or None),
        renamed,
        refused=actor.org.refresh_from_db,
    )


@writes_to("dashboard:org")
def org_branding(request):
    """The organization's white-label overrides (an empty field: the installation's)."""
    actor = _actor(request, ORG_MANAGE)
    values = {key: request.POST.get(key, "").strip() for key in branding.OVERRIDES if key in request.POST}
    return carry_out(
        request,
        "dashboard:org",
        lambda: org_services.org_branding_update(org=actor.org, values=values),
        "Branding saved.",
    )


@writes_to("dashboard:org")
def member_add(request):
    actor = _actor(request, MEMBERS_MANAGE)
    user_ref = request.POST.get("user", "").strip()
    role = request.POST.get("role", "")
    if not user_ref:
        messages.error(request, "Name the user: username or email.")
        return org_page(request, member_form={"user": user_ref, "role": role})
    return carry_out(
        request,
        "dashboard:org",
        lambda: org_services.member_add(org=actor.org, user_ref=user_ref, role=role, by=request.user),
        lambda membership: f"{membership.user.get_username()} added as {membership.role_name}.",
        refused=lambda: org_page(request, member_form={"user": user_ref, "role": role}),
    )


@writes_to("dashboard:org")
def invitation_create(request):
    """Invites an address (the email goes out with the link); one invited already is sent again."""
    actor = _actor(request, MEMBERS_MANAGE)
    form = {"email": request.POST.get("email", "").strip(), "role": request.POST.get("role", "")}
    if len(form["email"]) > 254 or not re.match(EMAIL_PATTERN, form["email"]):
        messages.error(request, "Enter a valid email address.")
        return org_page(request, invitation_form=form)

    def sent(result) -> str:
        invitation, created = result
        if created:
            return f"Invitation sent to {invitation.email} as {invitation.role_name}."
        return f"{invitation.email} was invited already: sent again as {invitation.role_name}, with a new expiry."

    return carry_out(
        request,
        "dashboard:org",
        lambda: org_services.invitation_create(
            org=actor.org,
            email=form["email"],
            role=form["role"],
            base_url=invitation_base_url(request),
            by=request.user,
        ),
        sent,
        refused=lambda: org_page(request, invitation_form=form),
    )


def _invitation(actor: Actor, invitation_id: str) -> Invitation:
    try:
        return org_selectors.invitation_get(org=actor.org, id=invitation_id)
    except errors.InvitationNotFound:
        raise Http404("No such pending invitation.") from None


@writes_to("dashboard:org")
def invitation_resend(request, invitation_id: str):
    actor = _actor(request, MEMBERS_MANAGE)
    invitation = _invitation(actor, invitation_id)
    return carry_out(
        request,
        "dashboard:org",
        lambda: org_services.invitation_resend(
            invitation=invitation, base_url=invitation_base_url(request), by=request.user
        ),
        lambda _: (
            f"Invitation sent again to {invitation.email}; it now expires {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
    )


@writes_to("dashboard:org")
def invitation_revoke(request, invitation_id: str):
    actor = _actor(request, MEMBERS_MANAGE)
    invitation = _invitation(actor, invitation_id)
    return carry_out(
        request,
        "dashboard:org",
        lambda: org_services.invitation_revoke(invitation=invitation, by=request.user),
        f"Invitation to {invitation.email} revoked: its link no longer works.",
    )


@writes_to("dashboard:org")
def member_role(request, member_id: int):
    actor = _actor(request, MEMBERS_MANAGE)
    membership = _member(actor, member_id)
    role = request.POST.get("role", "")
    return carry_out(
        request,
        "dashboard:org",
        lambda: org_services.member_update(membership=membership, role=role, by=request.user),
        lambda _: f"{membership.user.get_username()} is now {membership.role_name}.",
    )


@writes_to("dashboard:org")
def member_remove(request, member_id: int):
    actor = _actor(request, MEMBERS_MANAGE)
    membership = _member(actor, member_id)
    username = membership.user.get_username()

    def removed(_) -> str:
        if membership.user_id == request.user.pk:
            request.session.pop(SESSION_ORG, None)  # removed themselves: back to their personal one
        return f"{username} removed from {actor.org.name}: their keys here stop working."

    return carry_out(
        request, "dashboard:org", lambda: org_services.member_remove(membership=membership, by=request.user), removed
    )


@writes_to("dashboard:org")
def org_leave(request):
    """Anyone may leave (their own membership needs no permission), except the last owner."""
    actor = _actor(request)
    membership = org_selectors.membership_get(org=actor.org, user=request.user)
    if membership is None:
        raise Http404("You are not a member.")

    def left(_) -> str:
        request.session.pop(SESSION_ORG, None)
        return f"You left {actor.org.name}; you now act in your personal organization."

    return carry_out(
        request, "dashboard:org", lambda: org_services.member_remove(membership=membership, by=request.user), left
    )


@login_required
def org_create(request):
    """A new organization (the signed-in user its owner); the session switches to it."""
    form = {"name": "", "slug": ""}
    problems = []
    if request.method == "POST":
        form = {"name": request.POST.get("name", "").strip(), "slug": request.POST.get("slug", "").strip()}
        if not form["name"]:
            problems.append("Give the organization a name.")
        elif len(form["name"]) > 100:
            problems.append("The name is at most 100 characters.")
        if not problems:
            try:
                org = org_services.org_create(user=request.user, name=form["name"], slug=form["slug"] or None)
            except errors.ApplicationError as exc:
                problems.append(f"{exc.message} ({exc.code})")
            else:
                request.session[SESSION_ORG] = org.slug
                messages.success(request, f"Organization {org.name} created; you are its owner and now act in it.")
                return redirect("dashboard:org")
    # 200 like the other dashboard forms: htmx (boosted forms) does not swap 4xx responses.
    return render(request, "dashboard/org_create.html", {"form": form, "form_errors": problems, "nav": "org"})


# ---- roles ----


@login_required
def roles_page(request, *, role_form=None):
    actor = _actor(request)
    builtin = [{"name": name, "permissions": sorted(granted)} for name, granted in BUILTIN_ROLES.items()]
    custom = list(org_selectors.role_list(org=actor.org))
    form = role_form or {"name": "", "description": "", "permissions": []}
    return _page(
        request,
        "dashboard/org_roles.html",
        "roles",
        actor,
        builtin_roles=builtin,
        custom_roles=custom,
        all_permissions=PERMISSIONS,
        role_form=form,
    )


def _role(actor: Actor, name: str):
    try:
        return org_selectors.role_get(org=actor.org, name=name)
    except errors.RoleNotFound:
        raise Http404("No such role.") from None


@writes_to("dashboard:org-roles")
def role_create(request):
    actor = _actor(request, MEMBERS_MANAGE)
    form = {
        "name": request.POST.get("name", "").strip(),
        "description": request.POST.get("description", "").strip(),
        "permissions": request.POST.getlist("permissions"),
    }
    problem = _name_problem(form["name"], "Name")
    if problem is None and len(form["description"]) > 200:
        problem = "The description is at most 200 characters."
    if problem is not None:
        messages.error(request, problem)
        return roles_page(request, role_form=form)
    return carry_out(
        request,
        "dashboard:org-roles",
        lambda: org_services.role_create(
            org=actor.org,
            name=form["name"],
            description=form["description"],
            permissions=form["permissions"],
            by=request.user,
        ),
        lambda role: f"Role {role.name} created.",
        refused=lambda: roles_page(request, role_form=form),
    )


@writes_to("dashboard:org-roles")
def role_edit(request, name: str):
    actor = _actor(request, MEMBERS_MANAGE)
    role = _role(actor, name)
    description = request.POST.get("description", "").strip()
    if len(description) > 200:
        messages.error(request, "The description is at most 200 characters.")
        return redirect("dashboard:org-roles")
    return carry_out(
        request,
        "dashboard:org-roles",
        lambda: org_services.role_update(
            role=role, permissions=request.POST.getlist("permissions"), description=description, by=request.user
        ),
        f"Role {role.name} saved: its members' and teams' permissions changed at once.",
    )


@writes_to("dashboard:org-roles")
def role_delete(request, name: str):
    actor = _actor(request, MEMBERS_MANAGE)
    role = _role(actor, name)

    def in_use(exc) -> str | None:
        """Who holds the role, when that is why (else the service's message)."""
        if not isinstance(exc, errors.RoleInUse):
            return None
        holders = [m.user.get_username() for m in actor.org.memberships.filter(custom_role=role).select_related("user")]
        holders += [f"team {team.name}" for team in actor.org.teams.filter(custom_role=role)]
        if not holders:
            return None
        return (
            f"Role {role.name} is in use by {', '.join(holders)}: give them another role first, "
            f"then delete it. ({exc.code})"
        )

    return carry_out(
        request,
        "dashboard:org-roles",
        lambda: org_services.role_delete(role=role, by=request.user),
        f"Role {name} deleted.",
        explain=in_use,
    )


# ---- teams ----


@login_required
def teams_page(request, *, team_form=None):
    actor = _actor(request)
    members = [m.user.get_username() for m in org_selectors.member_list(org=actor.org).order_by("user__username")]
    teams = list(org_selectors.team_list(org=actor.org))
    for team in teams:
        team.usernames = sorted(user.get_username() for user in team.members.all())
        team.candidates = [name for name in members if name not in team.usernames]  # members who may join
    form = team_form or {"name": "", "role": ""}
    return _page(request, "dashboard/org_teams.html", "teams", actor, teams=teams, team_form=form)


@writes_to("dashboard:org-teams")
def team_create(request):
    actor = _actor(request, MEMBERS_MANAGE)
    form = {"name": request.POST.get("name", "").strip(), "role": request.POST.get("role", "")}
    problem = _name_problem(form["name"], "Name")
    if problem is not None:
        messages.error(request, problem)
        return teams_page(request, team_form=form)
    return carry_out(
        request,
        "dashboard:org-teams",
        lambda: org_services.team_create(org=actor.org, name=form["name"], role=form["role"] or None, by=request.user),
        lambda team: f"Team {team.name} created.",
        refused=lambda: teams_page(request, team_form=form),
    )


@writes_to("dashboard:org-teams")
def team_edit(request, name: str):
    """Renames the team and sets its role ("": none)."""
    actor = _actor(request, MEMBERS_MANAGE)
    team = _team(actor, name)
    new_name = request.POST.get("name", "").strip()
    problem = _name_problem(new_name, "Name")
    if problem:
        messages.error(request, problem)
        return redirect("dashboard:org-teams")
    role = request.POST.get("role", "")
    return carry_out(
        request,
        "dashboard:org-teams",
        lambda: org_services.team_update(
            team=team,
            name=new_name if new_name != team.name else None,
            role=role if role != team.role_name else None,
            by=request.user,
        ),
        lambda _: f"Team {team.name} saved.",
    )


@writes_to("dashboard:org-teams")
def team_delete(request, name: str):
    actor = _actor(request, MEMBERS_MANAGE)
    team = _team(actor, name)
    return carry_out(
        request,
        "dashboard:org-teams",
        lambda: org_services.team_delete(team=team, by=request.user),
        f"Team {name} deleted.",
    )


@writes_to("dashboard:org-teams")
def team_member_add(request, name: str):
    actor = _actor(request, MEMBERS_MANAGE)
    team = _team(actor, name)
    username = request.POST.get("username", "").strip()
    if not username:
        messages.error(request, "Choose a member to add.")
        return redirect("dashboard:org-teams")
    return carry_out(
        request,
        "dashboard:org-teams",
        lambda: org_services.team_member_add(team=team, user_ref=username, by=request.user),
        f"{username} added to team {team.name}.",
    )


@writes_to("dashboard:org-teams")
def team_member_remove(request, name: str):
    actor = _actor(request, MEMBERS_MANAGE)
    team = _team(actor, name)
    username = request.POST.get("username", "")
    return carry_out(
        request,
        "dashboard:org-teams",
        lambda: org_services.team_member_remove(team=team, user_ref=username, by=request.user),
        f"{username} removed from team {team.name}.",
    )
