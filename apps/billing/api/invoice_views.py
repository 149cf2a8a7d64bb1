"""Invoices and payment over the API: the organization's invoices (billing.read) and their PDFs,
a Checkout session for a payment method (billing.manage), and Stripe's webhook (no API auth:
Stripe's signature is the authentication)."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import BILLING_MANAGE, BILLING_READ
from vibebox import exceptions as errors
from vibebox.api.schema import error_responses

from .. import invoices, payments, pdf
from ..models import InvoiceStatus
from .invoice_serializers import (
    CheckoutSerializer,
    CheckoutSessionSerializer,
    InvoiceDetailSerializer,
    InvoiceSerializer,
    StripeWebhookAckSerializer,
)

READ = {"GET": [BILLING_READ]}
READ_HELP = "Needs billing.read (a key: the billing:read scope); another organization's invoice is a 404."


class InvoiceListView(GenericAPIView):
    required_scopes = READ
    serializer_class = InvoiceSerializer

    @extend_schema(
        operation_id="billing_invoices_list",
        parameters=[OpenApiParameter("status", enum=InvoiceStatus.values, description="Only invoices in this status.")],
        responses={200: InvoiceSerializer(many=True), **error_responses(400)},
        description=f"The organization's invoices, newest period first. {READ_HELP}",
    )
    def get(self, request):
        status = request.query_params.get("status")
        if status is not None and status not in InvoiceStatus.values:
            raise errors.ValidationFailed(
                f"status is one of {', '.join(InvoiceStatus.values)}.",
                details={"fields": {"status": [{"message": "unknown", "code": "invalid"}]}},
            )
        page = self.paginate_queryset(invoices.invoice_list(actor=actor_of(request), status=status))
        return self.get_paginated_response(InvoiceSerializer(page, many=True).data)


class InvoiceDetailView(APIView):
    required_scopes = READ

    @extend_schema(operation_id="billing_invoices_retrieve", responses=InvoiceDetailSerializer, description=READ_HELP)
    def get(self, request, invoice_id):
        invoice = invoices.invoice_get(actor=actor_of(request), id=invoice_id)
        invoice.ordered_lines = list(invoice.lines.order_by("position"))
        return Response(InvoiceDetailSerializer(invoice).data)


class InvoicePdfView(APIView):
    required_scopes = READ

    def perform_content_negotiation(self, request, force=False):
        # The answer is a PDF or an error in the JSON envelope, whatever Accept says.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        operation_id="billing_invoices_pdf",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
        description=f"The invoice as a PDF (rendered from templates/billing/invoice.html). {READ_HELP}",
    )
    def get(self, request, invoice_id):
        invoice = invoices.invoice_get(actor=actor_of(request), id=invoice_id)
        response = HttpResponse(pdf.invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{pdf.pdf_filename(invoice)}"'
        return response


class CheckoutView(APIView):
    required_scopes = {"POST": [BILLING_MANAGE]}

    @extend_schema(
        operation_id="billing_checkout",
        request=CheckoutSerializer,
        responses={201: CheckoutSessionSerializer, **error_responses(400, 404)},
        description="A Stripe Checkout session (setup mode: nothing is charged) where a billing manager "
        "gives the payment method invoices are charged to; send the browser to `url`. Needs billing.manage "
        "(a key: billing:manage). 404 payments_not_configured when this server takes no payments; "
        "502 payment_provider_unavailable when Stripe fails.",
    )
    def post(self, request):
        # A body that is not JSON is refused first (invalid_json, as on every endpoint); then who asks
        # and whether this server takes payments at all, before what the fields say.
        data = request.data
        actor = actor_of(request)
        payments.checkout_check(actor=actor)
        body = CheckoutSerializer(data=data)
        body.is_valid(raise_exception=True)
        session = payments.checkout_start_from(
            actor=actor, data=body.validated_data, origin=request.build_absolute_uri("/")
        )
        return Response(CheckoutSessionSerializer(session).data, status=201)


class StripeWebhookView(APIView):
    """Stripe posts its events here. Not for API keys or sessions: the Stripe-Signature header,
    checked against VIBEBOX_STRIPE_WEBHOOK_SECRET, is the authentication."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        operation_id="billing_stripe_webhook",
        auth=[],
        request={"application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                "Stripe-Signature", str, OpenApiParameter.HEADER, description="t=…,v1=… (Stripe signs every event)."
            )
        ],
        responses={200: StripeWebhookAckSerializer, **error_responses(400, 404)},
        description="Stripe's webhook endpoint (configure it in Stripe's dashboard; docs/operations.md). "
        "400 stripe_signature_invalid when the signature does not verify; 404 payments_not_configured when "
        "Stripe is off here. An event id handled before answers `duplicate: true` and changes nothing.",
    )
    def post(self, request):
        return Response(
            payments.stripe_event_handle(payload=request.body, signature=request.headers.get("Stripe-Signature"))
        )
