"""Per-request batch loaders, so a list of N sandboxes with nested fields costs a constant number of
SQL queries (tests/graphql/test_queries.py counts them).

Synchronous, like the REST views the HTTP view shares its stack with: every sandbox a resolver hands
out is registered (`Loaders.seen`), and the first `load` for any of them fetches the answer for all
the registered ones in one query, so the siblings' loads that follow are cache hits.
"""

from collections import defaultdict
from collections.abc import Callable, Hashable

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

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

    def seen(self, sandboxes) -> None:
        """Sandboxes a resolver hands out: their nested fields are loaded together."""
        self.sandbox_ids.update(sandbox.pk for sandbox in sandboxes)

    def get(self, name: Hashable, batch: Callable[[list], dict]) -> BatchLoader:
        if name not in self._loaders:
            self._loaders[name] = BatchLoader(batch, lambda: self.sandbox_ids)
        return self._loaders[name]

    def executions(self, sandbox_id: str, *, offset: int, limit: int) -> list[Execution]:
        """Rows offset..offset+limit of a sandbox's executions (newest first, as REST lists them)."""
        loader = self.get(("executions", offset, limit), lambda ids: _executions(ids, offset, limit))
        return loader.load(sandbox_id) or []

    def execution_count(self, sandbox_id: str) -> int:
        return self.get("execution_count", _execution_counts).load(sandbox_id) or 0

    def snapshots(self, sandbox_id: str, *, actor) -> list[Snapshot]:
        """The sandbox's snapshots the actor may see (selectors.snapshot_list's rule), newest first."""
        return self.get("snapshots", lambda ids: _snapshots(actor, ids)).load(sandbox_id) or []


def _executions(sandbox_ids: list[str], offset: int, limit: int) -> dict[str, list[Execution]]:
    """One query for every sandbox: a window numbers each sandbox's executions, newest first."""
    numbered = Execution.objects.filter(sandbox_id__in=sandbox_ids).annotate(
        row=Window(RowNumber(), partition_by=[F("sandbox_id")], order_by=[F("started_at").desc(), F("pk").desc()])
    )
    rows = numbered.filter(row__gt=offset, row__lte=offset + limit).order_by("sandbox_id", "row")
    found: dict[str, list[Execution]] = defaultdict(list)
    for execution in rows:
        found[execution.sandbox_id].append(execution)
    return found


def _execution_counts(sandbox_ids: list[str]) -> dict[str, int]:
    counts = Execution.objects.filter(sandbox_id__in=sandbox_ids).values("sandbox_id").annotate(n=Count("pk"))
    return {row["sandbox_id"]: row["n"] for row in counts.order_by()}


def _snapshots(actor, sandbox_ids: list[str]) -> dict[str, list[Snapshot]]:
    found: dict[str, list[Snapshot]] = defaultdict(list)
    for snapshot in selectors.snapshot_list(actor=actor).filter(sandbox_id__in=sandbox_ids):
        found[snapshot.sandbox_id].append(snapshot)
    return found
