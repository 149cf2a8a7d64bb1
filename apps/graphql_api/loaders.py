"""Per-request batch loaders, so a list of N sandboxes with nested fields costs a constant number of
SQL queries. Synchronous (the HTTP view runs the schema synchronously, like the REST views): a
connection registers the keys of its page (`want`), and the first `load` of any of them fetches them
all in one query."""

from collections.abc import Callable, Hashable, Iterable
from typing import Any


class BatchLoader:
    def __init__(self, batch: Callable[[list], dict]):
        self._batch = batch  # keys -> {key: value}; a key missing from the answer loads as None
        self._wanted: set = set()
        self._cache: dict = {}

    def want(self, keys: Iterable[Hashable]) -> None:
        self._wanted.update(key for key in keys if key not in self._cache)

    def prime(self, key: Hashable, value: Any) -> None:
        self._cache[key] = value

    def load(self, key: Hashable) -> Any:
        if key not in self._cache:
            keys = list(self._wanted | {key})
            found = self._batch(keys)
            for each in keys:
                self._cache[each] = found.get(each)
            self._wanted.clear()
        return self._cache[key]


class Loaders:
    """The request's loaders, one per kind of batch (filled in by loaders below)."""

    def __init__(self):
        self._loaders: dict[str, BatchLoader] = {}

    def get(self, name: str, batch: Callable[[list], dict]) -> BatchLoader:
        if name not in self._loaders:
            self._loaders[name] = BatchLoader(batch)
        return self._loaders[name]
