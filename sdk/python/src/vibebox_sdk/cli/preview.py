"""Preview commands: `vibebox ports <sandbox>` and `vibebox open <sandbox> <port>` (docs/cli.md)."""

from __future__ import annotations

import webbrowser
from typing import Annotated

import typer

from . import output
from .common import JsonFlag, UsageError, check_duration, get_sandbox

SandboxArg = Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)]


def _yes(value: bool) -> str:
    return "yes" if value else "-"


def ports(sandbox: SandboxArg, json: JsonFlag = False) -> None:
    """List the ports a server listens on in the sandbox and those its template declares, with
    their preview URLs (open one with a token: `vibebox open <sandbox> <port>`)."""
    found = get_sandbox(sandbox).ports()
    if json:
        output.print_json({"ports": found})
        return
    rows = [
        (p.port, _yes(p.listening), _yes(p.declared), "public" if p.public else "private", p.description, p.url)
        for p in found
    ]
    output.table(["PORT", "LISTENING", "DECLARED", "ACCESS", "DESCRIPTION", "URL"], rows)


def open_port(
    sandbox: SandboxArg,
    port: Annotated[int, typer.Argument(help="The port (1-65535).", show_default=False)],
    print_only: Annotated[bool, typer.Option("--print", help="Print the URL; do not open a browser.")] = False,
    expires_in: Annotated[
        str, typer.Option("--expires-in", help="How long the link works: 30m, 1h, 7d (at most 7d).")
    ] = "1h",
    path_form: Annotated[
        bool, typer.Option("--path", help="The path form (/preview/<id>/<port>/) instead of the host form.")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Open a sandbox's port in the browser through a signed, expiring preview link (printed too).

    vibebox open my-dev 3000            # opens http://3000-sbx_….preview.localhost:8000/?vibebox_token=…
    vibebox open my-dev 3000 --print    # only prints it
    """
    if not 1 <= port <= 65535:
        raise UsageError(f"port must be 1-65535, got {port}")
    check_duration(expires_in, "--expires-in")
    link = get_sandbox(sandbox).preview_url(port, expires_in=expires_in, form="path" if path_form else "host")
    if json:
        output.print_json(link)
    else:
        output.line(link.url)
    if not print_only and not json and not webbrowser.open(link.url):
        output.note("no browser could be opened here: open the URL above yourself")


def register(root: typer.Typer) -> None:
    panel = "Sandboxes"
    root.command("ports", rich_help_panel=panel)(ports)
    root.command("open", rich_help_panel=panel)(open_port)
