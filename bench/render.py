"""Rendering answers: the hand-written `to_representation` fast paths (the sandbox list, agent runs
with their tasks, file listings, logs) against what DRF renders from the same serializers' declared
fields, in the same run. The declared fields are the baseline: they define the shape (tests check the fast paths
answer exactly the same) and the fast path must pay for itself.

.venv/bin/python bench/render.py [--tasks 5000] [--sandboxes 50] [--files 10000] [--logs 100000] [--repeat 30]

In process, on unsaved model instances (no database, no server): only rendering is measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile

from common import ROOT, summary, timed


def setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")
    os.environ.setdefault("VIBEBOX_DATA_DIR", tempfile.mkdtemp(prefix="vibebox-render-"))
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--sandboxes", type=int, default=50)
    parser.add_argument("--files", type=int, default=10000, help="entries of a listing (VIBEBOX_FILE_LIST_LIMIT)")
    parser.add_argument("--logs", type=int, default=100000, help="entries of a log (its tail's cap)")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    setup()
    from django.utils import timezone
    from rest_framework import serializers

    from apps.agents.api.run_serializers import AgentRunSerializer, AgentRunSummarySerializer, AgentTaskSerializer
    from apps.agents.models import AgentRun, AgentTask
    from apps.marketplace.models import Template
    from apps.sandboxes.api.schema import FileEntrySerializer, FileListSerializer, LogEntrySerializer, LogsSerializer
    from apps.sandboxes.api.serializers import SandboxSerializer
    from apps.sandboxes.models import Sandbox
    from apps.sandboxes.runtime.base import FileInfo

    now = timezone.now()
    run = AgentRun(id="run_bench", name="bench", kind="map", status="running", metadata={"team": "ml"}, created_at=now)
    for status in AgentTask.Status.values:
        setattr(run, f"count_{status}", args.tasks // len(AgentTask.Status.values))
    tasks = [
        AgentTask(
            id=f"task_{i}",
            run=run,
            index=i,
            name=f"task {i}",
            status="completed",
            sandbox_id="sbx_x",
            attempts=1,
            result={"ok": True, "n": i},
            metadata={"shard": str(i % 7)},
            started_at=now,
            finished_at=now + dt.timedelta(seconds=i),
        )
        for i in range(args.tasks)
    ]
    template = Template(name="python-3", display_name="Python 3", image="vibebox/python-3:1", user="sandbox")
    sandboxes = [
        Sandbox(
            id=f"sbx_{i}",
            owner_id=1,
            template=template,
            name=f"bench-{i}",
            image=template.image,
            cpu=1,
            memory=2**30,
            status="running",
            metadata={"team": "ml"},
            created_at=now,
            started_at=now,
        )
        for i in range(args.sandboxes)
    ]
    context = {"tasks": tasks}
    listing = [
        FileInfo(
            path=f"/workspace/src/file-{i}.py",
            name=f"file-{i}.py",
            type="directory" if i % 10 == 0 else "file",
            size=i * 100,
            mode=0o644,
            modified_at=1.7e9 + i / 7,
            link_target="/etc/hosts" if i % 50 == 0 else "",
        )
        for i in range(args.files)
    ]
    log = [
        {
            "type": "event",
            "stream": "vibebox",
            "text": "sandbox started",
            "timestamp": 1.7e9 + i,
            "event": "sandbox.started",
        }
        if i % 100 == 0
        else {"type": "log", "stream": "stdout", "text": f"line {i} of the build", "timestamp": 1.7e9 + i / 3}
        for i in range(args.logs)
    ]

    def declared(serializer, instance):
        return serializers.Serializer.to_representation(serializer, instance)

    cases = [
        (
            f"agent run with {args.tasks} tasks: declared fields (baseline)",
            lambda: {
                **declared(AgentRunSummarySerializer(), run),
                "tasks": [declared(AgentTaskSerializer(), task) for task in tasks],
            },
        ),
        (
            f"agent run with {args.tasks} tasks: hand-written",
            lambda: AgentRunSerializer(run, context=context).data,
        ),
        (
            f"{args.sandboxes} sandboxes: declared fields (baseline)",
            lambda: [declared(SandboxSerializer(), sandbox) for sandbox in sandboxes],
        ),
        (f"{args.sandboxes} sandboxes: hand-written", lambda: SandboxSerializer(sandboxes, many=True).data),
        (
            f"listing of {args.files} files: declared fields (baseline)",
            lambda: {"path": "/workspace", "entries": [declared(FileEntrySerializer(), info) for info in listing]},
        ),
        (
            f"listing of {args.files} files: hand-written",
            lambda: FileListSerializer({"path": "/workspace", "entries": listing}).data,
        ),
        (
            f"log of {args.logs} entries: declared fields (baseline)",
            lambda: {"logs": [declared(LogEntrySerializer(), entry) for entry in log]},
        ),
        (f"log of {args.logs} entries: hand-written", lambda: LogsSerializer({"logs": log}).data),
    ]
    results = []
    for index, (name, render) in enumerate(cases):
        row = summary(name, timed(render, args.repeat))
        if index % 2:  # the fast path of the case before it
            row["ratio_p50_vs_baseline"] = round(row["p50_ms"] / results[-1]["p50_ms"], 2)
        results.append(row)
    print(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
