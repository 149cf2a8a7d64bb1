"""Invitations to an organization by email:
vibebox invitations list|create|resend|revoke [--org SLUG] and vibebox invitations accept TOKEN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .. import errors
from . import output
from .common import JsonFlag, client
from .orgs import OrgOption, RoleOption, org_slug, print_org

invitations_app = typer.Typer(
    help="Invitations to an organization by email (needs members.manage); accept one with `accept TOKEN`.",
    no_args_is_help=True,
)
InvitationArg = Annotated[str, typer.Argument(help="The invitation's id (inv_…) or email.", show_default=False)]

if TYPE_CHECKING:  # annotations only: the models are imported with the client
    from ..models import Invitation


def print_invitations(found: list[Invitation] | Invitation, json: bool) -> None:
    """Invitations as a table, or as JSON: an array for a list, the object for one invitation."""
    if json:
        output.print_json(found)
        return
    rows = found if isinstance(found, list) else [found]
    output.table(
        ["ID", "EMAIL", "ROLE", "INVITED BY", "SENT", "EXPIRES"],
        [
            (
                i.id,
                i.email,
                i.role,
                i.invited_by,
                output.ago(i.sent_at),
                "expired" if i.expired else output.ago(i.expires_at),
            )
            for i in rows
        ],
    )


def find_invitation(slug: str, ref: str) -> str:
    """An invitation's id from its id or its email (ids pass through: the server says if they exist)."""
    if "@" not in ref:
        return ref
    for invitation in client().orgs.invitations(slug).list():
        if invitation.email == ref.lower():
            return invitation.id
    raise errors.InvitationNotFoundError(f"no pending invitation for {ref} in {slug}.", status=404)


@invitations_app.command("list")
def invitations_list(org: OrgOption = None, json: JsonFlag = False) -> None:
    """List the pending invitations (expired ones too, until revoked or sent again)."""
    print_invitations(client().orgs.invitations(org_slug(org)).list(), json)


@invitations_app.command("create")
def invitations_create(
    email: Annotated[str, typer.Argument(help="The address to invite.", show_default=False)],
    role: RoleOption,
    org: OrgOption = None,
    json: JsonFlag = False,
) -> None:
    """Invite an email address with a role: the server emails it a link (an address invited already
    gets its invitation again, with this role)."""
    print_invitations(client().orgs.invitations(org_slug(org)).create(email, role=role), json)


@invitations_app.command("resend")
def invitations_resend(invitation: InvitationArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Send an invitation's email again, with a fresh expiry (the link stays the same)."""
    slug = org_slug(org)
    print_invitations(client().orgs.invitations(slug).resend(find_invitation(slug, invitation)), json)


@invitations_app.command("revoke")
def invitations_revoke(invitation: InvitationArg, org: OrgOption = None, json: JsonFlag = False) -> None:
    """Revoke an invitation: its link stops working."""
    slug = org_slug(org)
    found = find_invitation(slug, invitation)
    client().orgs.invitations(slug).revoke(found)
    if json:
        output.print_json({"id": found, "org": slug, "revoked": True})
    else:
        output.line(f"revoked {invitation}")


@invitations_app.command("accept")
def invitations_accept(
    token: Annotated[str, typer.Argument(help="The token from the link, or the whole link.", show_default=False)],
    json: JsonFlag = False,
) -> None:
    """Accept an invitation sent to your email: you join its organization with its role."""
    org = client().invitations.accept(token)
    print_org(org, json)
    if not json:
        output.note(f"to act in {org.slug} with a key, create one in it: vibebox keys create NAME --org {org.slug}")


def register(app: typer.Typer) -> None:
    app.add_typer(invitations_app, name="invitations", rich_help_panel="Setup and account")
