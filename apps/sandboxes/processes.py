"""Background commands: started by `POST …/exec` with `background: true`, they outlive the
request and any WebSocket; clients reattach to their output (kept from the start, up to
VIBEBOX_PROCESS_BUFFER bytes) and exit.

The registry lives in the web process (one uvicorn process serves VibeBox); the Execution row
is the durable record. A command still runs in the sandbox if the server restarts, but its
output stream is lost and reconciliation marks the execution `error`.
"""

import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections

from vibebox import exceptions as errors

from .execution import outcome_summary, require_running, sandbox_exec
from .models import Sandbox, new_execution_id
from .runtime.base import ExecControl


@dataclass
class Process:
    id: str
    sandbox_id: str
    command: str
    control: ExecControl = field(default_factory=ExecControl)
    chunks: list = field(default_factory=list)  # [(stream, bytes)], oldest dropped past the limit
    kept: int = 0
    dropped: int = 0
    exit: dict | None = None
    listeners: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, stream: str, data: bytes) -> None:
        with self.lock:
            self.chunks.append((stream, data))
            self.kept += len(data)
            while self.kept > settings.VIBEBOX_PROCESS_BUFFER and len(self.chunks) > 1:
                _, old = self.chunks.pop(0)
                self.kept -= len(old)
                self.dropped += len(old)
            listeners = list(self.listeners)
        for listener in listeners:
            listener(("output", stream, data))

    def finish(self, summary: dict) -> None:
        with self.lock:
            self.exit = summary
            listeners, self.listeners = list(self.listeners), []
        for listener in listeners:
            listener(("exit", summary))

    def attach(self, listener) -> tuple[list, int, dict | None]:
        """(the output so far, bytes dropped from its start, the exit if it has ended). Live
        output and the exit go to `listener` from then on."""
        with self.lock:
            if self.exit is None:
                self.listeners.append(listener)
            return list(self.chunks), self.dropped, self.exit

    def detach(self, listener) -> None:
        with self.lock:
            if listener in self.listeners:
                self.listeners.remove(listener)

    def summary(self) -> dict:
        return {"processId": self.id, "command": self.command, "running": self.exit is None, "exit": self.exit}


_registry: dict[str, Process] = {}
_lock = threading.Lock()


def process_start(*, sandbox: Sandbox, command, cwd=None, env=None, user=None, timeout=None, api_key=None) -> Process:
    require_running(sandbox)
    process = Process(id=new_execution_id(), sandbox_id=sandbox.id, command=str(command)[:200])
    with _lock:
        _registry[process.id] = process

    def run():
        try:
            outcome = sandbox_exec(
                sandbox=sandbox,
                command=command,
                cwd=cwd,
                env=env,
                user=user,
                timeout=timeout if timeout is not None else 0,  # background: up to the maximum
                api_key=api_key,
                on_output=process.feed,
                control=process.control,
                execution_id=process.id,
                background=True,
            )
            process.finish(outcome_summary(outcome))
        except errors.ApplicationError as exc:
            process.finish({"type": "exit", "status": "error", "error": {"code": exc.code, "message": exc.message}})
        finally:
            process.control.close()
            close_old_connections()

    threading.Thread(target=run, daemon=True, name=f"process-{process.id}").start()
    return process


def process_list(*, sandbox: Sandbox) -> list[Process]:
    with _lock:
        return [p for p in _registry.values() if p.sandbox_id == sandbox.id and p.exit is None]


def process_get(*, sandbox: Sandbox, id: str) -> Process:
    with _lock:
        process = _registry.get(id)
    if process is None or process.sandbox_id != sandbox.id:
        raise errors.ExecutionNotFound("No such process.", details={"processId": id})
    return process


def process_kill(*, sandbox: Sandbox, id: str, signal: str = "KILL") -> Process:
    process = process_get(sandbox=sandbox, id=id)
    if process.exit is None:
        process.control.signal(signal)
    return process
