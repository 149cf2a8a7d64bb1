"""Bodies of /api/v1/agent-runs. Requests are validated by the Strict serializers. Answers are
defined once, by the declared fields of the answer serializers (the OpenAPI document, the docs);
runs and tasks render through a hand-written `to_representation` that answers exactly what those
fields would (tests/agents/test_run_shapes.py) at a fraction of the cost for runs of thousands of tasks
(docs/benchmarks.md, "Rendering answers")."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.sandboxes.api.serializers import metadata_field
from vibebox.api.serializers import StrictSerializer

from ..models import AgentRun, AgentTask
from ..runs import ERROR_MAX_CHARS, MAX_TASKS, counts
from .serializers import BlankAsNull, iso

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


# ---- answers ----


class AgentRunCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    total = serializers.IntegerField()


def _duration_ms(start, end) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


class AgentTaskSerializer(serializers.Serializer):
    id = serializers.CharField()
    index = serializers.IntegerField()
    name = serializers.CharField()
    status = TaskStatusField()
    sandboxId = BlankAsNull(source="sandbox_id")
    attempts = serializers.IntegerField()
    error = BlankAsNull()
    result = serializers.JSONField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    durationMs = serializers.SerializerMethodField(help_text="finishedAt - startedAt")

    def get_durationMs(self, task) -> int | None:
        return _duration_ms(task.started_at, task.finished_at)

    def to_representation(self, task: AgentTask) -> dict:
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


class AgentRunSummarySerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    kind = KindField()
    status = RunStatusField()
    parallelism = serializers.IntegerField(allow_null=True)
    template = BlankAsNull()
    metadata = serializers.DictField(child=serializers.CharField())
    counts = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    durationMs = serializers.SerializerMethodField(help_text="finishedAt - createdAt")

    @extend_schema_field(AgentRunCountsSerializer)
    def get_counts(self, run) -> dict:
        return counts(run)

    def get_durationMs(self, run) -> int | None:
        return _duration_ms(run.created_at, run.finished_at)

    def to_representation(self, run: AgentRun) -> dict:
        return {
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


class AgentRunSerializer(AgentRunSummarySerializer):
    # context["tasks"]: the run's tasks in index order (an iterable: thousands are streamed from
    # the database, not held as models)
    tasks = serializers.SerializerMethodField(help_text="Ordered by index.")

    @extend_schema_field(AgentTaskSerializer(many=True))
    def get_tasks(self, run) -> list:
        return AgentTaskSerializer(self.context["tasks"], many=True).data

    def to_representation(self, run: AgentRun) -> dict:
        render = AgentTaskSerializer().to_representation
        return {**super().to_representation(run), "tasks": [render(task) for task in self.context["tasks"]]}


class AgentTaskListSerializer(serializers.Serializer):
    tasks = AgentTaskSerializer(many=True)
