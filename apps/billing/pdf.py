"""An invoice as a PDF: templates/billing/invoice.html rendered by WeasyPrint (the only module
that imports it). WeasyPrint needs Pango (Debian: libpango-1.0-0, libpangoft2-1.0-0; installed
by scripts/host-setup.sh). The page fetches nothing: every resource it could name is refused, so
text in an invoice (an organization's name) can never make the renderer read a file or a URL."""

from django.conf import settings
from django.template.loader import render_to_string

from .models import Invoice

TEMPLATE = "billing/invoice.html"


def invoice_html(invoice: Invoice) -> str:
    org = invoice.org
    billing = getattr(org, "billing", None)
    return render_to_string(
        TEMPLATE,
        {
            "invoice": invoice,
            "lines": list(invoice.lines.order_by("position")),
            "org": org,
            "billing_email": getattr(billing, "billing_email", "") or "",
            "issuer": [part.strip() for part in settings.VIBEBOX_INVOICE_ISSUER.split("|") if part.strip()],
            "tax_percent": format((invoice.tax_rate * 100).normalize(), "f"),
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
