"""Webhooks: an organization's endpoints, and the deliveries of events to them (the outbox).

A Delivery row is written in the same transaction as the change that caused its event
(services.emit), so a crash or a dead Redis loses nothing: the sender (delivery.py) works from the
rows alone. Deliveries of one endpoint keep the order of its events (`seq`).
"""

from django.conf import settings
from django.db import models

from vibebox.ids import random_id


def new_webhook_id() -> str:
    return random_id("whk_", 16)


def new_delivery_id() -> str:
    return random_id("dlv_", 20)


def new_event_id() -> str:
    return random_id("evt_", 20)


class Webhook(models.Model):
    id = models.CharField(primary_key=True, max_length=24, default=new_webhook_id, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)  # event names, or ["*"]
    description = models.CharField(max_length=500, blank=True, default="")
    active = models.BooleanField(default=True)
    # {"sandboxId": "...", "template": "...", "metadata": {"key": "value"}}: all given must match.
    filter = models.JSONField(default=dict, blank=True)
    secret = models.TextField(editable=False)  # "whsec_…", encrypted (vibebox/crypto.py)
    # After a rotation the previous secret signs too, until previous_secret_expires_at.
    previous_secret = models.TextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    # The first failed attempt since the last success: failing for VIBEBOX_WEBHOOK_DISABLE_AFTER disables.
    first_failure_at = models.DateTimeField(null=True, blank=True)
    # The last event sequence number given to a delivery of this endpoint (services.emit).
    last_seq = models.BigIntegerField(default=0)
    # The sender working on this endpoint holds it until then (delivery.py): one sender per endpoint.
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "active"], name="webhooks_org_active")]

    def __str__(self):
        return f"{self.id} {self.url}"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        RETRYING = "retrying"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=32, default=new_delivery_id, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    # The event's id, the `webhook-id` header: the same on every attempt and redelivery.
    event_id = models.CharField(max_length=32, db_index=True)
    event = models.CharField(max_length=64)
    payload = models.JSONField()  # {"type", "timestamp", "data"}: the request body
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Order among the endpoint's events; null for the test event and redeliveries (sent at once,
    # outside the order).
    seq = models.BigIntegerField(null=True, blank=True)
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhooks_delivery_due"),
            models.Index(fields=["webhook", "seq"], name="webhooks_delivery_seq"),
            models.Index(fields=["webhook", "-created_at"], name="webhooks_delivery_recent"),
        ]

    def __str__(self):
        return f"{self.id} {self.event} → {self.webhook_id} ({self.status})"

    @property
    def open(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.RETRYING)


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")  # timeout, refused, ...
    request_headers = models.JSONField(default=dict)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True, default="")  # the first 4 KiB
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.delivery_id} at {self.at}: {self.status_code or self.error}"
