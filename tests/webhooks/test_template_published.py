"""template.published: a built-in template that is new or gets a new version is public news, sent
to every organization's endpoints that subscribe (each through its own filter); a sync that
changes nothing sends nothing."""

from pathlib import Path

import pytest

from apps.marketplace.catalog import TemplateSource
from apps.marketplace.services import template_upsert
from apps.webhooks import delivery as sender
from apps.webhooks.models import Delivery

pytestmark = pytest.mark.django_db


def _source(name: str, version: int) -> TemplateSource:
    spec = {"name": name, "displayName": name.title(), "version": version, "language": "python"}
    return TemplateSource(name=name, path=Path("/nonexistent"), spec=spec, image=f"vibebox/{name}:{version}-test")


def test_new_templates_and_versions_reach_every_subscribed_org(api_client, outsider_client, hook, receiver):
    ours = hook(events=["template.published"])
    theirs = hook(events=["*"], client=outsider_client)
    narrowed = hook(events=["template.published"], filter={"template": "other-template"})
    hook(events=["sandbox.created"])  # not subscribed

    template_upsert(source=_source("pub-test", 1))
    first = Delivery.objects.filter(event="template.published")
    assert sorted(d.webhook_id for d in first) == sorted([ours["id"], theirs["id"]])
    assert len({d.event_id for d in first}) == 1  # one event, two endpoints

    template_upsert(source=_source("pub-test", 1))  # every start syncs: unchanged, nothing sent
    assert Delivery.objects.filter(event="template.published").count() == 2

    template_upsert(source=_source("pub-test", 2))  # a new version is news again
    assert Delivery.objects.filter(event="template.published", webhook_id=ours["id"]).count() == 2
    assert not Delivery.objects.filter(webhook_id=narrowed["id"]).exists()

    assert sender.deliver_webhook(ours["id"]) == 2
    versions = [r["json"]["data"]["version"] for r in receiver.requests]
    assert versions == [1, 2] and all(r["verified"] for r in receiver.requests)
    data = receiver.requests[-1]["json"]["data"]
    assert data == api_client.get("/api/v1/templates/pub-test").json()  # as GET says


def test_a_template_filter_hears_only_its_template(hook):
    narrowed = hook(events=["template.published"], filter={"template": "pub-mine"})
    template_upsert(source=_source("pub-other", 1))
    template_upsert(source=_source("pub-mine", 1))
    [delivery] = Delivery.objects.filter(webhook_id=narrowed["id"])
    assert delivery.payload["data"]["name"] == "pub-mine"
