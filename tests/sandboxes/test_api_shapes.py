"""Answers rendered from what the domain answers (snake_case dataclasses, dicts, models) by the
serializers that document them: each wire shape, field by field. Hand-written renderings (a
benchmarked fast path) answer exactly what their declared DRF fields would: the fields stay the
one definition of the shape (OpenAPI document, docs)."""

import datetime as dt

from django.utils import timezone
from rest_framework import serializers

from apps.marketplace.models import Template
from apps.orgs.services import personal_org_ensure
from apps.sandboxes import processes, terminals
from apps.sandboxes.api.metrics_views import SandboxMetricsSerializer
from apps.sandboxes.api.schema import (
    ArchiveUploadedSerializer,
    EnvMapSerializer,
    EnvVarSerializer,
    FileEntrySerializer,
    FileListSerializer,
    FilePathSerializer,
    FileUploadedSerializer,
    LogEntrySerializer,
    LogsSerializer,
    PoolListSerializer,
    ProcessExitSerializer,
    ProcessListSerializer,
    ProcessSerializer,
    SnapshotListSerializer,
    TerminalListSerializer,
)
from apps.sandboxes.api.serializers import (
    ExecExitSerializer,
    ExecResultSerializer,
    ExecuteResultSerializer,
    SandboxSerializer,
    SnapshotSerializer,
)
from apps.sandboxes.consumers.terminal import _message
from apps.sandboxes.models import Execution, Sandbox, Snapshot
from apps.sandboxes.runtime.base import ExecResult, FileInfo
from apps.sandboxes.services.exec import Outcome
from apps.sandboxes.services.pools import EnginePoolStats, PoolStats
from vibebox import exceptions as errors


def _declared(serializer_class, instance) -> dict:
    """What DRF renders from the declared fields, bypassing the hand-written to_representation."""
    return serializers.Serializer.to_representation(serializer_class(), instance)


def test_the_sandbox_rendering_equals_its_declared_fields(owner):
    template = Template.objects.create(name="shape", display_name="Shape", image="vibebox/shape:1", user="sandbox")
    now = timezone.now()
    bare = Sandbox.objects.create(
        owner=owner,
        org=personal_org_ensure(user=owner),
        template=template,
        name="bare",
        image="x",
        cpu=0.5,
        memory=2**29,
    )
    full = Sandbox.objects.create(
        owner=owner,
        org=personal_org_ensure(user=owner),
        template=template,
        name="full",
        image="x",
        cpu=2,
        memory=3 * 2**30,
        disk=10**9 + 7,
        status="paused",
        status_reason="idle for 5 minutes",
        ephemeral=True,
        timeout_seconds=3600,
        expires_at=now + dt.timedelta(hours=1),
        metadata={"team": "ml", "empty": ""},
        warm=True,
        auto_pause_seconds=300,
        auto_resume=True,
        pause_stops_timeout=True,
        paused_at=now,
        last_activity_at=now - dt.timedelta(microseconds=1),
        started_at=now.replace(microsecond=0),
        stopped_at=now.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),
        destroyed_at=now,
        node_labels={"region": "eu", "gpu": "true"},
    )
    for sandbox in Sandbox.objects.filter(pk__in=[bare.pk, full.pk]).prefetch_related("template"):
        rendered = SandboxSerializer(sandbox).data
        assert rendered == _declared(SandboxSerializer, sandbox)
        assert list(rendered) == list(SandboxSerializer().fields)  # same keys, same order
    assert SandboxSerializer(full).data["stoppedAt"].endswith("Z")


# ---- files ----

FILE = FileInfo(path="/workspace/a.txt", name="a.txt", type="file", size=12, mode=0o644, modified_at=1.7e9 + 0.25)
LINK = FileInfo(
    path="/workspace/l", name="l", type="symlink", size=7, mode=0o1777, modified_at=-5.0, link_target="/etc/hosts"
)
ROOT = FileInfo(path="/", name="", type="directory", size=4096, mode=0o755, modified_at=1.0)


def test_file_entries_render_as_their_declared_fields():
    for info in (FILE, LINK, ROOT):
        assert FileEntrySerializer(info).data == _declared(FileEntrySerializer, info)
        assert list(FileEntrySerializer(info).data) == list(FileEntrySerializer().fields)
    assert FileListSerializer({"path": "/workspace", "entries": [FILE, LINK, ROOT]}).data == {
        "path": "/workspace",
        "entries": [
            {
                "path": "/workspace/a.txt",
                "name": "a.txt",
                "size": 12,
                "isDir": False,
                "type": "file",
                "mode": "0644",
                "modifiedAt": 1.7e9 + 0.25,
                "symlinkTarget": None,
            },
            {
                "path": "/workspace/l",
                "name": "l",
                "size": 7,
                "isDir": False,
                "type": "symlink",
                "mode": "1777",
                "modifiedAt": -5.0,
                "symlinkTarget": "/etc/hosts",
            },
            {
                "path": "/",
                "name": "/",
                "size": 4096,
                "isDir": True,
                "type": "directory",
                "mode": "0755",
                "modifiedAt": 1.0,
                "symlinkTarget": None,
            },
        ],
    }


def test_file_write_answers():
    assert FileUploadedSerializer(FILE).data == {"path": "/workspace/a.txt", "size": 12, "mode": "0644"}
    assert ArchiveUploadedSerializer({"path": "/workspace/x", "entries": 3}).data == {
        "path": "/workspace/x",
        "entries": 3,
    }
    assert FilePathSerializer({"path": "/workspace/d"}).data == {"path": "/workspace/d"}


# ---- logs ----

LOG = {"type": "log", "stream": "stderr", "text": "oops", "timestamp": 1.7e9 + 0.5}
EVENT = {"type": "event", "stream": "vibebox", "text": "started", "timestamp": 1.7e9, "event": "sandbox.started"}


def test_log_entries_render_as_their_declared_fields():
    for entry in (LOG, EVENT, {**LOG, "timestamp": 1700000000}):
        assert LogEntrySerializer(entry).data == _declared(LogEntrySerializer, entry)
        assert list(LogEntrySerializer(entry).data) == list(_declared(LogEntrySerializer, entry))
    assert LogsSerializer({"logs": [LOG, EVENT]}).data == {"logs": [LOG, EVENT]}


# ---- background processes ----


def test_processes_and_their_exits():
    running = processes.DaemonProcess(id="exe_1", sandbox=None, command="sleep 60")
    result = ExecResult(
        exit_code=3,
        stdout=b"",
        stderr=b"",
        stdout_bytes=1,
        stderr_bytes=0,
        truncated=False,
        timed_out=False,
        oom_killed=False,
        duration_ms=42,
    )
    followed = processes.ProcessExit.of_result("exe_1", result)
    execution = Execution(
        id="exe_2", command="x" * 300, status="timeout", exit_code=None, duration_ms=1000, truncated=True
    )
    ended = processes.EndedProcess.from_execution(execution)
    exit_body = {
        "type": "exit",
        "status": "timeout",
        "executionId": "exe_2",
        "exitCode": None,
        "duration": 1000,
        "truncated": True,
        "oomKilled": False,
    }
    assert ProcessListSerializer({"processes": [running, ended]}).data == {
        "processes": [
            {"processId": "exe_1", "command": "sleep 60", "running": True, "exit": None},
            {"processId": "exe_2", "command": "x" * 200, "running": False, "exit": exit_body},
        ]
    }
    assert ProcessSerializer(ended).data["exit"] == ProcessExitSerializer(ended.exit).data  # the WebSocket's
    assert ProcessExitSerializer(followed).data == {
        "type": "exit",
        "status": "failed",
        "executionId": "exe_1",
        "exitCode": 3,
        "duration": 42,
        "truncated": False,
        "oomKilled": False,
    }
    failed = processes.ProcessExit.failed(errors.RuntimeFailure("gone"))
    assert ProcessExitSerializer(failed).data == {
        "type": "exit",
        "status": "error",
        "error": {"code": errors.RuntimeFailure.code, "message": "gone"},
    }


# ---- terminals ----


def test_terminals():
    started = dt.datetime(2026, 12, 2, 15, 0, 1, 500000, tzinfo=dt.UTC)
    listed = [
        terminals.Terminal(  # noqa: S604 (a shell's name, not a subprocess)
            session_id="term_a",
            shell="bash",
            argv=("sh", "-c", "...", "sh", "bash"),
            cols=80,
            rows=24,
            attached=2,
            running=True,
            started_at=started,
        ),
        terminals.Terminal(  # noqa: S604
            session_id="term_b", shell="vim", argv=("vim",), cols=1, rows=1, attached=0, running=True, started_at=None
        ),
    ]
    assert TerminalListSerializer({"terminals": listed}).data == {
        "terminals": [
            {
                "sessionId": "term_a",
                "shell": "bash",
                "argv": ["sh", "-c", "...", "sh", "bash"],
                "cols": 80,
                "rows": 24,
                "attached": 2,
                "running": True,
                "startedAt": "2026-12-02T15:00:01.500000Z",
            },
            {
                "sessionId": "term_b",
                "shell": "vim",
                "argv": ["vim"],
                "cols": 1,
                "rows": 1,
                "attached": 0,
                "running": True,
                "startedAt": None,
            },
        ]
    }


def test_the_terminal_websocket_messages():
    assert _message(terminals.Ended(exit_code=0)) == {"type": "exit", "exitCode": 0}
    assert _message(terminals.Ended(exit_code=None)) == {"type": "exit", "exitCode": None}
    assert _message(terminals.Ended(exit_code=None, idle=True)) == {"type": "exit", "exitCode": None, "reason": "idle"}
    assert _message(terminals.Ended(exit_code=None, error=errors.RuntimeFailure("lost"))) == {
        "type": "exit",
        "exitCode": None,
        "error": {"code": errors.RuntimeFailure.code, "message": "lost"},
    }
    assert _message(terminals.Lost(dropped_bytes=600)) == {"type": "truncated", "droppedBytes": 600}


# ---- pools, environment, snapshots ----


def test_pools():
    stats = PoolStats(
        template="python-3",
        cpu=0.5,
        memory=2**30,
        enabled=True,
        size=2,
        creating=1,
        target_size=3,
        min_size=1,
        max_size=5,
        hits=2,
        misses=1,
        hit_rate=0.667,
        replaced=0,
        last_ready_ms=None,
        engines=(
            EnginePoolStats(engine="local", size=1, creating=1),
            EnginePoolStats(engine="node-a", size=1, creating=0),
        ),
    )
    assert PoolListSerializer({"pools": [stats]}).data == {
        "pools": [
            {
                "template": "python-3",
                "cpu": 0.5,
                "memory": "1g",
                "enabled": True,
                "size": 2,
                "creating": 1,
                "targetSize": 3,
                "minSize": 1,
                "maxSize": 5,
                "hits": 2,
                "misses": 1,
                "hitRate": 0.667,
                "replaced": 0,
                "lastReadyMs": None,
                "engines": [
                    {"engine": "local", "size": 1, "creating": 1},
                    {"engine": "node-a", "size": 1, "creating": 0},
                ],
            }
        ]
    }


def test_environment():
    public = {"A": {"value": "1", "secret": False}, "TOKEN": {"value": "********", "secret": True}}
    assert EnvMapSerializer(public).data == public
    assert EnvMapSerializer({}).data == {}
    assert EnvVarSerializer({"name": "A", "value": "1", "secret": False}).data == {
        "name": "A",
        "value": "1",
        "secret": False,
    }


def test_snapshot_lists(owner):
    template = Template.objects.create(name="shape", display_name="Shape", image="vibebox/shape:1", user="sandbox")
    snapshot = Snapshot(id="snap_1", owner=owner, template=template, name="s", image="i", created_at=timezone.now())
    assert SnapshotListSerializer({"results": [snapshot]}).data == {"results": [SnapshotSerializer(snapshot).data]}


def test_metrics():
    measured = {
        "sandbox_id": "sbx_1",
        "status": "running",
        "timestamp": dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC),
        "cpu": {"percent": 12.5, "limit": 0.5, "percent_of_limit": 25.0, "online_cpus": 2},
        "memory": {"usage": 1000, "limit": 2000, "percent": 50.0},
        "disk": {"workspace": None, "limit": None},
        "pids": {"current": 3, "limit": 256},
    }
    assert SandboxMetricsSerializer(measured).data == {
        "sandboxId": "sbx_1",
        "status": "running",
        "timestamp": "2026-12-02T15:00:00Z",
        "cpu": {"percent": 12.5, "limit": 0.5, "percentOfLimit": 25.0, "onlineCpus": 2},
        "memory": {"usage": 1000, "limit": 2000, "percent": 50.0},
        "disk": {"workspace": None, "limit": None},
        "pids": {"current": 3, "limit": 256},
    }


# ---- commands ----


def test_a_commands_answer_and_its_streamed_exit():
    result = ExecResult(
        exit_code=0,
        stdout=b"hi\n",
        stderr=b"",
        stdout_bytes=3,
        stderr_bytes=0,
        truncated=False,
        timed_out=False,
        oom_killed=True,
        duration_ms=7,
    )
    execution = Execution(id="exe_3", status="completed", language="python")
    outcome = Outcome(execution, result, "hi\n", "", return_value={"a": 1})
    ended = {"executionId": "exe_3", "exitCode": 0, "duration": 7, "status": "completed", "truncated": False}
    ended["oomKilled"] = True
    assert ExecExitSerializer(outcome).data == ended
    assert ExecResultSerializer(outcome).data == {**ended, "stdout": "hi\n", "stderr": ""}
    assert ExecuteResultSerializer(outcome).data == {
        **ended,
        "stdout": "hi\n",
        "stderr": "",
        "language": "python",
        "returnValue": {"a": 1},
        "phase": "run",
    }
