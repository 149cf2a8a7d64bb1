"""The server's record of an orchestration run (`/api/v1/agent-runs`), for the dashboard.

Recording is best effort: a server without the endpoint, or a failed call, never stops the work
(the recorder turns itself off and logs why).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .. import calls, errors

logger = logging.getLogger("vibebox_sdk.agent")
RESULT_LIMIT = 60 * 1024


def summarize(value: Any) -> Any:
    """What of a task's result is stored: JSON if it fits in RESULT_LIMIT, else a short text."""
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) <= RESULT_LIMIT:
        return json.loads(text)
    return {"truncated": True, "preview": text[:2000]}


def create_run(name: str, kind: str, parallelism: int | None, template: str | None, tasks: list[str]) -> calls.Call:
    fields = calls.body(name=name[:200], kind=kind, parallelism=parallelism, template=template)
    fields["tasks"] = [{"name": task[:500]} for task in tasks]
    return calls.Call("POST", f"{calls.API}/agent-runs", json=fields, feature="agent runs")


def get_run(run_id: str) -> calls.Call:
    return calls.Call("GET", f"{calls.API}/agent-runs/{calls.segment(run_id)}", feature="agent runs")


def list_runs(status: str | None = None) -> calls.Call:
    params = {"status": status} if status else None

    def parse(response) -> Any:
        data = response.json()
        return data["results"] if isinstance(data, dict) and "results" in data else data

    return calls.Call("GET", f"{calls.API}/agent-runs", params=params, feature="agent runs", parse=parse)


def add_tasks(run_id: str, tasks: list[str]) -> calls.Call:
    path = f"{calls.API}/agent-runs/{calls.segment(run_id)}/tasks"
    return calls.Call("POST", path, json={"tasks": [{"name": t[:500]} for t in tasks]}, feature="agent runs")


def update_task(run_id: str, task_id: str, fields: dict[str, Any]) -> calls.Call:
    path = f"{calls.API}/agent-runs/{calls.segment(run_id)}/tasks/{calls.segment(task_id)}"
    return calls.Call("PATCH", path, json=calls.body(**fields), feature="agent runs")


def finish_run(run_id: str, status: str) -> calls.Call:
    path = f"{calls.API}/agent-runs/{calls.segment(run_id)}"
    return calls.Call("PATCH", path, json={"status": status}, feature="agent runs")


class Recorder:
    """Keeps a run's record in step (sync). `run_id` is None when recording is off or failed."""

    def __init__(self, send, *, enabled: bool = True) -> None:
        self._send = send
        self.enabled = enabled
        self.run_id: str | None = None
        self.task_ids: list[str] = []

    def _failed(self, error: errors.VibeBoxError) -> None:
        logger.warning("agent run not recorded (%s); going on without", error)
        self.enabled = False

    def _try(self, call: calls.Call) -> Any:
        if not self.enabled:
            return None
        try:
            return self._send(call)
        except errors.VibeBoxError as error:
            self._failed(error)
            return None

    def _started(self, run: Any) -> None:
        if run:
            self.run_id = run["id"]
            self.task_ids = [task["id"] for task in run.get("tasks", [])]

    def _added(self, answer: Any) -> None:
        if answer:
            self.task_ids += [task["id"] for task in answer["tasks"]]

    def _task_call(self, index: int, fields: dict[str, Any]) -> calls.Call | None:
        if not self.run_id or index >= len(self.task_ids):
            return None
        if "result" in fields:
            fields["result"] = summarize(fields["result"])
        if fields.get("error") is not None:
            fields["error"] = str(fields["error"])[:10000]
        return update_task(self.run_id, self.task_ids[index], fields)

    def start(self, name: str, kind: str, parallelism: int | None, template: str | None, tasks: list[str]) -> None:
        self._started(self._try(create_run(name, kind, parallelism, template, tasks)))

    def add(self, names: list[str]) -> None:
        if self.run_id:
            self._added(self._try(add_tasks(self.run_id, names)))

    def task(self, index: int, **fields: Any) -> None:
        call = self._task_call(index, fields)
        if call is not None:
            self._try(call)

    def finish(self, status: str) -> None:
        if self.run_id:
            self._try(finish_run(self.run_id, status))


class AsyncRecorder(Recorder):
    """The same, for the async agent: every method is awaited."""

    async def _try(self, call: calls.Call) -> Any:  # type: ignore[override]
        if not self.enabled:
            return None
        try:
            return await self._send(call)
        except errors.VibeBoxError as error:
            self._failed(error)
            return None

    async def start(self, name, kind, parallelism, template, tasks) -> None:  # type: ignore[override]
        self._started(await self._try(create_run(name, kind, parallelism, template, tasks)))

    async def task(self, index: int, **fields: Any) -> None:  # type: ignore[override]
        call = self._task_call(index, fields)
        if call is not None:
            await self._try(call)

    async def finish(self, status: str) -> None:  # type: ignore[override]
        if self.run_id:
            await self._try(finish_run(self.run_id, status))
