"""The `vibebox` command starts without importing what only requests need (issue 29: `vibebox create`
to a prompt in under a second from a warm pool; docs/benchmarks.md times it). Checked by what a fresh
interpreter has in sys.modules, not by a clock; and the package's names still all import.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# What only a request, a stream, a file watch or the async client needs.
HEAVY = (
    "httpx",
    "httpcore",
    "websockets",
    "asyncio",
    "watchfiles",
    "pydantic",
    "vibebox_sdk.client",
    "vibebox_sdk.transport",
    "vibebox_sdk.calls",
    "vibebox_sdk.sandbox",
    "vibebox_sdk.streams",
    "vibebox_sdk.aio",
    "vibebox_sdk.models",
)

PROBE = """
import json, sys
{body}
print(json.dumps({{"loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""

RUN_CLI = """
from vibebox_sdk.cli.main import run
try:
    run(sys.argv[1:])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
"""


def probe(body: str, *argv: str, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "XDG_CONFIG_HOME": str(tmp_path),  # no config file: nothing of the user's is read
        "VIBEBOX_API_URL": "http://127.0.0.1:9",  # never reached: these commands make no request
        "VIBEBOX_API_KEY": "vb_test_unused",
        "NO_COLOR": "1",
    }
    code = PROBE.format(body=body, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_the_cli_starts_without_the_client(argv, tmp_path):
    assert probe(RUN_CLI, *argv, tmp_path=tmp_path) == {"loaded": []}


def test_a_command_that_makes_no_request_imports_no_client(tmp_path):
    # Typer itself imports pydantic to convert a command's parameters (typer >= 0.2x): not ours to avoid.
    found = probe(RUN_CLI, "config", "--help", tmp_path=tmp_path)
    assert [m for m in found["loaded"] if m != "pydantic"] == []


def test_importing_the_package_imports_no_client(tmp_path):
    assert probe("import vibebox_sdk", tmp_path=tmp_path) == {"loaded": []}


def test_a_name_imports_its_module_on_first_use(tmp_path):
    found = probe("from vibebox_sdk import VibeBox, SandboxNotFoundError", tmp_path=tmp_path)
    assert "vibebox_sdk.client" in found["loaded"] and "httpx" in found["loaded"]
    assert "vibebox_sdk.aio" not in found["loaded"]  # the sync client does not need the async one


def test_every_public_name_resolves():
    import vibebox_sdk
    from vibebox_sdk import aio, client, errors, models

    assert vibebox_sdk.VibeBox is client.VibeBox
    assert vibebox_sdk.AsyncVibeBox is aio.AsyncVibeBox
    assert vibebox_sdk.SandboxNotFoundError is errors.SandboxNotFoundError
    assert vibebox_sdk.SandboxInfo is models.SandboxInfo
    for name in vibebox_sdk.__all__:
        assert getattr(vibebox_sdk, name) is not None, name
    assert set(vibebox_sdk.__all__) <= set(dir(vibebox_sdk))
    # The three lists of the same names (__all__, the lazy map, the type checkers' imports) agree,
    # and every error class the SDK raises is among them.
    assert set(vibebox_sdk.__all__) == set(vibebox_sdk._SOURCES) | {"__version__"}
    raised = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.VibeBoxError)
    }
    assert raised <= set(vibebox_sdk.__all__), raised - set(vibebox_sdk.__all__)
    source = (Path(vibebox_sdk.__file__)).read_text()
    checked = source[source.index("if TYPE_CHECKING:") : source.index("_SOURCES")]
    assert all(re.search(rf"\b{name}\b", checked) for name in vibebox_sdk._SOURCES)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        vibebox_sdk.Nope  # noqa: B018


def test_a_star_import_gets_every_public_name(tmp_path):
    body = "from vibebox_sdk import *\nassert VibeBox.__name__ == 'VibeBox' and AsyncVibeBox and __version__"
    assert "vibebox_sdk.aio" in probe(body, tmp_path=tmp_path)["loaded"]


def test_a_command_runs_in_an_app_of_that_command_alone():
    from vibebox_sdk.cli.main import app, command_app

    narrowed = command_app(["create", "python-3.13", "x"])
    assert [c.name for c in narrowed.registered_commands] == ["create"] and narrowed.registered_groups == []
    orgs = command_app(["orgs", "list"])
    assert orgs.registered_commands == [] and [g.name for g in orgs.registered_groups] == ["orgs"]
    assert [c.callback.__name__ for c in command_app(["ls"]).registered_commands] == ["ls"]  # named after its function
    version = command_app(["--version"])  # prints and exits: no command is needed
    assert version.registered_commands == [] and version.registered_groups == []
    for whole in ([], ["--help"], ["--version", "ls"], ["no-such-command"]):
        assert command_app(whole) is app  # top-level options and unknown commands: the whole app
    assert len(app.registered_commands) > 20  # the narrowing copied the app, never changed it


@pytest.mark.parametrize("argv", [["create", "--help"], ["orgs", "list", "--help"], ["no-such-command"], ["--version"]])
def test_help_and_errors_are_those_of_the_whole_app(argv, tmp_path):
    """The narrowed app's help and usage errors read as the whole app's do."""
    code = (
        "import sys, typer\nfrom vibebox_sdk.cli.main import app, command_app\n"
        "whole = sys.argv[1] == 'whole'\nargs = sys.argv[2:]\n"
        "try:\n    (app if whole else command_app(args))(args=args, prog_name='vibebox')\n"
        "except SystemExit as exit:\n    print('exit', exit.code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CONFIG_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "100"}
    answers = [
        subprocess.run([sys.executable, "-c", code, which, *argv], env=env, capture_output=True, text=True, timeout=120)
        for which in ("whole", "narrowed")
    ]
    assert answers[0].stdout == answers[1].stdout and answers[0].stderr == answers[1].stderr
    shown = answers[1].stdout + answers[1].stderr
    assert "Usage: vibebox" in shown if argv != ["--version"] else shown.startswith("vibebox ")
