"""GraphiQL at /graphql in a real browser (Playwright driving Debian's Chromium against a live
server): a signed-in user's page loads only local assets and runs a query with the session."""

from __future__ import annotations

import os

import pytest

from tests.dashboard.conftest import CHROMIUM, chromium, context  # noqa: F401 (fixtures)
from tests.dashboard.test_browser import server, sign_in  # noqa: F401 (the live server fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


def test_graphiql_runs_a_query_as_the_signed_in_user(server, context):  # noqa: F811 (fixtures)
    from playwright.sync_api import expect

    page = context.new_page()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, server)
    page.goto(f"{server.url}/graphql")
    run = page.get_by_role("button", name="Execute query (Ctrl-Enter)")
    expect(run).to_be_visible()
    run.click()
    expect(page.locator(".graphiql-response")).to_contain_text(f'"username": "{server.user}"')
    assert requested and all(url.startswith(server.url) for url in requested), requested  # no CDN
