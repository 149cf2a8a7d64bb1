"""The template marketplace in the dashboard (`/marketplace/`, docs/dashboard.md, docs/marketplace.md):

- the catalogue (search over name, description and tags; filters language, tag, featured,
  official/community; sort rating, usage, newest), its results re-fetched by htmx as the filters
  change; readable signed out (public templates only);
- a template's page: its readme rendered from Markdown safely (apps/dashboard/markdown.py), versions
  with their changelog and yanked marks, a deprecation notice with its replacement, reviews, the
  rate form (only for users who created a sandbox from it: the service refuses others), "Create
  sandbox" (the new-sandbox form with the template, and a version, chosen) and, for the template's
  admins, yank and deprecate;
- submissions: the form (Dockerfile, template.yaml, optional context tar, visibility), the
  organization's submissions, a submission's page with its build log polled by htmx (only the text
  after the offset the page has) until the state is final;
- the staff review queue (approve, or reject with a reason).

Reads and writes go through apps/marketplace's selectors and services with the request's Actor, as
the REST API does: another organization's private template or submission is a 404 page, a missing
permission a 403 page naming it, a refusal a message with its error code.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.keys.actors import actor_of
from apps.marketplace import selectors, services, states
from apps.marketplace.models import SubmissionState, Visibility
from apps.marketplace.submissions import REVIEW_PERMISSION, SUBMIT_PERMISSION, log_after
from apps.orgs.branding import brand_for
from vibebox import exceptions as errors

from .markdown import render_markdown
from .orgs import StaleOrg, _actor, _stale, writes_to

CATALOGUE = "dashboard:marketplace"
SORTS = [("featured", "Featured first"), ("rating", "Rating"), ("usage", "Usage (30 days)"), ("newest", "Newest")]
POLL = "every 1s"  # a submission's page while the pipeline or a reviewer has it
TEXT_MAX = 1024 * 1024  # a pasted Dockerfile or template.yaml (the service checks the real limits)


def _org(request):
    """The organization the signed-in user acts in; None signed out (public templates only)."""
    return actor_of(request).org if request.user.is_authenticated else None


def _flag(value: str):
    return {"true": True, "false": False}.get(value)


def _stars(average) -> int:
    """Whole stars shown for an average rating (None: none)."""
    return int(average + 0.5) if average else 0


def _refused(request, exc: errors.ApplicationError) -> None:
    messages.error(request, f"{exc.message} ({exc.code})")


# ---- the catalogue ----


def _catalogue_filters(request) -> dict:
    params = request.GET
    kind = params.get("kind", "")
    sort = params.get("sort", "")
    return {
        "q": params.get("q", "").strip()[:200],
        "language": params.get("language", "").strip()[:32],
        "tag": params.get("tag", "").strip()[:32],
        "featured": params.get("featured") == "on",
        "kind": kind if kind in ("official", "community") else "",
        "sort": sort if sort in dict(SORTS) else "featured",
    }


def catalogue_page(request):
    """The catalogue. An htmx request aimed at the results (the filter form's) gets them alone."""
    org = _org(request)
    filters = _catalogue_filters(request)
    templates = selectors.catalogue(
        org=org,
        q=filters["q"],
        language=filters["language"],
        tag=filters["tag"],
        featured=True if filters["featured"] else None,
        official={"official": True, "community": False}.get(filters["kind"]),
        sort=filters["sort"],
    )
    for template in templates:
        template.stars = _stars(template.rating_avg)
    context = {"templates": templates, "filters": filters, "nav": "marketplace"}
    if request.htmx and request.htmx.target == "catalogue-results":
        return render(request, "dashboard/marketplace/partials/catalogue_results.html", context)
    every = selectors.template_list(org).exclude(image="").only("languages", "tags")
    context.update(
        sorts=SORTS,
        languages=sorted({str(x) for t in every for x in t.languages or []}),
        tags=sorted({str(x) for t in every for x in t.tags or []}),
        can_submit=org is not None and actor_of(request).can(SUBMIT_PERMISSION),
    )
    return render(request, "dashboard/marketplace/catalogue.html", context)


# ---- a template's page ----


def _template(request, name: str):
    try:
        return selectors.catalogue_get(name=name, org=_org(request))
    except errors.TemplateNotFound:
        raise Http404("No such template.") from None


def _is_admin(actor, template) -> bool:
    try:
        services.require_template_admin(actor, template)
    except errors.PermissionDenied:
        return False
    return True


def template_page(request, name):
    template = _template(request, name)
    if template.name != name:  # an alias: the canonical page
        return redirect("dashboard:marketplace-template", name=template.name)
    versions = selectors.template_versions(template, org=_org(request))
    for version in versions:
        version.changelog_html = render_markdown(version.changelog) if version.changelog else ""
    template.stars = _stars(template.rating_avg)
    context = {
        "t": template,
        "readme": render_markdown(template.readme) if template.readme else "",
        "versions": versions,
        "creatable_versions": [v.version for v in versions if not v.yanked],
        "reviews": list(selectors.template_reviews(template)[:100]),
        "nav": "marketplace",
    }
    if request.user.is_authenticated:
        actor = actor_of(request)
        mine = next((r for r in context["reviews"] if r.user_id == request.user.pk), None)
        context.update(
            used=selectors.has_used(template, request.user),
            my_review=mine,
            is_admin=_is_admin(actor, template),
            org=actor.org,
        )
    return render(request, "dashboard/marketplace/template.html", context)


def _back(name: str) -> str:
    return reverse("dashboard:marketplace-template", kwargs={"name": name})


@writes_to(CATALOGUE)
def template_rate(request, name):
    """Rates the template (one review per user, editable): the service refuses users who never
    created a sandbox from it (review_not_allowed), and the message says so."""
    actor = _actor(request)
    template = _template(request, name)
    try:
        rating = int(request.POST.get("rating", ""))
    except ValueError:
        rating = 0
    if not 1 <= rating <= 5:
        messages.error(request, "Choose a rating from 1 to 5 stars.")
        return redirect(_back(template.name))
    text = request.POST.get("text", "").strip()
    if len(text) > 4000:
        messages.error(request, "A review is at most 4000 characters.")
        return redirect(_back(template.name))
    try:
        _, created = services.review_upsert(actor, template=template, rating=rating, text=text)
    except errors.ApplicationError as exc:
        _refused(request, exc)
    else:
        messages.success(request, "Thanks: your review is saved." if created else "Your review is updated.")
    return redirect(_back(template.name))


@writes_to(CATALOGUE)
def version_yank(request, name, version):
    """Yanks a version (the template's organization's admins, or staff; others: a 403 page)."""
    actor = _actor(request)
    template = _template(request, name)
    try:
        services.version_yank(actor, template=template, version=version, reason=request.POST.get("reason", "").strip())
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None
    except errors.ApplicationError as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"{template.name}@{version} is yanked: new sandboxes cannot pin it.")
    return redirect(_back(template.name))


@writes_to(CATALOGUE)
def template_deprecate(request, name):
    """Sets (an empty message: clears) the deprecation notice and its suggested replacement."""
    actor = _actor(request)
    template = _template(request, name)
    message = request.POST.get("message", "").strip()
    try:
        services.template_deprecate(
            actor, template=template, message=message, replacement=request.POST.get("replacement", "").strip()
        )
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None
    except errors.ApplicationError as exc:
        _refused(request, exc)
    else:
        messages.success(request, f"{template.name} is deprecated." if message else "The deprecation is cleared.")
    return redirect(_back(template.name))


@writes_to(CATALOGUE)
def template_feature(request, name):
    """Staff: features (with a rank: lower first) or unfeatures the template in the catalogue."""
    actor = _actor(request)
    template = _template(request, name)
    featured = request.POST.get("featured") == "on"
    try:
        rank = int(request.POST.get("rank") or 0)
    except ValueError:
        rank = 0
    try:
        services.template_feature(actor, template=template, featured=featured, rank=rank)
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None
    messages.success(request, f"{template.name} is {'featured' if featured else 'no longer featured'}.")
    return redirect(_back(template.name))


# ---- submissions ----


def _text_input(request, name: str, label: str) -> tuple[str, str]:
    """(text, problem) from an uploaded file or, without one, the pasted text field."""
    upload = request.FILES.get(f"{name}_file")
    if upload is not None:
        raw = upload.read(TEXT_MAX + 1)
        try:
            return raw.decode(), ""
        except UnicodeDecodeError:
            return "", f"{label}: the file is not UTF-8 text."
    text = request.POST.get(name, "")
    if len(text) > TEXT_MAX:
        return "", f"{label}: too long."
    return text, ""


def _field_errors(exc: errors.ApplicationError) -> list[str]:
    fields = (exc.details or {}).get("fields") or {}
    return [f"{field}: {p.get('message', '')} ({p.get('code', '')})" for field, ps in fields.items() for p in ps]


@login_required
def submit_page(request):
    """The submission form; a POST submits through the same service as the API (checked at once:
    field errors on the form) and opens the submission's page."""
    try:
        actor = _actor(request) if request.method == "POST" else actor_of(request)
    except StaleOrg:
        return _stale(request, "dashboard:marketplace-submit")
    try:
        actor.require(SUBMIT_PERMISSION)
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None
    form = {"dockerfile": "", "template_yaml": "", "visibility": Visibility.PRIVATE}
    problems: list[str] = []
    if request.method == "POST":
        dockerfile, bad_dockerfile = _text_input(request, "dockerfile", "Dockerfile")
        template_yaml, bad_yaml = _text_input(request, "template_yaml", "template.yaml")
        visibility = request.POST.get("visibility", Visibility.PRIVATE)
        form = {"dockerfile": dockerfile, "template_yaml": template_yaml, "visibility": visibility}
        problems = [p for p in (bad_dockerfile, bad_yaml) if p]
        if not dockerfile.strip():
            problems.append("Dockerfile: upload a file or paste it.")
        if not template_yaml.strip():
            problems.append("template.yaml: upload a file or paste it.")
        if not problems:
            try:
                submission = services.submission_create(
                    actor,
                    dockerfile=dockerfile,
                    template_yaml=template_yaml,
                    context=request.FILES.get("context"),
                    visibility=visibility,
                )
            except errors.PermissionDenied as exc:
                raise DjangoPermissionDenied(exc.message) from None
            except errors.ApplicationError as exc:
                problems = _field_errors(exc) or [f"{exc.message} ({exc.code})"]
            else:
                messages.success(
                    request, f"Submitted {submission.template_name}@{submission.version}: it is queued for validation."
                )
                return redirect("dashboard:marketplace-submission", submission_id=submission.pk)
    context = {"form": form, "problems": problems, "org": actor.org, "nav": "marketplace"}
    return render(request, "dashboard/marketplace/submit.html", context, status=400 if problems else 200)


@login_required
def submissions_page(request):
    actor = actor_of(request)
    state = request.GET.get("state", "")
    state = state if state in SubmissionState.values else ""
    context = {
        "submissions": list(selectors.submission_list(actor=actor, state=state)[:200]),
        "state_filter": state,
        "states": SubmissionState.values,
        "can_submit": actor.can(SUBMIT_PERMISSION),
        "nav": "marketplace",
    }
    return render(request, "dashboard/marketplace/submissions.html", context)


def _submission(request, submission_id: str):
    try:
        return selectors.submission_get(actor=actor_of(request), submission_id=submission_id)
    except errors.SubmissionNotFound:
        raise Http404("No such submission.") from None


def _submission_context(submission) -> dict:
    live = submission.state not in states.FINAL
    return {
        "s": submission,
        "live": live,
        "poll_trigger": POLL,
        "running": submission.state in states.RUNNING,
        "final": not live,
    }


@login_required
def submission_page(request, submission_id):
    """A submission's page. `?partial=log&offset=N` (htmx, every second while the state is not
    final) answers the build log's text after byte N (appended to the log shown), the state and the
    results, and a poller carrying the new offset, or none once the state is final."""
    submission = _submission(request, submission_id)
    context = _submission_context(submission)
    if request.GET.get("partial") == "log":
        try:
            offset = max(0, int(request.GET.get("offset", "0")))
        except ValueError:
            offset = 0
        context.update(new_text=log_after(submission, offset))
        return render(request, "dashboard/marketplace/partials/submission_poll.html", context)
    actor = actor_of(request)
    context.update(
        nav="marketplace",
        org=actor.org,
        can_cancel=submission.state == SubmissionState.QUEUED
        and submission.org_id == actor.org.pk
        and actor.can(SUBMIT_PERMISSION),
        can_review=submission.state == SubmissionState.AWAITING_REVIEW and services.can_review(actor, submission),
    )
    return render(request, "dashboard/marketplace/submission.html", context)


@writes_to("dashboard:marketplace-submissions")
def submission_cancel(request, submission_id):
    actor = _actor(request)
    submission = _submission(request, submission_id)
    try:
        services.submission_cancel(actor, submission.pk)
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None
    except errors.ApplicationError as exc:
        _refused(request, exc)
    else:
        messages.success(request, "The submission is cancelled.")
    return redirect("dashboard:marketplace-submission", submission_id=submission.pk)


# ---- the staff review queue ----


def _require_reviewer(request) -> None:
    if not request.user.is_staff:
        raise DjangoPermissionDenied(
            f"The review queue needs the {REVIEW_PERMISSION} permission (staff): public templates are reviewed by "
            f"{brand_for(None).name} staff."
        )


@login_required
def review_queue(request):
    _require_reviewer(request)
    actor = actor_of(request)
    context = {
        "submissions": list(
            selectors.submission_list(actor=actor, state=SubmissionState.AWAITING_REVIEW, all_orgs=True).order_by(
                "created_at"
            )[:200]
        ),
        "org": actor.org,
        "nav": "marketplace",
    }
    return render(request, "dashboard/marketplace/review_queue.html", context)


@writes_to("dashboard:marketplace-review")
def review_decide(request, submission_id):
    """Approve (publish) or reject with a reason (required), through submission_review."""
    actor = _actor(request)
    approve = request.POST.get("decision") == "approve"
    reason = request.POST.get("reason", "").strip()[:1000]
    back = request.POST.get("next") == "submission"
    target = (
        reverse("dashboard:marketplace-submission", kwargs={"submission_id": submission_id})
        if back
        else reverse("dashboard:marketplace-review")
    )
    if not approve and not reason:
        messages.error(request, "Say why it is rejected: the author gets the reason.")
        return redirect(target)
    try:
        submission = services.submission_review(actor, submission_id, approve=approve, reason=reason)
    except errors.SubmissionNotFound:
        raise Http404("No such submission.") from None
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None
    except errors.ApplicationError as exc:
        _refused(request, exc)
    else:
        name = f"{submission.template_name}@{submission.version}"
        messages.success(request, f"{name} is published." if approve else f"{name} is rejected.")
    return redirect(target)
