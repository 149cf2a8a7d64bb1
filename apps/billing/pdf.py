"""An invoice as a PDF: templates/billing/invoice.html rendered by WeasyPrint (the only module
that imports it). WeasyPrint needs Pango (Debian: libpango-1.0-0, libpangoft2-1.0-0; installed
by scripts/host-setup.sh). The page fetches nothing: every resource it could name is refused, so
text in an invoice (an organization's name) can never make the renderer read a file or a URL."""

from decimal import Decimal

from django.conf import settings
from django.template.loader import render_to_string

from .models import Invoice

TEMPLATE = "billing/invoice.html"


def plain(value: Decimal, places: int) -> str:
    """A Decimal rounded to at most `places` decimals, trailing zeros dropped, never in E notation."""
    text = format(value.quantize(Decimal(1).scaleb(-places)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def invoice_html(invoice: Invoice) -> str:
    org = invoice.org
    billing = getattr(org, "billing", None)
    return render_to_string(
        TEMPLATE,
        {
            "invoice": invoice,
            "lines": [
                {"line": line, "quantity": plain(line.quantity, 4), "unit_price": plain(line.unit_price, 6)}
                for line in invoice.lines.order_by("position")
            ],
            "org": org,
            "billing_email": getattr(billing, "billing_email", "") or "",
            "issuer": [part.strip() for part in settings.VIBEBOX_INVOICE_ISSUER.split("|") if part.strip()],
            "tax_percent": plain(invoice.tax_rate * 100, 2),
        },
    )


def invoice_pdf(invoice: Invoice) -> bytes:
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    class FetchNothing(URLFetcher):
        def fetch(self, url, headers=None):
            raise ValueError(f"invoices load no resources ({url[:80]})")

    return HTML(string=invoice_html(invoice), url_fetcher=FetchNothing()).write_pdf()


def pdf_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf"
