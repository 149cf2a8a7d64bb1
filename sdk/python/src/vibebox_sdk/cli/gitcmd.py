"""`vibebox git ...`: git in a sandbox through the API (default repository path /repo)."""

from __future__ import annotations

import os
import re
import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from . import output
from .common import JsonFlag, UsageError, get_sandbox

git_app = typer.Typer(
    help="Git in a sandbox: clone, pull, status, diff, checkout, commit, push, log.", no_args_is_help=True
)

SandboxArg = Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)]
PathOption = Annotated[str, typer.Option("--path", help="The repository's directory in the sandbox.")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="VIBEBOX_GIT_TOKEN",
        help="An HTTPS token for this operation only (or $VIBEBOX_GIT_TOKEN); never stored.",
        show_envvar=True,
    ),
]
RemoteOption = Annotated[str | None, typer.Option("--remote", help="The remote (default origin).")]
DEFAULT_PATH = "/repo"
STATUS_WORDS = {
    "M": "modified",
    "A": "new file",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "typechange",
    "U": "unmerged",
}


def auth(token: str | None) -> dict[str, Any] | None:
    return {"type": "token", "token": token} if token else None


def show(answer: dict[str, Any], json: bool, summary: str) -> None:
    if json:
        output.print_json(answer)
    else:
        output.line(summary)


def short(commit: str | None) -> str:
    return (commit or "")[:12] or "-"


@git_app.command("clone")
def clone(
    sandbox: SandboxArg,
    url: Annotated[str, typer.Argument(help="https://, ssh://, git:// or user@host:path.", show_default=False)],
    branch: Annotated[str | None, typer.Option("--branch", "-b", help="The branch to check out.")] = None,
    depth: Annotated[int | None, typer.Option("--depth", help="A shallow clone of this many commits.")] = None,
    path: PathOption = DEFAULT_PATH,
    token: TokenOption = None,
    json: JsonFlag = False,
) -> None:
    """Clone a repository into a sandbox (default into /repo)."""
    box = get_sandbox(sandbox)
    with output.spinner(f"cloning {url}..."):
        answer = box.git.clone(url, branch=branch, path=path, depth=depth, auth=auth(token))
    where = f"{answer.get('path')} ({answer.get('branch')} at {short(answer.get('commit'))})"
    show(answer, json, f"cloned {url} into {where}")


@git_app.command("pull")
def pull(
    sandbox: SandboxArg,
    remote: RemoteOption = None,
    branch: Annotated[str | None, typer.Option("--branch", "-b", help="The branch to pull.")] = None,
    path: PathOption = DEFAULT_PATH,
    token: TokenOption = None,
    json: JsonFlag = False,
) -> None:
    """Pull the current branch from its remote."""
    box = get_sandbox(sandbox)
    with output.spinner("pulling..."):
        answer = box.git.pull(path=path, remote=remote, branch=branch, auth=auth(token))
    if answer.get("updated"):
        summary = f"updated {short(answer.get('before'))}..{short(answer.get('commit'))}"
    else:
        summary = f"already up to date ({short(answer.get('commit'))})"
    show(answer, json, summary)


@git_app.command("push")
def push(
    sandbox: SandboxArg,
    remote: RemoteOption = None,
    branch: Annotated[str | None, typer.Option("--branch", "-b", help="The branch to push (default current).")] = None,
    set_upstream: Annotated[bool, typer.Option("--set-upstream", "-u", help="Track the pushed branch.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Force, with lease.")] = False,
    path: PathOption = DEFAULT_PATH,
    token: TokenOption = None,
    json: JsonFlag = False,
) -> None:
    """Push the current branch to its remote."""
    box = get_sandbox(sandbox)
    with output.spinner("pushing..."):
        answer = box.git.push(
            path=path,
            remote=remote,
            branch=branch,
            auth=auth(token),
            set_upstream=set_upstream or None,
            force=force or None,
        )
    show(answer, json, f"pushed {answer.get('branch')} to {answer.get('remote')} ({short(answer.get('commit'))})")


def parse_author(author: str | None) -> dict[str, str] | None:
    """`Name <email>` -> {"name", "email"}."""
    if author is None:
        return None
    match = re.fullmatch(r"\s*(.+?)\s*<([^<>]+)>\s*", author)
    if not match:
        raise UsageError('--author takes "Name <email>"')
    return {"name": match.group(1), "email": match.group(2)}


@git_app.command("commit")
def commit(
    sandbox: SandboxArg,
    message: Annotated[str, typer.Argument(help="The commit message.", show_default=False)],
    all_: Annotated[bool, typer.Option("--all", "-a", help="Stage everything first (git add -A).")] = False,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Commit even with nothing staged.")] = False,
    author: Annotated[str | None, typer.Option("--author", help='"Name <email>" (default: configured).')] = None,
    path: PathOption = DEFAULT_PATH,
    json: JsonFlag = False,
) -> None:
    """Commit staged changes (everything with --all)."""
    answer = get_sandbox(sandbox).git.commit(
        message, all=all_, path=path, author=parse_author(author), allow_empty=allow_empty or None
    )
    show(answer, json, f"committed {short(answer.get('commit'))}: {message.splitlines()[0] if message else ''}")


@git_app.command("checkout")
def checkout(
    sandbox: SandboxArg,
    branch: Annotated[str, typer.Argument(help="The branch.", show_default=False)],
    create: Annotated[bool, typer.Option("--create", "-b", help="Create the branch first.")] = False,
    path: PathOption = DEFAULT_PATH,
    json: JsonFlag = False,
) -> None:
    """Switch to a branch (create it with --create)."""
    answer = get_sandbox(sandbox).git.checkout(branch, create=create, path=path)
    show(answer, json, f"on {answer.get('branch')} ({short(answer.get('commit'))})")


@git_app.command("status")
def status(sandbox: SandboxArg, path: PathOption = DEFAULT_PATH, json: JsonFlag = False) -> None:
    """Show the branch and the changed files."""
    answer = get_sandbox(sandbox).git.status(path=path)
    if json:
        output.print_json(answer)
        return
    head = f"on {answer.get('branch') or '(detached)'} at {short(answer.get('commit'))}"
    if answer.get("upstream"):
        head += f", tracking {answer['upstream']} (ahead {answer.get('ahead', 0)}, behind {answer.get('behind', 0)})"
    output.line(head)
    if answer.get("clean"):
        output.line("nothing to commit, working tree clean")
        return
    sections = [
        ("staged", answer.get("staged") or [], "green"),
        ("unstaged", answer.get("unstaged") or [], "red"),
        ("untracked", answer.get("untracked") or [], "red"),
        ("conflicted", answer.get("conflicted") or [], "bold red"),
    ]
    for title, entries, style in sections:
        if not entries:
            continue
        output.line(f"{title}:")
        for entry in entries:
            if isinstance(entry, dict):
                code = str(entry.get("status", "?"))
                text = f"  {STATUS_WORDS.get(code, code) + ':':<12} {entry.get('path')}"
            else:
                text = f"  {entry}"
            output.out.print(Text(text, style=style))


@git_app.command("diff")
def diff(
    sandbox: SandboxArg,
    staged: Annotated[bool, typer.Option("--staged", help="Staged changes instead of unstaged ones.")] = False,
    file: Annotated[str | None, typer.Option("--file", help="Only this file.")] = None,
    path: PathOption = DEFAULT_PATH,
    json: JsonFlag = False,
) -> None:
    """Show the diff of the working tree (or of the staged changes)."""
    answer = get_sandbox(sandbox).git.diff(path=path, staged=staged, file=file)
    if json:
        output.print_json(answer)
        return
    text = answer.get("diff") or ""
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        for row in text.splitlines():
            style = "green" if row.startswith("+") else "red" if row.startswith("-") else ""
            style = "bold" if row.startswith(("+++", "---", "diff ")) else "cyan" if row.startswith("@@") else style
            output.out.print(Text(row, style=style))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if answer.get("truncated"):
        output.warn("the diff was truncated by the server")


@git_app.command("log")
def log(
    sandbox: SandboxArg,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many commits.")] = 20,
    path: PathOption = DEFAULT_PATH,
    json: JsonFlag = False,
) -> None:
    """Show recent commits."""
    answer = get_sandbox(sandbox).git.log(path=path, limit=limit)
    if json:
        output.print_json(answer)
        return
    for entry in answer.get("commits") or []:
        author = (entry.get("author") or {}).get("name", "")
        subject = (entry.get("message") or "").splitlines()[0] if entry.get("message") else ""
        output.line(f"{short(entry.get('sha'))[:10]}  {entry.get('date', '')}  {author}  {subject}")


hook_app = typer.Typer(
    help="Auto-pull webhooks: a push to a branch on GitHub, GitLab or Gitea pulls it into the sandbox.",
    no_args_is_help=True,
)
git_app.add_typer(hook_app, name="hook")


@hook_app.command("add")
def hook_add(
    sandbox: SandboxArg,
    branch: Annotated[
        str | None, typer.Option("--branch", "-b", help="The branch to track (default: the branch cloned).")
    ] = None,
    provider: Annotated[
        str, typer.Option("--provider", help="github, gitlab, gitea, or auto (told by each request).")
    ] = "auto",
    path: PathOption = DEFAULT_PATH,
    json: JsonFlag = False,
) -> None:
    """Create an auto-pull webhook; prints its URL and secret (shown this once)."""
    answer = get_sandbox(sandbox).git.add_hook(branch=branch, path=path, provider=provider)
    if json:
        output.print_json(answer)
        return
    output.line(f"hook {answer['id']}: pushes to {answer['branch']} pull into {answer['path']} (fast-forward only)")
    output.line(f"url:    {answer['url']}")
    output.line(f"secret: {answer['secret']}")
    output.warn("the secret is shown this once: give it to the git host's webhook settings now")


@hook_app.command("list")
def hook_list(sandbox: SandboxArg, json: JsonFlag = False) -> None:
    """List the sandbox's auto-pull webhooks with their last delivery."""
    hooks = get_sandbox(sandbox).git.hooks()
    if json:
        output.print_json(hooks)
        return
    rows = []
    for hook in hooks:
        last = (hook.get("deliveries") or [{}])[0]
        rows.append((hook["id"], hook["branch"], hook["path"], hook["provider"], last.get("status", "-"), hook["url"]))
    output.table(["ID", "BRANCH", "PATH", "PROVIDER", "LAST", "URL"], rows)


@hook_app.command("rm")
def hook_rm(
    sandbox: SandboxArg,
    hook: Annotated[str, typer.Argument(help="The hook's id (ghk_…).", show_default=False)],
) -> None:
    """Delete an auto-pull webhook (its URL stops working)."""
    get_sandbox(sandbox).git.remove_hook(hook)
    output.line(f"deleted {hook}")


def register(app: typer.Typer) -> None:
    app.add_typer(git_app, name="git", rich_help_panel="Git and Claude Code")
