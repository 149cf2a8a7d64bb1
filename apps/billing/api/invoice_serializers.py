from rest_framework import serializers

from vibebox.api.serializers import StrictSerializer

from ..models import InvoiceStatus

MONEY_HELP = "A decimal string in the invoice's currency, rounded to cents."


def _money(help_text: str = MONEY_HELP) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=12, decimal_places=2, help_text=help_text)


class InvoiceLineSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    description = serializers.CharField()
    resource = serializers.CharField(help_text="What is priced (cpu, memory, …); empty for the plan's fee.")
    plan = serializers.CharField(help_text="The plan whose price applies (its slug).")
    quantity = serializers.DecimalField(max_digits=24, decimal_places=6, help_text="In `unit`s.")
    unit = serializers.CharField()
    unitPrice = serializers.DecimalField(max_digits=12, decimal_places=6, source="unit_price")
    amount = _money()


class InvoiceSerializer(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField(help_text="VB-YYYY-NNNNNN: consecutive within a year, without gaps.")
    periodStart = serializers.DateTimeField(source="period_start")
    periodEnd = serializers.DateTimeField(source="period_end", help_text="Excluded: the next month's start.")
    currency = serializers.CharField()
    subtotal = _money("The sum of the lines' amounts.")
    taxRate = serializers.DecimalField(
        max_digits=5, decimal_places=4, source="tax_rate", help_text="A fraction: 0.1900 is 19 %."
    )
    tax = _money("subtotal * taxRate, rounded to cents (half up).")
    total = _money("subtotal + tax.")
    status = serializers.ChoiceField(choices=InvoiceStatus.choices)
    issuedAt = serializers.DateTimeField(source="issued_at")
    paidAt = serializers.DateTimeField(source="paid_at", allow_null=True)
    pdfUrl = serializers.SerializerMethodField(help_text="The PDF (GET, same authentication).")

    def get_pdfUrl(self, invoice) -> str:
        return f"/api/v1/billing/invoices/{invoice.pk}.pdf"


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, source="ordered_lines")


class CheckoutSerializer(StrictSerializer):
    successUrl = serializers.URLField(
        required=False, max_length=2000, help_text="Where Stripe sends the browser afterwards (default: /billing/)."
    )
    cancelUrl = serializers.URLField(
        required=False, max_length=2000, help_text="Where Stripe sends the browser if cancelled (default: /billing/)."
    )


class CheckoutSessionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The Stripe Checkout session's id (cs_…).")
    url = serializers.CharField(help_text="Send the browser here to give a payment method.")


class StripeWebhookAckSerializer(serializers.Serializer):
    received = serializers.BooleanField()
    duplicate = serializers.BooleanField(help_text="The event was handled before: nothing was done again.")
