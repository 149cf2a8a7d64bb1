"""Background commands: started by `POST …/exec` with `background: true`, they outlive the
request and any WebSocket; clients reattach to their output (kept from the start, up to a
buffer's size) and exit.

They live in the sandbox's sandboxd (its /process/* endpoints, docs/sandboxd.md), output
included: any web process lists, attaches to and kills any of them, and a restart of the web
server loses nothing. The Execution row is the durable record and the list of what runs: the web
process that started a process follows it (a thread) and records its end; when that web process
died first, the reconcile pass records it from sandboxd (`record_ended`).

A finished process answers from its Execution row (its stored output and exit). Running
processes count against the owner's VIBEBOX_MAX_PROCESSES_PER_OWNER (apps/sandboxes/limits.py):
one more is 429 too_many_streams.
"""

import dataclasses
import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connections

from apps.audit.services import record
from vibebox import exceptions as errors

from . import limits
from .models import Execution, Sandbox, Status
from .runtime import ExecRequest, ExecResult, driver_for
from .services.env import redact, secret_values
from .services.exec import (
    COMMAND_PREVIEW,
    command_argv,
    failed,
    finish,
    prepare,
    require_running,
    status_of,
)
from .services.lifecycle import container_running

logger = logging.getLogger(__name__)

SLACK = 60  # seconds an attach may outlast the longest command
START_GRACE = 30  # seconds a process's row may be running before sandboxd has the process


def _attach_timeout() -> float:
    return settings.VIBEBOX_EXEC_MAX_TIMEOUT + SLACK


def _settled(result: ExecResult) -> ExecResult:
    """sandboxd's account of a process's end, `truncated` as for any command: a stream printed
    more than VIBEBOX_EXEC_OUTPUT_LIMIT (what one attach kept is its own choice)."""
    limit = settings.VIBEBOX_EXEC_OUTPUT_LIMIT
    return dataclasses.replace(result, truncated=result.stdout_bytes > limit or result.stderr_bytes > limit)


@dataclass(frozen=True)
class ProcessExit:
    """How a background process ended: its result, or (`status` error) the engine's `error`
    when its end could not be followed (then nothing else is known)."""

    status: str  # completed, failed, timeout; error
    execution_id: str = ""
    exit_code: int | None = None
    duration_ms: int | None = None
    truncated: bool = False
    oom_killed: bool = False
    error: errors.ApplicationError | None = None

    @classmethod
    def of_result(cls, execution_id: str, result: ExecResult) -> "ProcessExit":
        """From sandboxd's account of its end."""
        result = _settled(result)
        return cls(
            status=status_of(result),
            execution_id=execution_id,
            exit_code=result.exit_code,
            duration_ms=result.duration_ms,
            truncated=result.truncated,
            oom_killed=result.oom_killed,
        )

    @classmethod
    def of_execution(cls, execution: Execution) -> "ProcessExit":
        """From its record."""
        return cls(
            status=execution.status,
            execution_id=execution.id,
            exit_code=execution.exit_code,
            duration_ms=execution.duration_ms,
            truncated=execution.truncated,
            oom_killed=execution.oom_killed,
        )

    @classmethod
    def failed(cls, exc: errors.ApplicationError) -> "ProcessExit":
        return cls(status="error", error=exc)


@dataclass
class EndedProcess:
    """A finished process, from its record: its stored output (the first
    VIBEBOX_EXEC_STORED_OUTPUT of stdout, then of stderr, secrets masked) and its exit."""

    id: str
    command: str
    chunks: list  # [(stream, bytes)]
    exit: ProcessExit
    running = False

    @classmethod
    def from_execution(cls, execution: Execution) -> "EndedProcess":
        chunks = [(name, text.encode()) for name, text in (("stdout", execution.stdout), ("stderr", execution.stderr))]
        return cls(
            id=execution.id,
            command=execution.command[:200],
            chunks=[chunk for chunk in chunks if chunk[1]],  # the stored start of each (exit says truncated)
            exit=ProcessExit.of_execution(execution),
        )

    def attach(self, listener) -> tuple[list, int, ProcessExit | None]:
        return list(self.chunks), 0, self.exit

    def detach(self, listener) -> None:
        pass

    def signal(self, signal: str) -> None:
        pass  # it has ended


@dataclass
class DaemonProcess:
    """A running process kept by the sandbox's sandboxd: each attach is a stream of sandboxd's,
    from the start of what it keeps."""

    id: str
    sandbox: Sandbox
    command: str
    attaches: dict = field(default_factory=dict)  # listener -> the Event that detaches it
    running = True
    exit = None

    def attach(self, listener) -> tuple[list, int, ProcessExit | None]:
        """Nothing at once: the kept output (`("output", stream, bytes)`), `("lost", n)` when
        some is no longer kept, live output and `("exit", ProcessExit)` all go to `listener`, from
        a thread of the attach."""
        stop = threading.Event()
        self.attaches[listener] = stop

        def follow():
            request = ExecRequest(
                argv=(),
                exec_id=self.id,
                timeout=_attach_timeout(),
                output_limit=0,  # nothing kept here: it all goes to the listener
                on_output=lambda stream, data: listener(("output", stream, data)),
            )
            try:
                result = driver_for(self.sandbox).process_attach(
                    self.sandbox.container_name,
                    self.id,
                    request=request,
                    stop=stop,
                    on_lost=lambda count: listener(("lost", count)),
                )
            except errors.ApplicationError as exc:
                listener(("exit", ProcessExit.failed(exc)))
                return
            if result is not None:  # None: detached
                listener(("exit", ProcessExit.of_result(self.id, result)))

        threading.Thread(target=follow, daemon=True, name=f"attach-{self.id}").start()
        return [], 0, None

    def detach(self, listener) -> None:
        stop = self.attaches.pop(listener, None)
        if stop is not None:
            stop.set()

    def signal(self, signal: str) -> None:
        require_running(self.sandbox)  # a frozen sandboxd would not answer
        driver_for(self.sandbox).process_kill(self.sandbox.container_name, self.id, signal)


def process_start_from(*, sandbox: Sandbox, api_key, data: dict):
    """A background command from the exec body's validated fields (api.serializers.ExecSerializer
    with background): REST's and GraphQL's. Answers the started process."""
    if data.get("stdin") is not None:
        raise errors.ValidationFailed("A background command takes no stdin; use the exec WebSocket.")
    if data["autoResume"]:
        require_running(sandbox, auto_resume=True)
    return process_start(
        sandbox=sandbox,
        command=data["command"],
        cwd=data.get("cwd"),
        env=data.get("env"),
        user=data.get("user") or None,
        timeout=data.get("timeout"),
        api_key=api_key,
    )


def started_answer(process) -> dict:
    """What a started background command answers (BackgroundProcessSerializer's fields)."""
    return {"processId": process.id, "executionId": process.id, "status": "running"}


def process_start(
    *, sandbox: Sandbox, command, cwd=None, env=None, user=None, timeout=None, api_key=None, preview=None
):
    """`preview`: what the record shows as the command (default: the command as given)."""
    argv, given = command_argv(command)
    preview = preview or given
    require_running(sandbox)
    slot = limits.acquire(limits.PROCESSES, sandbox.owner_id)  # or 429 too_many_streams
    try:
        execution, request = prepare(
            sandbox=sandbox,
            kind=Execution.Kind.EXEC,
            argv=argv,
            record={
                "background": True,
                "command": redact(preview[:COMMAND_PREVIEW], secret_values(sandbox)),
            },
            stdin=None,
            env=env,
            cwd=cwd,
            user=user,
            timeout=timeout if timeout is not None else 0,  # background: up to the maximum
            api_key=api_key,
        )
        try:
            with container_running(sandbox):
                driver_for(sandbox).process_start(sandbox.container_name, request)
        except errors.ApplicationError as exc:
            failed(execution, exc)
            raise
        _thread(f"follow-{execution.id}", _follow, sandbox, execution, slot)
        return DaemonProcess(id=execution.id, sandbox=sandbox, command=execution.command[:200])
    except BaseException:
        slot.release()
        raise


def _thread(name: str, target, *args) -> None:
    threading.Thread(target=target, args=args, daemon=True, name=name).start()


def _follow(sandbox: Sandbox, execution: Execution, slot) -> None:
    """Waits for the end of a process in sandboxd and records it (the stored start of its output)."""
    request = ExecRequest(
        argv=(), exec_id=execution.id, timeout=_attach_timeout(), output_limit=settings.VIBEBOX_EXEC_STORED_OUTPUT
    )
    try:
        try:
            result = driver_for(sandbox).process_attach(sandbox.container_name, execution.id, request=request)
        except errors.ApplicationError as exc:
            logger.info("lost sight of process %s: %s", execution.id, exc.message)
            if not _still_known(sandbox, execution.id):  # the sandbox stopped or restarted: it ended
                failed(execution, errors.RuntimeFailure(f"The process ended with its sandbox: {exc.message}"))
            # else it runs on (sandboxd was briefly unreachable): the reconcile pass records its end
        else:
            finish(execution, _settled(result), sandbox, result.stdout)
    except DatabaseError as exc:  # the record stays `running`: the reconcile pass records the end
        logger.warning("could not record the end of process %s: %s", execution.id, exc)
    finally:
        slot.release()
        connections.close_all()  # this thread ends: its connections with it


def _still_known(sandbox: Sandbox, execution_id: str) -> bool:
    try:
        listed = driver_for(sandbox).process_list(sandbox.container_name)
    except errors.ApplicationError:
        return False
    return any(info.exec_id == execution_id and info.running for info in listed)


def _running(sandbox: Sandbox):
    return Execution.objects.filter(sandbox=sandbox, background=True, status=Execution.Status.RUNNING)


def _of(sandbox: Sandbox, execution: Execution) -> DaemonProcess:
    return DaemonProcess(id=execution.id, sandbox=sandbox, command=execution.command[:200])


def running_ids(sandbox: Sandbox) -> list[str]:
    return list(_running(sandbox).values_list("id", flat=True))


def process_list(*, sandbox: Sandbox) -> list:
    """The running ones, oldest first: their records say so until their end is recorded."""
    return [_of(sandbox, execution) for execution in _running(sandbox).order_by("started_at")]


def process_get(*, sandbox: Sandbox, id: str):
    execution = Execution.objects.filter(pk=id, sandbox=sandbox, background=True).first()
    if execution is None:
        raise errors.ExecutionNotFound("No such process.", details={"processId": id})
    if execution.status == Execution.Status.RUNNING:
        return _of(sandbox, execution)
    return EndedProcess.from_execution(execution)


def process_kill(*, sandbox: Sandbox, id: str, signal: str = "KILL"):
    process = process_get(sandbox=sandbox, id=id)
    process.signal(signal)
    record("process.signalled", target=sandbox, changes={"process": id, "signal": signal})
    return process


def record_ended(sandbox: Sandbox, *, now) -> int:
    """For the reconcile pass: records the end of the sandbox's background processes in sandboxd
    whose web process did not (it died, or lost sight of them), and errors those sandboxd no
    longer knows (the sandbox restarted). Only processes started START_GRACE before `now` (a
    process being started has its row before sandboxd has it). Answers how many it recorded."""
    horizon = now - dt.timedelta(seconds=START_GRACE)
    running = {e.id: e for e in _running(sandbox).filter(started_at__lt=horizon)}
    if not running or sandbox.status != Status.RUNNING:
        return 0
    listed = driver_for(sandbox).process_list(sandbox.container_name)
    known = {info.exec_id: info for info in listed}
    recorded = 0
    for execution_id, execution in running.items():
        info = known.get(execution_id)
        if info is None:
            failed(execution, errors.RuntimeFailure("The sandbox restarted while this ran."))
            recorded += 1
        elif not info.running:
            request = ExecRequest(
                argv=(), exec_id=execution_id, timeout=60, output_limit=settings.VIBEBOX_EXEC_STORED_OUTPUT
            )
            result = driver_for(sandbox).process_attach(sandbox.container_name, execution_id, request=request)
            finish(execution, _settled(result), sandbox, result.stdout)
            recorded += 1
    return recorded
