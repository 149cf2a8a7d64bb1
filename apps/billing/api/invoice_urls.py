from django.urls import path

from . import invoice_views as views

urlpatterns = [
    path("billing/invoices", views.InvoiceListView.as_view(), name="billing-invoices"),
    path("billing/invoices/<str:invoice_id>.pdf", views.InvoicePdfView.as_view(), name="billing-invoice-pdf"),
    path("billing/invoices/<str:invoice_id>", views.InvoiceDetailView.as_view(), name="billing-invoice"),
    path("billing/checkout", views.CheckoutView.as_view(), name="billing-checkout"),
    path("billing/stripe/webhook", views.StripeWebhookView.as_view(), name="billing-stripe-webhook"),
]
