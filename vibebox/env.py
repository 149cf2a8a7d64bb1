"""Small strict readers of environment variables for settings.py.

Each raises ImproperlyConfigured with the variable's name when a value is malformed,
so a typo in the environment stops the server at start instead of misbehaving later.
"""

import ipaddress
import os
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from .units import parse_duration, parse_size

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_cidrs(name: str) -> list[str]:
    """A comma-separated list of networks (`10.1.0.0/16`, `fd00::/8`, a bare address), normalised."""
    try:
        return [str(ipaddress.ip_network(item, strict=False)) for item in env_list(name, [])]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_duration(name: str, default: str | float) -> float:
    raw = os.environ.get(name)
    try:
        return parse_duration(default if raw is None or raw.strip() == "" else raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_durations(name: str, default: str) -> list[float]:
    """A comma list of durations ("5s,5m,2h"), in seconds."""
    raw = os.environ.get(name)
    text = default if raw is None or raw.strip() == "" else raw
    try:
        return [parse_duration(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_size(name: str, default: str | int | None) -> int | None:
    raw = os.environ.get(name, default)
    if raw is None or (isinstance(raw, str) and raw.strip() in ("", "0", "none")):
        return None
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def database_from_url(url: str) -> dict:
    """A DATABASES entry from postgres://user:pass@host:port/name?opt=value (or sqlite:///path).

    PostgreSQL: each process keeps its connection for `conn_max_age` seconds (default 60; 0 closes
    it after each request) and checks it before reusing it (`conn_health_checks`, default on), so
    a restarted server or a dropped connection costs a reconnect, not a failed request. Any other
    query parameter is a libpq connection parameter (`sslmode=verify-full`, `sslrootcert=…`,
    `application_name=…`); `connect_timeout` defaults to 5 seconds, so an unreachable server
    fails a request instead of holding it."""
    parsed = urlparse(url)
    if parsed.scheme in ("postgres", "postgresql", "pgsql"):
        options = {name: values[-1] for name, values in parse_qs(parsed.query, strict_parsing=False).items()}
        try:
            conn_max_age = int(options.pop("conn_max_age", 60))
        except ValueError:
            raise ImproperlyConfigured("DATABASE_URL: conn_max_age must be a number of seconds") from None
        health_checks = options.pop("conn_health_checks", "true").strip().lower()
        if health_checks not in _TRUE | _FALSE:
            raise ImproperlyConfigured("DATABASE_URL: conn_health_checks must be true or false")
        options.setdefault("connect_timeout", "5")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": health_checks in _TRUE,
            "OPTIONS": options,
        }
    if parsed.scheme == "sqlite":
        return sqlite_database(parsed.path)
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parsed.scheme!r}")


def sqlite_database(path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # Kept open: request threads are reused (vibebox/requestthreads.py) and opening one costs
        # a connect and the PRAGMAs below; an idle connection outside a transaction locks nothing.
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            # IMMEDIATE: a write transaction takes the lock at BEGIN, so concurrent writers
            # wait (busy timeout) instead of failing with "database is locked" on upgrade.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
