"""Events of the apps below become webhook deliveries, written in the transaction that caused them
(services.emit). A receiver returns at once for the many events no webhook can subscribe to."""

from django.dispatch import receiver

from apps.agents.api.run_serializers import AgentRunSummarySerializer
from apps.agents.signals import agent_run_finished
from apps.billing.quotas import notice_data
from apps.billing.signals import threshold_reached
from apps.keys.api.serializers import ApiKeySerializer
from apps.keys.signals import api_key_event
from apps.marketplace.api.serializers import SubmissionSerializer, TemplateSerializer
from apps.marketplace.models import Visibility
from apps.marketplace.signals import template_published, template_rejected
from apps.sandboxes.api.serializers import ExecutionDetailSerializer, SandboxSerializer
from apps.sandboxes.models import Execution
from apps.sandboxes.signals import sandbox_event

from . import services

# Sandbox events published under the same name, whose data is the sandbox (as GET /sandboxes/{id}).
SAME = {
    "sandbox.created",
    "sandbox.started",
    "sandbox.stopped",
    "sandbox.destroyed",
    "sandbox.paused",
    "sandbox.resumed",
    "sandbox.expired",  # by the reconcile pass, after the sandbox.destroyed its timeout caused
    "sandbox.error",  # by the reconcile pass: the container vanished (the sandbox's statusReason says)
    "sandbox.unreachable",  # by the nodes' health check: its node is down
    "sandbox.recovered",  # POST …/recover: out of error (the sandbox's statusReason says how)
}
# The agents app's Claude events (apps/agents/asks.py), published on the sandbox's stream.
CLAUDE = {"claude.ask.finished": "claude.ask.finished", "claude.changes": "claude.changes.pending"}
# Auto-pull webhooks (apps/sandboxes/services/git_hooks.py): pulled, or not (conflict, skipped, failed).
GIT = {
    "git.autopull.pulled": "git.pulled",
    "git.autopull.conflict": "git.pull_failed",
    "git.autopull.skipped": "git.pull_failed",
    "git.autopull.failed": "git.pull_failed",
}
HANDLED = SAME | set(CLAUDE) | set(GIT)
HANDLED |= {"exec.finished", "file.uploaded", "sandbox.snapshotted", "sandbox.limit_exceeded"}
LIMITED = {Execution.Status.TIMEOUT: "timeout"}


@receiver(sandbox_event, dispatch_uid="webhooks.sandbox_event")
def _sandbox_event(sender, sandbox, type, data, **kwargs):
    if type not in HANDLED:  # most events (a command's start, Claude's stream): at once
        return
    org_id = sandbox.org_id
    if type in SAME:
        services.emit(org_id=org_id, type=type, data=lambda: SandboxSerializer(sandbox).data, sandbox=sandbox)
    elif type == "exec.finished":
        _execution_finished(sandbox, data)
    elif type == "file.uploaded":
        services.emit(org_id=org_id, type=type, data={"sandboxId": sandbox.id, **data}, sandbox=sandbox)
    elif type == "sandbox.snapshotted":
        snapshot = {"sandboxId": sandbox.id, "snapshotId": data.get("snapshot"), "name": data.get("name")}
        services.emit(org_id=org_id, type="snapshot.created", data=snapshot, sandbox=sandbox)
    elif type in GIT:
        status = type.rsplit(".", 1)[1]
        services.emit(
            org_id=org_id, type=GIT[type], data={"sandboxId": sandbox.id, "status": status, **data}, sandbox=sandbox
        )
    elif type in CLAUDE:
        services.emit(org_id=org_id, type=CLAUDE[type], data={"sandboxId": sandbox.id, **data}, sandbox=sandbox)
    elif type == "sandbox.limit_exceeded":  # its container OOM-killed, or its disk limit on an upload
        _limit_exceeded(sandbox, dict(data))


def _limit_exceeded(sandbox, data: dict, hooks=None) -> None:
    """resource.limit_exceeded: {"sandboxId", "limit", "executionId"?, "path"?, "sandbox": the
    sandbox as GET /sandboxes/{id}}."""
    services.emit(
        org_id=sandbox.org_id,
        type="resource.limit_exceeded",
        data=lambda: {"sandboxId": sandbox.id, **data, "sandbox": SandboxSerializer(sandbox).data},
        sandbox=sandbox,
        hooks=hooks,
    )


def _execution_finished(sandbox, data: dict) -> None:
    """execution.completed or .failed (data: the execution as its GET, with its sandbox's id); a
    command killed by its timeout or the OOM killer, or that hit the sandbox's pids or disk limit
    (the event's `limit`, apps/sandboxes/exceeded.py), also fires resource.limit_exceeded."""
    hooks = services.active_webhooks(sandbox.org_id)  # most organizations have none: one query, then done
    if not hooks:
        return
    execution = Execution.objects.filter(pk=data.get("executionId")).first()
    if execution is None:
        return

    def rendered() -> dict:
        return {"sandboxId": sandbox.id, **ExecutionDetailSerializer(execution).data}

    completed = execution.status == Execution.Status.COMPLETED
    kind = "execution.completed" if completed else "execution.failed"
    services.emit(org_id=sandbox.org_id, type=kind, data=rendered, sandbox=sandbox, hooks=hooks)
    limits = ["memory" if execution.oom_killed else LIMITED.get(execution.status), data.get("limit")]
    for limit in dict.fromkeys(limit for limit in limits if limit):
        _limit_exceeded(sandbox, {"limit": limit, "executionId": execution.id}, hooks)


@receiver(api_key_event, dispatch_uid="webhooks.api_key_event")
def _api_key_event(sender, key, type, **kwargs):
    if key.org_id:
        services.emit(org_id=key.org_id, type=type, data=lambda: ApiKeySerializer(key).data)


@receiver(agent_run_finished, dispatch_uid="webhooks.agent_run_finished")
def _agent_run_finished(sender, run, **kwargs):
    """data: the run as GET /agent-runs lists it (its counts, not its tasks: a run may have thousands)."""
    if run.org_id:
        services.emit(org_id=run.org_id, type="agent_run.finished", data=lambda: AgentRunSummarySerializer(run).data)


@receiver(template_published, dispatch_uid="webhooks.template_published")
def _template_published(sender, template, submission=None, **kwargs):
    """data: the template as GET /api/v1/templates/{name}. Built-in and public marketplace templates
    are public news: every organization's endpoints that subscribe hear of them (the submitter's
    among them); a private marketplace template's version only its organization's."""
    data = lambda: TemplateSerializer(template).data  # noqa: E731
    if submission is not None and template.visibility != Visibility.PUBLIC:
        services.emit(org_id=submission.org_id, type="template.published", data=data, template=template.name)
        return
    services.emit_public(type="template.published", data=data, template=template.name)


@receiver(template_rejected, dispatch_uid="webhooks.template_rejected")
def _template_rejected(sender, submission, **kwargs):
    """data: the submission as GET /api/v1/marketplace/submissions/{id} lists it (state rejected,
    message: the reviewer's reason); to the submitter's organization."""
    services.emit(
        org_id=submission.org_id,
        type="template.rejected",
        data=lambda: SubmissionSerializer(submission).data,
        template=submission.template_name,
    )


@receiver(threshold_reached, dispatch_uid="webhooks.threshold_reached")
def _threshold_reached(sender, notice, org, **kwargs):
    """data: the notice {org, quota, percent, used, limit, period ("YYYY-MM"), reachedAt}, as GET
    /api/v1/billing/quotas lists it; to the organization."""
    services.emit(org_id=org.pk, type="billing.threshold_reached", data=lambda: notice_data(notice))
