"""Preview URLs in a real browser: Playwright driving Debian's Chromium against a live server.

A `python3 -m http.server 3000` in a python-3.13 sandbox is loaded through the preview host form
(`http://3000-<id>.preview.localhost:<port>/?vibebox_token=…`: Chromium resolves every
*.localhost name to loopback), which swaps the token for a cookie of that host and redirects to
the URL without it; then from the dashboard's Ports tab, whose links sign a fresh token. The
notebook of the Exec tab shows a rich result (an image, and HTML in a sandboxed iframe).
On failure, a screenshot of every open page goes to var/test-output/browser/<test>/.
"""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from common import api, live_server  # noqa: E402

from .conftest import CHROMIUM  # noqa: E402  (the `chromium` and `context` fixtures are there too)
from .test_browser import PASSWORD, SET_PASSWORD, sign_in  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def server():
    instance = f"prv{os.getpid()}"
    with live_server(instance) as running:
        running.manage("shell", "-c", SET_PASSWORD.format(user=instance, password=PASSWORD))
        running.user = instance
        yield running


@pytest.fixture
def serving(server):
    """A python-3.13 sandbox serving an index page on port 3000 (made through the API)."""
    _, sandbox = api(server.url, server.key, "POST", "/api/v1/sandboxes", {"template": "python-3.13"})
    base = f"/api/v1/sandboxes/{sandbox['id']}"
    marker = f"served-{uuid.uuid4().hex[:8]}"
    page = f"<html><head><title>{marker}</title></head><body><h1 id='marker'>{marker}</h1></body></html>"
    command = (
        f"mkdir -p /workspace/site && cd /workspace/site && printf '%s' \"{page}\" > index.html"
        " && exec python3 -m http.server 3000"
    )
    try:
        api(server.url, server.key, "POST", f"{base}/exec", {"command": command, "background": True})
        deadline = time.monotonic() + 60
        while not any(
            p["port"] == 3000 and p["listening"]
            for p in api(server.url, server.key, "GET", f"{base}/ports")[1]["ports"]
        ):
            assert time.monotonic() < deadline, "the sandbox's server never listened"
            time.sleep(0.2)
        yield sandbox["id"], marker
    finally:
        api(server.url, server.key, "DELETE", base)


def test_a_page_served_by_the_sandbox_through_the_preview_host(server, serving, context):
    from playwright.sync_api import expect

    sandbox_id, marker = serving
    _, link = api(server.url, server.key, "GET", f"/api/v1/sandboxes/{sandbox_id}/ports/3000/url?form=host")
    assert re.match(rf"http://3000-{sandbox_id.lower()}\.preview\.localhost:\d+/\?vibebox_token=", link["url"].lower())

    page = context.new_page()
    page.goto(link["url"])
    expect(page.locator("#marker")).to_have_text(marker)
    assert "vibebox_token" not in page.url  # swapped for a cookie, and redirected without it
    assert page.url.lower().startswith(f"http://3000-{sandbox_id.lower()}.preview.localhost:")
    page.reload()  # the cookie alone now
    expect(page.locator("#marker")).to_have_text(marker)

    # Without a token (a fresh browser context: no cookie), the private port is refused.
    stranger = context.browser.new_context()
    try:
        refused = stranger.new_page().goto(link["url"].split("?")[0])
        assert refused.status in (401, 403)
    finally:
        stranger.close()


def test_the_ports_tab_and_the_notebook(server, serving, context):
    from playwright.sync_api import expect

    sandbox_id, marker = serving
    page = context.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/sandboxes/{sandbox_id}/")
    page.get_by_role("link", name="Ports", exact=True).click()
    row = page.locator('tr[data-port="3000"]')
    expect(row).to_contain_text("listening")
    expect(page.locator('tr[data-port="8000"]')).to_contain_text("Application port")  # declared

    # The Open link signs a token and lands on the page through the host form, in a new tab.
    with context.expect_page() as opened:
        row.locator("a.port-open").click()
    preview = opened.value
    expect(preview.locator("#marker")).to_have_text(marker)
    assert "vibebox_token" not in preview.url and preview.url.lower().startswith(f"http://3000-{sandbox_id.lower()}.")
    # The path form: same origin as the dashboard, sandboxed by its Content-Security-Policy.
    with context.expect_page() as opened_path:
        row.locator("a.port-open-path").click()
    expect(opened_path.value.locator("#marker")).to_have_text(marker)

    # The Exec tab's notebook: state kept, an image and an HTML table in a sandboxed iframe.
    page.get_by_role("link", name="Exec", exact=True).click()
    page.locator("#notebook-code").fill("x = 6 * 7")
    page.locator("#notebook-run").click()
    expect(page.locator("#exec-output .exec-summary")).to_be_visible()
    page.locator("#notebook-code").fill(
        "class T:\n    def _repr_html_(self):\n"
        "        return '<table id=\"t\"><tr><td>' + str(x) + '</td></tr></table>'\nT()"
    )
    page.locator("#notebook-run").click()
    frame = page.locator("#exec-output iframe[sandbox='']")
    expect(frame).to_have_count(1)
    expect(page.frame_locator("#exec-output iframe").locator("#t")).to_have_text("42")
    # An image the kernel makes (bytes from _repr_png_, as matplotlib's figures) shows as a data: image.
    page.locator("#notebook-code").fill(
        f"import base64\nclass P:\n    def _repr_png_(self):\n        return base64.b64decode('{PNG_1PX}')\nP()"
    )
    page.locator("#notebook-run").click()
    expect(page.locator('#exec-output img[src^="data:image/png;base64,"]')).to_have_count(1)
