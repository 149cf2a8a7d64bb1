"""The templates page shows each template's build (issue 22): state badges, progress, the failure
message, image size, package managers, smoke command and aliases; the list polls itself only while
something is queued or building. The new sandbox form disables templates with no image yet."""

import re

from django.utils.html import escape

from apps.marketplace.catalog import built_in_templates
from apps.marketplace.models import BuildState, Template
from apps.marketplace.services import template_build_state_set, template_upsert
from apps.sandboxes.models import Sandbox

POLLING = 'hx-trigger="every 3s"'


def _source(name):
    return next(s for s in built_in_templates() if s.name == name)


def _card(text: str, name: str) -> str:
    start = text.index(f'id="template-{name}"')
    end = text.find("</article>", start)
    return text[start:end]


def _all_ready() -> None:
    """Every built-in template's row as if its image were built: the `templates` fixture lists the
    ones not built on this machine as queued (a fresh machine's `make test` runs before
    `make images-all`), which would keep the page polling."""
    for source in built_in_templates():
        template_upsert(source=source)


def _first_build(name: str, state: str, **kwargs) -> Template:
    """A template new to this server: no row yet, so no older image to use while it builds."""
    Template.objects.filter(name=name).delete()
    return template_build_state_set(source=_source(name), state=state, **kwargs)


def test_templates_page_shows_builds_and_polls_while_building(browser, templates):
    _all_ready()
    template_upsert(source=_source("node-20"), image_size=123_456_789, build_seconds=42.4)
    template_build_state_set(source=_source("python-3.11"), state=BuildState.BUILDING, progress={"step": 3, "steps": 4})
    template_build_state_set(source=_source("go-1.24"), state=BuildState.QUEUED)
    template_build_state_set(source=_source("ruby-3.3"), state=BuildState.FAILED, message="apt-get install: exit 100")

    page = browser.get("/templates/")
    assert page.status_code == 200
    text = page.content.decode()
    assert POLLING in text and 'data-building="1"' in text

    node = _card(text, "node-20")
    assert 'class="status build-ready"' in node and ">ready</span>" in node
    assert "117.7\xa0MB" in node and "built in 42 s" in node
    assert "<code>npm</code>" in node and f"<code>{escape(templates['node-20'].smoke)}</code>" in node

    building = _card(text, "python-3.11")
    assert 'class="status build-building"' in building and "building 75%" in building
    assert '<progress max="100" value="75"' in building and "step 3 of 4" in building

    assert 'class="status build-queued"' in _card(text, "go-1.24") and "<code>go</code>" in _card(text, "go-1.24")
    failed = _card(text, "ruby-3.3")
    assert 'class="status build-failed"' in failed and "apt-get install: exit 100" in failed
    python = _card(text, "python-3.13")
    assert "<code>python-3</code>" in python and "<code>pip</code>" in python and "<code>python</code>" in python

    # The polled fragment: the list alone, still polling while go-1.24 is queued.
    partial = browser.get("/templates/?partial=list", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content
    assert b'id="template-list"' in partial.content and POLLING.encode() in partial.content

    # Everything ready or failed: the next fragment carries no polling attribute, so polling stops.
    template_upsert(source=_source("python-3.11"))
    template_upsert(source=_source("go-1.24"))
    done = browser.get("/templates/?partial=list", HTTP_HX_REQUEST="true").content.decode()
    assert POLLING not in done and "hx-get" not in done and 'data-building="0"' in done
    assert 'class="status build-failed"' in _card(done, "ruby-3.3")
    assert 'class="status build-ready"' in _card(done, "go-1.24")
    assert POLLING not in browser.get("/templates/").content.decode()


def _option(text: str, name: str) -> str:
    match = re.search(rf'<option value="{re.escape(name)}"[^>]*>[^<]*</option>', text)
    assert match, name
    return match.group(0)


def test_new_sandbox_form_disables_templates_without_an_image(browser, templates):
    _all_ready()
    _first_build("rust-1.85", BuildState.BUILDING, progress={"step": 1, "steps": 4})
    _first_build("java-21", BuildState.QUEUED)
    _first_build("ruby-3.3", BuildState.FAILED, message="boom")
    # A rebuild of a template with an image: it stays usable meanwhile.
    template_build_state_set(source=_source("go-1.24"), state=BuildState.BUILDING)

    text = browser.get("/sandboxes/new").content.decode()
    rust = _option(text, "rust-1.85")
    assert "disabled" in rust and "(building… 25%)" in rust
    assert "disabled" in _option(text, "java-21") and "(queued…)" in _option(text, "java-21")
    assert "disabled" in _option(text, "ruby-3.3") and "(build failed)" in _option(text, "ruby-3.3")
    assert "disabled" not in _option(text, "go-1.24") and "disabled" not in _option(text, "python-3.13")

    # Posting a disabled one anyway: the form says why, no 503 and no sandbox.
    page = browser.post("/sandboxes/new", {"template": "rust-1.85"})
    assert page.status_code == 200 and "cannot start a sandbox yet (building… 25%)" in page.content.decode()
    assert not Sandbox.objects.exists()
