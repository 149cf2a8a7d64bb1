"""examples/webhooks' receivers (Python: http.server + SQLite; Node: node:http + a JSON file) run
as they are, each an asyncio subprocess on a loopback port, and read back: their dedupe store and
their `processed <webhook-id> ...` lines. Every wait has a deadline; stop_receiver() ends one
(SIGTERM, then SIGKILL) and is what the fixtures call at teardown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples" / "webhooks"
TS_SDK = ROOT / "sdk" / "typescript"
NODE = shutil.which("node") or "node"
START_DEADLINE = 60.0  # a Python or Node start on two busy cores
STOP_DEADLINE = 10.0


def build_node_app(folder: Path) -> Path:
    """A folder where `@vibebox/sdk` is installed as npm would install it (the SDK of this checkout
    compiled into node_modules/@vibebox/sdk/dist, its package.json, its dependency `ws`), with the
    Node receiver copied beside it, as the example's README has the reader do."""
    package = folder / "node_modules" / "@vibebox" / "sdk"
    package.mkdir(parents=True)
    shutil.copy(TS_SDK / "package.json", package / "package.json")
    built = subprocess.run(
        [NODE, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json", "--outDir", str(package / "dist")],
        cwd=TS_SDK,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (folder / "node_modules" / "ws").symlink_to(TS_SDK / "node_modules" / "ws")
    shutil.copy(EXAMPLES / "node" / "receiver.mjs", folder / "receiver.mjs")
    return folder


@dataclass
class ExampleReceiver:
    kind: str  # "python" or "node"
    port: int
    store: Path
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)  # stdout: "listening on ...", "processed <id> <type> ..."
    errors: list[str] = field(default_factory=list)  # stderr: one line per request (Python), failures
    readers: list[asyncio.Task] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stored(self) -> dict[str, dict]:
        """The dedupe store, as the receiver wrote it: webhook-id -> {"type", "deliveries",
        "processed", "event"}, in the order the events were first received."""
        if not self.store.exists():
            return {}
        if self.kind == "python":
            with contextlib.closing(sqlite3.connect(self.store)) as db:
                rows = db.execute(
                    "SELECT webhook_id, type, deliveries, processed_at, payload FROM webhook_events"
                    " ORDER BY received_at"
                ).fetchall()
            return {
                row[0]: {
                    "type": row[1],
                    "deliveries": row[2],
                    "processed": row[3] is not None,
                    "event": json.loads(row[4]),
                }
                for row in rows
            }
        events = json.loads(self.store.read_text())["events"]
        ordered = sorted(events.items(), key=lambda item: item[1]["receivedAt"])
        return {
            webhook_id: {
                "type": entry["type"],
                "deliveries": entry["deliveries"],
                "processed": entry["processedAt"] is not None,
                "event": entry["event"],
            }
            for webhook_id, entry in ordered
        }

    def processed(self, webhook_id: str) -> int:
        """How many times the receiver processed the event (its `processed <id> ...` lines)."""
        return sum(1 for line in self.output if line.startswith(f"processed {webhook_id} "))

    def describe(self) -> str:
        return f"{self.kind} receiver on {self.url}: stdout {self.output[-20:]} stderr {self.errors[-20:]}"


async def start_receiver(
    kind: str, secret: str, *, port: int, folder: Path, node_app: Path | None = None
) -> ExampleReceiver:
    """Runs the example receiver `kind` with WEBHOOK_SECRET=`secret` on 127.0.0.1:`port`, its store
    in `folder` (the same folder again: a restart that keeps the store)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WEBHOOK_SECRET": secret, "PORT": str(port), "HOST": "127.0.0.1"}
    if kind == "python":
        store = folder / "webhooks.sqlite3"
        env |= {"WEBHOOK_DB": str(store), "PYTHONPATH": str(ROOT / "sdk" / "python" / "src"), "PYTHONUNBUFFERED": "1"}
        command, cwd = [sys.executable, str(EXAMPLES / "python" / "receiver.py")], folder
    else:
        assert node_app is not None, "the Node receiver runs in a folder where the SDK is installed"
        store = folder / "webhooks.json"
        env["WEBHOOK_STORE"] = str(store)
        command, cwd = [NODE, "receiver.mjs"], node_app
    return await spawn_receiver(kind, command, cwd=cwd, env=env, port=port, store=store)


async def spawn_receiver(
    kind: str, command: list[str], *, cwd: Path, env: dict, port: int, store: Path
) -> ExampleReceiver:
    """Runs `command` (a receiver, or a shell running one) in a process group of its own; answers
    once it printed `listening on http://127.0.0.1:<port>`, or fails (and stops it) after
    START_DEADLINE."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    receiver = ExampleReceiver(kind, port, store, process)
    listening = asyncio.Event()

    async def read(stream: asyncio.StreamReader, lines: list[str]) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if line.startswith("listening on "):
                listening.set()

    receiver.readers = [
        asyncio.create_task(read(process.stdout, receiver.output)),
        asyncio.create_task(read(process.stderr, receiver.errors)),
    ]
    ready, exited = asyncio.create_task(listening.wait()), asyncio.create_task(process.wait())
    await asyncio.wait({ready, exited}, timeout=START_DEADLINE, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    exited.cancel()
    if not listening.is_set():
        await stop_receiver(receiver)  # never left running by a failed start
        raise AssertionError(f"the {kind} receiver did not start: {receiver.describe()}")
    assert f"listening on http://127.0.0.1:{port}" in receiver.output, receiver.describe()
    return receiver


async def stop_receiver(receiver: ExampleReceiver) -> None:
    """SIGTERM to its process group, STOP_DEADLINE to exit, then SIGKILL; its output read to the end."""
    process = receiver.process
    if process.returncode is None:
        _signal_group(process, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_DEADLINE)
        except TimeoutError:
            _signal_group(process, signal.SIGKILL)
            await asyncio.wait_for(process.wait(), STOP_DEADLINE)
    _done, pending = await asyncio.wait(receiver.readers, timeout=STOP_DEADLINE)
    for task in pending:
        task.cancel()


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


async def run_shell(command: str, *, cwd: Path, env: dict, deadline: float = 60.0) -> str:
    """`bash -euo pipefail -c command`; answers its stdout, fails on a non-zero exit or after
    `deadline` (killed then)."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), deadline)
    except TimeoutError:
        _signal_group(process, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), STOP_DEADLINE)
        raise AssertionError(f"{command!r} still running after {deadline:g} s") from None
    assert process.returncode == 0, f"{command!r} exited {process.returncode}: {err.decode(errors='replace')}"
    return out.decode()
