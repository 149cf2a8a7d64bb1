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
