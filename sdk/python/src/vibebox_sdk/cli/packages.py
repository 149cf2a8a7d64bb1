"""Package managers: `vibebox install <sandbox> requests --pip`, `vibebox packages <sandbox> --npm`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..packages import MANAGERS
from . import output
from .common import CliError, JsonFlag, check_duration, get_sandbox
from .execution import finish, write

SandboxArg = Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)]
CwdOption = Annotated[str | None, typer.Option("--cwd", help="The project directory (default /workspace).")]
ManagerOption = Annotated[str | None, typer.Option("--manager", "-m", help=f"One of {', '.join(MANAGERS)}.")]
Pip = Annotated[bool, typer.Option("--pip", help="pip (the template's virtualenv).")]
Uv = Annotated[bool, typer.Option("--uv", help="uv pip (the template's virtualenv).")]
Npm = Annotated[bool, typer.Option("--npm", help="npm (package.json in the project).")]
Cargo = Annotated[bool, typer.Option("--cargo", help="cargo add (Cargo.toml in the project).")]
Gem = Annotated[bool, typer.Option("--gem", help="gem install.")]
Bundler = Annotated[bool, typer.Option("--bundler", help="bundle add (Gemfile in the project).")]
Go = Annotated[bool, typer.Option("--go", help="go get (go.mod in the project).")]
Maven = Annotated[bool, typer.Option("--maven", help="mvn dependency:get (the local repository).")]


def pick_manager(manager: str | None, flags: dict[str, bool]) -> str:
    chosen = [name for name, on in flags.items() if on] + ([manager] if manager else [])
    if len(chosen) != 1:
        flags_text = " ".join(f"--{name}" for name in flags)
        raise CliError(f"name one package manager: {flags_text} (or --manager NAME)", code=2)
    return chosen[0]


def install_command(
    sandbox: SandboxArg,
    packages: Annotated[
        list[str], typer.Argument(help="Package specs: requests==2.32.3, left-pad@1.3.0...", show_default=False)
    ],
    pip: Pip = False,
    uv: Uv = False,
    npm: Npm = False,
    cargo: Cargo = False,
    gem: Gem = False,
    bundler: Bundler = False,
    go: Go = False,
    maven: Maven = False,
    manager: ManagerOption = None,
    dev: Annotated[bool, typer.Option("--dev", "-D", help="A development dependency (npm, cargo, bundler).")] = False,
    cwd: CwdOption = None,
    timeout: Annotated[str | None, typer.Option("--timeout", help="Stop it after this long: 10m.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the final result object instead of streaming.")] = False,
) -> None:
    """Install packages into a sandbox's project with its package manager, streaming the output;
    exits with the install's exit code."""
    flags = {"pip": pip, "uv": uv, "npm": npm, "cargo": cargo, "gem": gem, "bundler": bundler, "go": go}
    chosen = pick_manager(manager, {**flags, "maven": maven})
    check_duration(timeout, "--timeout")
    box = get_sandbox(sandbox)
    process = box.packages.install(packages, manager=chosen, dev=dev, cwd=cwd, timeout=timeout, wait=False)
    output.note(f"installing with {chosen} (execution {process.execution_id})")
    stream = process.attach()
    if not json:
        for event in stream:
            if event.type == "stdout":
                write(sys.stdout, event.data)
            elif event.type == "stderr":
                write(sys.stderr, event.data)
    finish(stream.wait(), json=json, echo=False)


def packages_command(
    sandbox: SandboxArg,
    pip: Pip = False,
    uv: Uv = False,
    npm: Npm = False,
    cargo: Cargo = False,
    gem: Gem = False,
    bundler: Bundler = False,
    go: Go = False,
    maven: Maven = False,
    manager: ManagerOption = None,
    cwd: CwdOption = None,
    json: JsonFlag = False,
) -> None:
    """List the packages a sandbox's package manager says are installed."""
    flags = {"pip": pip, "uv": uv, "npm": npm, "cargo": cargo, "gem": gem, "bundler": bundler, "go": go}
    chosen = pick_manager(manager, {**flags, "maven": maven})
    found = get_sandbox(sandbox).packages.list(manager=chosen, cwd=cwd)
    if json:
        output.print_json(found)
        return
    output.table(["NAME", "VERSION"], [(package.name, package.version) for package in found])


def register(app: typer.Typer) -> None:
    panel = "Commands"
    app.command("install", rich_help_panel=panel)(install_command)
    app.command("packages", rich_help_panel=panel)(packages_command)
