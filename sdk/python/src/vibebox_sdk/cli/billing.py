"""`vibebox usage`: what the organization used and what it costs (docs/billing.md), for a window
(default: this month so far), grouped by resource, sandbox, template or day; `vibebox invoices`:
the organization's invoices, and `vibebox invoices download ID` its PDF. Needs billing.read and,
for a key, the billing:read scope."""

from __future__ import annotations

import sys
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import typer

from . import output
from .common import JsonFlag, client


class By(StrEnum):
    resource = "resource"
    sandbox = "sandbox"
    template = "template"
    day = "day"


def money(value: Any, currency: str) -> str:
    return f"{value:.2f} {currency}" if value >= Decimal("0.005") or value == 0 else f"{value:.6f} {currency}"


def usage(
    by: Annotated[By, typer.Option("--by", help="Group by resource, sandbox, template or day.")] = By.resource,
    start: Annotated[
        str | None, typer.Option("--from", help="Start: ISO 8601 with a zone, or a date (default: the month's start).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End (exclusive): as --from (default: now).")] = None,
    json: JsonFlag = False,
) -> None:
    """Show what the organization used and what it costs: this month so far, or --from/--to."""
    vb = client()
    costs = vb.billing.costs(start=start, end=end, group_by=by.value)
    if json:
        output.print_json(costs)
        return
    currency = costs["currency"]
    output.note(f"{costs['from']} to {costs['to']}, by {by.value}")
    if by is By.resource:
        used = vb.billing.usage(start=start, end=end, group_by="resource")
        quantities = {item["resource"]: item for item in used["items"]}
        amounts = {item["resource"]: item["amount"] for item in costs["items"]}
        rows = [
            (
                resource,
                f"{item['quantity']:.4f} {item['unit']}",
                money(amounts.get(resource, 0), currency),
            )
            for resource, item in quantities.items()
        ]
        output.table(["RESOURCE", "USED", "COST"], rows)
    else:
        header = {By.sandbox: "SANDBOX", By.template: "TEMPLATE", By.day: "DAY"}[by]
        rows = [
            (group["key"], group["label"], money(group["amount"], currency))
            if by is By.sandbox
            else (group["key"], money(group["amount"], currency))
            for group in costs["groups"]
        ]
        output.table([header, "NAME", "COST"] if by is By.sandbox else [header, "COST"], rows)
    output.line(f"plan fee  {money(costs['fee'], currency)}")
    output.line(f"total     {money(costs['total'], currency)}")


invoices_app = typer.Typer(
    help="The organization's invoices, newest period first (needs billing.read; a key: billing:read).",
    invoke_without_command=True,
)


class InvoiceStatus(StrEnum):
    open = "open"
    paid = "paid"
    failed = "failed"
    void = "void"


@invoices_app.callback()
def invoices(
    ctx: typer.Context,
    status: Annotated[InvoiceStatus | None, typer.Option("--status", help="Only invoices in this status.")] = None,
    json: JsonFlag = False,
) -> None:
    """List the organization's invoices (`vibebox invoices download ID` saves one's PDF)."""
    if ctx.invoked_subcommand:
        return
    found = client().billing.invoices(status=status.value if status else None)
    if json:
        output.print_json(found)
        return
    rows = [
        (
            invoice["id"],
            invoice["number"],
            f"{invoice['period_start'][:10]} to {invoice['period_end'][:10]}",
            money(invoice["total"], invoice["currency"]),
            output.status_text(invoice["status"]),
        )
        for invoice in found
    ]
    output.table(["ID", "NUMBER", "PERIOD", "TOTAL", "STATUS"], rows)


@invoices_app.command("download")
def invoices_download(
    invoice: Annotated[str, typer.Argument(help="The invoice's id (inv_…).", show_default=False)],
    out: Annotated[
        str | None, typer.Option("-o", "--output", help="Where to write the PDF (default: NUMBER.pdf; - for stdout).")
    ] = None,
) -> None:
    """Save an invoice's PDF."""
    vb = client()
    if out == "-":
        sys.stdout.buffer.write(vb.billing.invoice_pdf(invoice))
        sys.stdout.buffer.flush()
        return
    path = out or f"{vb.billing.invoice(invoice)['number']}.pdf"
    written = vb.billing.invoice_pdf(invoice, file=path)
    output.note(f"{path}: {written} bytes")


def register(root: typer.Typer) -> None:
    root.command("usage", rich_help_panel="Setup and account")(usage)
    root.add_typer(invoices_app, name="invoices", rich_help_panel="Setup and account")
