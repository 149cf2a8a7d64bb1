"""Answers of code contexts (stateful interpreters): `CodeExecution` and its rich `Result`s.

    ctx = sandbox.contexts.create(language="python")
    ctx.run("import pandas as pd; df = pd.DataFrame({'a': [1, 2]})")
    execution = ctx.run("df")
    print(execution.text)                     # the last expression's text/plain
    html = execution.results[0].html          # a DataFrame's HTML table
    png = ctx.run("plt.plot([1, 2, 3]); plt.show()").results[0].png   # base64 PNG

The server's JSON (docs/api.md, "Code contexts") keeps MIME types as keys of `data`; the
properties here read the common ones.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from .models import _Model

MIME = {
    "text": "text/plain",
    "html": "text/html",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "svg": "image/svg+xml",
    "json": "application/json",
    "markdown": "text/markdown",
    "latex": "text/latex",
    "javascript": "application/javascript",
}


@dataclass
class Result:
    """One rich output: `data` maps MIME types to values (images base64, JSON as objects).
    `is_main_result` marks the value of the cell's last expression."""

    data: dict[str, Any] = field(default_factory=dict)
    is_main_result: bool = False

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Result:
        return cls(data=dict(data.get("data") or {}), is_main_result=bool(data.get("isMainResult", False)))

    @property
    def text(self) -> str | None:
        return self.data.get(MIME["text"])

    @property
    def html(self) -> str | None:
        return self.data.get(MIME["html"])

    @property
    def png(self) -> str | None:
        """The PNG, base64 (`png_bytes()` decodes it)."""
        return self.data.get(MIME["png"])

    @property
    def jpeg(self) -> str | None:
        return self.data.get(MIME["jpeg"])

    @property
    def svg(self) -> str | None:
        return self.data.get(MIME["svg"])

    @property
    def json(self) -> Any:
        return self.data.get(MIME["json"])

    @property
    def markdown(self) -> str | None:
        return self.data.get(MIME["markdown"])

    @property
    def formats(self) -> list[str]:
        """The MIME types present."""
        return list(self.data)

    def png_bytes(self) -> bytes | None:
        return base64.b64decode(self.png) if self.png else None

    def __str__(self) -> str:
        return self.text or ""


@dataclass
class ExecutionError:
    """An exception raised by the code: its class `name`, `value` (message) and `traceback`."""

    name: str
    value: str = ""
    traceback: str = ""

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ExecutionError:
        return cls(
            name=str(data.get("name", "")), value=str(data.get("value", "")), traceback=data.get("traceback") or ""
        )

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


@dataclass
class CodeExecution:
    """What one `ctx.run(code)` did: rich `results`, the `stdout`/`stderr` streams, the `error`
    (None when the code ran through), `execution_count` and `duration_ms`."""

    results: list[Result] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    error: ExecutionError | None = None
    truncated: bool = False
    execution_count: int | None = None
    duration_ms: int | None = None
    execution_id: str | None = None  # its record in the sandbox's history (`sandbox.execution(id)`)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> CodeExecution:
        error = data.get("error")
        return cls(
            results=[Result.from_api(item) for item in data.get("results") or []],
            stdout=data.get("stdout") or "",
            stderr=data.get("stderr") or "",
            error=ExecutionError.from_api(error) if isinstance(error, dict) else None,
            truncated=bool(data.get("truncated", False)),
            execution_count=data.get("executionCount"),
            duration_ms=data.get("durationMs"),
            execution_id=data.get("executionId"),
            raw=data,
        )

    @property
    def main_result(self) -> Result | None:
        return next((result for result in self.results if result.is_main_result), None)

    @property
    def text(self) -> str | None:
        """The main result's text/plain (the last expression's value), or None."""
        main = self.main_result
        return main.text if main else None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ContextInfo(_Model):
    """A code context as the server last described it."""

    id: str
    language: str
    cwd: str | None = None
    status: str = "idle"  # idle, busy, dead
    execution_count: int = 0
    created_at: str | None = None
    last_used_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
