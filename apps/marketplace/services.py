"""Writes for templates: seeding built-in templates' rows and their build state (their images are
built by apps/sandboxes/images.py)."""

from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from apps.orgs.network import validate_network
from vibebox import exceptions as errors

from . import selectors
from .catalog import TemplateSource
from .models import BuildState, Review, Template, TemplateUse, TemplateVersion, VersionState
from .signals import template_published
from .submissions import (  # noqa: F401  (the pipeline's calls: apps/marketplace/submissions.py)
    submission_cancel,
    submission_candidate,
    submission_create,
    submission_create_from,
    submission_fail,
    submission_log_append,
    submission_passed,
    submission_progress,
    submission_publish,
    submission_reject,
    submission_requeue,
    submission_review,
    submission_start,
    template_latest_refresh,
)


def _spec_fields(source: TemplateSource) -> dict:
    spec = source.spec
    return {
        "aliases": [str(alias) for alias in spec.get("aliases") or []],
        "display_name": spec.get("displayName", source.name),
        "description": spec.get("description", ""),
        "version": int(spec.get("version", 1)),
        "language": spec.get("language", ""),
        "languages": spec.get("languages", []),
        "package_managers": [str(m) for m in spec.get("packageManagers") or []],
        "smoke": str(spec.get("smoke") or ""),
        "services": str(spec.get("services") or ""),
        "user": spec.get("user", ""),
        "uid": int(spec.get("uid", 1000)),
        "gid": int(spec.get("gid", 1000)),
        "workdir": spec.get("workdir", "/workspace"),
        "default_env": {k: str(v) for k, v in (spec.get("defaultEnv") or {}).items()},
        "ports": spec.get("ports", []),
        "pre_installed": spec.get("preInstalled", {}),
        "cap_add": spec.get("capAdd", []),
        "claude": spec.get("claude") or {},  # normalised by catalog.built_in_templates
        "network": validate_network(spec["network"], partial=True) if spec.get("network") is not None else None,
        "node_labels": dict(spec.get("nodeLabels") or {}),  # checked by catalog.built_in_templates
        "runtime": spec.get("runtime", "runc"),
        "built_in": True,
        "official": True,
        "visibility": "public",
        "owner_org": None,
        "is_active": True,
    }


def _adopt_renamed(source: TemplateSource) -> None:
    """A built-in template renamed with its old name kept as an alias (python-3 -> python-3.13)
    keeps its row, so its sandboxes, snapshots and pools follow it."""
    if Template.objects.filter(name=source.name).exists():
        return
    aliases = [str(alias) for alias in source.spec.get("aliases") or []]
    old = Template.objects.filter(name__in=aliases, built_in=True).order_by("pk").first()
    if old is not None:
        Template.objects.filter(pk=old.pk).update(name=source.name)


@transaction.atomic
def template_build_state_set(
    *, source: TemplateSource, state: str, message: str = "", progress: dict | None = None
) -> Template:
    """Records a built-in template's build state. A template without a row gets one (from its
    template.yaml, with no image until its first build finishes), so it is listed while it builds;
    one with a row keeps its older image meanwhile."""
    _adopt_renamed(source)
    template = Template.objects.filter(name=source.name).first()
    fields = {"build_state": state, "build_message": message[:1000], "build_progress": progress or {}}
    if template is None:
        return Template.objects.create(name=source.name, image="", **_spec_fields(source), **fields)
    Template.objects.filter(pk=template.pk).update(**fields)
    for field, value in fields.items():
        setattr(template, field, value)
    return template


@transaction.atomic
def template_upsert(
    *, source: TemplateSource, image_size: int | None = None, build_seconds: float | None = None
) -> Template:
    """Creates or updates a built-in template's row with its built image (build state ready); a
    new template or a new version is published (an unchanged one, synced at every start, is not)."""
    _adopt_renamed(source)
    before = Template.objects.filter(name=source.name).values_list("version", "is_active", "image").first()
    measured = {}
    if image_size is not None:
        measured["image_size"] = image_size
    if build_seconds is not None:
        measured["build_seconds"] = build_seconds
    template, _ = Template.objects.update_or_create(
        name=source.name,
        defaults={
            **_spec_fields(source),
            "image": source.image,
            "build_state": BuildState.READY,
            "build_message": "",
            "build_progress": {},
            **measured,
        },
    )
    if before is None or not before[2] or before[:2] != (template.version, True):
        template_published.send(sender=Template, template=template)
    return template


def template_use_record(*, template: Template, version: str = "", org, user=None) -> TemplateUse:
    """A sandbox was created from `template` (sandboxes' create, in its transaction): one insert.
    Usage counts and who may review come from these rows."""
    return TemplateUse.objects.create(template=template, version=version or "", org=org, user=user)


# The catalogue's writes (docs/marketplace.md) ------------------------------------------------


def _staff(actor) -> bool:
    return bool(getattr(actor.user, "is_staff", False))


def require_template_admin(actor, template: Template) -> None:
    """Staff may change any template; an organization's admins (templates.submit and
    members.manage, or the owner) their organization's; nobody else (403 naming the permission)."""
    if _staff(actor):
        return
    if template.owner_org_id is None or template.owner_org_id != actor.org.pk:
        raise errors.PermissionDenied(
            f"Only staff may change the template {template.name}.", details={"permission": "staff"}
        )
    for permission in ("templates.submit", "members.manage"):
        actor.require(permission)


def require_staff(actor, what: str) -> None:
    if not _staff(actor):
        raise errors.PermissionDenied(f"Only staff may {what}.", details={"permission": "staff"})


@transaction.atomic
def review_upsert(actor, *, template: Template, rating: int, text: str = "") -> tuple[Review, bool]:
    """Rates a template (one review per user, editable): only users who created a sandbox from
    it (a TemplateUse row) may. (review, created)."""
    if not selectors.has_used(template, actor.user):
        raise errors.ReviewNotAllowed(
            f"Only users who created a sandbox from {template.name} may review it.", details={"template": template.name}
        )
    review, created = Review.objects.update_or_create(
        template=template, user=actor.user, defaults={"org": actor.org, "rating": rating, "text": text}
    )
    record(
        "template.reviewed",
        target=review,
        org_id=actor.org.pk,
        target_type="template_review",
        changes={"template": template.name, "rating": rating, "created": created},
    )
    return review, created


@transaction.atomic
def version_yank(actor, *, template: Template, version: str, reason: str = "") -> TemplateVersion:
    """Hides a published version from new creates (running sandboxes keep it); the template's
    latest version moves to the newest one left. Yanking twice changes nothing."""
    require_template_admin(actor, template)
    # The Template row's lock first, then its version's (the order submission_publish takes them):
    # a publish and a yank at once cannot both refresh the latest version from stale rows.
    template = Template.objects.select_for_update().get(pk=template.pk)
    row = (
        TemplateVersion.objects.select_for_update()
        .filter(template=template, version=version, state=VersionState.PUBLISHED)
        .first()
    )
    if row is None:
        raise errors.TemplateVersionNotFound(
            f"{template.name} has no published version {version!r}.",
            details={
                "template": template.name,
                "version": version,
                "versions": selectors.published_versions(template, org=actor.org),
            },
        )
    if not row.yanked:
        TemplateVersion.objects.filter(pk=row.pk).update(
            yanked=True, yanked_at=timezone.now(), yank_reason=reason[:500]
        )
        row.refresh_from_db()
        template_latest_refresh(template)
        record(
            "template.version_yanked",
            target=template,
            org_id=template.owner_org_id or actor.org.pk,
            target_id=template.name,
            changes={"version": version, "reason": reason[:500]},
        )
    return row


@transaction.atomic
def template_deprecate(actor, *, template: Template, message: str, replacement: str = "") -> Template:
    """Sets (or, with an empty message, clears) a template's deprecation notice and suggested
    replacement (a template the caller can see)."""
    require_template_admin(actor, template)
    if replacement and selectors.template_find(replacement, org=actor.org) is None:
        raise errors.ValidationFailed(
            f"replacement: no template {replacement!r}.",
            details={"fields": {"replacement": [{"message": "No such template.", "code": "unknown_template"}]}},
        )
    Template.objects.filter(pk=template.pk).update(
        deprecation=message[:500], replacement=replacement if message else "", updated_at=timezone.now()
    )
    template.refresh_from_db()
    record(
        "template.deprecated" if message else "template.undeprecated",
        target=template,
        org_id=template.owner_org_id or actor.org.pk,
        target_id=template.name,
        changes={"message": message[:500], "replacement": template.replacement},
    )
    return template


@transaction.atomic
def template_feature(actor, *, template: Template, featured: bool, rank: int = 0) -> Template:
    """Staff: features (or unfeatures) a template in the catalogue; a lower rank comes first."""
    require_staff(actor, "feature templates")
    Template.objects.filter(pk=template.pk).update(featured=featured, featured_rank=rank, updated_at=timezone.now())
    template.refresh_from_db()
    record(
        "template.featured" if featured else "template.unfeatured",
        target=template,
        org_id=template.owner_org_id or actor.org.pk,
        target_id=template.name,
        changes={"featured": featured, "rank": rank},
    )
    return template
