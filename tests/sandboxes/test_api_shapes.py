"""Hand-written renderings (a benchmarked fast path) answer exactly what their declared DRF fields
would: the fields stay the one definition of the shape (OpenAPI document, docs)."""

import datetime as dt

from django.utils import timezone
from rest_framework import serializers

from apps.marketplace.models import Template
from apps.sandboxes.api.serializers import SandboxSerializer
from apps.sandboxes.models import Sandbox


def _declared(serializer_class, instance) -> dict:
    """What DRF renders from the declared fields, bypassing the hand-written to_representation."""
    return serializers.Serializer.to_representation(serializer_class(), instance)


def test_the_sandbox_rendering_equals_its_declared_fields(owner):
    template = Template.objects.create(name="shape", display_name="Shape", image="vibebox/shape:1", user="sandbox")
    now = timezone.now()
    bare = Sandbox.objects.create(owner=owner, template=template, name="bare", image="x", cpu=0.5, memory=2**29)
    full = Sandbox.objects.create(
        owner=owner,
        template=template,
        name="full",
        image="x",
        cpu=2,
        memory=3 * 2**30,
        disk=10**9 + 7,
        status="paused",
        status_reason="idle for 5 minutes",
        ephemeral=True,
        timeout_seconds=3600,
        expires_at=now + dt.timedelta(hours=1),
        metadata={"team": "ml", "empty": ""},
        warm=True,
        auto_pause_seconds=300,
        auto_resume=True,
        pause_stops_timeout=True,
        paused_at=now,
        last_activity_at=now - dt.timedelta(microseconds=1),
        started_at=now.replace(microsecond=0),
        stopped_at=now.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),
        destroyed_at=now,
    )
    for sandbox in Sandbox.objects.filter(pk__in=[bare.pk, full.pk]).prefetch_related("template"):
        rendered = SandboxSerializer(sandbox).data
        assert rendered == _declared(SandboxSerializer, sandbox)
        assert list(rendered) == list(SandboxSerializer().fields)  # same keys, same order
    assert SandboxSerializer(full).data["stoppedAt"].endswith("Z")
