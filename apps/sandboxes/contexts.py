"""Stateful code contexts (docs/api.md, "Code contexts"): a kernel per context that keeps
variables, imports and state between executes, and answers rich results.

The kernel is VibeBox's own small program (kernels/python_kernel.py, kernels/js_kernel.js), passed
whole on the command line (`python3 -I -c <source> kernel <id>`, `node -e <source> kernel <id>`)
to the sandbox's sandboxd as a background process (`/process/start`, exec id `<ctx id>-<gen>`),
as the sandbox user. It listens on an abstract Unix socket of the sandbox's own network
namespace. Each execute is a sandboxd stream of a small client (kernels/python_client.py,
kernels/js_client.js): stdin the request, stdout the kernel's answer as JSON lines, relayed as
they come. So any web process serves any context (nothing lives in a web process's memory), and the kernel's liveness is
sandboxd's process list: a kernel that is not running there is `dead`.

Everything the kernel answers is hostile (the code it runs can replace it): each line is capped
and parsed with bounded JSON, each field checked, stdout and stderr capped, results counted and
capped, and the whole execute bounded by its timeout (then the kernel gets SIGINT).
"""

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import record
from vibebox import exceptions as errors

from . import languages
from .models import CodeContext, Execution, Sandbox, Status
from .runtime import ExecRequest, ExecResult, bounded, driver_for
from .services.env import command_env, redact, secret_values
from .services.exec import COMMAND_PREVIEW, failed, finish, prepare, require_running, resolve_cwd, resolve_timeout
from .services.lifecycle import container_running

logger = logging.getLogger(__name__)

KERNELS = Path(__file__).resolve().parent / "kernels"
LANGUAGES = {"python": "python_kernel.py", "javascript": "js_kernel.js"}
CLIENTS = {"python": "python_client.py", "javascript": "js_client.js"}
KERNEL_LIFETIME = 1e8  # seconds (sandboxd's cap; 0 would end it at once)
GRACE = 10  # seconds past an execute's timeout before its client is ended (the kernel's own timer first)
MIMES = ("text/plain", "text/html", "image/png", "image/svg+xml", "application/json", "text/markdown")
MAX_ERROR_NAME = 256
MAX_ERROR_VALUE = 64 * 1024
MAX_TRACEBACK = 1024 * 1024
MAX_RETURN_VALUE = 64 * 1024


@cache
def _source(filename: str) -> str:
    return (KERNELS / filename).read_text()


def _kernel_argv(language: str, name: str) -> tuple[str, ...]:
    if language == "python":
        return ("python3", "-I", "-c", _source(LANGUAGES[language]), "kernel", name)
    return ("node", "-e", _source(LANGUAGES[language]), "kernel", name)


def _client_argv(language: str, name: str) -> tuple[str, ...]:
    if language == "python":
        return ("python3", "-I", "-S", "-c", _source(CLIENTS[language]), name)
    return ("node", "-e", _source(CLIENTS[language]), name)


# ---- reads ----


def context_get(*, sandbox: Sandbox, id: str) -> CodeContext:
    context = CodeContext.objects.filter(pk=id, sandbox=sandbox).select_related("sandbox").first()
    if context is None:
        raise errors.ContextNotFound(details={"contextId": id})
    return context


def _kernels(sandbox: Sandbox) -> dict[str, bool] | None:
    """{kernel exec id: running} from sandboxd; None when the sandbox cannot be asked (paused)."""
    if sandbox.status == Status.PAUSED:
        return None
    if sandbox.status != Status.RUNNING:
        return {}
    return {info.exec_id: info.running for info in driver_for(sandbox).process_list(sandbox.container_name)}


def _status(context: CodeContext, kernels: dict[str, bool] | None, now) -> str:
    if kernels is not None and not kernels.get(context.kernel_id, False):
        return "dead"
    return "busy" if context.busy_until and context.busy_until > now else "idle"


@dataclass
class ContextView:
    """A context as the API shows it."""

    context: CodeContext
    status: str

    def __getattr__(self, name):
        return getattr(self.context, name)


def context_views(sandbox: Sandbox, contexts: list[CodeContext]) -> list[ContextView]:
    kernels = _kernels(sandbox) if contexts else {}
    now = timezone.now()
    return [ContextView(context, _status(context, kernels, now)) for context in contexts]


def context_view(context: CodeContext) -> ContextView:
    return context_views(context.sandbox, [context])[0]


def context_list(*, sandbox: Sandbox) -> list[ContextView]:
    return context_views(sandbox, list(CodeContext.objects.filter(sandbox=sandbox)))


# ---- writes ----


def _start_kernel(sandbox: Sandbox, context: CodeContext) -> None:
    request = ExecRequest(
        argv=_kernel_argv(context.language, context.kernel_id),
        exec_id=context.kernel_id,
        env=command_env(sandbox, {"PYTHONUNBUFFERED": "1"}),
        user=sandbox.template.user,
        workdir=context.cwd,
        timeout=KERNEL_LIFETIME,  # sandboxd's longest: it lives until deleted, restarted or its sandbox stops
    )
    with container_running(sandbox):
        driver_for(sandbox).process_start(sandbox.container_name, request)


def _kill_kernel(sandbox: Sandbox, context: CodeContext) -> None:
    if sandbox.status == Status.PAUSED:
        require_running(sandbox)  # its frozen kernel would live on after a resume: resumed first, or 409
    if sandbox.status != Status.RUNNING:
        return  # a stopped sandbox has no kernel left
    try:
        driver_for(sandbox).process_kill(sandbox.container_name, context.kernel_id, "KILL")
    except errors.ApplicationError as exc:
        logger.info("could not end kernel %s: %s", context.kernel_id, exc.message)


def context_create(*, sandbox: Sandbox, language: str, cwd: str | None = None) -> ContextView:
    if language not in LANGUAGES:
        raise errors.ValidationFailed(
            "language is python or javascript.", details={"field": "language", "supported": list(LANGUAGES)}
        )
    template = sandbox.template
    languages.check_supported(language, list(template.languages) or [template.language])
    require_running(sandbox)
    workdir = resolve_cwd(sandbox, cwd)
    _check_cwd(sandbox, workdir)
    limit = settings.VIBEBOX_CONTEXT_MAX_PER_SANDBOX
    with transaction.atomic():  # the sandbox's row locked: two creates at once cannot both take the last place
        Sandbox.objects.select_for_update().filter(pk=sandbox.pk).exists()
        current = CodeContext.objects.filter(sandbox=sandbox).count()
        if current >= limit:
            raise errors.TooManyStreams(
                f"A sandbox holds at most {limit} code contexts; delete one.",
                details={"kind": "contexts", "limit": limit, "current": current},
            )
        context = CodeContext.objects.create(sandbox=sandbox, language=language, cwd=workdir)
    try:
        _start_kernel(sandbox, context)
    except BaseException:
        context.delete()
        raise
    record("context.created", target=sandbox, changes={"context": context.id, "language": language, "cwd": context.cwd})
    return ContextView(context, "idle")


def _check_cwd(sandbox: Sandbox, path: str) -> None:
    """A directory the sandbox user can enter, else 400 (sandboxd would refuse to start the kernel)."""
    try:
        with container_running(sandbox):
            info = driver_for(sandbox).file_stat(sandbox.container_name, path, user=sandbox.template.user, follow=True)
    except (errors.FileNotFound, errors.FilePermissionDenied) as exc:
        raise errors.ValidationFailed(
            f"cwd {path} is not a directory the sandbox user can use: {exc.message}",
            details={"field": "cwd", "cwd": path},
        ) from None
    if not info.is_dir:
        raise errors.ValidationFailed(f"cwd {path} is not a directory.", details={"field": "cwd", "cwd": path})


def context_delete(*, context: CodeContext) -> None:
    sandbox = context.sandbox
    _kill_kernel(sandbox, context)
    context.delete()
    record("context.deleted", target=sandbox, changes={"context": context.id})


def context_interrupt(*, context: CodeContext) -> ContextView:
    """SIGINT to the kernel (and what its code started): the running code ends with a
    KeyboardInterrupt error, the state stays."""
    sandbox = context.sandbox
    require_running(sandbox)
    if not driver_for(sandbox).process_kill(sandbox.container_name, context.kernel_id, "INT"):
        raise errors.ContextDead(details={"contextId": context.id})
    record("context.interrupted", target=sandbox, changes={"context": context.id})
    return context_view(context)


def context_restart(*, context: CodeContext) -> ContextView:
    """A new kernel (a new generation: sandboxd keeps the old one's exec id for a while): every
    variable is gone."""
    sandbox = context.sandbox
    require_running(sandbox)
    _kill_kernel(sandbox, context)
    won = CodeContext.objects.filter(pk=context.pk, generation=context.generation).update(
        generation=context.generation + 1, execution_count=0, busy_until=None, last_used_at=timezone.now()
    )
    context.refresh_from_db()
    if not won:  # a restart at the same time started the next kernel
        return context_view(context)
    _start_kernel(sandbox, context)
    record("context.restarted", target=sandbox, changes={"context": context.id, "generation": context.generation})
    return ContextView(context, "idle")


# ---- execute ----


@dataclass
class ContextOutcome:
    """One execute's answer (what POST …/execute renders), everything checked and capped."""

    execution_id: str = ""
    results: list = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    error: dict | None = None
    execution_count: int = 0
    duration_ms: int = 0
    timed_out: bool = False
    dead: bool = False
    done: bool = False


class KernelReader:
    """The kernel's answer, fed as it comes (the client's stdout): JSON lines, each capped
    (a longer one is dropped and counts as truncation), parsed with bounded JSON, checked field by
    field; what passes goes to `on_event` as the API's message."""

    def __init__(self, on_event=None):
        self.on_event = on_event
        self.outcome = ContextOutcome()
        self.output_limit = settings.VIBEBOX_CONTEXT_OUTPUT_LIMIT
        self.result_limit = settings.VIBEBOX_CONTEXT_RESULT_LIMIT
        self.results_limit = settings.VIBEBOX_CONTEXT_RESULTS_LIMIT
        self.results_size = 0
        self.max_results = settings.VIBEBOX_CONTEXT_MAX_RESULTS
        # A line holds one event: a result (its values, JSON-escaped: room for some escaping; a
        # result that needs more is left out as too large) or a chunk of output.
        self.max_line = 2 * self.result_limit + 64 * 1024
        self.buffer = bytearray()
        self.skipping = False
        self.streams = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}
        self.dropped = 0  # malformed lines

    def feed(self, data: bytes) -> None:
        while data:
            newline = data.find(b"\n")
            part, data = (data, b"") if newline < 0 else (data[:newline], data[newline + 1 :])
            if not self.skipping:
                if len(self.buffer) + len(part) > self.max_line:
                    self.buffer.clear()
                    self.skipping = True
                    self.outcome.truncated = True
                else:
                    self.buffer += part
            if newline >= 0:
                if not self.skipping:
                    self._line(bytes(self.buffer))
                self.buffer.clear()
                self.skipping = False

    def _emit(self, message: dict) -> None:
        if self.on_event is not None:
            self.on_event(message)

    def _line(self, line: bytes) -> None:
        if self.outcome.done or not line.strip():
            return
        try:
            event = bounded.loads(line, max_bytes=self.max_line, max_depth=32)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not self._event(event):
            self.dropped += 1

    def _event(self, event: dict) -> bool:
        kind = event.get("type")
        if kind in ("stdout", "stderr"):
            data = event.get("data")
            if type(data) is not str:
                return False
            room = self.output_limit - self.sizes[kind]
            if len(data) > room:
                data, self.outcome.truncated = data[: max(room, 0)], True
            if data:
                self.sizes[kind] += len(data)
                self.streams[kind].append(data)
                self._emit({"type": kind, "data": data})
            return True
        if kind == "result":
            return self._result(event)
        if kind == "error":
            name, value, trace = event.get("name"), event.get("value"), event.get("traceback")
            if not (type(name) is str and type(value) is str and type(trace) is str):
                return False
            if self.outcome.error is None:
                self.outcome.error = {
                    "name": name[:MAX_ERROR_NAME],
                    "value": value[:MAX_ERROR_VALUE],
                    "traceback": trace[:MAX_TRACEBACK],
                }
                self._emit({"type": "error", **self.outcome.error})
            return True
        if kind == "done":
            count, truncated = event.get("executionCount"), event.get("truncated", False)
            if type(count) is not int or not 0 <= count < 2**31 or type(truncated) is not bool:
                return False
            self.outcome.execution_count, self.outcome.done = count, True
            self.outcome.truncated |= truncated
            return True
        if kind == "dead":
            self.outcome.dead = True
            return True
        return False

    def _result(self, event: dict) -> bool:
        data, main = event.get("data"), event.get("isMainResult", False)
        if not isinstance(data, dict) or type(main) is not bool or not data:
            return False
        checked = {}
        size = 0
        for mime, value in data.items():
            if mime not in MIMES:
                continue  # a type the API does not carry
            if mime == "application/json":
                size += len(json.dumps(value))
            elif type(value) is str:
                size += len(value)
            else:
                return False
            checked[mime] = value
        if not checked:
            return False
        if (
            len(self.outcome.results) >= self.max_results
            or size > self.result_limit
            or self.results_size + size > self.results_limit
        ):
            self.outcome.truncated = True
            return True
        self.results_size += size
        if main and any(result["isMainResult"] for result in self.outcome.results):
            main = False  # one main result: the last expression's
        result = {"data": checked, "isMainResult": main}
        self.outcome.results.append(result)
        self._emit({"type": "result", **result})
        return True

    def finish(self) -> ContextOutcome:
        if self.buffer and not self.skipping:
            self._line(bytes(self.buffer))
        self.outcome.stdout = "".join(self.streams["stdout"])
        self.outcome.stderr = "".join(self.streams["stderr"])
        return self.outcome


def _request_body(code: str, timeout: float) -> bytes:
    return (
        json.dumps(
            {
                "code": code,
                "timeout": timeout,
                "outputLimit": settings.VIBEBOX_CONTEXT_OUTPUT_LIMIT,
                "resultLimit": settings.VIBEBOX_CONTEXT_RESULT_LIMIT,
                "resultsLimit": settings.VIBEBOX_CONTEXT_RESULTS_LIMIT,
                "maxResults": settings.VIBEBOX_CONTEXT_MAX_RESULTS,
            }
        ).encode()
        + b"\n"
    )


def context_execute(
    *, context: CodeContext, code: str, timeout: float | None = None, api_key=None, on_event=None
) -> ContextOutcome:
    """Runs `code` in the context's kernel; `on_event` (from the stream's thread) gets each
    checked message as it comes: stdout, stderr, result, error. Recorded as an Execution (kind
    execute, the context's language)."""
    if type(code) is not str or not code.strip():
        raise errors.ValidationFailed("code is empty.", details={"field": "code"})
    if len(code.encode()) > settings.VIBEBOX_CODE_LIMIT:
        raise errors.RequestTooLarge("code is too large.")
    sandbox = context.sandbox
    require_running(sandbox)
    timeout = resolve_timeout(timeout)
    kernels = _kernels(sandbox)
    if kernels is not None and not kernels.get(context.kernel_id, False):
        raise errors.ContextDead(details={"contextId": context.id})
    execution, request = prepare(
        sandbox=sandbox,
        kind=Execution.Kind.EXECUTE,
        argv=_client_argv(context.language, context.kernel_id),
        record={
            "language": context.language,
            "command": redact(code[:COMMAND_PREVIEW], secret_values(sandbox)),
            "code_sha256": hashlib.sha256(code.encode()).hexdigest(),
        },
        stdin=_request_body(code, timeout),
        env=None,
        cwd=context.cwd,
        user=None,
        timeout=timeout,
        api_key=api_key,
    )
    reader = KernelReader(on_event)
    client_stderr = bytearray()

    def on_output(stream: str, data: bytes) -> None:
        if stream == "stdout":
            reader.feed(data)
        elif len(client_stderr) < 4096:
            client_stderr.extend(data[: 4096 - len(client_stderr)])

    request = dataclasses.replace(request, timeout=timeout + GRACE, output_limit=1, on_output=on_output)
    now = timezone.now()
    CodeContext.objects.filter(pk=context.pk).update(
        busy_until=now + dt.timedelta(seconds=timeout + GRACE), last_used_at=now
    )
    try:
        try:
            with container_running(sandbox):
                result = driver_for(sandbox).exec(sandbox.container_name, request)
        except errors.ApplicationError as exc:
            failed(execution, exc)
            raise
        outcome = reader.finish()
        outcome.execution_id = execution.id
        outcome.duration_ms = result.duration_ms
        if outcome.dead:
            failed(execution, errors.ContextDead())
            raise errors.ContextDead(details={"contextId": context.id})
        if not outcome.done:
            _unfinished(sandbox, context, outcome, result, bytes(client_stderr), timeout, on_event)
    finally:
        CodeContext.objects.filter(pk=context.pk).update(busy_until=None, last_used_at=timezone.now())
    if outcome.done:
        CodeContext.objects.filter(pk=context.pk).update(execution_count=outcome.execution_count)
    else:
        CodeContext.objects.filter(pk=context.pk).update(execution_count=F("execution_count") + 1)
        outcome.execution_count = context.execution_count + 1
    _record(execution, sandbox, outcome)
    return outcome


def _unfinished(sandbox, context, outcome, result: ExecResult, client_stderr: bytes, timeout: float, on_event) -> None:
    """The kernel's answer ended without its `done`: the code outran the kernel's own timer (the
    client was ended at the deadline; the kernel gets SIGINT), or the kernel died under it."""
    if result.timed_out:
        outcome.timed_out = True
        try:
            driver_for(sandbox).process_kill(sandbox.container_name, context.kernel_id, "INT")
        except errors.ApplicationError as exc:
            logger.info("could not interrupt kernel %s: %s", context.kernel_id, exc.message)
        error = {
            "name": "TimeoutError",
            "value": f"Execution timed out after {timeout:g} s",
            "traceback": f"TimeoutError: Execution timed out after {timeout:g} s\n",
        }
    else:
        alive = (_kernels(sandbox) or {}).get(context.kernel_id, False)
        detail = client_stderr.decode("utf-8", "replace").strip()[:1000]
        value = "The kernel died while running this code; restart the context." if not alive else detail
        error = {"name": "DeadKernelError" if not alive else "KernelError", "value": value, "traceback": value + "\n"}
    if outcome.error is None:
        outcome.error = error
        if on_event is not None:
            on_event({"type": "error", **error})


def _record(execution: Execution, sandbox: Sandbox, outcome: ContextOutcome) -> None:
    """The Execution row: stdout and stderr as the code printed them, exit code 0 (no error) or
    1, or a timeout; the main result's text as its return value."""
    main = next((r["data"] for r in outcome.results if r["isMainResult"]), None)
    text = main.get("text/plain") if main else None
    stdout, stderr = outcome.stdout.encode(), outcome.stderr.encode()
    timed_out = outcome.timed_out or bool(outcome.error and outcome.error["name"] == "TimeoutError")
    result = ExecResult(
        exit_code=None if timed_out else (1 if outcome.error else 0),
        stdout=stdout,
        stderr=stderr,
        stdout_bytes=len(stdout),
        stderr_bytes=len(stderr),
        truncated=outcome.truncated,
        timed_out=timed_out,
        oom_killed=False,
        duration_ms=outcome.duration_ms,
    )
    return_value = text[:MAX_RETURN_VALUE] if isinstance(text, str) else None
    finish(execution, result, sandbox, stdout, return_value)
