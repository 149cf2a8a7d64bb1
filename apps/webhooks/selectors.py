"""Reads for webhooks, scoped to the actor's organization: another organization's webhook or
delivery is a 404; inside yours, reading them needs webhooks.manage (else 403 naming it)."""

from django.db.models import OuterRef, QuerySet, Subquery

from apps.orgs.actors import Actor
from vibebox import exceptions as errors

from .models import Delivery, Webhook


def webhook_list(*, actor: Actor) -> QuerySet[Webhook]:
    actor.require("webhooks.manage")
    return Webhook.objects.filter(org=actor.org).select_related("created_by")


def webhook_get(*, actor: Actor, id: str) -> Webhook:
    webhook = Webhook.objects.filter(pk=id, org=actor.org).select_related("created_by").first()
    if webhook is None:
        raise errors.WebhookNotFound(details={"webhook": id[:64]})
    actor.require("webhooks.manage")
    return webhook


def delivery_list(*, webhook: Webhook, status: str | None = None, event: str | None = None) -> QuerySet[Delivery]:
    """Newest first."""
    deliveries = Delivery.objects.filter(webhook=webhook)
    if status:
        deliveries = deliveries.filter(status=status)
    if event:
        deliveries = deliveries.filter(event=event)
    return deliveries.order_by("-created_at", "-id")


def delivery_get(*, webhook: Webhook, id: str) -> Delivery:
    delivery = Delivery.objects.filter(pk=id, webhook=webhook).select_related("webhook").first()
    if delivery is None:
        raise errors.DeliveryNotFound(details={"delivery": id[:64]})
    return delivery


def delivery_latest(*, webhooks) -> dict[str, Delivery]:
    """Each of `webhooks`' newest delivery, by webhook id (those with none are left out): two
    queries for a whole list of endpoints (the dashboard's list shows each one's last status)."""
    newest = Delivery.objects.filter(webhook=OuterRef("pk")).order_by("-created_at", "-id").values("id")[:1]
    ids = (
        Webhook.objects.filter(pk__in=[webhook.pk for webhook in webhooks])
        .annotate(newest=Subquery(newest))
        .values_list("newest", flat=True)
    )
    return {delivery.webhook_id: delivery for delivery in Delivery.objects.filter(pk__in=[i for i in ids if i])}
