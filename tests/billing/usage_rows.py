"""Helpers of billing's cost and API tests (not a conftest: other parts of billing have theirs):
usage rows written directly, as the meter's rollup writes them, on sandbox rows with no container
behind them. Test modules declare the fixtures from these (`fixtures()`)."""

from datetime import UTC, datetime
from decimal import Decimal

from apps.billing.models import UsageRecord
from apps.marketplace.models import Template
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Sandbox
from tests.conftest import sandbox_row


def template_row() -> Template:
    return Template.objects.create(name="billed", display_name="Billed", image="vibebox/billed:1", user="sandbox")


def org_of(user):
    return personal_org_ensure(user=user)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def usage(sandbox, hour: str, **amounts) -> UsageRecord:
    """A UsageRecord of `sandbox` for `hour` ("2026-11-03T14:00"); amounts by field."""
    fields = {name: Decimal(str(value)) if not isinstance(value, int) else value for name, value in amounts.items()}
    return UsageRecord.objects.create(
        org=sandbox.org, sandbox=sandbox, template=sandbox.template.name, hour=at(hour), **fields
    )


def sandbox_maker(owner, template):
    """make(**fields) -> a sandbox row of `owner`, created at the start of 2026 (so that usage
    rows written for 2026 fall in its life)."""

    def make(**fields):
        fields.setdefault("name", f"b{make.count}")
        make.count += 1
        sandbox = sandbox_row(owner, template, **fields)
        Sandbox.objects.filter(pk=sandbox.pk).update(created_at=at("2026-01-01T00:00"))
        sandbox.refresh_from_db()
        return sandbox

    make.count = 0
    return make
