"""Whether a database error means the database cannot be reached (down, restarting, refusing
connections, the connection lost mid-request), as opposed to a query the database refused.

The first is the server's trouble, not the request's: the API answers `503 database_unavailable`
with Retry-After (vibebox/api/errors.py), the same request later succeeds, and every process
reconnects by itself (Django closes a connection that failed at the end of its request; a kept one
is checked before reuse, CONN_HEALTH_CHECKS). The second stays what it was (a 500, or the error a
service turned it into)."""

from django.db import DatabaseError, InterfaceError, OperationalError

RETRY_AFTER_SECONDS = 5

# PostgreSQL SQLSTATE classes and codes meaning "no usable connection": 08 connection exception,
# 53 insufficient resources (too many connections, out of memory or disk), 57P01-57P03 the server
# shutting down, crashed or starting. psycopg gives no SQLSTATE for a failure of its own (refused,
# timed out, closed unexpectedly): those are connection failures too.
_PG_CLASSES = ("08", "53")
_PG_CODES = frozenset({"57P01", "57P02", "57P03"})
# SQLite's messages for a database file that cannot be used at all.
_SQLITE_MESSAGES = ("unable to open database file", "disk i/o error")


def unavailable(exc: BaseException) -> bool:
    if not isinstance(exc, DatabaseError):
        return False
    if isinstance(exc, InterfaceError):  # "connection already closed" and the like
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__ or exc
    module = type(cause).__module__ or ""
    if module.startswith("psycopg"):
        sqlstate = getattr(cause, "sqlstate", None)
        return sqlstate is None or sqlstate.startswith(_PG_CLASSES) or sqlstate in _PG_CODES
    message = str(cause).lower()
    return any(text in message for text in _SQLITE_MESSAGES)
