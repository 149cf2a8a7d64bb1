"""The tools a Claude task gets, run in its sandbox, and the tool-use loop (Messages API)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .results import TaskResult

TOOLS: list[dict[str, Any]] = [
    {
        "name": "run_command",
        "description": "Run a shell command (bash) in the sandbox; returns stdout, stderr and the exit code.",
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command line."},
                "cwd": {"type": "string", "description": "Working directory (default /workspace)."},
                "timeout": {"type": "number", "description": "Seconds before it is killed (default 60)."},
            },
            "required": ["command"],
        },
    },
    {
        "name": "execute_code",
        "description": "Run a code snippet (javascript, typescript, python or shell); returns output and the value "
        "of a final `return`.",
        "input_schema": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "language": {"type": "string"}},
            "required": ["code"],
        },
    },
    {
        "name": "read_file",
        "description": "Read a text file from the sandbox (relative paths start at /workspace).",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
    {
        "name": "write_file",
        "description": "Write a text file in the sandbox (parents are created).",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    {
        "name": "list_files",
        "description": "List a directory of the sandbox.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
]

SYSTEM = (
    "You work in an isolated Linux sandbox through the tools given. Files live under /workspace"
    "{repo}. Run commands to check your work. Answer with a short summary when done."
)
OUTPUT_LIMIT = 30_000


def absolute(path: str) -> str:
    return path if path.startswith("/") else f"/workspace/{path}"


def _clip(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else text[:OUTPUT_LIMIT] + f"\n[... {len(text) - OUTPUT_LIMIT} more]"


def _tool_call(sandbox: Any, name: str, arguments: dict[str, Any]) -> tuple[Any, Callable[[Any], str]]:
    """(the SDK call for a tool, how to render its answer): shared by the sync and async runners."""
    if name == "run_command":
        call = sandbox.exec(arguments["command"], cwd=arguments.get("cwd"), timeout=arguments.get("timeout"))
        return call, _render_exec
    if name == "execute_code":
        call = sandbox.execute(arguments["code"], language=arguments.get("language"))
        return call, _render_exec
    if name == "read_file":
        return sandbox.files.read_text(absolute(arguments["path"])), _clip
    if name == "write_file":
        path = absolute(arguments["path"])
        return sandbox.files.write(path, arguments["content"]), lambda _: f"wrote {path}"
    if name == "list_files":
        call = sandbox.files.list(absolute(arguments.get("path") or "/workspace"))
        return call, lambda entries: "\n".join(e.name + ("/" if e.is_dir else "") for e in entries)
    raise ValueError(f"unknown tool {name}")


def _render_exec(result: Any) -> str:
    answer = {"exit_code": result.exit_code, "stdout": _clip(result.stdout), "stderr": _clip(result.stderr)}
    if result.return_value is not None:
        answer["return_value"] = result.return_value
    return json.dumps(answer, default=str)


def run_tool(sandbox: Any, name: str, arguments: dict[str, Any]) -> str:
    """Runs one tool call in `sandbox` (sync SDK); answers the text given back to the model."""
    value, render = _tool_call(sandbox, name, arguments)
    return render(value)


async def run_tool_async(sandbox: Any, name: str, arguments: dict[str, Any]) -> str:
    """The same with an `AsyncSandbox`."""
    value, render = _tool_call(sandbox, name, arguments)
    return render(await value)


def block_dict(block: Any) -> dict[str, Any]:
    return block.model_dump(exclude_none=True) if hasattr(block, "model_dump") else dict(block)


class Loop:
    """The state of one tool-use conversation; `step` adds the model's answer and says what to run."""

    def __init__(self, prompt: str, *, repo: bool) -> None:
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        self.system = SYSTEM.format(repo=" (the repository is cloned at /repo)" if repo else "")
        self.tool_calls: list[dict[str, Any]] = []
        self.usage = {"input_tokens": 0, "output_tokens": 0}
        self.turns = 0
        self.stop_reason: str | None = None

    def step(self, response: Any) -> list[Any]:
        """Records a model answer; answers its tool_use blocks (empty: the conversation is over)."""
        self.turns += 1
        self.stop_reason = response.stop_reason
        for name in self.usage:
            self.usage[name] += int(getattr(response.usage, name, 0) or 0)
        self.messages.append({"role": "assistant", "content": [block_dict(b) for b in response.content]})
        uses = [b for b in response.content if getattr(b, "type", None) == "tool_use"]
        return uses if response.stop_reason == "tool_use" else []

    def results(self, outcomes: list[tuple[Any, str, bool]]) -> None:
        content = []
        for use, output, failed in outcomes:
            self.tool_calls.append({"name": use.name, "input": use.input, "output": output, "is_error": failed})
            content.append({"type": "tool_result", "tool_use_id": use.id, "content": output, "is_error": failed})
        self.messages.append({"role": "user", "content": content})

    def result(self, sandbox_id: str | None) -> TaskResult:
        last = self.messages[-1]
        text = ""
        if last["role"] == "assistant":
            text = "".join(b.get("text", "") for b in last["content"] if b.get("type") == "text")
        return TaskResult(
            text=text,
            transcript=self.messages,
            tool_calls=self.tool_calls,
            usage=self.usage,
            turns=self.turns,
            stop_reason=self.stop_reason,
            sandbox_id=sandbox_id,
        )
