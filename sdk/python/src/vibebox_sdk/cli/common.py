"""Shared pieces of the CLI: exit codes, the client, argument parsing helpers."""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from .. import config, durations

if TYPE_CHECKING:  # imported when a command makes its client: `vibebox --help` stays quick (no httpx)
    from ..client import VibeBox
    from ..sandbox import Sandbox

OK = 0
ERROR = 1
USAGE = 2
NOT_FOUND = 3
AUTH = 4
TIMED_OUT = 124  # a command that reached its timeout (as timeout(1) does)

# What the CLI calls the product in its banners, help and prompts: a white-labelled installation
# sets VIBEBOX_BRAND_NAME for its users as the server does (docs/cli.md).
PRODUCT = os.environ.get("VIBEBOX_BRAND_NAME", "").strip() or "VibeBox"

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
EnvOption = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="An environment variable for this command, K=V (repeatable).", metavar="K=V"),
]


class CliError(Exception):
    """An error the CLI reports itself: `error: <message>` on stderr, then exit `code`."""

    def __init__(self, message: str, code: int = ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class UsageError(CliError):
    """A command used wrongly (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


@functools.cache
def client() -> VibeBox:
    """The client for this invocation: `VIBEBOX_API_URL`/`VIBEBOX_API_KEY`, else the config file."""
    from ..client import VibeBox

    return VibeBox()


def settings() -> dict[str, str]:
    """The config file's settings (template, timeout...)."""
    return config.load_config()


def get_sandbox(ref: str) -> Sandbox:
    """A sandbox by name or id; SandboxNotFoundError (exit 3) when there is none."""
    return client().get(ref)


def parse_env(pairs: list[str] | None) -> dict[str, str] | None:
    """`["A=1", "B=x=y"]` -> {"A": "1", "B": "x=y"}; None when empty."""
    if not pairs:
        return None
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--env takes NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def check_duration(value: str | None, option: str) -> str | None:
    """Checks a duration such as `30s`, `15m`, `2h` locally, for a usage error before any request."""
    if value is None:
        return None
    try:
        durations.seconds(value)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from error
    return value


def split_target(target: str) -> tuple[str, str | None]:
    """`my-app:dist` -> ("my-app", "dist"); `my-app` -> ("my-app", None). Names never hold a colon."""
    name, sep, remote = target.partition(":")
    if not name:
        raise UsageError(f"expected <sandbox>[:<path>], got {target!r}")
    return name, (remote or None) if sep else None


def stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def guess_language(filename: str) -> str:
    """The language to run a script file in, from its extension (default: shell)."""
    extension = os.path.splitext(filename)[1].lower()
    return {
        ".js": "javascript",
        ".cjs": "javascript",
        ".mjs": "javascript",
        ".ts": "typescript",
        ".py": "python",
        ".sh": "shell",
        ".bash": "shell",
        ".go": "go",
        ".rs": "rust",
        ".rb": "ruby",
        ".java": "java",
    }.get(extension, "shell")


def read_script(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError as error:
        raise CliError(f"no such file: {path}") from error
    except UnicodeDecodeError as error:
        raise CliError(f"{path} is not a UTF-8 text file") from error
