"""The Ports tab (preview URLs) and the Exec tab's notebook (code contexts, rich results) of the
dashboard: owner, outsider (404), anonymous (sign-in), bad input, against real containers; and the
rich results' rendering of hostile content (apps/dashboard/rich.py)."""

import base64
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.audit.models import AuditEntry
from apps.dashboard.rich import rich_item, rich_results, strip_ansi
from apps.sandboxes import contexts, processes
from apps.sandboxes.models import Sandbox
from apps.sandboxes.preview import ports, tokens
from apps.sandboxes.services import lifecycle

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


# ---- rendering (no database) ----


def test_images_must_be_base64_and_svg_is_an_image_never_inline():
    assert rich_item({"image/png": PNG})["src"] == f"data:image/png;base64,{PNG}"
    assert rich_item({"image/png": 'x" onerror="alert(1)', "text/plain": "t"}) == {"kind": "text", "text": "t"}
    svg = rich_item({"image/svg+xml": "<svg><script>alert(1)</script></svg>"})
    assert svg["kind"] == "image" and svg["src"].startswith("data:image/svg+xml;base64,")
    assert "<script>" not in svg["src"]


def test_html_goes_to_a_sandboxed_iframe_and_markdown_through_the_safe_renderer():
    assert rich_item({"text/html": "<script>x</script>", "text/plain": "t"}) == {
        "kind": "html",
        "html": "<script>x</script>",
    }
    markdown = rich_item({"text/markdown": "**b** <script>alert(1)</script>"})
    assert "<strong>b</strong>" in markdown["html"] and "<script>" not in markdown["html"]
    assert rich_item({"application/json": {"a": [1]}})["text"] == '{\n  "a": [\n    1\n  ]\n}'
    assert rich_results([{"data": {"text/plain": "1"}, "isMainResult": True}, {"data": {}}, "junk"]) == [
        {"kind": "text", "text": "1", "main": True}
    ]
    assert strip_ansi("\x1b[0;31mZeroDivisionError\x1b[0m: x") == "ZeroDivisionError: x"


# ---- the tabs against real containers ----

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox(create_sandbox):
    return Sandbox.objects.get(pk=create_sandbox(template="python-3")["id"])


def serve(sandbox, port=3000) -> None:
    processes.process_start(sandbox=sandbox, command=f"python3 -m http.server {port}", timeout=600)
    deadline = time.monotonic() + 60
    while port not in ports.listening(sandbox, max_age=0).ports:
        assert time.monotonic() < deadline, "the server in the sandbox never listened"
        time.sleep(0.2)


def urls(sandbox_id: str) -> dict[str, tuple[str, str]]:
    base = f"/sandboxes/{sandbox_id}"
    return {
        "ports": ("get", f"{base}/ports"),
        "open": ("get", f"{base}/ports/3000/open"),
        "public": ("post", f"{base}/ports/3000/public"),
        "notebook": ("post", f"{base}/exec/context"),
    }


@pytestmark_db
def test_anonymous_is_sent_to_sign_in():
    from django.test import Client

    for name, (method, url) in urls("sbx_x").items():
        response = getattr(Client(), method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), name


@pytestmark_db
def test_outsider_gets_404_and_changes_nothing(outsider_browser, sandbox):
    for name, (method, url) in urls(sandbox.id).items():
        response = getattr(outsider_browser, method)(url, {"public": "true", "code": "1"})
        assert response.status_code == 404, name
    sandbox.refresh_from_db()
    assert not sandbox.ports and not contexts.context_list(sandbox=sandbox)


@pytestmark_db
def test_ports_tab_lists_links_and_toggles_public(browser, sandbox):
    serve(sandbox)
    page = browser.get(f"/sandboxes/{sandbox.id}/ports")
    html = page.content.decode()
    assert page.status_code == 200 and f'href="/sandboxes/{sandbox.id}/ports"' in html
    assert 'data-port="3000"' in html and "listening" in html
    assert 'data-port="8000"' in html and "Application port" in html  # python-3.13's declared port
    assert "vibebox_token" not in html  # tokens only through the open link
    partial = browser.get(f"/sandboxes/{sandbox.id}/ports?partial=table", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "<html" not in partial.content.decode()

    opened = browser.get(f"/sandboxes/{sandbox.id}/ports/3000/open")
    assert opened.status_code == 302 and opened["Referrer-Policy"] == "no-referrer"
    target = urlsplit(opened["Location"])
    assert target.hostname == f"3000-{sandbox.id.lower()}.preview.localhost"
    token = parse_qs(target.query)[tokens.QUERY_PARAMETER][0]
    assert tokens.token_check(token, sandbox_id=sandbox.id, port=3000) is None  # None: valid
    path_form = urlsplit(browser.get(f"/sandboxes/{sandbox.id}/ports/3000/open?form=path")["Location"])
    assert path_form.path == f"/preview/{sandbox.id}/3000/"
    assert browser.get(f"/sandboxes/{sandbox.id}/ports/0/open").status_code == 404
    assert browser.get(f"/sandboxes/{sandbox.id}/ports/49983/open").status_code == 404  # sandboxd's

    toggled = browser.post(f"/sandboxes/{sandbox.id}/ports/3000/public", {"public": "true"}, HTTP_HX_REQUEST="true")
    assert toggled.status_code == 200 and "Make private" in toggled.content.decode()
    sandbox.refresh_from_db()
    assert ports.is_public(sandbox, 3000)
    assert AuditEntry.objects.filter(action="sandbox.port_updated").exists()
    browser.post(f"/sandboxes/{sandbox.id}/ports/3000/public", {"public": "false"})
    sandbox.refresh_from_db()
    assert not ports.is_public(sandbox, 3000)

    # Stopped, it listens on nothing, but its declared ports are still listed (as the API lists them).
    lifecycle.sandbox_stop(sandbox=sandbox)
    html = browser.get(f"/sandboxes/{sandbox.id}/ports").content.decode()
    assert 'id="ports-not-running"' in html and 'data-port="8000"' in html and 'data-port="3000"' not in html


@pytestmark_db
def test_notebook_keeps_state_and_renders_rich_results_safely(browser, sandbox):
    run = f"/sandboxes/{sandbox.id}/exec/context"
    page = browser.get(f"/sandboxes/{sandbox.id}/exec").content.decode()
    assert 'id="exec-notebook-form"' in page and '<option value="python"' in page

    first = browser.post(run, {"code": "x = 41", "language": "python"}, HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and "<html" not in first.content.decode()
    second = browser.post(run, {"code": "x + 1", "language": "python"}, HTTP_HX_REQUEST="true").content.decode()
    assert "42" in second and len(contexts.context_list(sandbox=sandbox)) == 1  # one notebook context

    hostile = (
        "class H:\n    def _repr_html_(self):\n"
        "        return '<script>parent.document.title=\"owned\"</script><b>t</b>'\n"
        "H()"
    )
    shown = browser.post(run, {"code": hostile, "language": "python"}, HTTP_HX_REQUEST="true").content.decode()
    assert '<iframe sandbox="" srcdoc="&lt;script&gt;' in shown
    assert "<script>parent" not in shown  # never inline
    error = browser.post(run, {"code": "1 / 0", "language": "python"}, HTTP_HX_REQUEST="true").content.decode()
    assert "ZeroDivisionError" in error and "\x1b[" not in error

    plain = browser.post(run, {"code": "x", "language": "python"})  # without htmx: the whole tab
    assert plain.status_code == 200 and "<html" in plain.content.decode() and re.search(r">41<", plain.content.decode())

    for data, message in (
        ({"code": " ", "language": "python"}, "Type some code"),
        ({"code": "1", "language": "ruby"}, "python or javascript"),
        ({"code": "1", "language": "python", "timeout": "soon"}, ""),
    ):
        response = browser.post(run, data, HTTP_HX_REQUEST="true")
        assert response.status_code == 400 and message in response.content.decode(), data
