"""Marketplace events: a private template's publish reaches only its organization's endpoints, a
public one's every subscribed organization's; a rejection (template.rejected) only the submitter's,
with the submission as data."""

import pytest
from django.contrib.auth import get_user_model

from apps.marketplace import services
from apps.orgs.actors import actor_in
from apps.orgs.services import personal_org_ensure
from apps.webhooks import delivery as sender
from apps.webhooks.models import Delivery
from tests.marketplace.conftest import DOCKERFILE, pipeline_to_passed, yaml_for

pytestmark = pytest.mark.django_db


def _actor(user):
    return actor_in(user=user, org=personal_org_ensure(user=user))


def _submit(user, name, visibility):
    submission = services.submission_create(
        _actor(user), dockerfile=DOCKERFILE, template_yaml=yaml_for(name), visibility=visibility
    )
    pipeline_to_passed(submission.pk, image=f"vibebox/{name}:1")
    return submission


@pytest.fixture(autouse=True)
def marketplace_dir(settings, tmp_path):
    settings.VIBEBOX_MARKETPLACE_DIR = tmp_path / "marketplace"


def test_private_publish_is_the_orgs_public_is_everyones(owner, outsider_client, hook, receiver, api_client):
    ours = hook(events=["template.published"])
    narrowed = hook(events=["template.published"], filter={"template": "mk-private"})
    theirs = hook(events=["*"], client=outsider_client)

    _submit(owner, "mk-private", "private")
    private = Delivery.objects.filter(event="template.published")
    assert sorted(d.webhook_id for d in private) == sorted([ours["id"], narrowed["id"]])

    staff = get_user_model().objects.create_user(username="mk-staff", is_staff=True)
    public = _submit(owner, "mk-public", "public")
    assert Delivery.objects.filter(event="template.published").count() == 2  # awaiting review: nothing yet
    services.submission_review(_actor(staff), public.pk, approve=True, reason="")
    latest = Delivery.objects.filter(event="template.published").exclude(webhook_id=narrowed["id"])
    assert sorted(d.webhook_id for d in latest.filter(payload__data__name="mk-public")) == sorted(
        [ours["id"], theirs["id"]]
    )
    assert sender.deliver_webhook(ours["id"]) == 2
    data = receiver.requests[-1]["json"]["data"]
    assert data["name"] == "mk-public" and data["latestVersion"] == "1.0.0" and data["visibility"] == "public"
    assert receiver.requests[-1]["verified"]


def test_a_rejection_reaches_the_submitters_org(owner, outsider_client, hook, receiver, api_client):
    ours = hook(events=["template.rejected"])
    other = hook(events=["template.rejected"], filter={"template": "something-else"})
    theirs = hook(events=["*"], client=outsider_client)
    staff = get_user_model().objects.create_user(username="mk-staff2", is_staff=True)
    submission = _submit(owner, "mk-reject", "public")
    services.submission_review(_actor(staff), submission.pk, approve=False, reason="license unclear")
    [delivery] = Delivery.objects.filter(event="template.rejected")
    assert delivery.webhook_id == ours["id"] and delivery.webhook_id not in (other["id"], theirs["id"])
    assert sender.deliver_webhook(ours["id"]) == 1
    data = receiver.requests[-1]["json"]["data"]
    assert data["id"] == submission.pk and data["state"] == "rejected" and data["message"] == "license unclear"
    assert data == {
        k: v for k, v in api_client.get(f"/api/v1/marketplace/submissions/{submission.pk}").json().items() if k in data
    }
