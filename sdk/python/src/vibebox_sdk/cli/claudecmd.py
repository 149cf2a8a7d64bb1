"""`vibebox claude …`: Claude Code in a sandbox (server docs: docs/claude.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from . import output
from .common import ERROR, PRODUCT, JsonFlag, UsageError, get_sandbox

app = typer.Typer(help="Claude Code in a sandbox: ask, watch, review its changes.", no_args_is_help=True)

SandboxArg = Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)]
SessionOption = Annotated[str | None, typer.Option("--session", "-s", help="A Claude session id.")]


def show(answer: Any, json: bool) -> None:
    if json:
        output.print_json(answer)
    elif isinstance(answer, dict):
        output.fields((k, v) for k, v in answer.items() if not isinstance(v, (dict, list)) or not v)
    elif answer is not None:
        output.line(str(answer))


@app.command("enable")
def enable(
    sandbox: SandboxArg,
    mcp: Annotated[bool, typer.Option("--mcp", help=f"Give Claude {PRODUCT}'s MCP server (this sandbox).")] = False,
    own_key: Annotated[
        bool, typer.Option("--own-key", help="Use your ANTHROPIC_API_KEY for this sandbox (kept on the server).")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Set up Claude Code in a sandbox (templates with it: node-22-claude-code)."""
    import os

    key = os.environ.get("ANTHROPIC_API_KEY") if own_key else None
    if own_key and not key:
        output.warn("--own-key: ANTHROPIC_API_KEY is not set")
        raise typer.Exit(ERROR)
    show(get_sandbox(sandbox).claude.enable(mcp=mcp, anthropic_api_key=key), json)


@app.command("status")
def status(sandbox: SandboxArg, json: JsonFlag = False) -> None:
    """Claude Code in a sandbox: enabled, version, running asks, usage."""
    show(get_sandbox(sandbox).claude.status(), json)


@app.command("configure")
def configure(
    sandbox: SandboxArg,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="human (asks refused), assist (changes wait for review) or autonomous (applied at once).",
            metavar="human|assist|autonomous",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="The asks' default model, e.g. claude-sonnet-4-5; '' the template's.")
    ] = None,
    permission_mode: Annotated[
        str | None,
        typer.Option(
            "--permission-mode",
            help="The asks' default: acceptEdits, default, plan, bypassPermissions or dontAsk; '' the template's.",
        ),
    ] = None,
    own_key: Annotated[
        bool | None,
        typer.Option(
            "--own-key/--platform-key",
            help="Pay with your ANTHROPIC_API_KEY (kept on the server), or go back to the platform's key.",
            show_default=False,
        ),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Change Claude's setup in a sandbox: collaboration mode, default model and permission mode,
    whose Anthropic key pays. Only the options given change; prints the status."""
    import os

    key = None
    if own_key:
        key = os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            output.warn("--own-key: ANTHROPIC_API_KEY is not set")
            raise typer.Exit(ERROR)
    elif own_key is False:
        key = ""  # the platform's (operator's) key
    if mode is None and model is None and permission_mode is None and own_key is None:
        raise UsageError("nothing to change: give --mode, --model, --permission-mode, --own-key or --platform-key")
    status = get_sandbox(sandbox).claude.configure(
        mode=mode, model=model, permission_mode=permission_mode, anthropic_api_key=key
    )
    show(status, json)


def _print_event(event: dict) -> None:
    kind = event.get("type", "")
    text = event.get("text", "")
    if kind in ("claude.assistant", "claude.result") or kind.startswith("claude.changes"):
        output.note(text, style="")
    elif kind not in ("claude.user",):
        output.note(f"[{kind.removeprefix('claude.')}] {text}")


@app.command("ask")
def ask(
    sandbox: SandboxArg,
    prompt: Annotated[str, typer.Argument(help="What Claude should do.", show_default=False)],
    session: SessionOption = None,
    model: Annotated[str | None, typer.Option("--model", help="e.g. claude-sonnet-4-5")] = None,
    permission_mode: Annotated[str | None, typer.Option("--permission-mode", help="default: acceptEdits")] = None,
    allow: Annotated[
        list[str] | None, typer.Option("--allow", help="An allowed tool, e.g. 'Bash(npm test:*)'.")
    ] = None,
    disallow: Annotated[list[str] | None, typer.Option("--disallow", help="A tool Claude may not use.")] = None,
    max_turns: Annotated[int | None, typer.Option("--max-turns")] = None,
    no_review: Annotated[bool, typer.Option("--no-review", help="Let Claude edit /workspace directly.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the ask id and return.")] = False,
    json: JsonFlag = False,
) -> None:
    """Ask Claude Code; streams its activity to stderr and prints its answer. Exit 1 unless it completed."""
    claude = get_sandbox(sandbox).claude
    options = {
        "session_id": session,
        "model": model,
        "permission_mode": permission_mode,
        "allowed_tools": allow or None,
        "disallowed_tools": disallow or None,
        "max_turns": max_turns,
        "review": False if no_review else None,
    }
    if no_wait:
        show(claude.ask(prompt, wait=False, **options), json)
        return
    done = claude.ask(prompt, on_event=None if json else _print_event, **options)
    if json:
        output.print_json(done)
    else:
        if done.get("result"):
            output.line(done["result"])
        if done.get("change_set_id"):
            output.note(f"changes are waiting for review: vibebox claude changes {sandbox}")
        output.note(f"session {done['session_id']} · {done['status']} · ${done.get('cost_usd') or 0:.4f}")
    if done["status"] != "completed":
        raise typer.Exit(ERROR)


@app.command("cancel")
def cancel(
    sandbox: SandboxArg, ask_id: Annotated[str, typer.Argument(help="The ask (ask_…).")], json: JsonFlag = False
):
    """Stop a running ask."""
    show(get_sandbox(sandbox).claude.cancel(ask_id), json)


@app.command("sessions")
def sessions(sandbox: SandboxArg, json: JsonFlag = False) -> None:
    """Claude's sessions in a sandbox."""
    found = get_sandbox(sandbox).claude.sessions()
    if json:
        output.print_json(found)
        return
    rows = [
        (s["session_id"], s["title"][:50], s["asks"], s["pending_changes"], output.ago(s["last_activity_at"]))
        for s in found
    ]
    output.table(["SESSION", "TITLE", "ASKS", "PENDING", "ACTIVE"], rows)


@app.command("session")
def session_show(
    sandbox: SandboxArg, session_id: Annotated[str, typer.Argument(help="The session id.")], json: JsonFlag = False
) -> None:
    """A session's conversation."""
    found = get_sandbox(sandbox).claude.session(session_id)
    if json:
        output.print_json(found)
        return
    for message in found["messages"]:
        if message["type"] in ("prompt", "text", "result"):
            output.line(f"{message['role']}: {message.get('text') or ''}")
        elif message["type"] == "tool_use":
            output.line(f"tool: {message['name']} {message.get('input')}")


@app.command("changes")
def changes(sandbox: SandboxArg, session: SessionOption = None, json: JsonFlag = False) -> None:
    """The changes waiting for review, as unified diffs."""
    found = get_sandbox(sandbox).claude.changes(session)
    if json:
        output.print_json(found)
        return
    if not found:
        output.note("no changes waiting for review")
    for change in found:
        stats = change["stats"]
        counts = f"{stats['files']} file(s), +{stats['additions']} -{stats['deletions']}"
        output.note(f"{change['id']} (session {change['session_id']}): {counts}")
        output.line(change["diff"].rstrip("\n"))


def _review(sandbox: str, session: str | None, json: bool, approve: bool) -> None:
    claude = get_sandbox(sandbox).claude
    done = claude.approve(session) if approve else claude.reject(session)
    if json:
        output.print_json(done)
        return
    files = sorted({f["path"] for change in done["change_sets"] for f in change["files"]})
    output.line(f"{done['status']}: {', '.join(files)}")


@app.command("approve")
def approve(sandbox: SandboxArg, session: SessionOption = None, json: JsonFlag = False) -> None:
    """Apply Claude's pending changes to /workspace (exit 1 on a merge conflict: nothing applied)."""
    _review(sandbox, session, json, approve=True)


@app.command("reject")
def reject(sandbox: SandboxArg, session: SessionOption = None, json: JsonFlag = False) -> None:
    """Drop Claude's pending changes."""
    _review(sandbox, session, json, approve=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="claude", rich_help_panel="Git and Claude Code")
