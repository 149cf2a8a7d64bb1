"""Process-level endpoints: liveness and readiness."""

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from apps.sandboxes.engine import engine_ping
from vibebox.exceptions import ApplicationError


def healthz(request):
    """The process is alive (no dependencies checked)."""
    return JsonResponse({"status": "ok"})


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis():
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _check_docker():
    engine_ping()


CHECKS = {"database": _check_database, "redis": _check_redis, "docker": _check_docker}


def readyz(request):
    """Database, Redis and the container engine answer: 200, else 503 naming what failed."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = {"ok": True}
        except ApplicationError as exc:
            results[name] = {"ok": False, "error": exc.message}
        except Exception as exc:  # any failure of a dependency means not ready
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    ready = all(result["ok"] for result in results.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
