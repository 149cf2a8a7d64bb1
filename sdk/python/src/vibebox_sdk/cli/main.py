"""The `vibebox` command: wiring of the sub-commands and the one place errors become exit codes.

Exit codes: 0 ok, 1 error, 2 usage error, 3 not found, 4 authentication or permission; `exec`,
`run`, `exec-once`, `run-once` and `shell` exit with the command's own exit code.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Annotated, NoReturn

import typer

from .. import errors
from ..version import VERSION
from . import (
    admin,
    audit,
    billing,
    claudecmd,
    execution,
    gitcmd,
    invitations,
    marketplace,
    orgs,
    packages,
    preview,
    roles,
    sandboxes,
    sharing,
    shell,
    snapshots,
    transfer,
    watchcmd,
    webhooks,
)
from . import mcp as mcp_command
from .common import AUTH, ERROR, NOT_FOUND, PRODUCT, CliError
from .output import err

app = typer.Typer(
    name="vibebox",
    help=f"{PRODUCT} from the command line: sandboxes for AI agents, their files, git, commands and shells.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"vibebox {VERSION}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=show_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Sandboxes for AI agents from the command line. Set up with `vibebox init`; see docs/cli.md."""


sandboxes.register(app)
transfer.register(app)
execution.register(app)
shell.register(app)
packages.register(app)
gitcmd.register(app)
admin.register(app)
orgs.register(app)
roles.register(app)
invitations.register(app)
audit.register(app)
sharing.register(app)
snapshots.register(app)
claudecmd.register(app)
webhooks.register(app)
billing.register(app)
marketplace.register(app)
mcp_command.register(app)
preview.register(app)
watchcmd.register(app)


def exit_code(error: errors.VibeBoxError) -> int:
    """3 for anything not found, 4 for authentication and missing permissions, else 1."""
    if isinstance(error, errors.NotFoundError):
        return NOT_FOUND
    if isinstance(error, errors.QuotaExceededError) or error.code == "file_permission_denied":
        return ERROR  # refusals about resources inside the sandbox or quotas, not about the key
    if isinstance(error, errors.AuthenticationError | errors.PermissionDeniedError):
        return AUTH
    return ERROR


def describe(error: errors.VibeBoxError) -> str:
    text = f"error: {error.message} ({error.code})"
    fields = error.details.get("fields") if isinstance(error.details, dict) else None
    if isinstance(fields, dict):
        text += "".join(f"\n  {name}: {problem}" for name, problem in fields.items())
    if error.request_id and os.environ.get("VIBEBOX_DEBUG"):
        text += f"\n  request id: {error.request_id}"
    return text


def fail(message: str, code: int) -> NoReturn:
    err.print(message, markup=False, highlight=False, style="red" if code else None)
    sys.exit(code)


def command_app(argv: list[str]) -> typer.Typer:
    """The app with only the top-level command `argv` starts with: typer turns every registered
    command's signature into click parameters on each run (over 100 of them: a good part of the
    CLI's start), though one command runs. The whole app for anything else: top-level options
    (`--help`, `--version`), an unknown command (its error suggests the near ones), completion."""
    if not argv or any(name.endswith("_COMPLETE") for name in os.environ):
        return app
    name = argv[0]
    if argv == ["--version"]:
        commands, groups = [], []  # the eager option prints and exits before any command is looked at
    elif name.startswith("-"):
        return app
    else:
        commands = [c for c in app.registered_commands if (c.name or command_name(c.callback.__name__)) == name]
        groups = [g for g in app.registered_groups if g.name == name]
        if not commands and not groups:
            return app
    narrowed = copy.copy(app)
    narrowed.registered_commands, narrowed.registered_groups = commands, groups
    return narrowed


def command_name(function_name: str) -> str:
    return function_name.lower().replace("_", "-")  # as typer names a command after its function


def run(argv: list[str] | None = None) -> None:
    """The console script's entry point: runs the command, mapping SDK errors to exit codes."""
    try:
        args = sys.argv[1:] if argv is None else argv
        command_app(args)(args=args, prog_name="vibebox")
    except errors.VibeBoxError as error:
        fail(describe(error), exit_code(error))
    except CliError as error:
        fail(f"error: {error.message}", error.code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as error:  # local files: missing, unreadable, not a directory...
        message = f"{error.strerror or error}: {error.filename}" if error.filename else str(error)
        fail(f"error: {message}", ERROR)


if __name__ == "__main__":
    run()
