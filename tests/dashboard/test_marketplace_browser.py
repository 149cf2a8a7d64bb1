"""The marketplace's catalogue in a real browser (Playwright driving Debian's Chromium against a
live server, as tests/dashboard/test_browser.py): the nav link, search and filters updating the
results in place (htmx, no page load) with the filters in the address, a template's page whose
readme's `<script>` never runs, and "Create sandbox" opening the new sandbox form with the
template chosen. The catalogue's rows are written into the live server's database directly (its
images are not built: nothing here starts a sandbox)."""

from __future__ import annotations

import os
import re

import pytest

from .conftest import CHROMIUM
from .test_browser import PASSWORD, SET_PASSWORD, live_server, sign_in

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")

ROWS = (
    "from apps.marketplace.models import Template; from django.contrib.auth import get_user_model;"
    "from apps.orgs.services import personal_org_ensure;"
    "o = personal_org_ensure(user=get_user_model().objects.get(username='{user}'));"
    "common = dict(image='vibebox/test:1', owner_org=o, visibility='public', official=False, built_in=False,"
    " latest_version='1.0.0', is_active=True);"
    "Template.objects.create(name='alpha-tool', display_name='Alpha tool', description='Crunches numbers',"
    " tags=['cli'], languages=['python'], icon='🧮',"
    " readme='# Alpha readme\\n\\n<script>alert(1)</script>\\n\\n[docs](https://example.com)', **common);"
    "Template.objects.create(name='beta-web', display_name='Beta web', description='A web server',"
    " tags=['web'], languages=['go'], icon='🌐', **common)"
)


@pytest.fixture(scope="module")
def server():
    instance = f"mkb{os.getpid()}"
    with live_server(instance) as running:
        running.manage("shell", "-c", SET_PASSWORD.format(user=instance, password=PASSWORD))
        running.manage("shell", "-c", ROWS.format(user=instance))
        running.user = instance
        yield running


def test_the_catalogue_filters_in_place_and_opens_a_template(server, context):
    from playwright.sync_api import expect

    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, server)
    page.get_by_role("link", name="Marketplace").click()
    page.wait_for_url(re.compile(r"/marketplace/$"))
    cards = page.locator("#catalogue-results article.market-card")
    expect(page.locator('article[data-template="alpha-tool"]')).to_be_visible()
    expect(page.locator('article[data-template="beta-web"]')).to_be_visible()

    # A marker on the window: the filters below must not load a new page.
    page.evaluate("window.__stayed = true")
    page.locator("#catalogue-kind").select_option("community")  # the built-ins are there too
    expect(cards).to_have_count(2)
    expect(page).to_have_url(re.compile(r"[?&]kind=community"))
    page.locator("#catalogue-q").fill("numbers")
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-template", "alpha-tool")
    expect(page).to_have_url(re.compile(r"[?&]q=numbers"))
    page.locator("#catalogue-q").fill("")
    page.locator("#catalogue-language").select_option("go")
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-template", "beta-web")
    page.locator("#catalogue-kind").select_option("official")
    expect(page.locator('article[data-template="beta-web"]')).to_have_count(0)  # built-ins only
    assert page.evaluate("window.__stayed") is True

    page.locator("#catalogue-kind").select_option("community")
    page.locator("#catalogue-language").select_option("python")
    page.get_by_role("link", name="Alpha tool").click()
    page.wait_for_url(re.compile(r"/marketplace/alpha-tool/$"))
    expect(page.locator("#readme h1")).to_have_text("Alpha readme")
    expect(page.locator("#readme")).to_contain_text("<script>alert(1)</script>")  # shown as text
    assert dialogs == []  # and never run

    page.get_by_role("button", name="Create sandbox").click()
    page.wait_for_url(re.compile(r"/sandboxes/new\?template=alpha-tool"))
    expect(page.get_by_label("Template")).to_have_value("alpha-tool")


SUBMISSION = (
    "from apps.marketplace.models import Submission; from django.contrib.auth import get_user_model;"
    "from apps.orgs.services import personal_org_ensure; u = get_user_model().objects.get(username='{user}');"
    "s = Submission.objects.create(org=personal_org_ensure(user=u), user=u, template_name='log-tool', version='1.0.0',"
    " dockerfile='FROM debian:trixie', spec={{'name': 'log-tool', 'version': '1.0.0'}});"
    "print(s.pk)"
)
PIPELINE = "from apps.marketplace import services; {call}"


def test_a_submissions_build_log_follows_live(server, context):
    """The pipeline's calls (made here from a shell, against the live server's database) show up on
    the submission's page without a reload: new log text appended once, the state, the failure."""
    from playwright.sync_api import expect

    # The last line: Django's shell may say first what it imported.
    submission_id = server.manage("shell", "-c", SUBMISSION.format(user=server.user)).strip().splitlines()[-1]
    call = lambda text: server.manage("shell", "-c", PIPELINE.format(call=text))  # noqa: E731
    call(f"services.submission_start({submission_id!r})")
    call(f"services.submission_log_append({submission_id!r}, 'Step 1/2\\n')")
    page = context.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/marketplace/submissions/{submission_id}/")
    log = page.locator("#build-log")
    expect(log).to_have_text("Step 1/2\n")
    expect(page.locator("#submission-summary [data-state]")).to_have_text("building")
    page.evaluate("window.__stayed = true")

    call(f"services.submission_log_append({submission_id!r}, 'Step 2/2 <RUN>\\n')")
    expect(log).to_have_text("Step 1/2\nStep 2/2 <RUN>\n")  # appended once, as text
    call(f"services.submission_fail({submission_id!r}, step='build', message='RUN exited with 1')")
    expect(page.locator("#submission-failure")).to_contain_text("Failed at the build step: RUN exited with 1")
    expect(page.locator("#log-poller")).to_have_attribute("data-live", "0")
    expect(log).to_have_text("Step 1/2\nStep 2/2 <RUN>\n")
    assert page.evaluate("window.__stayed") is True
