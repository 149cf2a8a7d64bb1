"""Billing tests rely on the plans the data migration seeds (free, pro, team, internal). A
transactional test (here: tests/billing/test_invoices.py's concurrency test; in the suite: any
live-server test) ends with a flush that removes them for the tests that run after it in the same
process, so every billing test that uses the database gets them back first (the seed skips plans
that are there)."""

import importlib

import pytest
from django.apps import apps

SEED = importlib.import_module("apps.billing.migrations.0002_costs_seed_plans").seed


@pytest.fixture(autouse=True)
def seeded_plans(request):
    if "db" in request.fixturenames or "transactional_db" in request.fixturenames:
        request.getfixturevalue("db" if "db" in request.fixturenames else "transactional_db")
        SEED(apps, None)
