"""Organization commands: vibebox orgs list|create|show|rename|delete and
vibebox members list|add|set-role|remove [--org SLUG]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .. import errors
from . import output
from .common import JsonFlag, UsageError, client
from .sandboxes import confirm

orgs_app = typer.Typer(
    help="Your organizations (changes need the orgs:manage scope). A key sees only the one it acts in.",
    no_args_is_help=True,
)
members_app = typer.Typer(
    help="The members of an organization (default: the one your key acts in).", no_args_is_help=True
)
SlugArg = Annotated[str, typer.Argument(help="The organization's slug.", show_default=False)]
OrgOption = Annotated[
    str | None,
    typer.Option("--org", help="The organization's slug (default: the one your key acts in).", show_default=False),
]
RoleOption = Annotated[
    str, typer.Option("--role", help="owner, admin, developer, viewer, billing or a custom role.", show_default=False)
]
MemberArg = Annotated[str, typer.Argument(help="The member's username, email or id.", show_default=False)]

if TYPE_CHECKING:  # annotations only: the models are imported with the client
    from ..models import Member, Organization


def print_orgs(found: list[Organization], json: bool) -> None:
    if json:
        output.print_json(found)
        return
    output.table(
        ["SLUG", "NAME", "ROLE", "PERSONAL", "CREATED"],
        [(o.slug, o.name, o.role, "yes" if o.personal else "no", output.ago(o.created_at)) for o in found],
    )


def print_org(org: Organization, json: bool) -> None:
    if json:
        output.print_json(org)
        return
    output.fields(
        [
            ("slug", org.slug),
            ("name", org.name),
            ("id", org.id),
            ("personal", "yes" if org.personal else "no"),
            ("your role", org.role),
            ("permissions", ", ".join(org.permissions)),
            ("registry mirrors", ", ".join(f"{k}={v}" for k, v in sorted(org.registry_mirrors.items())) or None),
            ("created", f"{org.created_at} ({output.ago(org.created_at)})" if org.created_at else None),
        ]
    )


def print_members(found: list[Member] | Member, json: bool) -> None:
    """Members as a table, or as JSON: an array for a list, the object for one member."""
    if json:
        output.print_json(found)
        return
    rows = found if isinstance(found, list) else [found]
    output.table(
        ["ID", "USERNAME", "EMAIL", "ROLE", "JOINED"],
        [(m.id, m.username, m.email, m.role, output.ago(m.created_at)) for m in rows],
    )


@orgs_app.command("list")
def orgs_list(json: JsonFlag = False) -> None:
    """List your organizations and your role in each (a key lists the one it acts in)."""
    print_orgs(client().orgs.list(), json)


@orgs_app.command("create")
def orgs_create(
    name: Annotated[str, typer.Argument(help="The organization's name.", show_default=False)],
    slug: Annotated[
        str | None,
        typer.Option("--slug", help="Its slug: lowercase letters, digits, hyphens (default: from the name)."),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Create an organization; you are its owner."""
    org = client().orgs.create(name, slug=slug)
    print_org(org, json)
    output.note(f"to manage {org.slug} with a key, create one in it: vibebox keys create NAME --org {org.slug}")


@orgs_app.command("show")
def orgs_show(slug: SlugArg, json: JsonFlag = False) -> None:
    """Show an organization, with your role and permissions in it."""
    print_org(client().orgs.get(slug), json)


@orgs_app.command("rename")
def orgs_rename(
    slug: SlugArg,
    name: Annotated[str | None, typer.Argument(help="The new name.")] = None,
    new_slug: Annotated[str | None, typer.Option("--slug", help="A new slug.")] = None,
    json: JsonFlag = False,
) -> None:
    """Rename an organization, or change its slug with --slug (needs the org.manage permission)."""
    if name is None and new_slug is None:
        raise UsageError("give a new name, or a new slug with --slug")
    print_org(client().orgs.update(slug, name=name, slug=new_slug), json)


@orgs_app.command("mirror")
def orgs_mirror(
    slug: SlugArg,
    manager: Annotated[str, typer.Argument(help="pip, npm, cargo, gem, go or maven.", show_default=False)],
    url: Annotated[str | None, typer.Argument(help="The mirror's URL (omit with --remove).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Go back to the public registry.")] = False,
    json: JsonFlag = False,
) -> None:
    """Set the package registry mirror installs use in this organization's sandboxes (org.manage)."""
    if (url is None) != remove:
        raise UsageError("give a URL, or --remove")
    print_org(client().orgs.update(slug, registry_mirrors={manager: url}), json)


@orgs_app.command("delete")
def orgs_delete(
    slug: SlugArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json: JsonFlag = False,
) -> None:
    """Delete an organization with its keys (needs org.delete; refused while it has sandboxes or snapshots)."""
    confirm(f"Delete the organization {slug} and its keys?", yes)
    client().orgs.delete(slug)
    if json:
        output.print_json({"slug": slug, "deleted": True})
    else:
        output.line(f"deleted {slug}")


def org_slug(org: str | None) -> str:
    """--org, else the organization the key acts in (the only one a key lists)."""
    if org:
        return org
    found = client().orgs.list()
    if len(found) != 1:
        raise UsageError("name the organization with --org")
    return found[0].slug


def find_member(slug: str, ref: str) -> Member:
    """A member by username, email or id; MemberNotFoundError (exit 3) when none matches."""
    for member in client().orgs.members(slug).list():
        if ref in (member.username, member.email, str(member.id)):
            return member
    raise errors.MemberNotFoundError(f"{ref} is not a member of {slug}.", status=404)


@members_app.command("list")
def members_list(org: OrgOption = None, json: JsonFlag = False) -> None:
    """List an organization's members and their roles."""
    print_members(client().orgs.members(org_slug(org)).list(), json)


@members_app.command("add")
def members_add(
    user: Annotated[str, typer.Argument(help="An existing user's username or email.", show_default=False)],
    role: RoleOption,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Add a user to an organization with a role (needs members.manage)."""
    print_members(client().orgs.members(org_slug(org)).add(user, role=role), json)


@members_app.command("set-role")
def members_set_role(
    member: MemberArg,
    role: Annotated[str, typer.Argument(help="The new role.", show_default=False)],
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Change a member's role (needs members.manage; the last owner stays an owner)."""
    slug = org_slug(org)
    print_members(client().orgs.members(slug).update(find_member(slug, member).id, role=role), json)


@members_app.command("remove")
def members_remove(member: MemberArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Remove a member (their keys in the organization stop working); anyone may remove themselves."""
    slug = org_slug(org)
    found = find_member(slug, member)
    client().orgs.members(slug).remove(found.id)
    if json:
        output.print_json({"id": found.id, "username": found.username, "org": slug, "removed": True})
    else:
        output.line(f"removed {found.username} from {slug}")


def register(app: typer.Typer) -> None:
    panel = "Setup and account"
    app.add_typer(orgs_app, name="orgs", rich_help_panel=panel)
    app.add_typer(members_app, name="members", rich_help_panel=panel)
