"""What the orchestrator hands back: task results, stream updates, per-item failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TaskFailedError(Exception):
    """An item (or task) failed after its retries; `index`, `item`, `attempts` and the last `cause`."""

    def __init__(self, index: int, item: Any, attempts: int, cause: BaseException) -> None:
        super().__init__(f"item {index} failed after {attempts} attempt(s): {cause!r}")
        self.index = index
        self.item = item
        self.attempts = attempts
        self.cause = cause


@dataclass
class TaskResult:
    """A Claude task's outcome: the final `text`, the `transcript` (messages), the `tool_calls`
    made in the sandbox ({name, input, output, is_error}), token `usage` and the `turns` taken."""

    text: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    turns: int = 0
    stop_reason: str | None = None
    sandbox_id: str | None = None


@dataclass
class Update:
    """One step of `stream_results`: a task `started`, printed `output` (in `logs`), `completed`
    (with `result`) or `failed` (with `error`)."""

    index: int
    status: str
    sandbox_id: str | None = None
    logs: str = ""
    result: Any = None
    error: BaseException | None = None
