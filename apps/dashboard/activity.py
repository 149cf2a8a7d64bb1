"""The agent activity page: the user's live activity feed and the orchestration runs
(apps/agents/runs.py) with their task queues. A running run's page refreshes itself."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from apps.agents import runs
from apps.agents.models import AgentRun, AgentTask
from apps.keys.actors import actor_of
from vibebox import exceptions as errors

RUNS_SHOWN = 100
TASKS_SHOWN = 1000


def _run_row(run) -> dict:
    return {"run": run, "counts": runs.counts(run)}


@login_required
def activity_page(request):
    statuses = [s for s in request.GET.getlist("status") if s in AgentRun.Status.values]
    run_list = runs.agent_run_list(actor=actor_of(request), status=statuses or None)[:RUNS_SHOWN]
    context = {
        "runs": [_run_row(run) for run in run_list],
        "run_statuses": AgentRun.Status.values,
        "status_filter": statuses,
        "nav": "activity",
    }
    if request.htmx and request.GET.get("partial") == "runs":
        return render(request, "dashboard/partials/activity_runs.html", context)
    return render(request, "dashboard/activity.html", context)


def _duration(task, now) -> float | None:
    if task.started_at is None:
        return None
    return max(0.0, ((task.finished_at or now) - task.started_at).total_seconds())


@login_required
def activity_run(request, run_id):
    try:
        run = runs.agent_run_get(actor=actor_of(request), run_id=run_id)
    except errors.AgentRunNotFound:
        raise Http404("No such run.") from None
    status = request.GET.get("status")
    tasks = runs.agent_run_tasks(run)
    if status in AgentTask.Status.values:
        tasks = tasks.filter(status=status)
    else:
        status = ""
    now = timezone.now()
    shown = list(tasks[:TASKS_SHOWN])
    for task in shown:
        task.duration = _duration(task, now)
    counts = runs.counts(run)
    context = {
        "run": run,
        "counts": counts,
        "tasks": shown,
        "more_tasks": max(0, tasks.count() - len(shown)) if len(shown) == TASKS_SHOWN else 0,
        "task_statuses": AgentTask.Status.values,
        "status_filter": status,
        "running": run.status == AgentRun.Status.RUNNING,
        "elapsed": ((run.finished_at or now) - run.created_at).total_seconds(),
        "nav": "activity",
    }
    if request.htmx and request.GET.get("partial") == "run":
        return render(request, "dashboard/partials/activity_run_body.html", context)
    return render(request, "dashboard/activity_run.html", context)
