"""An organization's custom roles and teams:
vibebox roles list|show|create|update|delete [--org SLUG] and
vibebox teams list|show|create|update|delete|add-member|remove-member [--org SLUG]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from . import output
from .common import JsonFlag, UsageError, client
from .orgs import OrgOption, org_slug

roles_app = typer.Typer(
    help="The roles of an organization: the built-in ones and its custom ones (changes need members.manage).",
    no_args_is_help=True,
)
teams_app = typer.Typer(
    help="The teams of an organization: their members inherit the team's role (changes need members.manage).",
    no_args_is_help=True,
)
RoleArg = Annotated[str, typer.Argument(help="The role's name.", show_default=False)]
TeamArg = Annotated[str, typer.Argument(help="The team's name.", show_default=False)]
UserArg = Annotated[str, typer.Argument(help="A member's username.", show_default=False)]
DescriptionOption = Annotated[
    str | None, typer.Option("--description", help="What the role is for (at most 200 characters).")
]

if TYPE_CHECKING:  # annotations only: the models are imported with the client
    from ..models import Role, Team


def permission_list(value: str | None) -> list[str] | None:
    """`--permissions a,b` -> ["a", "b"]; "" -> [] (no permissions); None when not given."""
    if value is None:
        return None
    return [p.strip() for p in value.split(",") if p.strip()]


def print_roles(found: list[Role] | Role, json: bool) -> None:
    """Roles as a table, or as JSON: an array for a list, the object for one role."""
    if json:
        output.print_json(found)
        return
    rows = found if isinstance(found, list) else [found]
    output.table(
        ["NAME", "BUILT-IN", "DESCRIPTION", "PERMISSIONS"],
        [(r.name, "yes" if r.built_in else "no", r.description or "-", ", ".join(r.permissions) or "-") for r in rows],
    )


def print_teams(found: list[Team] | Team, json: bool) -> None:
    """Teams as a table, or as JSON: an array for a list, the object for one team."""
    if json:
        output.print_json(found)
        return
    rows = found if isinstance(found, list) else [found]
    output.table(
        ["NAME", "ROLE", "MEMBERS", "CREATED"],
        [(t.name, t.role or "-", ", ".join(t.members) or "-", output.ago(t.created_at)) for t in rows],
    )


# Roles


@roles_app.command("list")
def roles_list(org: OrgOption = None, json: JsonFlag = False) -> None:
    """List the organization's roles: the built-in ones, then its custom ones."""
    print_roles(client().orgs.roles(org_slug(org)).list(), json)


@roles_app.command("show")
def roles_show(name: RoleArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Show a custom role and its permissions."""
    print_roles(client().orgs.roles(org_slug(org)).get(name), json)


@roles_app.command("create")
def roles_create(
    name: Annotated[str, typer.Argument(help="1-50 of a-z 0-9 _ -, not a built-in role's.", show_default=False)],
    permissions: Annotated[
        str,
        typer.Option("--permissions", help="Comma-separated: sandboxes.read,sandboxes.create,...", show_default=False),
    ],
    description: DescriptionOption = None,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Create a custom role (needs members.manage and every permission it grants)."""
    roles = client().orgs.roles(org_slug(org))
    print_roles(roles.create(name, permissions=permission_list(permissions) or [], description=description), json)


@roles_app.command("update")
def roles_update(
    name: RoleArg,
    permissions: Annotated[
        str | None, typer.Option("--permissions", help='Its new permissions, comma-separated ("" for none).')
    ] = None,
    description: DescriptionOption = None,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Change a custom role's permissions (for every holder at once) or its description."""
    if permissions is None and description is None:
        raise UsageError("give --permissions or --description")
    roles = client().orgs.roles(org_slug(org))
    print_roles(roles.update(name, permissions=permission_list(permissions), description=description), json)


@roles_app.command("delete")
def roles_delete(name: RoleArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Delete a custom role (refused while a member or team holds it)."""
    slug = org_slug(org)
    client().orgs.roles(slug).delete(name)
    if json:
        output.print_json({"org": slug, "name": name, "deleted": True})
    else:
        output.line(f"deleted role {name} of {slug}")


# Teams


@teams_app.command("list")
def teams_list(org: OrgOption = None, json: JsonFlag = False) -> None:
    """List the organization's teams, their roles and members."""
    print_teams(client().orgs.teams(org_slug(org)).list(), json)


@teams_app.command("show")
def teams_show(name: TeamArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Show a team, its role and members."""
    print_teams(client().orgs.teams(org_slug(org)).get(name), json)


@teams_app.command("create")
def teams_create(
    name: Annotated[str, typer.Argument(help="1-50 of a-z 0-9 _ -.", show_default=False)],
    role: Annotated[
        str | None, typer.Option("--role", help="The role its members inherit (default: none).", show_default=False)
    ] = None,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Create a team (needs members.manage, and every permission of its role)."""
    print_teams(client().orgs.teams(org_slug(org)).create(name, role=role), json)


@teams_app.command("update")
def teams_update(
    name: TeamArg,
    new_name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Another role for its members.")] = None,
    no_role: Annotated[bool, typer.Option("--no-role", help="Take the team's role away.")] = False,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Rename a team (--name), or change (--role) or take away (--no-role) the role its members inherit."""
    if role is not None and no_role:
        raise UsageError("give --role or --no-role, not both")
    if new_name is None and role is None and not no_role:
        raise UsageError("give --name, --role or --no-role")
    teams = client().orgs.teams(org_slug(org))
    print_teams(teams.update(name, name=new_name, role="" if no_role else role), json)


@teams_app.command("delete")
def teams_delete(name: TeamArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Delete a team (its members keep their own roles)."""
    slug = org_slug(org)
    client().orgs.teams(slug).delete(name)
    if json:
        output.print_json({"org": slug, "name": name, "deleted": True})
    else:
        output.line(f"deleted team {name} of {slug}")


@teams_app.command("add-member")
def teams_add_member(team: TeamArg, user: UserArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Add a member of the organization to a team; prints the team."""
    print_teams(client().orgs.teams(org_slug(org)).add_member(team, user), json)


@teams_app.command("remove-member")
def teams_remove_member(team: TeamArg, user: UserArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Take a member out of a team."""
    slug = org_slug(org)
    client().orgs.teams(slug).remove_member(team, user)
    if json:
        output.print_json({"org": slug, "team": team, "username": user, "removed": True})
    else:
        output.line(f"removed {user} from team {team} of {slug}")


def register(app: typer.Typer) -> None:
    panel = "Setup and account"
    app.add_typer(roles_app, name="roles", rich_help_panel=panel)
    app.add_typer(teams_app, name="teams", rich_help_panel=panel)
