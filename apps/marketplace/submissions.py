"""Template submissions: the writes the validation pipeline (apps/sandboxes/submissions.py) calls
to report progress, and publishing or rejecting a version (docs/marketplace.md).

The pipeline never moves a submission itself: it calls
    submission_start -> submission_log_append* -> submission_progress(state=smoke_testing, image=...)
    -> submission_candidate -> (smoke test) -> submission_passed
or submission_fail(step=..., message=...) at any point before the end.
"""

import base64
import binascii
import logging
import smtplib
from pathlib import Path

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from apps.audit.services import record
from apps.orgs.branding import brand_for
from vibebox import exceptions as errors

from . import spec as checks
from . import states
from .models import (
    FailedStep,
    Submission,
    SubmissionState,
    Template,
    TemplateVersion,
    VersionState,
    Visibility,
    new_submission_id,
)
from .semver import semver_key
from .signals import submission_queued, template_published, template_rejected

logger = logging.getLogger(__name__)

LOG_MAX = 1024 * 1024  # the build log kept: its head and its newest tail
LOG_HEAD = 64 * 1024
LOG_MARKER = "\n[... the middle of the build log was dropped ...]\n"
SMOKE_OUTPUT_MAX = 64 * 1024
MESSAGE_MAX = 1000
PROGRESS_FIELDS = {"image", "image_size", "build_seconds", "smoke_output", "message"}


def _cut(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode(errors="ignore")


def _tail(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[-limit:].decode(errors="ignore")


# Submitting ---------------------------------------------------------------------------------

SUBMIT_PERMISSION = "templates.submit"
COPY_CHUNK = 1024 * 1024


def context_dir():
    return settings.VIBEBOX_MARKETPLACE_DIR / "submissions"


def _store_context(submission_id: str, context) -> tuple[str, int]:
    """Writes the context (bytes or a binary file object) to DATA_DIR/marketplace/submissions/<id>.tar,
    refusing more than VIBEBOX_TEMPLATE_CONTEXT_MAX bytes; (path, bytes)."""
    limit = settings.VIBEBOX_TEMPLATE_CONTEXT_MAX
    directory = context_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{submission_id}.tar"
    size = 0
    try:
        with open(path, "wb") as out:
            if isinstance(context, (bytes, bytearray)):
                chunks = [bytes(context)]
            else:
                chunks = iter(lambda: context.read(COPY_CHUNK), b"")
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise errors.BuildContextTooLarge(
                        f"The build context is larger than {limit} bytes.", details={"limit": limit}
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return str(path), size


def remove_context(submission: Submission) -> None:
    if submission.context_path:
        try:
            Path(submission.context_path).unlink(missing_ok=True)
        except OSError:  # pragma: no cover - logged, the row is what matters
            logger.exception("Could not remove %s", submission.context_path)


def submission_create_from(actor, *, data: dict) -> Submission:
    """A submission from the JSON body's validated fields (api.serializers.SubmissionCreateSerializer,
    the context base64): REST's and GraphQL's."""
    context = None
    if data.get("context"):
        try:
            context = base64.b64decode(data["context"], validate=True)
        except (binascii.Error, ValueError):
            raise errors.InvalidBuildContext(
                "context: not base64.",
                details={"fields": {"context": [{"message": "Not base64.", "code": "not_base64"}]}},
            ) from None
    return submission_create(
        actor,
        dockerfile=data["dockerfile"],
        template_yaml=data["templateYaml"],
        context=context,
        visibility=data.get("visibility", Visibility.PRIVATE),
    )


def submission_create(
    actor, *, dockerfile: str, template_yaml: str, context=None, visibility: str = Visibility.PRIVATE
) -> Submission:
    """Checks a submission (its template.yaml, Dockerfile and context tar: 400s with field errors)
    and queues it: the context is kept under DATA_DIR/marketplace/submissions/ and, once
    committed, submission_queued asks the sandboxes app to validate it."""
    actor.require(SUBMIT_PERMISSION)
    if visibility not in Visibility.values:
        raise errors.ValidationFailed(
            "visibility: must be public or private.",
            details={"fields": {"visibility": [{"message": "public or private", "code": "invalid_choice"}]}},
        )
    submission_id = new_submission_id()
    context_path, context_bytes, context_files = "", 0, {}
    if context is not None:
        context_path, context_bytes = _store_context(submission_id, context)
    try:
        if context_path:
            context_files = checks.check_context(context_path)
        spec = checks.validate_spec(template_yaml, org=actor.org, visibility=visibility, context_files=context_files)
        bases = checks.validate_dockerfile(dockerfile, org=actor.org)
        spec["bases"] = bases
        spec["baseTemplate"] = checks.base_template_fields(bases)
        with transaction.atomic():
            # Two first submissions of one name at once: one after the other, and the second
            # sees the first (400 name taken / version exists), not a race.
            _lock_name(spec["name"])
            checks.recheck_name(spec["name"], spec["version"], org=actor.org, visibility=visibility)
            submission = Submission.objects.create(
                id=submission_id,
                org=actor.org,
                user=actor.user,
                template_name=spec["name"],
                version=spec["version"],
                visibility=visibility,
                dockerfile=dockerfile,
                context_path=context_path,
                context_bytes=context_bytes,
                spec=spec,
            )
            record(
                "template.submitted",
                target=submission,
                target_type="template_submission",
                changes={
                    "template": submission.template_name,
                    "version": submission.version,
                    "visibility": visibility,
                    "contextBytes": context_bytes,
                },
            )
            transaction.on_commit(lambda: submission_queued.send(sender=Submission, submission=submission))
    except BaseException:
        if context_path:
            Path(context_path).unlink(missing_ok=True)
        raise
    return submission


def _lock_name(name: str) -> None:
    """A transaction-long lock on a template name (PostgreSQL; SQLite serializes writers anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"vibebox.template-name:{name}"])


def submission_cancel(actor, submission_id: str) -> Submission:
    """queued -> cancelled (the submitter's organization, with templates.submit)."""
    actor.require(SUBMIT_PERMISSION)
    submission = Submission.objects.filter(pk=submission_id, org=actor.org).first()
    if submission is None:
        raise errors.SubmissionNotFound(details={"submission": submission_id})
    with transaction.atomic():
        submission = states.move(submission_id, SubmissionState.CANCELLED, message="Cancelled.")
        _drop_candidate(submission)
        record(
            "template.submission_cancelled",
            target=submission,
            target_type="template_submission",
            changes={"template": submission.template_name, "version": submission.version},
        )
    remove_context(submission)
    return submission


# The pipeline's calls -----------------------------------------------------------------------


def submission_start(submission_id: str) -> Submission | None:
    """queued -> building; None when it is no longer queued (a redelivered task does nothing)."""
    return states.move(submission_id, SubmissionState.BUILDING, strict=False)


def submission_requeue(submission_id: str, *, idle_before) -> Submission | None:
    """A submission still queued with no change since `idle_before` (its Celery task may have
    been lost: a worker died before running it, the broker was flushed) is queued again: a line in
    its build log says so and submission_queued is sent again (the pipeline runs it once: a second
    task finds it no longer queued). None when it is no longer queued or changed since."""
    now = timezone.now()
    if not Submission.objects.filter(pk=submission_id, state=SubmissionState.QUEUED, updated_at__lt=idle_before).update(
        updated_at=now
    ):
        return None
    minutes = max(1, round((now - idle_before).total_seconds() / 60))
    submission_log_append(
        submission_id,
        f"re-queued: the validation had not started after {minutes} min (its task may have been lost)\n",
    )
    submission = Submission.objects.get(pk=submission_id)
    transaction.on_commit(lambda: submission_queued.send(sender=Submission, submission=submission))
    return submission


@transaction.atomic
def submission_log_append(submission_id: str, text: str) -> int:
    """Appends to the build log (kept at most LOG_MAX bytes: the head and the newest tail) and
    returns the log's size in bytes ever appended (the stream's offset after `text`). Where the
    head ends is a column (log_head), never searched for in the text (the submitter writes it)."""
    if not text:
        return Submission.objects.filter(pk=submission_id).values_list("log_size", flat=True).first() or 0
    row = (
        Submission.objects.select_for_update()
        .filter(pk=submission_id)
        .values("build_log", "log_size", "log_head")
        .first()
    )
    if row is None:
        raise errors.SubmissionNotFound(details={"submission": submission_id})
    data = text.encode()
    size = row["log_size"] + len(data)
    old = row["build_log"].encode()
    marker = LOG_MARKER.encode()
    head_len = row["log_head"]
    if len(data) > LOG_HEAD + LOG_MAX:  # only its head and its tail can ever be kept
        data = data[:LOG_HEAD] + data[-LOG_MAX:]
    if head_len:  # cut before: keep the head, append to the tail
        room = LOG_MAX - head_len - len(marker)
        tail = (old[head_len + len(marker) :] + data[-room:])[-room:]
        log = old[:head_len].decode(errors="ignore") + LOG_MARKER + tail.decode(errors="ignore")
    elif len(old) + len(data) <= LOG_MAX:
        log = row["build_log"] + text  # (a capped chunk is longer than LOG_MAX: not here)
    else:
        whole = old + data
        head = whole[:LOG_HEAD].decode(errors="ignore")
        head_len = len(head.encode())
        room = LOG_MAX - head_len - len(marker)
        log = head + LOG_MARKER + whole[-room:].decode(errors="ignore")
    Submission.objects.filter(pk=submission_id).update(
        build_log=log, log_size=size, log_head=head_len, updated_at=timezone.now()
    )
    return size


def log_after(submission: Submission, offset: int) -> str:
    """The part of the build log after byte `offset` (what is still kept of it)."""
    wanted = submission.log_size - max(0, offset)
    if wanted <= 0:
        return ""
    data = submission.build_log.encode()
    if submission.log_head:
        data = data[submission.log_head + len(LOG_MARKER.encode()) :]
    return data[-wanted:].decode(errors="ignore") if wanted < len(data) else data.decode(errors="ignore")


def submission_progress(submission_id: str, *, state: str, **fields) -> Submission:
    """Moves the submission to `state` (a legal transition, states.py; the same state just
    records `fields`) with fields among image, image_size, build_seconds, smoke_output, message."""
    unknown = set(fields) - PROGRESS_FIELDS
    if unknown:
        raise ValueError(f"submission_progress: unknown fields {sorted(unknown)}")
    if "smoke_output" in fields:
        fields["smoke_output"] = _tail(str(fields["smoke_output"] or ""), SMOKE_OUTPUT_MAX)
    if "message" in fields:
        fields["message"] = str(fields["message"] or "")[:MESSAGE_MAX]
    current = Submission.objects.filter(pk=submission_id).values_list("state", flat=True).first()
    if current is None:
        raise errors.SubmissionNotFound(details={"submission": submission_id})
    if current == state and state not in states.FINAL:
        Submission.objects.filter(pk=submission_id, state=state).update(updated_at=timezone.now(), **fields)
        return Submission.objects.get(pk=submission_id)
    if state in (SubmissionState.PUBLISHED, SubmissionState.REJECTED, SubmissionState.FAILED):
        raise ValueError("submission_progress: use submission_passed, submission_review or submission_fail")
    return states.move(submission_id, state, **fields)


def submission_fail(submission_id: str, *, step: str, message: str) -> Submission | None:
    """queued | building | smoke_testing -> failed, saying which step (upload, build, policy,
    smoke) and why; its candidate version (if any) is dropped. None when it had already ended."""
    if step not in FailedStep.values:
        raise ValueError(f"submission_fail: step {step!r} is not one of {FailedStep.values}")
    with transaction.atomic():
        submission = states.move(
            submission_id, SubmissionState.FAILED, strict=False, failed_step=step, message=str(message)[:MESSAGE_MAX]
        )
        if submission is not None:
            _drop_candidate(submission)
    if submission is not None:
        remove_context(submission)
    return submission


def _drop_candidate(submission: Submission) -> None:
    """A failed or rejected submission's candidate version goes (its number may be submitted
    again); so does the name's Template row if it was only this attempt's (inactive, no version)."""
    if TemplateVersion.objects.filter(submission=submission, state=VersionState.CANDIDATE).delete()[0]:
        submission.template_version_id = None
    _release_name(submission)


def _release_name(submission: Submission) -> None:
    """A name's inactive Template row with no versions left (created by submission_candidate for
    a submission that then ended) is deleted: the name is free again. A smoke test's sandbox row
    (kept, destroyed, as every sandbox's) still names it: then the row stays, the name this
    organization's."""
    try:
        with transaction.atomic():  # a savepoint: the refused delete leaves the caller's transaction usable
            Template.objects.filter(
                name=submission.template_name,
                owner_org_id=submission.org_id,
                is_active=False,
                built_in=False,
                versions__isnull=True,
            ).delete()
    except ProtectedError:
        pass


def _template_fields(spec: dict) -> dict:
    """A Template row's fields from an accepted template.yaml (apps/marketplace/spec.py)."""
    languages = [str(language) for language in spec.get("languages") or []]
    fields = {
        "display_name": str(spec.get("displayName") or spec["name"])[:120],
        "description": str(spec.get("description") or ""),
        "language": languages[0] if languages else "",
        "languages": languages,
        "tags": [str(tag) for tag in spec.get("tags") or []],
        "icon": str(spec.get("icon") or ""),
        "readme": str(spec.get("readmeText") or ""),
        "ports": spec.get("portDetails")
        or [{"container": int(port), "protocol": "tcp"} for port in spec.get("ports") or []],
        "smoke": str(spec.get("smoke") or ""),
        "services": "",
        "workdir": str(spec.get("workdir") or "/workspace"),
        "default_env": {str(k): str(v) for k, v in (spec.get("env") or {}).items()},
        "default_resources": dict(spec.get("resources") or {}),
        "network": spec.get("network"),  # validated (apps/marketplace/spec.py)
        "node_labels": dict(spec.get("nodeLabels") or {}),  # validated (apps/marketplace/spec.py)
    }
    base = spec.get("baseTemplate") or {}
    for field in ("user", "uid", "gid", "package_managers", "pre_installed"):
        if field in base:
            fields[field] = base[field]
    if spec.get("user"):
        fields["user"] = str(spec["user"])
    if spec.get("preInstalled"):
        fields["pre_installed"] = {**fields.get("pre_installed", {}), **spec["preInstalled"]}
    fields["claude"] = dict(spec.get("claude") or {})  # validated (apps/marketplace/template_keys.py)
    return fields


@transaction.atomic
def submission_candidate(submission_id: str) -> TemplateVersion:
    """The candidate version (state candidate, the submission's built image) that the smoke
    sandbox starts from; a new name gets its Template row here, inactive until published.
    Calling it again returns the same row (with the image the submission has now)."""
    submission = Submission.objects.select_for_update().filter(pk=submission_id).first()
    if submission is None:
        raise errors.SubmissionNotFound(details={"submission": submission_id})
    if not submission.image:
        raise ValueError("submission_candidate: the submission has no image yet (submission_progress(image=...))")
    # Two first submissions of a new name at once: get_or_create's insert waits for the other's,
    # and the loser gets the winner's row (then 409 below), not an IntegrityError.
    template, created = Template.objects.get_or_create(
        name=submission.template_name,
        defaults={
            "image": "",
            "is_active": False,
            "built_in": False,
            "official": False,
            "owner_org": submission.org,
            "visibility": Visibility.PRIVATE,  # public once a public version is published
            **_template_fields(submission.spec),
        },
    )
    template = Template.objects.select_for_update().get(pk=template.pk)
    if template.built_in or template.owner_org_id != submission.org_id:
        raise errors.SubmissionStateConflict(
            f"Template {template.name!r} belongs to someone else.", details={"template": template.name}
        )
    if not created and not template.is_active and not template.versions.filter(state=VersionState.PUBLISHED).exists():
        # A row an ended submission left (its smoke sandbox's row protected it from
        # _release_name): this organization's name, reused with this submission's fields.
        Template.objects.filter(pk=template.pk).update(
            visibility=Visibility.PRIVATE, updated_at=timezone.now(), **_template_fields(submission.spec)
        )
        template.refresh_from_db()
    fields = {
        "image": submission.image,
        "image_size": submission.image_size,
        "spec": submission.spec,
        "changelog": str(submission.spec.get("changelog") or ""),
    }
    version = TemplateVersion.objects.filter(template=template, version=submission.version).first()
    if version is None:
        version = TemplateVersion.objects.create(
            template=template, version=submission.version, state=VersionState.CANDIDATE, submission=submission, **fields
        )
    elif version.submission_id != submission.pk or version.state != VersionState.CANDIDATE:
        raise errors.SubmissionStateConflict(
            f"{template.name}@{submission.version} belongs to another submission.",
            details={"template": template.name, "version": submission.version},
        )
    else:
        TemplateVersion.objects.filter(pk=version.pk).update(**fields)
        version.refresh_from_db()
    Submission.objects.filter(pk=submission.pk).update(template_version=version)
    return version


def submission_passed(submission_id: str) -> Submission:
    """The smoke test passed: a private submission is published at once, a public one waits for
    a staff review (awaiting_review)."""
    submission = Submission.objects.filter(pk=submission_id).first()
    if submission is None:
        raise errors.SubmissionNotFound(details={"submission": submission_id})
    if submission.visibility == Visibility.PRIVATE:
        return submission_publish(submission_id)  # (awaiting_review if the template is public by then)
    return states.move(submission_id, SubmissionState.AWAITING_REVIEW)


# Review and publishing ----------------------------------------------------------------------


REVIEW_PERMISSION = "marketplace.review"


def can_review(actor, submission: Submission) -> bool:
    """Staff review public submissions; a private one (published without review normally) may
    also be reviewed by its organization's admins."""
    if getattr(actor.user, "is_staff", False):
        return True
    public_template = Template.objects.filter(name=submission.template_name, visibility=Visibility.PUBLIC).exists()
    return (
        submission.visibility == Visibility.PRIVATE
        and not public_template  # a public template's versions are reviewed by staff only
        and actor.org.pk == submission.org_id
        and actor.can("members.manage")
    )


def submission_review(actor, submission_id: str, *, approve: bool, reason: str = "") -> Submission:
    """A reviewer approves (publishes) or rejects (with a reason) a submission awaiting review."""
    submission = Submission.objects.filter(pk=submission_id).select_related("org").first()
    if submission is None or not (getattr(actor.user, "is_staff", False) or submission.org_id == actor.org.pk):
        raise errors.SubmissionNotFound(details={"submission": submission_id})
    if not can_review(actor, submission):
        raise errors.PermissionDenied(
            f"Reviewing {'public' if submission.visibility == Visibility.PUBLIC else 'this'} submissions needs the "
            f"{REVIEW_PERMISSION} permission (staff).",
            details={"permission": REVIEW_PERMISSION},
        )
    reason = str(reason or "")[:MESSAGE_MAX]
    if approve:
        return submission_publish(submission_id, reviewer=actor.user, reason=reason)
    return submission_reject(submission_id, reviewer=actor.user, reason=reason)


def _latest_version(template: Template) -> TemplateVersion | None:
    versions = TemplateVersion.objects.filter(template=template, state=VersionState.PUBLISHED, yanked=False)
    if template.visibility == Visibility.PUBLIC:  # only a reviewed version is everyone's latest
        versions = versions.filter(reviewed=True)
    return max(versions, key=lambda v: semver_key(v.version), default=None)


def template_latest_refresh(template: Template) -> Template:
    """Points a marketplace template's latest_version (and image, spec fields) at its newest
    published non-yanked version (of a public template: reviewed); one with none left keeps its
    row but has no latest. The caller holds the Template row's lock (select_for_update) taken
    before any of its versions' (version_yank, submission_publish): taken here too."""
    template = Template.objects.select_for_update().get(pk=template.pk)
    latest = _latest_version(template)
    if latest is None:
        fields = {"latest_version": ""}
    else:
        fields = {
            "latest_version": latest.version,
            "image": latest.image,
            "image_size": latest.image_size,
            **_template_fields(latest.spec),
        }
    Template.objects.filter(pk=template.pk).update(updated_at=timezone.now(), **fields)
    template.refresh_from_db()
    return template


def submission_publish(submission_id: str, *, reviewer=None, reason: str = "") -> Submission:
    """(internal) Publishes a submission's candidate version: the version becomes published, the
    template's latest_version/image move to it (if it is the newest), the row becomes active;
    audit entry, template_published (webhook template.published) and an email to the author."""
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(pk=submission_id)
        version = submission_candidate(submission_id) if submission.template_version_id is None else None
        version = version or TemplateVersion.objects.select_related("template").get(pk=submission.template_version_id)
        # The Template row first, then its versions (as version_yank): no deadlock, no lost update.
        template = Template.objects.select_for_update().get(pk=version.template_id)
        if reviewer is None and template.visibility == Visibility.PUBLIC:
            # A private submission to a template that is public by now: its versions are
            # everyone's, so staff review it first.
            return states.move(
                submission_id,
                SubmissionState.AWAITING_REVIEW,
                message=f"{template.name} is public: this version waits for a staff review.",
            )
        reviewed = bool(reviewer is not None and getattr(reviewer, "is_staff", False))
        submission = states.move(
            submission_id, SubmissionState.PUBLISHED, reviewer=reviewer, review_reason=reason, message=""
        )
        now = timezone.now()
        TemplateVersion.objects.filter(pk=version.pk).update(
            state=VersionState.PUBLISHED, published_at=now, reviewed=reviewed
        )
        activate = {"is_active": True, "build_state": "ready", "build_message": ""}
        if submission.visibility == Visibility.PUBLIC:
            activate["visibility"] = Visibility.PUBLIC
        Template.objects.filter(pk=template.pk).update(**activate)
        template = template_latest_refresh(template)
        record(
            "template.published",
            target=template,
            org_id=submission.org_id,
            target_id=template.name,
            changes={"version": version.version, "submission": submission.pk, "visibility": submission.visibility},
            **({"user": reviewer} if reviewer is not None else {}),
        )
        template_published.send(sender=Template, template=template, version=version.version, submission=submission)
        _email_author(submission, published=True)
    remove_context(submission)
    return submission


def submission_reject(submission_id: str, *, reviewer=None, reason: str = "") -> Submission:
    """(internal) awaiting_review -> rejected: the candidate version is dropped; audit entry,
    template_rejected (webhook template.rejected) and an email to the author."""
    with transaction.atomic():
        submission = states.move(
            submission_id, SubmissionState.REJECTED, reviewer=reviewer, review_reason=reason, message=reason
        )
        _drop_candidate(submission)
        record(
            "template.rejected",
            target=submission,
            target_type="template_submission",
            changes={"template": submission.template_name, "version": submission.version, "reason": reason},
            **({"user": reviewer} if reviewer is not None else {}),
        )
        template_rejected.send(sender=Submission, submission=submission)
        _email_author(submission, published=False)
    remove_context(submission)
    return submission


def _email_author(submission: Submission, *, published: bool) -> None:
    """The author's email, sent once the transaction commits (a failure is logged, not raised)."""
    user = submission.user
    if user is None or not user.email:
        return
    name = f"{submission.template_name}@{submission.version}"
    brand = brand_for(None)  # the installation's: a public template is the platform's matter
    if published:
        subject = f"[{brand.name}] {name} is published"
        body = f"Your template {name} ({submission.visibility}) is published and can be used to create sandboxes.\n"
    else:
        subject = f"[{brand.name}] {name} was rejected"
        body = (
            f"Your template submission {submission.pk} ({name}) was rejected.\n\nReason: {submission.review_reason}\n"
        )
    if submission.review_reason and published:
        body += f"\nReviewer's note: {submission.review_reason}\n"
    to = user.email

    def deliver():
        try:
            send_mail(subject, body, brand.email_from, [to])
        except (smtplib.SMTPException, OSError):
            logger.exception("Could not send the submission email to %s", to)

    transaction.on_commit(deliver)
