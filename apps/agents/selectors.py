"""Reads for Claude: asks, sessions and their conversation, scoped to an owner's sandbox."""

import json

from apps.sandboxes.runtime import bounded
from apps.sandboxes.services.exec import require_running, run_internal
from vibebox import exceptions as errors

from .models import ClaudeAsk, ClaudeEvent, ClaudeSession

TRANSCRIPT_LIMIT = 4 * 1024 * 1024

FIND_TRANSCRIPT = r"""config=${CLAUDE_CONFIG_DIR:-$HOME/.claude}
file=$(find "$config/projects" -name "$1.jsonl" 2>/dev/null | head -n 1)
[ -n "$file" ] && cat "$file"
exit 0
"""


def ask_get(*, sandbox, ask_id: str) -> ClaudeAsk:
    ask = ClaudeAsk.objects.filter(pk=ask_id, sandbox=sandbox).select_related("session").first()
    if ask is None:
        raise errors.AskNotFound(details={"ask_id": ask_id})
    return ask


def ask_list(*, sandbox, session_id: str | None = None):
    qs = ClaudeAsk.objects.filter(sandbox=sandbox).select_related("session")
    return qs.filter(session_id=session_id) if session_id else qs


def session_get(*, sandbox, session_id: str) -> ClaudeSession:
    session = ClaudeSession.objects.filter(pk=session_id, sandbox=sandbox).first()
    if session is None:
        raise errors.ClaudeSessionNotFound(details={"sessionId": session_id})
    return session


def session_list(*, sandbox):
    return ClaudeSession.objects.filter(sandbox=sandbox)


def _blocks(content) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def conversation(session: ClaudeSession) -> list[dict]:
    """The session's turns from the stored events: the prompts, Claude's text, its tool calls
    and their results, and each ask's result."""
    messages = []
    asks = {ask.id: ask for ask in session.asks.order_by("started_at")}
    stored = ClaudeEvent.objects.filter(ask__session=session).order_by("ask__started_at", "seq")
    current = None
    for event in stored.iterator():
        if event.ask_id != current:
            current = event.ask_id
            ask = asks[current]
            messages.append({"role": "user", "ask_id": ask.id, "type": "prompt", "text": ask.prompt})
        data = event.data
        base = {"ask_id": event.ask_id, "seq": event.seq}
        if data.get("type") == "assistant":
            for block in _blocks((data.get("message") or {}).get("content")):
                if block.get("type") == "text":
                    messages.append({**base, "role": "assistant", "type": "text", "text": block.get("text", "")})
                elif block.get("type") == "tool_use":
                    messages.append(
                        {
                            **base,
                            "role": "assistant",
                            "type": "tool_use",
                            "tool_use_id": block.get("id"),
                            "name": block.get("name"),
                            "input": block.get("input"),
                        }
                    )
        elif data.get("type") == "user":
            for block in _blocks((data.get("message") or {}).get("content")):
                if block.get("type") == "tool_result":
                    messages.append(
                        {
                            **base,
                            "role": "tool",
                            "type": "tool_result",
                            "tool_use_id": block.get("tool_use_id"),
                            "content": block.get("content"),
                            "is_error": bool(block.get("is_error")),
                        }
                    )
        elif data.get("type") == "result":
            messages.append(
                {
                    **base,
                    "role": "result",
                    "type": "result",
                    "text": data.get("result"),
                    "is_error": bool(data.get("is_error")),
                    "cost_usd": data.get("total_cost_usd"),
                    "num_turns": data.get("num_turns"),
                }
            )
    for ask in asks.values():  # asks that ended before Claude said anything
        if not any(m.get("ask_id") == ask.id for m in messages):
            messages.append({"role": "user", "ask_id": ask.id, "type": "prompt", "text": ask.prompt})
    return messages


def transcript(sandbox, session: ClaudeSession) -> tuple[list[dict], bool]:
    """Claude's own transcript file of the session (it also has turns taken in a terminal)."""
    # Never resumes a paused sandbox (the view checks the caller may), and `sh -c`, not a login
    # shell: a read must not run the sandbox's ~/.profile.
    require_running(sandbox)
    result = run_internal(
        sandbox, ("/bin/sh", "-c", FIND_TRANSCRIPT, "sh", session.id), timeout=30, output_limit=TRANSCRIPT_LIMIT
    )
    entries = []
    for line in result.stdout.decode(errors="replace").splitlines():
        try:
            entries.append(bounded.loads(line, max_bytes=TRANSCRIPT_LIMIT))  # depth-limited, no NaN
        except ValueError:
            continue
    return entries, result.truncated


READ_TOOLS = {"Read": "file_path", "NotebookRead": "notebook_path"}  # Claude Code's file-reading tools
INPUT_PREVIEW = 500  # characters of a tool call's input shown by the context inspector


def session_context(session: ClaudeSession) -> dict:
    """What Claude saw in a session, from its stored events (one query): the files it read (its
    Read tools' paths, with how often), the tools it called (input cut at INPUT_PREVIEW, whether
    the result was an error), and from its latest `init` event the model, working directory,
    permission mode, tools and MCP servers it had. The events are Claude's own output, hostile:
    every field is checked for its type."""
    files: dict[str, int] = {}
    calls: list[dict] = []
    by_use_id: dict[str, dict] = {}
    init: dict = {}
    stored = ClaudeEvent.objects.filter(ask__session=session, type__in=("init", "tool_use", "tool_result"))
    for event in stored.order_by("ask__started_at", "seq").only("ask_id", "seq", "type", "data").iterator():
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == "init":
            init = data
            continue
        for block in _blocks(
            (data.get("message") or {}).get("content") if isinstance(data.get("message"), dict) else []
        ):
            if block.get("type") == "tool_use":
                name = str(block.get("name") or "")[:200]
                arguments = block.get("input")
                path = arguments.get(READ_TOOLS[name]) if name in READ_TOOLS and isinstance(arguments, dict) else None
                if isinstance(path, str) and path:
                    files[path[:1000]] = files.get(path[:1000], 0) + 1
                shown = json.dumps(arguments, ensure_ascii=False, default=str)
                call = {
                    "ask_id": event.ask_id,
                    "seq": event.seq,
                    "name": name,
                    "input": shown[:INPUT_PREVIEW],
                    "truncated": len(shown) > INPUT_PREVIEW,
                    "is_error": None,  # no result seen (yet)
                }
                calls.append(call)
                if isinstance(block.get("id"), str):
                    by_use_id[block["id"]] = call
            elif block.get("type") == "tool_result" and isinstance(block.get("tool_use_id"), str):
                found = by_use_id.get(block["tool_use_id"])
                if found is not None:
                    found["is_error"] = bool(block.get("is_error"))
    tools = (
        [str(t)[:200] for t in init.get("tools") or [] if isinstance(t, str)]
        if isinstance(init.get("tools"), list)
        else []
    )
    servers = init.get("mcp_servers") if isinstance(init.get("mcp_servers"), list) else []
    return {
        "files_read": [{"path": path, "times": times} for path, times in files.items()],
        "tool_calls": calls,
        "seen_init": bool(init),
        "model": str(init.get("model") or "")[:100],
        "cwd": str(init.get("cwd") or "")[:300],
        "permission_mode": str(init.get("permissionMode") or "")[:32],
        "tools": [t for t in tools if not t.startswith("mcp__")],
        "mcp_tools": [t for t in tools if t.startswith("mcp__")],
        "mcp_servers": [
            {"name": str(s.get("name") or "")[:100], "status": str(s.get("status") or "")[:32]}
            for s in servers
            if isinstance(s, dict)
        ],
    }
