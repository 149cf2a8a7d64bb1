"""DATABASE_URL (vibebox/env.py): what a production PostgreSQL URL becomes, and the URL the tests
give the processes they start (tests/database.py) reads back as the same database."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.database import child_database_url
from vibebox.env import database_from_url, sqlite_database


def test_a_postgres_url_keeps_connections_checks_them_and_passes_libpq_options():
    database = database_from_url("postgres://vibe%40box:p%2Fss@db.internal:6432/vibebox?sslmode=verify-full")
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["USER"], database["PASSWORD"], database["HOST"], database["PORT"], database["NAME"]) == (
        "vibe@box",
        "p/ss",
        "db.internal",
        "6432",
        "vibebox",
    )
    assert database["CONN_MAX_AGE"] == 60 and database["CONN_HEALTH_CHECKS"] is True
    assert database["OPTIONS"] == {"sslmode": "verify-full", "connect_timeout": "5"}

    tuned = database_from_url("postgresql://u@h/db?conn_max_age=0&conn_health_checks=false&connect_timeout=3")
    assert (tuned["CONN_MAX_AGE"], tuned["CONN_HEALTH_CHECKS"]) == (0, False)
    assert tuned["OPTIONS"] == {"connect_timeout": "3"}


@pytest.mark.parametrize(
    "url", ["postgres://h/db?conn_max_age=soon", "postgres://h/db?conn_health_checks=maybe", "mysql://h/db"]
)
def test_bad_urls_stop_the_start(url):
    with pytest.raises(ImproperlyConfigured):
        database_from_url(url)


def test_the_url_for_child_processes_names_the_same_database(settings):
    settings.DATABASES = {"default": database_from_url("postgres://u:p%40x@127.0.0.1:5433/test_db?sslmode=disable")}
    assert database_from_url(child_database_url()) == settings.DATABASES["default"]
    settings.DATABASES = {"default": sqlite_database("/tmp/a b.sqlite3")}
    assert database_from_url(child_database_url())["NAME"] == "/tmp/a b.sqlite3"
