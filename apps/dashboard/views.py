"""The dashboard's sandbox pages: list (live), create, detail overview (with its sharing section) and
lifecycle actions.

Every view goes through the same services and selectors as the API, scoped to the signed-in
user: another user's sandbox is a 404 page.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.keys.actors import actor_of
from apps.marketplace.selectors import template_list
from apps.orgs import selectors as org_selectors
from apps.sandboxes import selectors, states
from apps.sandboxes.metrics import sandbox_metrics as measure
from apps.sandboxes.models import SandboxGrant, Status
from apps.sandboxes.services import create, grants, lifecycle, recovery
from vibebox import exceptions as errors
from vibebox.units import parse_duration, parse_size

from .forms import SandboxCreateForm
from .navigation import sandbox_tabs
from .orgs import _actor as form_actor
from .orgs import writes_to

ACTIONS = {
    "start": lifecycle.sandbox_start,
    "stop": lifecycle.sandbox_stop,
    "restart": lifecycle.sandbox_restart,
    "pause": lifecycle.sandbox_pause,
    "resume": lifecycle.sandbox_resume,
    "recover": recovery.sandbox_recover,
    "destroy": create.sandbox_destroy,
}


def sandbox_page(request, sandbox, tab: str, template: str, **context):
    """Renders one tab of a sandbox's page (the layout has the header and the tab bar)."""
    context = {
        "sandbox": sandbox,
        "tab": tab,
        "tabs": sandbox_tabs(sandbox),
        "nav": "sandboxes",
        "sandbox_actions": available_actions(sandbox),
        **context,
    }
    return render(request, template, context)


def available_actions(sandbox) -> list[str]:
    """The lifecycle buttons the sandbox's state accepts (states.py decides, as for the API)."""
    return [action for action in states.actions_from(sandbox.status) if action in ACTIONS]


def get_sandbox(request, sandbox_id, need: str | None = None):
    """A sandbox of the signed-in user's organization, else a 404 page; a page (GET) needs what
    reading it does, an action (POST) what using it does, or `need` (a 403 page naming the
    permission)."""
    need = need or (selectors.READ if request.method in ("GET", "HEAD") else selectors.USE)
    try:
        return selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=need)
    except errors.SandboxNotFound:
        raise Http404("No such sandbox.") from None
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None


def home(request):
    if request.user.is_authenticated:
        return redirect("dashboard:sandboxes")
    return render(request, "home.html")


def _filters(request) -> dict:
    params = request.GET
    statuses = [s for s in params.getlist("status") if s in Status.values]
    return {
        "status": statuses or None,
        "template": params.get("template") or None,
        "name": params.get("name") or None,
    }


@login_required
def sandbox_list(request):
    filters = _filters(request)
    sandboxes = selectors.sandbox_list(actor=actor_of(request), **filters)[:500]
    context = {
        "sandboxes": sandboxes,
        "filters": filters,
        "templates": template_list(actor_of(request).org),
        "statuses": Status.values,
        "nav": "sandboxes",
    }
    if request.htmx and request.GET.get("partial") == "rows":
        return render(request, "dashboard/partials/sandbox_rows.html", context)
    return render(request, "dashboard/sandbox_list.html", context)


@login_required
@require_POST
def sandbox_bulk(request):
    action = request.POST.get("action")
    if action not in ("stop", "destroy"):
        messages.error(request, "Choose stop or destroy.")
        return redirect("dashboard:sandboxes")
    done, failed = 0, []
    for sandbox_id in request.POST.getlist("ids"):
        sandbox = get_sandbox(request, sandbox_id, selectors.MANAGE)
        try:
            ACTIONS[action](sandbox=sandbox)
            done += 1
        except errors.ApplicationError as exc:
            failed.append(f"{sandbox.name}: {exc.message}")
    if done:
        messages.success(request, f"{action.title()}: {done} sandbox(es).")
    for line in failed:
        messages.error(request, line)
    return redirect("dashboard:sandboxes")


@login_required
def sandbox_create(request):
    actor = actor_of(request)
    if not actor.can("sandboxes.create"):  # the billing role, a viewer: a 403 page naming it
        try:
            actor.require("sandboxes.create")
        except errors.PermissionDenied as exc:
            raise DjangoPermissionDenied(exc.message) from None
    # The marketplace's "Create sandbox" opens the form with ?template=<name>[&version=<v>] chosen.
    initial = {key: request.GET[key] for key in ("template", "version") if request.GET.get(key)}
    form = SandboxCreateForm(request.POST or None, org=actor.org, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            resources = {}
            if data["cpu"]:
                resources["cpu"] = data["cpu"]
            if data["memory"]:
                resources["memory"] = parse_size(data["memory"])
            git = {"url": data["git_url"], **({"branch": data["git_branch"]} if data["git_branch"] else {})}
            actor.require("sandboxes.create")
            sandbox = create.sandbox_create(
                owner=request.user,
                org=actor.org,
                template=form.template_ref(),
                name=data["name"] or None,
                ephemeral=data["ephemeral"],
                timeout=parse_duration(data["timeout"]) if data["timeout"] else None,
                env=data["env"] or None,
                resources=resources or None,
                git_spec=git if data["git_url"] else None,
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        except errors.ApplicationError as exc:
            form.add_error(None, f"{exc.message} ({exc.code})")
        else:
            messages.success(request, f"Sandbox {sandbox.name} created.")
            return redirect("dashboard:sandbox", sandbox_id=sandbox.id)
    return render(request, "dashboard/sandbox_create.html", {"form": form, "nav": "sandboxes"})


def _may_manage(actor, sandbox) -> bool:
    try:
        selectors.check_access(actor, owner_id=sandbox.owner_id, need=selectors.MANAGE, sandbox_id=sandbox.pk)
    except errors.PermissionDenied:
        return False
    return True


def _sharing(request, sandbox, form: dict | None = None) -> dict:
    """The overview's sharing section: the grants (whoever may read the sandbox sees them) and, for
    whoever may manage it, the members and teams it may be shared with."""
    actor = actor_of(request)
    context = {
        "grants": list(selectors.grant_list(sandbox=sandbox)),
        "can_share": _may_manage(actor, sandbox),
        "access_levels": SandboxGrant.Access.values,
        "share_form": form or {"user": "", "team": "", "access": selectors.USE},
    }
    if context["can_share"]:
        members = org_selectors.member_list(org=sandbox.org).exclude(user_id=sandbox.owner_id)
        context["share_members"] = sorted(m.user.get_username() for m in members.select_related("user"))
        context["share_teams"] = [team.name for team in org_selectors.team_list(org=sandbox.org)]
    return context


@login_required
def sandbox_detail(request, sandbox_id, *, share_form=None):
    sandbox = get_sandbox(request, sandbox_id, selectors.READ)
    return sandbox_page(
        request, sandbox, "overview", "dashboard/sandbox_overview.html", **_sharing(request, sandbox, share_form)
    )


@login_required
def sandbox_metrics(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    try:
        metrics, problem = measure(sandbox=sandbox), ""
    except errors.ApplicationError as exc:
        metrics, problem = None, exc.message
    return render(request, "dashboard/partials/metrics.html", {"sandbox": sandbox, "m": metrics, "problem": problem})


@login_required
@require_POST
def sandbox_action(request, sandbox_id, action):
    sandbox = get_sandbox(request, sandbox_id, selectors.MANAGE)
    if action not in ACTIONS:
        raise Http404("No such action.")
    try:
        ACTIONS[action](sandbox=sandbox)
        messages.success(request, f"{sandbox.name}: {action} done.")
    except errors.ApplicationError as exc:
        messages.error(request, f"{sandbox.name}: {exc.message}")
    if action == "destroy":
        return redirect("dashboard:sandboxes")
    return redirect("dashboard:sandbox", sandbox_id=sandbox.id)


@login_required
@require_POST
def sandbox_extend(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id, selectors.MANAGE)
    try:
        create.sandbox_update(sandbox=sandbox, timeout=parse_duration(request.POST.get("timeout") or "1h"))
        messages.success(request, "Expiry extended.")
    except (ValueError, errors.ApplicationError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    return redirect("dashboard:sandbox", sandbox_id=sandbox.id)


# ---- sharing (the overview's section): grants through the same service as the API ----
# Each form carries the organization it was shown for, as the organization pages' do: one sent
# after switching organization in another tab changes nothing and says so.


def _grant(sandbox, grant_id: str) -> SandboxGrant:
    try:
        return selectors.grant_get(sandbox=sandbox, grant_id=grant_id)
    except errors.GrantNotFound:
        raise Http404("No such grant on this sandbox.") from None


def _grantee(grant: SandboxGrant) -> str:
    return f"team {grant.team.name}" if grant.team_id else grant.user.get_username()


@writes_to("dashboard:sandboxes")
def sandbox_share(request, sandbox_id):
    """Shares the sandbox with a member (username or email) or a team at an access level; one who
    holds a grant already gets the new level. Needs what managing the sandbox needs."""
    form_actor(request)  # the form's organization is still the one acted in
    sandbox = get_sandbox(request, sandbox_id, selectors.MANAGE)
    form = {
        "user": request.POST.get("user", "").strip()[:254],
        "team": request.POST.get("team", "").strip()[:50],
        "access": request.POST.get("access", ""),
    }
    if bool(form["user"]) == bool(form["team"]):
        messages.error(request, "Name a member (username or email) or choose a team, not both.")
        return sandbox_detail(request, sandbox_id, share_form=form)
    try:
        grant, created = grants.grant_set(
            sandbox=sandbox, access=form["access"], user_ref=form["user"] or None, team=form["team"] or None,
            by=request.user,
        )  # fmt: skip
    except errors.ApplicationError as exc:
        messages.error(request, f"{exc.message} ({exc.code})")
        return sandbox_detail(request, sandbox_id, share_form=form)
    what = "Shared with" if created else "Changed the access of"
    messages.success(request, f"{what} {_grantee(grant)}: {grant.access}.")
    return redirect("dashboard:sandbox", sandbox_id=sandbox.id)


@writes_to("dashboard:sandboxes")
def sandbox_grant_access(request, sandbox_id, grant_id):
    """Changes a grant's level. Needs what managing the sandbox needs."""
    form_actor(request)
    sandbox = get_sandbox(request, sandbox_id, selectors.MANAGE)
    grant = _grant(sandbox, grant_id)
    access = request.POST.get("access", "")
    grantee = {"team": grant.team.name} if grant.team_id else {"user_ref": grant.user.get_username()}
    try:
        grant, _ = grants.grant_set(sandbox=sandbox, access=access, by=request.user, **grantee)
    except errors.ApplicationError as exc:
        messages.error(request, f"{exc.message} ({exc.code})")
    else:
        messages.success(request, f"{_grantee(grant)} now has {grant.access} access.")
    return redirect("dashboard:sandbox", sandbox_id=sandbox.id)


@writes_to("dashboard:sandboxes")
def sandbox_grant_revoke(request, sandbox_id, grant_id):
    """Revokes a grant: whoever may manage the sandbox, or the grantee giving up their own."""
    actor = form_actor(request)
    sandbox = get_sandbox(request, sandbox_id, selectors.READ)
    grant = _grant(sandbox, grant_id)
    own = grant.user_id == request.user.pk
    if not own:
        get_sandbox(request, sandbox_id, selectors.MANAGE)  # a 403 page naming the permission
    grantee = _grantee(grant)
    grants.grant_delete(grant=grant)
    if own and not _readable(actor, sandbox):
        messages.success(request, f"You gave up your access to {sandbox.name}.")
        return redirect("dashboard:sandboxes")
    messages.success(request, f"{sandbox.name} is no longer shared with {grantee}.")
    return redirect("dashboard:sandbox", sandbox_id=sandbox.id)


def _readable(actor, sandbox) -> bool:
    try:
        selectors.check_access(actor, owner_id=sandbox.owner_id, need=selectors.READ, sandbox_id=sandbox.pk)
    except errors.PermissionDenied:
        return False
    return True
