import pytest
from django.test import Client


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
