"""Reviewing Claude's change sets: listing them with their diff, approving, rejecting.

Approving or rejecting works on a session's pending change sets together (they are
consecutive commits on its branch): approve merges `reviewed_commit..head` into /workspace,
reject resets the branch to `reviewed_commit`. Without a session, every session of the
sandbox with pending changes is reviewed.
"""

from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from apps.sandboxes import events
from apps.sandboxes.services.exec import require_running
from vibebox import exceptions as errors

from . import review
from .models import ChangeSet, ClaudeAsk, ClaudeSession


def claude_group(sandbox_id: str) -> str:
    """The channel group of a sandbox's Claude events (asks.py publishes there, WS …/claude listens)."""
    return f"claude.{sandbox_id}"


def change_sets(*, sandbox, session_id: str | None = None, status: str | None = "pending"):
    qs = ChangeSet.objects.filter(session__sandbox=sandbox).select_related("session")
    if session_id:
        qs = qs.filter(session_id=session_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("created_at")


def change_diff(sandbox, change: ChangeSet) -> tuple[str, bool]:
    return review.diff(sandbox, worktree=change.session.cwd, base=change.base_commit, head=change.head_commit)


def _sessions(sandbox, session_id: str | None, finishing_ask: str | None = None) -> list[ClaudeSession]:
    if session_id and not ClaudeSession.objects.filter(pk=session_id, sandbox=sandbox).exists():
        raise errors.ClaudeSessionNotFound(details={"sessionId": session_id})
    pending = change_sets(sandbox=sandbox, session_id=session_id)
    ids = list(dict.fromkeys(pending.values_list("session_id", flat=True)))
    if not ids:
        raise errors.NoPendingChanges(details={"sessionId": session_id} if session_id else {})
    running = ClaudeAsk.objects.filter(session_id__in=ids, status=ClaudeAsk.Status.RUNNING).exclude(pk=finishing_ask)
    busy = running.values_list("session_id", flat=True)
    if busy:
        raise errors.AskRunning(
            "Claude is still working in this session; wait for the ask or cancel it.", details={"sessionId": busy[0]}
        )
    return list(ClaudeSession.objects.filter(pk__in=ids).order_by("created_at"))


def _review(
    *, sandbox, session_id, api_key, approve: bool, automatic: bool = False, finishing_ask: str | None = None
) -> list[ChangeSet]:
    require_running(sandbox)
    done = []
    for session in _sessions(sandbox, session_id, finishing_ask):
        pending = list(change_sets(sandbox=sandbox, session_id=session.id))
        head = pending[-1].head_commit
        if approve:
            review.approve(
                sandbox, workspace=sandbox.template.workdir or "/workspace", base=session.reviewed_commit, head=head
            )
        else:
            review.reject(sandbox, worktree=session.cwd, to=session.reviewed_commit)
        status = ChangeSet.Status.APPROVED if approve else ChangeSet.Status.REJECTED
        with transaction.atomic():
            ChangeSet.objects.filter(pk__in=[c.pk for c in pending]).update(
                status=status, reviewed_at=timezone.now(), reviewed_by=api_key
            )
            if approve:
                ClaudeSession.objects.filter(pk=session.pk).update(reviewed_commit=head)
            files = sorted({f["path"] for change in pending for f in change.files})
            record(
                f"claude.changes_{status}",
                target=sandbox,
                changes={
                    "session": session.id,
                    "changeSets": [c.id for c in pending],
                    "files": files[:100],
                    **({"automatic": True} if automatic else {}),  # autonomous mode, no person
                },
            )
        events.publish(
            sandbox=sandbox,
            type=f"claude.changes.{status}",
            text=f"Claude's changes {status}: {', '.join(files)[:200]}",
            data={
                "sessionId": session.id,
                "changeSetIds": [c.id for c in pending],
                "files": files,
                "automatic": automatic,
            },
            groups=(claude_group(sandbox.id),),
        )
        done += [ChangeSet.objects.get(pk=c.pk) for c in pending]
    return done


def changes_approve(
    *, sandbox, session_id: str | None = None, api_key=None, automatic: bool = False, finishing_ask: str | None = None
) -> list[ChangeSet]:
    """`automatic`: applied by autonomous mode (asks.py), not by a person; said in the audit entry.
    `finishing_ask`: that ask applies its own changes as it ends (still `running` until they are in)."""
    return _review(
        sandbox=sandbox,
        session_id=session_id,
        api_key=api_key,
        approve=True,
        automatic=automatic,
        finishing_ask=finishing_ask,
    )


def changes_reject(*, sandbox, session_id: str | None = None, api_key=None) -> list[ChangeSet]:
    return _review(sandbox=sandbox, session_id=session_id, api_key=api_key, approve=False)
