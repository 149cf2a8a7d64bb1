"""What one sandbox costs the database and Redis: the queries and Redis commands of each API call
of a sandbox's life (create, get, exec, list, delete), counted in process through the API (DRF's
test client, the real database and Redis, the real engine), the background work each call causes
included (the event thread's deliveries, the meter's sample after a change). docs/deploy.md's
capacity model uses these numbers; run with -s to print them.

Counted by wrapping Django's cursor (every thread's statements) and redis-py's connections
(every command, sync and asyncio clients, pipelines' too); the calls themselves go through."""

import json
import threading

import pytest
import redis.asyncio.connection
import redis.connection
from django.db.backends import utils as db_utils

from apps.billing import metering
from apps.sandboxes import events


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.queries = 0
        self.writes = 0
        self.redis = 0

    def query(self, sql: str, many: int = 1):
        with self.lock:
            self.queries += many
            if sql.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
                self.writes += many

    def command(self):
        with self.lock:
            self.redis += 1

    def take(self) -> dict:
        with self.lock:
            taken = {"db_queries": self.queries, "db_writes": self.writes, "redis_commands": self.redis}
            self.queries = self.writes = self.redis = 0
        return taken


@pytest.fixture
def counter(monkeypatch):
    counting = Counter()
    for cls in (db_utils.CursorWrapper, db_utils.CursorDebugWrapper):
        execute, executemany = cls.execute, cls.executemany

        def counted_execute(self, sql, params=None, _execute=execute):
            counting.query(str(sql))
            return _execute(self, sql, params)

        def counted_executemany(self, sql, param_list, _executemany=executemany):
            param_list = list(param_list)
            counting.query(str(sql), len(param_list))
            return _executemany(self, sql, param_list)

        monkeypatch.setattr(cls, "execute", counted_execute)
        monkeypatch.setattr(cls, "executemany", counted_executemany)
    # redis-py: a sync command goes through send_command, a sync pipeline through pack_commands; the
    # asyncio client (the channel layer) packs every command, pipelined or not, with pack_command.
    sync = redis.connection.AbstractConnection
    send_command, pack_commands = sync.send_command, sync.pack_commands

    def counted_send_command(self, *args, **kwargs):
        counting.command()
        return send_command(self, *args, **kwargs)

    def counted_pack_commands(self, commands):
        commands = list(commands)
        for _ in commands:
            counting.command()
        return pack_commands(self, commands)

    monkeypatch.setattr(sync, "send_command", counted_send_command)
    monkeypatch.setattr(sync, "pack_commands", counted_pack_commands)
    pack_command = redis.asyncio.connection.AbstractConnection.pack_command

    def counted_pack_command(self, *args):
        counting.command()
        return pack_command(self, *args)

    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "pack_command", counted_pack_command)
    return counting


def _settle():
    """The call's background work: events delivered, the meter's after-change sample taken."""
    events.flush()
    metering._after.flush()


@pytest.mark.django_db(transaction=True)
def test_queries_and_redis_commands_per_sandbox_call(api_client, templates, cleanup_sandbox_ids, counter):
    # One warm-up call of each kind first (a process's first request loads caches), then the measured ones.
    measured: dict[str, list[dict]] = {}

    def call(name, method, path, body=None, expect=200):
        response = (
            getattr(api_client, method)(path, body, format="json")
            if body is not None
            else getattr(api_client, method)(path)
        )
        assert response.status_code == expect, response.content
        _settle()
        measured.setdefault(name, []).append(counter.take())
        return response

    for _round in range(3):
        counter.take()
        created = call("create", "post", "/api/v1/sandboxes", {"template": "python-3.13"}, expect=201).json()
        cleanup_sandbox_ids.append(created["id"])
        path = f"/api/v1/sandboxes/{created['id']}"
        call("get", "get", path)
        for _ in range(3):
            call("exec", "post", f"{path}/exec", {"command": ["true"]})
        call("list", "get", "/api/v1/sandboxes?limit=50")
        call("delete", "delete", path, expect=204)

    # The first round warms up; rounds 2 and 3 are the steady state (and must agree).
    steady = {name: runs[len(runs) // 3 :] for name, runs in measured.items()}
    print("\ncapacity counts (per call, steady state):")
    print(json.dumps({name: runs[-1] for name, runs in steady.items()}, indent=1))
    for name, runs in steady.items():
        assert all(run["db_queries"] > 0 for run in runs), name
    assert all(run["redis_commands"] > 0 for run in steady["exec"])
