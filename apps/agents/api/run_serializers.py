"""Bodies of /api/v1/agent-runs. Requests are validated by the Strict serializers; responses are
rendered by `run_body` and `task_body` (fast for runs of thousands of tasks) and described to
the OpenAPI document by the plain serializers beside them."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.sandboxes.api.serializers import metadata_field
from vibebox.api.serializers import StrictSerializer

from ..models import AgentRun, AgentTask
from ..runs import ERROR_MAX_CHARS, MAX_TASKS, counts
from .serializers import iso

RUN_STATUSES = AgentRun.Status.values
TASK_STATUSES = AgentTask.Status.values


def _choices(choices: list[str]) -> type[serializers.ChoiceField]:
    """A ChoiceField whose enum stays inline in the schema, inside allOf so that drf-spectacular
    does not make it a component: a second `status` enum component would rename the others."""

    @extend_schema_field({"type": "string", "allOf": [{"enum": list(choices)}]})
    class Field(serializers.ChoiceField):
        def __init__(self, **kwargs):
            super().__init__(choices=choices, **kwargs)

    return Field


RunStatusField = _choices(RUN_STATUSES)
TaskStatusField = _choices(TASK_STATUSES)
KindField = _choices(AgentRun.Kind.values)


def _metadata_field(**kwargs):
    return metadata_field(required=False, **kwargs)


# ---- requests ----


class AgentTaskInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=500, allow_blank=True)
    metadata = _metadata_field()


class AgentRunCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    kind = KindField(required=False, default=AgentRun.Kind.MAP)
    parallelism = serializers.IntegerField(min_value=1, max_value=1000, required=False, allow_null=True)
    template = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    metadata = _metadata_field()
    tasks = AgentTaskInputSerializer(
        many=True, required=False, max_length=MAX_TASKS, help_text=f"At most {MAX_TASKS}; indexes 0, 1, 2…"
    )


class AgentRunUpdateSerializer(StrictSerializer):
    status = RunStatusField(
        help_text="completed, failed or cancelled (cancelling also cancels its pending and running tasks). "
        "A finished run cannot change again (409 agent_run_finished); asking for the status it has is a no-op.",
    )


class AgentTasksAddSerializer(StrictSerializer):
    tasks = AgentTaskInputSerializer(many=True, max_length=MAX_TASKS, help_text=f"At most {MAX_TASKS}.")


class AgentTaskUpdateSerializer(StrictSerializer):
    status = TaskStatusField(required=False)
    sandboxId = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True)
    attempts = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    error = serializers.CharField(
        max_length=ERROR_MAX_CHARS, required=False, allow_blank=True, allow_null=True, trim_whitespace=False
    )
    result = serializers.JSONField(required=False, allow_null=True, help_text="Any JSON, at most 64 KiB.")


# ---- responses (for the schema) ----


class AgentRunCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    total = serializers.IntegerField()


class AgentTaskSerializer(serializers.Serializer):
    id = serializers.CharField()
    index = serializers.IntegerField()
    name = serializers.CharField()
    status = TaskStatusField()
    sandboxId = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)
    result = serializers.JSONField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    startedAt = serializers.DateTimeField(allow_null=True)
    finishedAt = serializers.DateTimeField(allow_null=True)
    durationMs = serializers.IntegerField(allow_null=True, help_text="finishedAt - startedAt")


class AgentRunSummarySerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    kind = KindField()
    status = RunStatusField()
    parallelism = serializers.IntegerField(allow_null=True)
    template = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    counts = AgentRunCountsSerializer()
    createdAt = serializers.DateTimeField()
    finishedAt = serializers.DateTimeField(allow_null=True)
    durationMs = serializers.IntegerField(allow_null=True, help_text="finishedAt - createdAt")


class AgentRunSerializer(AgentRunSummarySerializer):
    tasks = AgentTaskSerializer(many=True, help_text="Ordered by index.")


class AgentTaskListSerializer(serializers.Serializer):
    tasks = AgentTaskSerializer(many=True)


# ---- rendering ----


def _duration_ms(start, end) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


def task_body(task: AgentTask) -> dict:
    return {
        "id": task.id,
        "index": task.index,
        "name": task.name,
        "status": task.status,
        "sandboxId": task.sandbox_id or None,
        "attempts": task.attempts,
        "error": task.error or None,
        "result": task.result,
        "metadata": task.metadata,
        "startedAt": iso(task.started_at),
        "finishedAt": iso(task.finished_at),
        "durationMs": _duration_ms(task.started_at, task.finished_at),
    }


def run_body(run: AgentRun, tasks=None) -> dict:
    """The run; with `tasks` (an iterable of its tasks in index order) their bodies too."""
    body = {
        "id": run.id,
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "parallelism": run.parallelism,
        "template": run.template or None,
        "metadata": run.metadata,
        "counts": counts(run),
        "createdAt": iso(run.created_at),
        "finishedAt": iso(run.finished_at),
        "durationMs": _duration_ms(run.created_at, run.finished_at),
    }
    if tasks is not None:
        body["tasks"] = [task_body(task) for task in tasks]
    return body
