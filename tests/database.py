"""The test database as a DATABASE_URL, for the processes a test starts (a live server, a worker,
the gateway, the egress proxy): they must use the database the test sees, SQLite's file of this
session or the PostgreSQL test database (`make test-postgres`)."""

from urllib.parse import quote, urlencode

from django.conf import settings


def child_database_url() -> str:
    """This session's test database (its NAME once pytest-django has set it up) as a URL that
    vibebox/env.py's database_from_url reads back."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite://{database['NAME']}"  # an absolute path (DATA_DIR's): sqlite:///abs/path
    if database["ENGINE"] == "django.db.backends.postgresql":
        user = quote(database.get("USER") or "", safe="")
        password = quote(database.get("PASSWORD") or "", safe="")
        credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        port = f":{database['PORT']}" if database.get("PORT") else ""
        query = urlencode(
            {
                **(database.get("OPTIONS") or {}),
                "conn_max_age": database.get("CONN_MAX_AGE") or 0,
                "conn_health_checks": "true" if database.get("CONN_HEALTH_CHECKS") else "false",
            }
        )
        return f"postgres://{credentials}{database.get('HOST') or ''}{port}/{quote(database['NAME'], safe='')}?{query}"
    raise NotImplementedError(f"no URL for {database['ENGINE']}")
