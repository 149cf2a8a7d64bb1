from pathlib import Path

import pytest
from django.test import Client

CHROMIUM = "/usr/bin/chromium"  # Debian's, driven by Playwright (test_browser.py, test_marketplace_browser.py)
OUTPUT = Path(__file__).resolve().parents[2] / "var" / "test-output" / "browser"


@pytest.fixture
def browser(owner) -> Client:
    """A Django test client signed in as `owner` (session auth, CSRF checks on)."""
    client = Client(enforce_csrf_checks=False)
    client.force_login(owner)
    return client


@pytest.fixture
def outsider_browser(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item (`rep_call`), for the browser tests' screenshots."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def chromium():
    """Playwright's headless Chromium (Debian's), one per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def context(chromium, request):
    """A fresh browser context (1280x800) per test; on failure a screenshot of each of its pages goes
    to var/test-output/browser/<test>/."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)  # deadlines, not targets: a create under load has taken over 20 s
    yield context
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        folder = OUTPUT / request.node.name
        folder.mkdir(parents=True, exist_ok=True)
        for number, page in enumerate(context.pages):
            page.screenshot(path=str(folder / f"page{number}.png"), full_page=True)
    context.close()
