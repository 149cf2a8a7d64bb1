"""Reads for Claude: asks, sessions and their conversation, scoped to an owner's sandbox."""

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
