"""The billing page in a real browser (Playwright driving Debian's Chromium against a live server):
a running sandbox's cost so far, its rate and the month to date change on the open page when the
beat task (apps/billing/live.py) publishes, with no reload.

The usage is seeded as hourly UsageRecord rows (what the rollup writes) on a plan with a known
price, and the task is run the way beat's worker would, in another process (`manage.py shell`):
its event reaches the page through Redis, the ASGI server and the activity WebSocket.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.dashboard.conftest import CHROMIUM
from tests.dashboard.test_browser import server, sign_in  # noqa: F401 (the live server fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")

SEED = """
import datetime as dt
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.utils import timezone
from apps.billing.models import Plan, PlanAssignment, PlanPrice, UsageRecord
from apps.marketplace.models import Template
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Sandbox
user = get_user_model().objects.get(username='{user}')
org = personal_org_ensure(user=user)
plan = Plan.objects.create(slug='browser-test', name='Browser test', monthly_fee=Decimal(0))
PlanPrice.objects.create(plan=plan, resource='cpu', unit_price=Decimal('0.05'))
now = timezone.now()
PlanAssignment.objects.create(org=org, plan=plan, effective_from=now - dt.timedelta(days=40))
template = Template.objects.get(name='python-3.13')
box = Sandbox.objects.create(owner=user, org=org, name='billed-box', template=template, image=template.image,
    status='running', cpu=1, memory=2**30)
UsageRecord.objects.create(org=org, sandbox=box, template=template.name, cpu_seconds=Decimal(10 * 3600),
    running_seconds=Decimal(3600), hour=now.replace(minute=0, second=0, microsecond=0))
print(box.id)
"""
# Another 10 vCPU-hours in the same hour (as the next rollup would write), then beat's pass.
PUBLISH = """
from decimal import Decimal
from apps.billing import live
from apps.billing.models import UsageRecord
from apps.sandboxes import events
UsageRecord.objects.filter(sandbox_id='{id}').update(cpu_seconds=Decimal(20 * 3600))
print(live.publish_live_costs())
events.flush()
"""


def test_running_costs_change_on_the_open_page(server, context):  # noqa: F811 (fixtures)
    from playwright.sync_api import expect

    sandbox_id = (
        server.manage("shell", "-c", SEED.format(user=server.user)).strip().splitlines()[-1]
    )  # after the banner
    page = context.new_page()
    sign_in(page, server)
    page.get_by_role("link", name="Billing").click()
    page.wait_for_url(re.compile(r"/billing/$"))
    row = page.locator(f'#billing-live tr[data-sandbox="{sandbox_id}"]')
    expect(row.locator(".cost")).to_have_text("USD 0.5000")
    expect(row.locator(".rate")).to_have_text("USD 0.5000/h")
    expect(page.locator("#billing-mtd")).to_have_text("USD 0.50")
    expect(page.locator("body[data-socket=open]")).to_have_count(1)  # the activity feed is connected
    page.evaluate("window.__notReloaded = true")

    # The socket joins its feed's group just after it opens: a pass sent in between reaches no one,
    # so a page still showing the old numbers gets the next pass (as beat would send it).
    for _ in range(3):
        server.manage("shell", "-c", PUBLISH.format(id=sandbox_id))
        if _shown(page, "#billing-mtd", "USD 1.00"):
            break
    expect(page.locator("#billing-mtd")).to_have_text("USD 1.00")
    expect(row.locator(".cost")).to_have_text("USD 1.0000")
    expect(row.locator(".rate")).to_have_text("USD 1.0000/h")
    expect(page.locator("#billing-rate")).to_have_text("USD 1.0000/h")
    expect(page.locator("#billing-live-state")).to_contain_text("live, updated")
    assert page.evaluate("window.__notReloaded") is True  # the same document: no reload


def _shown(page, selector: str, text: str) -> bool:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.locator(selector).filter(has_text=text).wait_for(timeout=10_000)
    except PlaywrightTimeout:
        return False
    return True
