"""Billing's tests: the seeded plans (free, pro, team, internal: billing's seed migration) are there
for every test. A transactional test (`django_db(transaction=True)`: the concurrency race, the
budget pause) ends by flushing every table, seeded rows included; this puts them back before each
billing test (a no-op when they are there)."""

import importlib
import pkgutil

import pytest
from django.apps import apps as django_apps

import apps.billing.migrations as migrations

SEED = importlib.import_module(
    next(f"{migrations.__name__}.{m.name}" for m in pkgutil.iter_modules(migrations.__path__) if "seed_plans" in m.name)
)


@pytest.fixture(autouse=True)
def seeded_plans(db):
    SEED.seed(django_apps, None)
