"""The organization's webhooks (docs/webhooks.md): vibebox webhooks
create|ls|show|update|rm|rotate-secret|test|deliveries|delivery|redeliver. Everything needs the
webhooks.manage permission and, for a key, the webhooks:manage scope."""

from __future__ import annotations

import json as jsonlib
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from . import output
from .common import PRODUCT, JsonFlag, UsageError, client

app = typer.Typer(
    help=f"Webhooks: HTTPS endpoints {PRODUCT} POSTs signed events to (needs webhooks.manage; a key: webhooks:manage).",
    no_args_is_help=True,
)
WebhookArg = Annotated[str, typer.Argument(help="The webhook's id (whk_…).", show_default=False)]
DeliveryArg = Annotated[str, typer.Argument(help="The delivery's id (dlv_…).", show_default=False)]
EventsOption = Annotated[
    str | None,
    typer.Option("--events", help="Comma-separated event names (sandbox.created,execution.failed), or '*' for all."),
]
DescriptionOption = Annotated[str | None, typer.Option("--description", help="What the endpoint is for.")]
SandboxFilter = Annotated[str | None, typer.Option("--filter-sandbox", help="Only events of this sandbox (sbx_…).")]
TemplateFilter = Annotated[
    str | None, typer.Option("--filter-template", help="Only events of sandboxes of this template.")
]
MetadataFilter = Annotated[
    list[str] | None,
    typer.Option("--filter-metadata", help="Only sandboxes with this metadata, K=V (repeatable).", metavar="K=V"),
]
SECRET_NOTE = "store the secret now: it is not shown again (`vibebox webhooks rotate-secret` makes a new one)"  # noqa: S105  (a message, not a secret)
STATUS_STYLES = {"succeeded": "green", "pending": "cyan", "retrying": "yellow", "failed": "red"}
BODY_WIDTH = 200

if TYPE_CHECKING:  # annotations only: the models are imported with the client
    from ..models import Delivery, Webhook


class Status(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    retrying = "retrying"
    failed = "failed"


def event_list(value: str | None) -> list[str] | None:
    """`--events a,b` -> ["a", "b"]; None when not given."""
    if value is None:
        return None
    events = [e.strip() for e in value.split(",") if e.strip()]
    if not events:
        raise UsageError("--events: name at least one event, or '*'")
    return events


def filter_of(sandbox: str | None, template: str | None, metadata: list[str] | None) -> dict[str, Any] | None:
    """The filter the --filter-* options make; None when none is given."""
    if sandbox is None and template is None and not metadata:
        return None
    found: dict[str, Any] = {}
    if sandbox:
        found["sandboxId"] = sandbox
    if template:
        found["template"] = template
    pairs = {}
    for pair in metadata or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--filter-metadata takes KEY=VALUE, got {pair!r}")
        pairs[name] = value
    if pairs:
        found["metadata"] = pairs
    return found


def state(hook: Webhook) -> Text:
    if hook.active:
        return Text("active", style="green")
    return Text(f"disabled: {hook.disabled_reason}" if hook.disabled_reason else "inactive", style="yellow")


def filter_text(value: dict[str, Any]) -> str:
    parts = [f"sandbox={value['sandboxId']}"] if value.get("sandboxId") else []
    parts += [f"template={value['template']}"] if value.get("template") else []
    parts += [f"{k}={v}" for k, v in (value.get("metadata") or {}).items()]
    return " ".join(parts) or "-"


def print_webhook(hook: Webhook, *, secret: bool = False) -> None:
    """The webhook as `key  value` lines; with `secret`, its secret last (create, rotate-secret)."""
    output.fields(
        [
            ("id", hook.id),
            ("url", hook.url),
            ("events", ", ".join(hook.events)),
            ("state", state(hook)),
            ("description", hook.description),
            ("filter", filter_text(hook.filter)),
            ("created", f"{hook.created_at} ({output.ago(hook.created_at)}) by {hook.created_by or '-'}"),
            ("updated", hook.updated_at),
            (
                "previous secret",
                f"signs until {hook.previous_secret_expires_at}" if hook.previous_secret_expires_at else None,
            ),
            *([("secret", hook.secret or "")] if secret else []),
        ]
    )


def print_secret(hook: Webhook, json: bool, what: str) -> None:
    """A webhook that carries its secret: the JSON with it, or the webhook and the secret, then the note."""
    if json:
        output.print_json(hook)
    else:
        print_webhook(hook, secret=True)
    output.note(f"{what} {hook.id}; {SECRET_NOTE}", style="bold yellow")


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def print_deliveries(found: list[Delivery] | Delivery, json: bool) -> None:
    """Deliveries as a table, or as JSON: an array for a list, the object for one."""
    if json:
        output.print_json(found)
        return
    rows = found if isinstance(found, list) else [found]
    output.table(
        ["ID", "EVENT", "STATUS", "ATTEMPTS", "RESPONSE", "DURATION", "CREATED", "EVENT ID"],
        [
            (
                d.id,
                d.event,
                status_text(d.status),
                d.attempts,
                d.response_status,
                f"{d.duration_ms} ms" if d.duration_ms is not None else None,
                output.ago(d.created_at),
                d.event_id,
            )
            for d in rows
        ],
    )


@app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="https://host[:port]/path the events are POSTed to.", show_default=False)],
    events: EventsOption = None,
    description: DescriptionOption = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it turned off (nothing is sent).")] = False,
    sandbox: SandboxFilter = None,
    template: TemplateFilter = None,
    metadata: MetadataFilter = None,
    json: JsonFlag = False,
) -> None:
    """Create a webhook; prints its signing secret, shown this once only."""
    names = event_list(events)
    if names is None:
        raise UsageError("name the events with --events (comma-separated, or '*' for all)")
    hook = client().webhooks.create(
        url,
        names,
        description=description,
        active=not inactive,
        filter=filter_of(sandbox, template, metadata),
    )
    print_secret(hook, json, "created")


@app.command("ls")
def list_(
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many (default: all).", min=1)] = None,
    json: JsonFlag = False,
) -> None:
    """List the organization's webhooks, newest first."""
    found = client().webhooks.list(limit=limit)
    if json:
        output.print_json(found)
        return
    output.table(
        ["ID", "URL", "EVENTS", "STATE", "DESCRIPTION", "CREATED"],
        [(h.id, h.url, ",".join(h.events), state(h), h.description or "-", output.ago(h.created_at)) for h in found],
    )


@app.command("show")
def show(webhook: WebhookArg, json: JsonFlag = False) -> None:
    """Show a webhook (never its secret)."""
    hook = client().webhooks.get(webhook)
    if json:
        output.print_json(hook)
    else:
        print_webhook(hook)


@app.command("update")
def update(
    webhook: WebhookArg,
    url: Annotated[str | None, typer.Option("--url", help="A new URL.")] = None,
    events: EventsOption = None,
    description: DescriptionOption = None,
    active: Annotated[
        bool | None,
        typer.Option(
            "--active/--inactive", help="Turn it on (also one the server disabled) or off.", show_default=False
        ),
    ] = None,
    sandbox: SandboxFilter = None,
    template: TemplateFilter = None,
    metadata: MetadataFilter = None,
    no_filter: Annotated[bool, typer.Option("--no-filter", help="Remove its filter: every event it names.")] = False,
    json: JsonFlag = False,
) -> None:
    """Change a webhook's URL, events, description, state or filter (the --filter-* options replace the filter)."""
    new_filter = filter_of(sandbox, template, metadata)
    if no_filter and new_filter is not None:
        raise UsageError("give --no-filter or --filter-* options, not both")
    if no_filter:
        new_filter = {}
    names = event_list(events)
    if url is None and names is None and description is None and active is None and new_filter is None:
        raise UsageError("give something to change: --url, --events, --description, --active/--inactive, --filter-*")
    hook = client().webhooks.update(
        webhook, url=url, events=names, description=description, active=active, filter=new_filter
    )
    if json:
        output.print_json(hook)
    else:
        print_webhook(hook)


@app.command("rm")
def remove(
    webhooks: Annotated[list[str], typer.Argument(help="Webhook ids (whk_…).", show_default=False)],
    json: JsonFlag = False,
) -> None:
    """Delete webhooks with their delivery history: nothing more is sent to them."""
    vb = client()
    for webhook in webhooks:
        vb.webhooks.delete(webhook)
        if json:
            output.print_json_line({"id": webhook, "deleted": True})
        else:
            output.line(f"deleted {webhook}")


@app.command("rotate-secret")
def rotate_secret(webhook: WebhookArg, json: JsonFlag = False) -> None:
    """Make a new signing secret, shown this once only; the previous one keeps signing beside it for 24 hours."""
    hook = client().webhooks.rotate_secret(webhook)
    print_secret(hook, json, "rotated the secret of")


@app.command("test")
def test(webhook: WebhookArg, json: JsonFlag = False) -> None:
    """Send a webhook.test event to the endpoint at once (also while it is inactive)."""
    delivery = client().webhooks.test(webhook)
    print_deliveries(delivery, json)
    if not json:
        output.note(f"queued; see it with `vibebox webhooks delivery {webhook} {delivery.id}`")


@app.command("deliveries")
def deliveries(
    webhook: WebhookArg,
    status: Annotated[Status | None, typer.Option("--status", help="Only deliveries in this status.")] = None,
    event: Annotated[str | None, typer.Option("--event", help="Only deliveries of this event.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.", min=1)] = 50,
    json: JsonFlag = False,
) -> None:
    """List a webhook's deliveries, newest first."""
    found = client().webhooks.deliveries(webhook, status=status.value if status else None, event=event, limit=limit)
    print_deliveries(found, json)


@app.command("delivery")
def delivery(webhook: WebhookArg, delivery_id: DeliveryArg, json: JsonFlag = False) -> None:
    """Show a delivery: its payload and every attempt (status, error, headers, the answer's start)."""
    found = client().webhooks.delivery(webhook, delivery_id)
    if json:
        output.print_json(found)
        return
    output.fields(
        [
            ("id", found.id),
            ("event", found.event),
            ("event id", found.event_id),
            ("status", status_text(found.status)),
            ("attempts", found.attempts),
            ("next attempt", found.next_attempt_at),
            ("created", found.created_at),
            ("finished", found.finished_at),
            ("redelivery of", found.redelivery_of),
            ("payload", jsonlib.dumps(found.payload) if found.payload is not None else None),
        ]
    )
    if found.attempt_log:
        output.line()
        output.table(
            ["AT", "STATUS", "ERROR", "DURATION", "RESPONSE BODY"],
            [
                (
                    a.at,
                    a.status_code,
                    a.error or "-",
                    f"{a.duration_ms} ms" if a.duration_ms is not None else None,
                    (a.response_body[:BODY_WIDTH] + ("…" if len(a.response_body) > BODY_WIDTH else "")) or "-",
                )
                for a in found.attempt_log
            ],
        )


@app.command("redeliver")
def redeliver(webhook: WebhookArg, delivery_id: DeliveryArg, json: JsonFlag = False) -> None:
    """Send a delivery's event again, at once, as a new delivery (same event id, same body)."""
    found = client().webhooks.redeliver(webhook, delivery_id)
    print_deliveries(found, json)
    if not json:
        output.note(f"queued {found.id}, a redelivery of {delivery_id}")


# The names `keys`, `roles` and `teams` use, kept out of the help.
app.command("list", hidden=True)(list_)
app.command("delete", hidden=True)(remove)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="webhooks", rich_help_panel="Setup and account")
