"""Running things: exec (streamed), run (a script file), exec-once / run-once (ephemeral)."""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import output
from .common import (
    ERROR,
    TIMED_OUT,
    EnvOption,
    JsonFlag,
    check_duration,
    client,
    get_sandbox,
    guess_language,
    parse_env,
    read_script,
)

SandboxArg = Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)]
TemplateArg = Annotated[str, typer.Argument(help="The template of the throwaway sandbox.", show_default=False)]
CwdOption = Annotated[str | None, typer.Option("--cwd", help="Working directory (default /workspace).")]
TimeoutOption = Annotated[
    str | None, typer.Option("--timeout", help="Kill it after this long: 30s, 5m (server default 60s).")
]
LanguageOption = Annotated[
    str | None,
    typer.Option("--language", "-l", help="javascript, typescript, python or shell (default: from the extension)."),
]

if TYPE_CHECKING:  # annotations only: the models are imported with the client
    from ..models import ExecutionResult


def exit_code(result: ExecutionResult) -> int:
    """The command's exit code; 124 when it timed out, 1 when it has none (killed by the engine)."""
    if result.timed_out:
        output.err.print(f"error: the command timed out after {result.duration} ms", markup=False)
        return TIMED_OUT
    if result.exit_code is None:
        return ERROR
    return result.exit_code


def write(stream: Any, text: str) -> None:
    if text:
        stream.write(text)
        stream.flush()


def finish(result: ExecutionResult, json: bool, echo: bool = True) -> None:
    """Prints a finished command's output (or the result as JSON) and exits with its exit code."""
    if json:
        output.print_json(result)
    elif echo:
        write(sys.stdout, result.stdout)
        write(sys.stderr, result.stderr)
        if result.truncated:
            output.warn("the output was truncated by the server")
    raise typer.Exit(exit_code(result))


def exec_command(
    sandbox: SandboxArg,
    command: Annotated[
        list[str],
        typer.Argument(help='The command, run by bash -lc: "npm test" (several words are joined).', show_default=False),
    ],
    cwd: CwdOption = None,
    timeout: TimeoutOption = None,
    env: EnvOption = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Run as this user (e.g. root).")] = None,
    stdin: Annotated[bool, typer.Option("--stdin", "-i", help="Send this program's stdin to the command.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the final result object instead of streaming.")] = False,
) -> None:
    """Run a command in a sandbox, streaming its output live; exits with the command's exit code."""
    check_duration(timeout, "--timeout")
    line = " ".join(command)
    box = get_sandbox(sandbox)
    data = sys.stdin.read() if stdin else None
    options: dict[str, Any] = {"cwd": cwd, "env": parse_env(env), "user": user, "timeout": timeout, "stdin": data}
    if json:
        finish(box.exec(line, **options), json=True)
    stream = box.exec(line, stream=True, **options)
    interrupts = 0

    def interrupt(*_: object) -> None:  # Ctrl-C reaches the command: INT first, then KILL
        nonlocal interrupts
        interrupts += 1
        stream.signal("INT" if interrupts == 1 else "KILL")

    # A handler, not KeyboardInterrupt: an exception raised inside the stream's queue could leave
    # its lock taken and the command's end never read.
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        for event in stream:
            if event.type == "stdout":
                write(sys.stdout, event.data)
            elif event.type == "stderr":
                write(sys.stderr, event.data)
    finally:
        signal.signal(signal.SIGINT, previous)
    finish(stream.wait(), json=False, echo=False)


def run_command(
    sandbox: SandboxArg,
    file: Annotated[str, typer.Argument(help="A local script: .js, .ts, .py, .sh...", show_default=False)],
    language: LanguageOption = None,
    cwd: CwdOption = None,
    timeout: TimeoutOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Run a local script file in a sandbox (language from its extension); exits with its exit code."""
    check_duration(timeout, "--timeout")
    code = read_script(file)
    box = get_sandbox(sandbox)
    with output.spinner(f"running {file}..."):
        result = box.run(
            code, language=language or guess_language(file), cwd=cwd, env=parse_env(env), timeout=timeout, check=False
        )
    finish(result, json)


def exec_once(
    template: TemplateArg,
    code: Annotated[str, typer.Argument(help="A command or code snippet.", show_default=False)],
    language: Annotated[
        str | None, typer.Option("--language", "-l", help="Language of the code (default: auto).")
    ] = None,
    timeout: TimeoutOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Run a command or snippet in a fresh ephemeral sandbox, destroyed afterwards."""
    check_duration(timeout, "--timeout")
    with output.spinner(f"running in a fresh {template} sandbox..."):
        result = client().run_once(template, code, language=language, timeout=timeout, check=False, env=parse_env(env))
    finish(result, json)


def run_once(
    template: TemplateArg,
    file: Annotated[str, typer.Argument(help="A local script: .js, .ts, .py, .sh...", show_default=False)],
    language: LanguageOption = None,
    timeout: TimeoutOption = None,
    env: EnvOption = None,
    json: JsonFlag = False,
) -> None:
    """Run a local script file in a fresh ephemeral sandbox, destroyed afterwards."""
    check_duration(timeout, "--timeout")
    code = read_script(file)
    with output.spinner(f"running {file} in a fresh {template} sandbox..."):
        result = client().run_once(
            template,
            code,
            language=language or guess_language(file),
            timeout=timeout,
            check=False,
            env=parse_env(env),
        )
    finish(result, json)


def register(app: typer.Typer) -> None:
    panel = "Commands"
    app.command("exec", rich_help_panel=panel)(exec_command)
    app.command("run", rich_help_panel=panel)(run_command)
    app.command("exec-once", rich_help_panel=panel)(exec_once)
    app.command("run-once", rich_help_panel=panel)(run_once)
