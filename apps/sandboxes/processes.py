"""Background commands: started by `POST …/exec` with `background: true`, they outlive the
request and any WebSocket; clients reattach to their output (kept from the start, up to
VIBEBOX_PROCESS_BUFFER bytes) and exit.

The registry lives in the web process (one uvicorn process serves VibeBox); the Execution row
is the durable record. A command still runs in the sandbox if the server restarts, but its
output stream is lost and reconciliation marks the execution `error`.

A finished process stays in the registry for VIBEBOX_PROCESS_KEEP, then is forgotten (swept on
the next registry access); asking for it afterwards answers from its Execution row (its stored
output and exit), not a 404. Running processes count against the owner's
VIBEBOX_MAX_PROCESSES_PER_OWNER (apps/sandboxes/limits.py): one more is 429 too_many_streams.
"""

import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections

from vibebox import exceptions as errors

from . import limits
from .execution import outcome_summary, require_running, sandbox_exec
from .models import Execution, Sandbox, new_execution_id
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
    finished_at: float | None = None  # time.monotonic() of the exit
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
            self.finished_at = time.monotonic()
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

    @classmethod
    def from_execution(cls, execution: Execution) -> "Process":
        """A finished process rebuilt from its record, once it has left the registry: its stored
        output (the first VIBEBOX_EXEC_STORED_OUTPUT of stdout, then of stderr, secrets masked)
        and its exit."""
        chunks = [(name, text.encode()) for name, text in (("stdout", execution.stdout), ("stderr", execution.stderr))]
        process = cls(
            id=execution.id,
            sandbox_id=execution.sandbox_id,
            command=execution.command[:200],
            chunks=[chunk for chunk in chunks if chunk[1]],  # the stored start of each (exit says truncated)
        )
        process.control.close()  # nothing to control: it has ended
        process.exit = {
            "type": "exit",
            "executionId": execution.id,
            "exitCode": execution.exit_code,
            "duration": execution.duration_ms,
            "status": execution.status,
            "truncated": execution.truncated,
            "oomKilled": execution.oom_killed,
        }
        return process


_registry: dict[str, Process] = {}
_lock = threading.Lock()


def _sweep() -> None:
    """Forgets processes that finished more than VIBEBOX_PROCESS_KEEP ago. Call with _lock held."""
    horizon = time.monotonic() - settings.VIBEBOX_PROCESS_KEEP
    for process_id in [pid for pid, p in _registry.items() if p.finished_at is not None and p.finished_at < horizon]:
        del _registry[process_id]


def process_start(*, sandbox: Sandbox, command, cwd=None, env=None, user=None, timeout=None, api_key=None) -> Process:
    require_running(sandbox)
    slot = limits.acquire(limits.PROCESSES, sandbox.owner_id)  # or 429 too_many_streams
    process = Process(id=new_execution_id(), sandbox_id=sandbox.id, command=str(command)[:200])
    with _lock:
        _sweep()
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
            slot.release()
            process.control.close()
            close_old_connections()

    try:
        threading.Thread(target=run, daemon=True, name=f"process-{process.id}").start()
    except BaseException:
        slot.release()
        with _lock:
            _registry.pop(process.id, None)
        raise
    return process


def process_list(*, sandbox: Sandbox) -> list[Process]:
    with _lock:
        _sweep()
        return [p for p in _registry.values() if p.sandbox_id == sandbox.id and p.exit is None]


def process_get(*, sandbox: Sandbox, id: str) -> Process:
    with _lock:
        _sweep()
        process = _registry.get(id)
    if process is not None and process.sandbox_id == sandbox.id:
        return process
    if process is None:  # forgotten after VIBEBOX_PROCESS_KEEP: its record still answers
        execution = Execution.objects.filter(pk=id, sandbox=sandbox, background=True).first()
        if execution is not None and execution.status != Execution.Status.RUNNING:
            return Process.from_execution(execution)
    raise errors.ExecutionNotFound("No such process.", details={"processId": id})


def process_kill(*, sandbox: Sandbox, id: str, signal: str = "KILL") -> Process:
    process = process_get(sandbox=sandbox, id=id)
    if process.exit is None:
        process.control.signal(signal)
    return process
