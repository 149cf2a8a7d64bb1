"""Agent runs and tasks render through a hand-written fast path (docs/benchmarks.md, "Rendering
answers") that must answer exactly what the serializers' declared fields would: those fields stay
the one definition of the shape (OpenAPI document, docs)."""

import datetime as dt

from django.utils import timezone
from rest_framework import serializers

from apps.agents import runs
from apps.agents.api.run_serializers import AgentRunSerializer, AgentRunSummarySerializer, AgentTaskSerializer
from apps.agents.models import AgentTask


def _declared(serializer_class, instance, **context) -> dict:
    """What DRF renders from the declared fields, bypassing the hand-written to_representation."""
    return serializers.Serializer.to_representation(serializer_class(context=context), instance)


def test_runs_and_tasks_render_as_their_declared_fields(owner):
    run = runs.agent_run_create(
        owner=owner, name="shape", parallelism=3, template="python-3", metadata={"team": "ml"},
        tasks=[{"name": "bare"}, {"name": "full", "metadata": {"k": "v"}}],
    )  # fmt: skip
    now = timezone.now()
    AgentTask.objects.filter(run=run, index=1).update(
        status="completed",
        sandbox_id="sbx_x",
        attempts=2,
        error="once",
        result={"answer": [1, 2.5, None, "x"]},
        started_at=now.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),
        finished_at=now + dt.timedelta(microseconds=1500),
    )
    runs.agent_run_finish(run=run, status="completed")
    bare = runs.agent_run_create(owner=owner, name="bare")
    for found in (run, bare):
        found.refresh_from_db()
        assert AgentRunSummarySerializer(found).data == _declared(AgentRunSummarySerializer, found)
        tasks = list(runs.agent_run_tasks(found))
        rendered = AgentRunSerializer(found, context={"tasks": tasks}).data
        assert rendered == _declared(AgentRunSerializer, found, tasks=tasks)
        assert list(rendered) == list(AgentRunSerializer().fields)  # same keys, same order
        for task in tasks:
            assert AgentTaskSerializer(task).data == _declared(AgentTaskSerializer, task)
    assert AgentRunSerializer(run, context={"tasks": runs.agent_run_tasks(run)}).data["tasks"][1]["durationMs"] == 2
