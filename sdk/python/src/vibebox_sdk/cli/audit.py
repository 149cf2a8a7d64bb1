"""An organization's audit log: vibebox audit [filters] (a table, newest first) and
vibebox audit export --format jsonl|csv [-o FILE] [filters]. Both need the audit.read permission
and, for a key, the audit:read scope."""

from __future__ import annotations

import datetime
import json as jsonlib
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import durations
from . import output
from .common import JsonFlag, UsageError, client
from .orgs import OrgOption, org_slug

audit_app = typer.Typer(
    help="The organization's audit log, newest first (needs audit.read; a key needs the audit:read scope).",
    invoke_without_command=True,
)

ActorOption = Annotated[str | None, typer.Option("--actor", help="A username, or an API key's id.")]
ActionOption = Annotated[
    str | None, typer.Option("--action", help="An action (sandbox.created), or a family (sandbox.).")
]
TargetOption = Annotated[str | None, typer.Option("--target", help="A target's id, or type:id (sandbox:sbx_…).")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="From this time: ISO 8601 with a zone, or how long ago (30m, 2h, 7d)."),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="Before this time: ISO 8601 with a zone, or how long ago (30m, 2h, 7d)."),
]
CHANGES_WIDTH = 80

if TYPE_CHECKING:  # annotations only: the models are imported with the client
    from ..models import AuditEntry


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def when(value: str | None, option: str) -> str | None:
    """An ISO time as given, or `2h` (a duration) as the time that long ago, in UTC."""
    if value is None:
        return None
    try:
        ago = durations.seconds(value)
    except ValueError:
        if "T" not in value and " " not in value:
            raise UsageError(f"{option}: give an ISO 8601 time with a zone, or how long ago (2h)") from None
        return value
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=ago)
    return moment.isoformat(timespec="seconds")


def filters(actor: str | None, action: str | None, target: str | None, since: str | None, until: str | None) -> dict:
    return {
        "actor": actor,
        "action": action,
        "target": target,
        "since": when(since, "--since"),
        "until": when(until, "--until"),
    }


def moment(timestamp: str | None) -> str:
    """`2026-12-03T10:24:41.123456Z` -> `2026-12-03 10:24:41` (UTC)."""
    if not timestamp:
        return "-"
    try:
        parsed = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    return parsed.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def changes_text(changes: dict[str, Any]) -> str:
    text = jsonlib.dumps(changes, ensure_ascii=False, separators=(",", ":")) if changes else "-"
    return text if len(text) <= CHANGES_WIDTH else text[: CHANGES_WIDTH - 1] + "…"


def print_entries(found: list[AuditEntry], json: bool) -> None:
    if json:
        output.print_json(found)
        return
    output.table(
        ["SEQ", "TIME (UTC)", "ACTOR", "SOURCE", "ACTION", "TARGET", "CHANGES"],
        [
            (
                e.seq,
                moment(e.created_at),
                e.actor + (f" ({e.key_id})" if e.key_id else ""),
                e.source,
                e.action,
                f"{e.target_type}:{e.target_id}" if e.target_type else e.target_id or "-",
                changes_text(e.changes),
            )
            for e in found
        ],
    )


@audit_app.callback()
def audit(
    ctx: typer.Context,
    org: OrgOption = None,
    actor: ActorOption = None,
    action: ActionOption = None,
    target: TargetOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many entries.")] = 50,
    json: JsonFlag = False,
) -> None:
    """Show the organization's audit log, newest first; `vibebox audit export` writes it all out."""
    if ctx.invoked_subcommand:
        return
    slug = org_slug(org)
    params = filters(actor, action, target, since, until)
    log = client().orgs.audit_log(slug, limit=limit, page_size=min(limit, 500), **params)
    print_entries(list(log), json)


@audit_app.command("export")
def export(
    format: Annotated[Format, typer.Option("--format", "-f", help="JSON lines or CSV.")] = Format.jsonl,
    out: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).", show_default=False)
    ] = None,
    org: OrgOption = None,
    actor: ActorOption = None,
    action: ActionOption = None,
    target: TargetOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Export the whole filtered audit log, oldest first, each entry with its hashes."""
    slug = org_slug(org)
    params = filters(actor, action, target, since, until)
    destination = out if out is not None else sys.stdout.buffer
    written = client().orgs.export_audit_log(slug, destination, format=format.value, **params)
    if out is not None:
        output.note(f"wrote {written} bytes to {out}")
    else:
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit", rich_help_panel="Setup and account")
