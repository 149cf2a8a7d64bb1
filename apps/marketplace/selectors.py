import re
from datetime import timedelta

from django.db.models import Avg, Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from vibebox import exceptions as errors

from .models import Review, Submission, Template, TemplateUse, TemplateVersion, VersionState, Visibility
from .semver import semver_key

SUGGESTIONS_MAX = 3
# "go-1.21" -> "go", "python-3.11-claude-code" -> "python": the name before its version.
FAMILY_RE = re.compile(r"^(.*?)(?:-\d.*)?$", re.S)  # re.S: a name holding a newline (the schema fuzzer) still matches


def visible_to(org) -> Q:
    """Templates an organization sees: built-ins, public ones, and its own private ones (`org`
    None: only the public ones)."""
    visible = Q(owner_org__isnull=True) | Q(visibility=Visibility.PUBLIC)
    return visible | Q(owner_org=org) if org is not None else visible


def template_list(org=None):
    """Active templates visible to `org` (built-ins, public marketplace ones, the org's own)."""
    return Template.objects.filter(is_active=True).filter(visible_to(org))


def template_find(name: str, *, org=None) -> Template | None:
    """An active template visible to `org` by its name or one of its aliases (another
    organization's private template is not found)."""
    template = template_list(org).filter(name=name).first()
    if template is None:
        # Aliases are a built-in's (a marketplace template has none).
        template = next(
            (t for t in Template.objects.filter(is_active=True, built_in=True) if name in (t.aliases or [])), None
        )
    return template


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions and substitutions cost 1)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def template_suggestions(name: str, *, org=None) -> list[str]:
    """Active templates whose name (or an alias) is close to `name` by edit distance, or of the
    same family (`go-1.21` -> `go-1.24`), nearest first; canonical names, at most three."""
    wanted = name.strip().lower()
    family = FAMILY_RE.match(wanted).group(1)
    limit = max(2, len(wanted) // 3)
    scored: dict[str, int] = {}
    for template in template_list(org).only("name", "aliases"):
        for candidate in [template.name, *(template.aliases or [])]:
            candidate = str(candidate).lower()
            distance = edit_distance(wanted, candidate)
            related = family and FAMILY_RE.match(candidate).group(1) == family
            if distance <= limit or related:
                scored[template.name] = min(distance, scored.get(template.name, distance))
    return sorted(scored, key=lambda n: (scored[n], n))[:SUGGESTIONS_MAX]


def template_get(*, name: str, org=None) -> Template:
    template = template_find(name, org=org)
    if template is None:
        raise errors.TemplateNotFound(
            f"Template {name!r} not found.",
            details={"template": name, "suggestions": template_suggestions(name, org=org)},
        )
    return template


def split_pin(value: str) -> tuple[str, str]:
    """`react-vite@1.2.0` -> ("react-vite", "1.2.0"); a bare name -> (name, "")."""
    name, _, version = value.partition("@")
    return name, version


def reviewed_only(template: Template, org) -> bool:
    """A public template shows other organizations (and takes as its latest) only its reviewed
    versions: a private version its owner published without review stays the owner's."""
    return template.visibility == Visibility.PUBLIC and (org is None or template.owner_org_id != org.pk)


def _published(template: Template, org):
    rows = TemplateVersion.objects.filter(template=template, state=VersionState.PUBLISHED)
    return rows.filter(reviewed=True) if reviewed_only(template, org) else rows


def version_resolve(template: Template, version: str, *, org=None) -> TemplateVersion | None:
    """A marketplace template's published version by a pin (yanked ones included: the caller
    says template_version_yanked) that `org` may use; None for an unknown version."""
    return _published(template, org).filter(version=version).first()


def published_versions(template: Template, *, yanked: bool = False, org=None) -> list[str]:
    """A template's published version strings `org` may use, newest first."""
    rows = _published(template, org)
    if not yanked:
        rows = rows.filter(yanked=False)
    return sorted(rows.values_list("version", flat=True), key=semver_key, reverse=True)


# The catalogue -------------------------------------------------------------------------------

SORTS = ("rating", "usage", "newest", "name", "featured")
USAGE_WINDOW = timedelta(days=30)


def catalogue(
    *, org, q: str = "", language: str = "", tag: str = "", featured=None, official=None, sort: str = "featured"
):
    """The catalogue's templates visible to `org`, annotated with rating_avg, rating_count,
    uses_total and uses_recent (last 30 days), filtered and sorted."""
    since = timezone.now() - USAGE_WINDOW
    # Subqueries, not joins: a popular template's reviews times its uses would be a large product.
    reviews = Review.objects.filter(template=OuterRef("pk")).values("template")
    uses = TemplateUse.objects.filter(template=OuterRef("pk")).values("template")
    recent = uses.filter(created_at__gte=since)
    rows = (
        template_list(org)
        .exclude(image="")  # a built-in whose first image is still building (GET /templates lists it)
        .annotate(
            rating_avg=Subquery(reviews.annotate(v=Avg("rating")).values("v")),
            rating_count=Coalesce(Subquery(reviews.annotate(v=Count("id")).values("v")), 0),
            uses_total=Coalesce(Subquery(uses.annotate(v=Count("id")).values("v")), 0),
            uses_recent=Coalesce(Subquery(recent.annotate(v=Count("id")).values("v")), 0),
        )
    )
    if q:
        for word in q.split()[:8]:
            rows = rows.filter(
                Q(name__icontains=word)
                | Q(display_name__icontains=word)
                | Q(description__icontains=word)
                | Q(tags__icontains=word)
                | Q(languages__icontains=word)
            )
    if language:
        rows = [t for t in rows if language.lower() in [str(x).lower() for x in t.languages or []]]
    if tag:
        rows = [t for t in rows if tag.lower() in [str(x).lower() for x in t.tags or []]]
    rows = list(rows) if not isinstance(rows, list) else rows
    if featured is not None:
        rows = [t for t in rows if t.featured == featured]
    if official is not None:
        rows = [t for t in rows if t.official == official]
    keys = {
        "rating": lambda t: (-(t.rating_avg or 0), -t.rating_count, t.name),
        "usage": lambda t: (-t.uses_recent, -t.uses_total, t.name),
        "newest": lambda t: (-t.created_at.timestamp(), t.name),
        "name": lambda t: t.name,
        "featured": lambda t: (not t.featured, t.featured_rank, not t.official, -t.uses_recent, t.name),
    }
    return sorted(rows, key=keys.get(sort, keys["featured"]))


def template_stats(template: Template) -> dict:
    since = timezone.now() - USAGE_WINDOW
    ratings = Review.objects.filter(template=template).aggregate(avg=Avg("rating"), count=Count("id"))
    uses = TemplateUse.objects.filter(template=template).aggregate(
        total=Count("id"), recent=Count("id", filter=Q(created_at__gte=since))
    )
    return {
        "rating_avg": ratings["avg"],
        "rating_count": ratings["count"],
        "uses_total": uses["total"],
        "uses_recent": uses["recent"],
    }


def catalogue_get(*, name: str, org) -> Template:
    """One catalogue template visible to `org` (another org's private one: template_not_found),
    with its stats as attributes."""
    template = template_get(name=name, org=org)
    for key, value in template_stats(template).items():
        setattr(template, key, value)
    return template


def template_versions(template: Template, *, org=None):
    """A template's published versions `org` sees (reviewed_only), newest first."""
    return sorted(_published(template, org), key=lambda v: semver_key(v.version), reverse=True)


def template_reviews(template: Template):
    return Review.objects.filter(template=template).select_related("user").order_by("-updated_at")


def has_used(template: Template, user) -> bool:
    return TemplateUse.objects.filter(template=template, user=user).exists()


# Submissions ---------------------------------------------------------------------------------


def submission_list(*, actor, state: str = "", all_orgs: bool = False):
    """The actor's organization's submissions; staff may list every organization's (all_orgs)."""
    rows = Submission.objects.select_related("org", "user", "template_version")
    if not (all_orgs and getattr(actor.user, "is_staff", False)):
        rows = rows.filter(org=actor.org)
    if state:
        rows = rows.filter(state=state)
    return rows.order_by("-created_at")


def submission_get(*, actor, submission_id: str) -> Submission:
    """A submission of the actor's organization (staff: any); else submission_not_found."""
    rows = Submission.objects.select_related("org", "user", "template_version")
    submission = rows.filter(pk=submission_id).first()
    if submission is None or not (submission.org_id == actor.org.pk or getattr(actor.user, "is_staff", False)):
        raise errors.SubmissionNotFound(
            f"Submission {submission_id!r} not found.", details={"submission": submission_id}
        )
    return submission
