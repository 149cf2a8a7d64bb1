"""Agent runs: the server's record of an orchestration (vibebox_sdk.agent) and of its tasks, so
the dashboard can show the queue and the parallel work live.

Reads are scoped to the actor's organization (another organization's run is a 404; another
member's is reached as their sandbox would be, selectors.check_access). Status changes are conditional
updates, and each one sends a small event to the owner's activity feed (`agent.run.created`,
`agent.run.finished`, `agent.task.<status>`). A finished run is frozen: neither it nor its
tasks change any more.
"""

import json

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from apps.audit.services import record
from apps.keys.services import acting_org
from apps.orgs.actors import Actor
from apps.sandboxes import events
from apps.sandboxes import selectors as sandbox_selectors
from apps.sandboxes.services.create import validate_metadata
from vibebox import exceptions as errors

from . import signals
from .models import AgentRun, AgentTask

RunStatus = AgentRun.Status
TaskStatus = AgentTask.Status

MAX_TASKS = 10_000  # per create or add call
RESULT_MAX_BYTES = 64 * 1024
ERROR_MAX_CHARS = 10_000
OPEN = (TaskStatus.PENDING, TaskStatus.RUNNING)
UNSET = object()


# ---- reads ----


def _annotated(qs):
    """Runs with their task counts per status (`count_<status>`), in one query."""
    return qs.annotate(
        **{f"count_{status}": Count("tasks", filter=Q(tasks__status=status)) for status in TaskStatus.values}
    )


def counts(run: AgentRun) -> dict:
    if all(hasattr(run, f"count_{status}") for status in TaskStatus.values):
        found = {status: getattr(run, f"count_{status}") for status in TaskStatus.values}
    else:
        rows = dict(AgentTask.objects.filter(run=run).values_list("status").annotate(n=Count("id")))
        found = {status: rows.get(status, 0) for status in TaskStatus.values}
    return {**found, "total": sum(found.values())}


def agent_run_list(
    *,
    actor: Actor,
    status: list[str] | None = None,
    kind: str | None = None,
    template: str | None = None,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
):
    qs = AgentRun.objects.filter(org=actor.org)
    if not actor.can("sandboxes.read"):
        qs = qs.filter(owner=actor.user)
    if status:
        qs = qs.filter(status__in=status)
    if kind:
        qs = qs.filter(kind=kind)
    if template:
        qs = qs.filter(template=template)
    if name:
        qs = qs.filter(name=name)
    for key, value in (metadata or {}).items():
        qs = qs.filter(**{f"metadata__{key}": value})
    return _annotated(qs).order_by("-created_at", "-id")


def agent_run_get(*, actor: Actor, run_id: str, need: str = sandbox_selectors.READ) -> AgentRun:
    """A run of the actor's organization, reached as a sandbox of the same owner would be."""
    run = _annotated(AgentRun.objects.filter(pk=run_id, org=actor.org)).first()
    if run is None:
        raise errors.AgentRunNotFound(details={"runId": run_id})
    sandbox_selectors.check_access(actor, owner_id=run.owner_id, need=need, sandbox_id=None)  # no sandbox's grants
    return run


def agent_run_tasks(run: AgentRun):
    return AgentTask.objects.filter(run=run).order_by("index")


def agent_task_get(*, run: AgentRun, task_id: str) -> AgentTask:
    task = AgentTask.objects.filter(pk=task_id, run=run).select_related("run").first()
    if task is None:
        raise errors.AgentTaskNotFound(details={"runId": run.pk, "taskId": task_id})
    return task


# ---- writes ----


def _task_rows(run: AgentRun, tasks: list[dict], start: int) -> list[AgentTask]:
    if len(tasks) > MAX_TASKS:
        raise errors.ValidationFailed(f"At most {MAX_TASKS} tasks at a time.", details={"maxTasks": MAX_TASKS})
    return [
        AgentTask(
            run=run,
            index=start + offset,
            name=(task.get("name") or "")[:500],
            metadata=validate_metadata(task.get("metadata") or {}),
        )
        for offset, task in enumerate(tasks)
    ]


def _run_event(run: AgentRun, type: str, text: str) -> None:
    data = {"runId": run.pk, "name": run.name, "kind": run.kind, "status": run.status, "counts": counts(run)}
    events.publish_owner(run.owner_id, type, text, data)


def agent_run_create(
    *,
    owner,
    org=None,
    api_key=None,
    name: str,
    kind: str = AgentRun.Kind.MAP,
    parallelism: int | None = None,
    template: str | None = None,
    metadata: dict | None = None,
    tasks: list[dict] | None = None,
) -> AgentRun:
    metadata = validate_metadata(metadata or {})
    with transaction.atomic():
        run = AgentRun.objects.create(
            owner=owner,
            org=org or acting_org(user=owner, key=api_key),
            api_key=api_key,
            name=name,
            kind=kind,
            parallelism=parallelism,
            template=template or "",
            metadata=metadata,
        )
        AgentTask.objects.bulk_create(_task_rows(run, tasks or [], 0))
        record("agent_run.created", target=run, changes={"name": name, "kind": kind, "tasks": len(tasks or [])})
        _run_event(run, "agent.run.created", f"agent run {run.name} started")
    return run


def agent_run_finish(*, run: AgentRun, status: str) -> AgentRun:
    """Ends a running run as completed, failed or cancelled (cancelled also cancels its pending
    and running tasks). Asking for the status it already has changes nothing; any other change
    of a finished run is `agent_run_finished`."""
    if status == run.status and status != RunStatus.RUNNING:
        return run
    if status == RunStatus.RUNNING:
        if run.status == RunStatus.RUNNING:
            return run
        raise errors.AgentRunFinished(details={"runId": run.pk, "status": run.status})
    now = timezone.now()
    with transaction.atomic():
        changed = AgentRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(status=status, finished_at=now)
        if not changed:
            current = AgentRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
            if current is None:
                raise errors.AgentRunNotFound(details={"runId": run.pk})
            if current == status:
                return run
            raise errors.AgentRunFinished(details={"runId": run.pk, "status": current})
        if status == RunStatus.CANCELLED:
            AgentTask.objects.filter(run=run, status__in=OPEN).update(status=TaskStatus.CANCELLED, finished_at=now)
        run.status, run.finished_at = status, now
        for name in TaskStatus.values:  # the counts changed: read them again
            run.__dict__.pop(f"count_{name}", None)
        record("agent_run.finished", target=run, changes={"status": status})
        _run_event(run, "agent.run.finished", f"agent run {run.name} {status}")
        signals.agent_run_finished.send(sender=AgentRun, run=run)
    return run


def _check_running(run: AgentRun) -> None:
    if run.status != RunStatus.RUNNING:
        raise errors.AgentRunFinished(details={"runId": run.pk, "status": run.status})


def agent_tasks_add(*, run: AgentRun, tasks: list[dict]) -> list[AgentTask]:
    """Appends tasks to a running run; their indexes continue after the last one."""
    _check_running(run)
    for attempt in range(5):  # two concurrent calls may pick the same next index: one retries
        try:
            with transaction.atomic():
                locked = AgentRun.objects.select_for_update().filter(pk=run.pk).values_list("status", flat=True)
                current = locked.first()
                if current is None:
                    raise errors.AgentRunNotFound(details={"runId": run.pk})
                if current != RunStatus.RUNNING:
                    raise errors.AgentRunFinished(details={"runId": run.pk, "status": current})
                last = AgentTask.objects.filter(run=run).aggregate(last=Max("index"))["last"]
                added = AgentTask.objects.bulk_create(_task_rows(run, tasks, 0 if last is None else last + 1))
                record("agent_run.tasks_added", target=run, changes={"tasks": len(added)})
                return added
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _check_result(result) -> None:
    size = len(json.dumps(result, separators=(",", ":")).encode())
    if size > RESULT_MAX_BYTES:
        raise errors.RequestTooLarge(
            f"result: at most {RESULT_MAX_BYTES} bytes of JSON.",
            details={"field": "result", "limit": RESULT_MAX_BYTES, "size": size},
        )


def agent_task_update(
    *,
    task: AgentTask,
    status=UNSET,
    sandbox_id=UNSET,
    attempts=UNSET,
    error=UNSET,
    result=UNSET,
) -> AgentTask:
    """Records a task's progress. Transitions: pending → running, completed, failed, cancelled;
    running → pending (a retry), running (again: a new attempt), completed, failed, cancelled.
    A finished task keeps its status (`agent_task_finished`), but its other fields can change.
    `startedAt` is set the first time it runs, `finishedAt` when it finishes; becoming running
    from pending counts an attempt unless `attempts` is given."""
    fields = {}
    if sandbox_id is not UNSET:
        fields["sandbox_id"] = sandbox_id or ""
    if attempts is not UNSET:
        fields["attempts"] = attempts
    if error is not UNSET:
        if error and len(error) > ERROR_MAX_CHARS:
            raise errors.ValidationFailed(f"error: at most {ERROR_MAX_CHARS} characters.")
        fields["error"] = error or ""
    if result is not UNSET:
        _check_result(result)
        fields["result"] = result
    for _ in range(5):  # another request changed the status meanwhile: decide again
        _check_running(task.run)
        previous = task.status
        changes = dict(fields)
        if status is not UNSET and not (status == previous and previous not in OPEN):
            if previous not in OPEN:
                raise errors.AgentTaskFinished(details={"taskId": task.pk, "status": previous})
            changes["status"] = status
            if status == TaskStatus.RUNNING:
                changes["started_at"] = task.started_at or timezone.now()
                if attempts is UNSET and previous == TaskStatus.PENDING:
                    changes["attempts"] = F("attempts") + 1
            elif status not in OPEN:
                changes["finished_at"] = timezone.now()
        if not changes:
            return task
        with transaction.atomic():
            updated = AgentTask.objects.filter(pk=task.pk, status=previous, run__status=RunStatus.RUNNING).update(
                **changes
            )
            if updated:
                task.refresh_from_db()
                record(
                    "agent_task.updated",
                    target=task,
                    org_id=task.run.org_id,
                    changes={"run": task.run_id, **{field: getattr(task, field) for field in changes}},
                )
                if "status" in changes and (status != previous or status == TaskStatus.RUNNING):
                    _task_event(task)
                return task
        task = AgentTask.objects.filter(pk=task.pk).select_related("run").first()
        if task is None:
            raise errors.AgentTaskNotFound()
    raise errors.AgentTaskFinished("The task's status kept changing under this request.")


def _task_event(task: AgentTask) -> None:
    data = {
        "runId": task.run_id,
        "taskId": task.pk,
        "index": task.index,
        "name": task.name,
        "status": task.status,
        "sandboxId": task.sandbox_id or None,
        "attempts": task.attempts,
        "error": task.error[:500] or None,
    }
    label = task.name or f"#{task.index}"
    events.publish_owner(task.run.owner_id, f"agent.task.{task.status}", f"task {label} {task.status}", data)


# ---- from a request body: REST's views and GraphQL's mutations share these ----
# `data` is the validated body of the REST request serializer (api.run_serializers), camelCase keys.

TASK_FIELDS = {
    "status": "status",
    "sandboxId": "sandbox_id",
    "attempts": "attempts",
    "error": "error",
    "result": "result",
}


def agent_run_create_from(*, actor: Actor, owner, api_key, data: dict) -> AgentRun:
    """A run from the create body (AgentRunCreateSerializer): POST /agent-runs and createAgentRun.
    The caller has checked `sandboxes.create` first, as for a sandbox."""
    return agent_run_create(
        owner=owner,
        org=actor.org,
        api_key=api_key,
        name=data["name"],
        kind=data["kind"],
        parallelism=data.get("parallelism"),
        template=data.get("template"),
        metadata=data.get("metadata"),
        tasks=data.get("tasks"),
    )


def agent_run_finish_from(*, run: AgentRun, data: dict) -> AgentRun:
    """PATCH /agent-runs/{id} and finishAgentRun (AgentRunUpdateSerializer's body)."""
    return agent_run_finish(run=run, status=data["status"])


def agent_tasks_add_from(*, run: AgentRun, data: dict) -> list[AgentTask]:
    """POST /agent-runs/{id}/tasks and addAgentTasks (AgentTasksAddSerializer's body)."""
    return agent_tasks_add(run=run, tasks=data["tasks"])


def agent_task_update_from(*, task: AgentTask, data: dict) -> AgentTask:
    """PATCH /agent-runs/{id}/tasks/{taskId} and updateAgentTask (AgentTaskUpdateSerializer's
    body): only the fields given change."""
    changes = {python: data[api] for api, python in TASK_FIELDS.items() if api in data}
    return agent_task_update(task=task, **changes)


def agent_run_delete(*, run: AgentRun) -> None:
    with transaction.atomic():
        record("agent_run.deleted", target=run, changes={"name": run.name})
        AgentRun.objects.filter(pk=run.pk).delete()
