"""Per-request batch loaders, so a list of N sandboxes with nested fields costs a constant number of
SQL queries (tests/graphql/test_queries.py counts them).

Synchronous, like the REST views the HTTP view shares its stack with: every sandbox a resolver hands
out is registered (`Loaders.seen`), and the first `load` for any of them fetches the answer for all
the registered ones in one query, so the siblings' loads that follow are cache hits.
"""

from collections import defaultdict
from collections.abc import Callable, Hashable
from functools import partial

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

from apps.agents.models import AgentTask
from apps.sandboxes import selectors
from apps.sandboxes.models import Execution, Snapshot


class BatchLoader:
    def __init__(self, batch: Callable[[list], dict], siblings: Callable[[], set]):
        self._batch = batch  # keys -> {key: value}; a key missing from the answer loads as `None`
        self._siblings = siblings
        self._cache: dict = {}

    def load(self, key: Hashable):
        if key not in self._cache:
            keys = sorted({key} | {each for each in self._siblings() if each not in self._cache})
            found = self._batch(keys)
            for each in keys:
                self._cache[each] = found.get(each)
        return self._cache[key]


class Loaders:
    def __init__(self):
        self._loaders: dict[Hashable, BatchLoader] = {}
        self.sandbox_ids: set[str] = set()
        self.run_ids: set[str] = set()

    def seen(self, sandboxes) -> None:
        """Sandboxes a resolver hands out: their nested fields are loaded together."""
        self.sandbox_ids.update(sandbox.pk for sandbox in sandboxes)

    def seen_runs(self, runs) -> None:
        """Agent runs a resolver hands out: their tasks are loaded together."""
        self.run_ids.update(run.pk for run in runs)

    def get(self, name: Hashable, batch: Callable[[list], dict], siblings: set | None = None) -> BatchLoader:
        if name not in self._loaders:
            keys = self.sandbox_ids if siblings is None else siblings
            self._loaders[name] = BatchLoader(batch, lambda: keys)
        return self._loaders[name]

    def executions(self, sandbox_id: str, *, offset: int, limit: int) -> list[Execution]:
        """Rows offset..offset+limit of a sandbox's executions (newest first, as REST lists them)."""
        order = [F("started_at").desc(), F("pk").desc()]
        batch = partial(_numbered, Execution.objects.all(), "sandbox_id", order, offset=offset, limit=limit)
        return self.get(("executions", offset, limit), batch).load(sandbox_id) or []

    def execution_count(self, sandbox_id: str) -> int:
        batch = partial(_counts, Execution.objects.all(), "sandbox_id")
        return self.get("execution_count", batch).load(sandbox_id) or 0

    def agent_tasks(self, run_id: str, *, offset: int, limit: int) -> list[AgentTask]:
        """Rows offset..offset+limit of a run's tasks, in index order (runs.agent_run_tasks's)."""
        batch = partial(_numbered, AgentTask.objects.all(), "run_id", [F("index").asc()], offset=offset, limit=limit)
        return self.get(("agent_tasks", offset, limit), batch, self.run_ids).load(run_id) or []

    def agent_task_count(self, run_id: str) -> int:
        batch = partial(_counts, AgentTask.objects.all(), "run_id")
        return self.get("agent_task_count", batch, self.run_ids).load(run_id) or 0

    def snapshots(self, sandbox_id: str, *, actor) -> list[Snapshot]:
        """The sandbox's snapshots the actor may see (selectors.snapshot_list's rule), newest first."""
        return self.get("snapshots", lambda ids: _snapshots(actor, ids)).load(sandbox_id) or []


def _numbered(rows, parent: str, order: list, ids: list[str], *, offset: int, limit: int) -> dict[str, list]:
    """One query for every parent: a window numbers each parent's rows in `order`, and only rows
    offset..offset+limit of each come back."""
    numbered = rows.filter(**{f"{parent}__in": ids}).annotate(
        row=Window(RowNumber(), partition_by=[F(parent)], order_by=order)
    )
    found: dict[str, list] = defaultdict(list)
    for each in numbered.filter(row__gt=offset, row__lte=offset + limit).order_by(parent, "row"):
        found[getattr(each, parent)].append(each)
    return found


def _counts(rows, parent: str, ids: list[str]) -> dict[str, int]:
    counts = rows.filter(**{f"{parent}__in": ids}).values(parent).annotate(n=Count("pk"))
    return {row[parent]: row["n"] for row in counts.order_by()}


def _snapshots(actor, sandbox_ids: list[str]) -> dict[str, list[Snapshot]]:
    found: dict[str, list[Snapshot]] = defaultdict(list)
    for snapshot in selectors.snapshot_list(actor=actor).filter(sandbox_id__in=sandbox_ids):
        found[snapshot.sandbox_id].append(snapshot)
    return found
