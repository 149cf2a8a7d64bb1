"""Sandbox commands: new, ls, info, start/stop/restart/pause/resume, rm/destroy, cleanup, logs."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from .. import errors
from . import output, shell
from .common import (
    NOT_FOUND,
    EnvOption,
    JsonFlag,
    UsageError,
    check_duration,
    client,
    get_sandbox,
    parse_env,
    settings,
    stdin_is_tty,
)

SandboxArg = Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)]
LIFECYCLE = {
    "start": "Start a stopped sandbox.",
    "stop": "Stop a running (or paused) sandbox; its files are kept.",
    "restart": "Restart a running sandbox.",
    "pause": "Freeze every process of a running sandbox (memory and files are kept).",
    "resume": "Resume a paused sandbox where it was.",
    "recover": "Make a sandbox in error usable again (its container found, or made again stopped).",
}

if TYPE_CHECKING:  # annotations only: `vibebox --help` does not import the client (httpx, websockets)
    from ..models import LogEntry
    from ..sandbox import Sandbox


def new(
    template: Annotated[
        str | None, typer.Argument(help="Template (default: the config's `template`).", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Argument(help="Name (default: generated).", show_default=False)] = None,
    git: Annotated[str | None, typer.Option("--git", help="A repository to clone into /repo first.")] = None,
    branch: Annotated[str | None, typer.Option("--branch", "-b", help="The branch to clone (with --git).")] = None,
    no_shell: Annotated[bool, typer.Option("--no-shell", help="Do not open a shell; print the sandbox.")] = False,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Destroy it after this long: 30m, 2h, 1d (default: config).")
    ] = None,
    ephemeral: Annotated[bool, typer.Option("--ephemeral", help="Always expires (default after 30m).")] = False,
    env: EnvOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="If the template's image is still being built, wait for it (not a 503).")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Create a sandbox and open a shell in it (unless --no-shell, --json or stdin is not a terminal).

    vibebox new node-20 my-app --git https://github.com/user/project.git --branch develop
    """
    defaults = settings()
    template = template or defaults.get("template")
    if not template:
        raise UsageError("no template: pass one (`vibebox new node-20`) or run `vibebox config set template node-20`")
    if branch and not git:
        raise UsageError("--branch needs --git")
    timeout = check_duration(timeout or defaults.get("timeout"), "--timeout")
    git_spec: str | dict[str, Any] | None = {"url": git, "branch": branch} if branch else git
    with output.spinner(f"creating a {template} sandbox..."):
        sandbox = client().create(
            template,
            name=name,
            ephemeral=ephemeral or None,
            timeout=timeout,
            git=git_spec,
            env=parse_env(env),
            wait=wait or None,
        )
    if json:
        output.print_json(sandbox)
        return
    if no_shell or not (stdin_is_tty() and sys.stdout.isatty()):
        output.sandbox_fields(sandbox)
        return
    output.note(f"created {sandbox.name} ({sandbox.id}); opening a shell, `exit` to leave")
    code = shell.interactive(sandbox, cwd="/repo" if git else None)
    output.note(f"{sandbox.name} keeps running: `vibebox stop {sandbox.name}` or `vibebox rm {sandbox.name}`")
    raise typer.Exit(code)


def ls(
    status: Annotated[
        str | None, typer.Option("--status", help="Only these states, comma-separated (e.g. running,paused).")
    ] = None,
    template: Annotated[str | None, typer.Option("--template", help="Only sandboxes of this template.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print names only.")] = False,
    json: JsonFlag = False,
) -> None:
    """List your sandboxes, newest first (destroyed ones only with --status destroyed)."""
    sandboxes = client().list(status=status, template=template)
    if json:
        output.print_json(sandboxes)
    elif quiet:
        for sandbox in sandboxes:
            output.line(sandbox.name)
    elif not sandboxes:
        output.note("no sandboxes")
    else:
        output.table(
            ["NAME", "ID", "TEMPLATE", "STATUS", "CREATED", "EXPIRES"],
            [
                (
                    s.name,
                    s.id,
                    s.template,
                    output.status_text(s.status),
                    output.ago(s.info.created_at),
                    output.ago(s.info.expires_at) if s.info.expires_at else "never",
                )
                for s in sandboxes
            ],
        )


def info(sandbox: SandboxArg, json: JsonFlag = False) -> None:
    """Show a sandbox's details."""
    box = get_sandbox(sandbox)
    if json:
        output.print_json(box)
    else:
        output.sandbox_fields(box)


def lifecycle(action: str) -> Callable[..., None]:
    def command(sandbox: SandboxArg, json: JsonFlag = False) -> None:
        box = get_sandbox(sandbox)
        with output.spinner(f"{action} {box.name}..."):
            getattr(box, action)()
        if json:
            output.print_json(box)
        else:
            output.out.print(Text.assemble(f"{box.name}: ", output.status_text(box.status)))

    command.__doc__ = LIFECYCLE[action]
    command.__name__ = action
    return command


def confirm(prompt: str, yes: bool) -> None:
    """Asks before destroying; without a terminal, only --yes will do."""
    if yes:
        return
    if not stdin_is_tty():
        raise UsageError("refusing to destroy without confirmation: stdin is not a terminal (pass --yes)")
    if not typer.confirm(prompt, default=False, err=True):
        output.note("nothing destroyed")
        raise typer.Exit(1)


def destroy_report(targets: list[Sandbox], json: bool) -> None:
    if targets:
        with output.spinner(f"destroying {len(targets)} sandbox(es)..."):
            client().destroy_all(targets)
    if json:
        output.print_json([{"id": s.id, "name": s.name, "status": "destroyed"} for s in targets])
    else:
        for sandbox in targets:
            output.line(f"destroyed {sandbox.name} ({sandbox.id})")


def rm(
    sandboxes: Annotated[
        list[str] | None, typer.Argument(help="Names or ids of the sandboxes to destroy.", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Destroy all your sandboxes.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json: JsonFlag = False,
) -> None:
    """Destroy sandboxes (containers and files), after confirmation unless --yes."""
    if all_ == bool(sandboxes):
        raise UsageError("name the sandboxes to destroy, or pass --all (not both)")
    if all_:
        targets = client().list()
        if not targets:
            output.note("no sandboxes")
            if json:
                output.print_json([])
            return
        confirm(f"Destroy all {len(targets)} of your sandboxes?", yes)
        destroy_report(targets, json)
        return
    targets, missing = [], []
    for ref in dict.fromkeys(sandboxes or []):
        try:
            targets.append(get_sandbox(ref))
        except errors.SandboxNotFoundError:
            missing.append(ref)
    if targets:
        confirm(f"Destroy {', '.join(s.name for s in targets)}?", yes)
    destroy_report(targets, json)
    if missing:
        for ref in missing:
            output.err.print(f"error: no such sandbox: {ref}", markup=False)
        raise typer.Exit(NOT_FOUND)


def cleanup(json: JsonFlag = False) -> None:
    """Destroy all your ephemeral sandboxes."""
    targets = [s for s in client().list() if s.info.ephemeral]
    if not targets and not json:
        output.note("no ephemeral sandboxes")
        return
    destroy_report(targets, json)


def when(timestamp: str | float) -> str:
    """A log entry's time as ISO 8601 (UTC)."""
    if isinstance(timestamp, int | float):
        return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="milliseconds")
    return str(timestamp)


def print_entry(entry: LogEntry, timestamps: bool) -> None:
    text = entry.text.rstrip("\n")
    if timestamps and entry.timestamp is not None:
        text = f"{when(entry.timestamp)} {text}"
    if entry.type == "event":
        output.out.print(f"[vibebox] {text}", style="dim", markup=False)
    elif entry.stream == "stderr":
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def logs(
    sandbox: SandboxArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new entries (Ctrl-C stops).")] = False,
    since: Annotated[str | None, typer.Option("--since", help="Only entries this recent: 10m, 1h, 1d.")] = None,
    tail: Annotated[str | None, typer.Option("--tail", help="The last N entries (default 100), or `all`.")] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="Show each entry's time.")] = False,
    json: Annotated[bool, typer.Option("--json", help="JSON: an array, or one object per line with --follow.")] = False,
) -> None:
    """Show a sandbox's container output and the server's events (stderr output goes to stderr)."""
    check_duration(since, "--since")
    if tail is not None and tail != "all" and not tail.isdigit():
        raise UsageError("--tail takes a number or `all`")
    box = get_sandbox(sandbox)
    if not follow:
        entries = box.logs(since=since, tail=tail)
        if json:
            output.print_json(entries)
            return
        for entry in entries:
            print_entry(entry, timestamps)
        return
    try:
        for entry in box.stream_logs(follow=True, since=since, tail=tail):
            if json:
                output.print_json_line(entry)
            else:
                print_entry(entry, timestamps)
    except KeyboardInterrupt:
        return


def register(app: typer.Typer) -> None:
    panel = "Sandboxes"
    app.command("new", rich_help_panel=panel)(new)
    # The product spec's name for it (Phase 3: `vibebox create` → running).
    app.command("create", help="Create a sandbox and open a shell in it (same as `new`).", rich_help_panel=panel)(new)
    app.command("ls", rich_help_panel=panel)(ls)
    app.command("info", rich_help_panel=panel)(info)
    for action in LIFECYCLE:
        app.command(action, rich_help_panel=panel)(lifecycle(action))
    app.command("logs", rich_help_panel=panel)(logs)
    app.command("rm", rich_help_panel=panel)(rm)
    app.command("destroy", help="Destroy sandboxes (same as `rm`).", rich_help_panel=panel)(rm)
    app.command("cleanup", rich_help_panel=panel)(cleanup)
