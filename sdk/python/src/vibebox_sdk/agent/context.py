"""Shared data for the functions an orchestrator runs (`agent.create_context`)."""

from __future__ import annotations

import threading
from typing import Any


class Context:
    """A thread-safe map given to every call of a map's function (its third argument).

    ctx = agent.create_context(shared_data={"apiKey": "..."})
    agent.map(items, lambda item, sandbox, ctx: ctx.get("apiKey"), context=ctx)
    """

    def __init__(self, shared_data: dict[str, Any] | None = None) -> None:
        self._data = dict(shared_data or {})
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def update(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._data.update(values)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._data)

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._data[key]

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._data
