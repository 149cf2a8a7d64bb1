"""Sharing a sandbox with a member or a team of its organization:
vibebox share SANDBOX --user NAME | --team NAME --access read|use|manage,
vibebox grants SANDBOX and vibebox unshare SANDBOX GRANT."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from .. import errors
from . import output
from .common import JsonFlag, UsageError, get_sandbox
from .sandboxes import SandboxArg

if TYPE_CHECKING:  # annotations only: `vibebox --help` does not import the client (httpx, websockets)
    from ..models import Grant
    from ..sandbox import Sandbox


class Access(StrEnum):
    read = "read"
    use = "use"
    manage = "manage"


def print_grants(found: list[Grant] | Grant, json: bool) -> None:
    """Grants as a table, or as JSON: an array for a list, the object for one grant."""
    if json:
        output.print_json(found)
        return
    rows = found if isinstance(found, list) else [found]
    output.table(
        ["ID", "WHO", "ACCESS", "GRANTED BY", "CREATED"],
        [
            (g.id, f"user {g.user}" if g.user else f"team {g.team}", g.access, g.created_by, output.ago(g.created_at))
            for g in rows
        ],
    )


def share(
    sandbox: SandboxArg,
    access: Annotated[
        Access,
        typer.Option(
            "--access",
            help="read; use (also commands, files, git, terminals); manage (also lifecycle, "
            "environment, snapshots, grants).",
            show_default=False,
        ),
    ],
    user: Annotated[str | None, typer.Option("--user", help="A member's username or email.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="A team's name.")] = None,
    json: JsonFlag = False,
) -> None:
    """Share a sandbox with a member or a team of its organization (a second share changes the level)."""
    if (user is None) == (team is None):
        raise UsageError("name one member with --user, or one team with --team")
    print_grants(get_sandbox(sandbox).share(user=user, team=team, access=access.value), json)


def grants(sandbox: SandboxArg, json: JsonFlag = False) -> None:
    """List who a sandbox is shared with, oldest first."""
    print_grants(get_sandbox(sandbox).grants(), json)


def find_grant(box: Sandbox, ref: str) -> Grant:
    """A grant by id, or by the member's username or the team's name when one grant matches."""
    found = box.grants()
    for grant in found:
        if grant.id == ref:
            return grant
    matches = [g for g in found if ref in (g.user, g.team)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"{ref} is both a member's and a team's grant here: give the grant's id")
    raise errors.GrantNotFoundError(f"{box.name} has no grant {ref}.", status=404)


def unshare(
    sandbox: SandboxArg,
    grant: Annotated[
        str, typer.Argument(help="The grant's id (grt_…), or the member's or team's name.", show_default=False)
    ],
    json: JsonFlag = False,
) -> None:
    """Stop sharing a sandbox with a member or team (a member may give up their own grant)."""
    box = get_sandbox(sandbox)
    found = find_grant(box, grant)
    box.unshare(found)
    if json:
        output.print_json({"id": found.id, "sandbox": box.id, "user": found.user, "team": found.team, "revoked": True})
    else:
        who = f"user {found.user}" if found.user else f"team {found.team}"
        output.line(f"{box.name} is no longer shared with {who}")


def register(app: typer.Typer) -> None:
    panel = "Sandboxes"
    app.command("share", rich_help_panel=panel)(share)
    app.command("grants", rich_help_panel=panel)(grants)
    app.command("unshare", rich_help_panel=panel)(unshare)
