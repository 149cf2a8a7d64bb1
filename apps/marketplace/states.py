"""The one place that moves template submissions between states (docs/marketplace.md).

    queued -> building -> smoke_testing -> awaiting_review -> published | rejected
                                         \\-> published                (private: no review, unless
                                                                    its template is public by then)
    queued | building | smoke_testing -> failed   (with failed_step and message)
    queued -> cancelled                           (the submitter cancelled it)

Policy checks run inside `building` (failed_step `policy`). Each move is a conditional UPDATE
(`WHERE state IN (...)`), so of two concurrent movers only one wins; the loser gets 409
submission_state_conflict (or None from `move(..., strict=False)`).
"""

from django.utils import timezone

from vibebox import exceptions as errors

from .models import Submission, SubmissionState

S = SubmissionState

TRANSITIONS: dict[str, set[str]] = {
    S.QUEUED: {S.BUILDING, S.FAILED, S.CANCELLED},
    S.BUILDING: {S.SMOKE_TESTING, S.FAILED},
    S.SMOKE_TESTING: {S.AWAITING_REVIEW, S.PUBLISHED, S.FAILED},
    S.AWAITING_REVIEW: {S.PUBLISHED, S.REJECTED},
    S.PUBLISHED: set(),
    S.REJECTED: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
}
FINAL = {state for state, targets in TRANSITIONS.items() if not targets}
ACTIVE = set(TRANSITIONS) - FINAL  # still moving (the pipeline or a reviewer has it)
RUNNING = {S.QUEUED, S.BUILDING, S.SMOKE_TESTING}  # the pipeline has it


def sources_of(to: str) -> set[str]:
    """The states from which `to` may be reached."""
    return {state for state, targets in TRANSITIONS.items() if to in targets}


def can_move(from_state: str, to: str) -> bool:
    return to in TRANSITIONS.get(from_state, set())


def move(submission_id: str, to: str, *, strict: bool = True, **fields) -> Submission | None:
    """Conditionally moves the submission to `to` (from any state that may reach it) with
    `fields`; returns the fresh row, or None / 409 when it was not in such a state."""
    if to not in TRANSITIONS:
        raise ValueError(f"unknown submission state {to!r}")
    now = timezone.now()
    if to in FINAL:
        fields.setdefault("finished_at", now)
    updated = Submission.objects.filter(pk=submission_id, state__in=list(sources_of(to))).update(
        state=to, updated_at=now, **fields
    )
    if not updated:
        if not strict:
            return None
        current = Submission.objects.filter(pk=submission_id).values_list("state", flat=True).first()
        if current is None:
            raise errors.SubmissionNotFound(details={"submission": submission_id})
        raise errors.SubmissionStateConflict(
            f"Submission {submission_id} is {current}; it cannot become {to}.",
            details={"submission": submission_id, "state": current, "to": to},
        )
    return Submission.objects.get(pk=submission_id)
