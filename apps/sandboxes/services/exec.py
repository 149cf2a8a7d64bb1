"""Running commands (`exec`) and code snippets (`execute`) in a sandbox, and recording them."""

import hashlib
import json
import posixpath
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record as audit
from vibebox import exceptions as errors
from vibebox import metrics

from .. import events, exceeded, idle, languages, quotas, states
from ..models import Execution, Sandbox, Status, new_execution_id
from ..runtime import ExecRequest, ExecResult, bounded, driver_for
from . import lifecycle
from .env import command_env, internal_env, prepare_env, redact, secret_values

# Runs a command string with bash as a login shell, or sh where bash is absent.
SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -lc "$1"; else exec sh -c "$1"; fi'
COMMAND_PREVIEW = 4096
# sandboxd answers 128 + the signal for a command a signal ended: SIGKILL, SIGTERM, SIGINT, SIGHUP
# count as `killed` in vibebox_exec_total (as does an out-of-memory kill).
KILLED_EXIT_CODES = {128 + 9, 128 + 15, 128 + 2, 128 + 1}


@dataclass
class Outcome:
    execution: Execution
    result: ExecResult
    stdout: str
    stderr: str
    return_value: object = None
    phase: str = "run"  # execute: "compile" when a compiled language's build failed or was stopped


def resolve_timeout(timeout: float | None) -> float:
    """None: the default; 0: the maximum; above the maximum: an error."""
    if timeout is None:
        return settings.VIBEBOX_EXEC_DEFAULT_TIMEOUT
    if timeout == 0:
        return settings.VIBEBOX_EXEC_MAX_TIMEOUT
    if timeout > settings.VIBEBOX_EXEC_MAX_TIMEOUT:
        raise errors.InvalidDuration(
            f"timeout is above the maximum of {int(settings.VIBEBOX_EXEC_MAX_TIMEOUT)} seconds.",
            details={"max": int(settings.VIBEBOX_EXEC_MAX_TIMEOUT)},
        )
    return timeout


def resolve_cwd(sandbox: Sandbox, cwd: str | None) -> str:
    workdir = sandbox.template.workdir or "/workspace"
    if not cwd:
        return workdir
    if "\0" in cwd:
        raise errors.InvalidPath("cwd has a NUL byte.")
    return posixpath.normpath(posixpath.join(workdir, cwd))


def require_running(sandbox: Sandbox, *, auto_resume: bool = False) -> None:
    """Commands and in-sandbox file operations need a running sandbox. A paused one is resumed
    first when the request or the sandbox says `autoResume`, else 409 sandbox_paused."""
    require_not_paused(sandbox, auto_resume=auto_resume)
    if sandbox.status != Status.RUNNING:
        raise errors.SandboxNotRunning(
            f"The sandbox is {sandbox.status}; start it first.", details={"status": sandbox.status}
        )


def require_not_paused(sandbox: Sandbox, *, auto_resume: bool = False) -> None:
    """Also for uploads and downloads, which work on a stopped sandbox but not on a frozen one.
    A sandbox whose node is down is 409 sandbox_unreachable."""
    states.require_reachable(sandbox)
    if sandbox.status == Status.PAUSED:
        if not (auto_resume or sandbox.auto_resume):
            raise errors.SandboxPaused(details={"status": sandbox.status})
        lifecycle.sandbox_resume(sandbox=sandbox)
    idle.touch(sandbox)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def prepare(
    *,
    sandbox: Sandbox,
    kind: str,
    argv: tuple[str, ...],
    record: dict,
    stdin: bytes | None,
    env: dict | None,
    cwd: str | None,
    user: str | None,
    timeout: float | None,
    extra_env: dict | None = None,
    api_key=None,
    on_output=None,
    control=None,
) -> tuple[Execution, ExecRequest]:
    """The command's record (`running`, announced) and what the driver runs, once the
    organization's quotas allow it (execution minutes, budget: 402 quota_exceeded)."""
    timeout = resolve_timeout(timeout)
    quotas.request_work(org_id=sandbox.org_id, action="exec", sandbox=sandbox, user=sandbox.owner)
    workdir = resolve_cwd(sandbox, cwd)
    user = user or sandbox.template.user
    if env is not None:
        prepare_env(env)  # validates names and values; request env is not stored
    full_env = command_env(sandbox, env, extra_env)
    record = {"id": new_execution_id(), **record}
    execution = Execution.objects.create(sandbox=sandbox, api_key=api_key, kind=kind, cwd=workdir, user=user, **record)
    execution.streamed = on_output is not None  # for the metrics' kind (metric_kind)
    # The command's text (capped), never its output or its environment's values.
    audit(
        "command.executed" if kind == Execution.Kind.EXEC else "code.executed",
        target=sandbox,
        changes={
            "execution": execution.id,
            "command": execution.command,
            "background": execution.background,
            "cwd": workdir,
            "user": user,
        },
    )
    events.publish(
        sandbox=sandbox,
        type="exec.started",
        text=f"{kind} started: {execution.command[:200]}",
        data={"executionId": execution.id, "kind": kind},
    )
    request = ExecRequest(
        argv=argv,
        exec_id=execution.id,
        env=full_env,
        user=user,
        workdir=workdir,
        stdin=stdin,
        timeout=timeout,
        output_limit=settings.VIBEBOX_EXEC_OUTPUT_LIMIT,
        on_output=on_output,
        control=control,
    )
    return execution, request


def metric_kind(execution: Execution) -> str:
    """vibebox_exec_*'s kind: `execute` for code, `stream` for a command whose output streamed as
    it came (WebSocket and streamed exec, background processes), else `exec`."""
    if execution.kind == Execution.Kind.EXECUTE:
        return "execute"
    return "stream" if execution.background or getattr(execution, "streamed", False) else "exec"


def _outcome(result: ExecResult) -> str:
    if result.timed_out:
        return "timeout"
    if result.oom_killed or (result.exit_code is not None and result.exit_code in KILLED_EXIT_CODES):
        return "killed"
    return "ok" if result.exit_code == 0 else "error"


def _count(execution: Execution, result: ExecResult | None) -> None:
    kind = metric_kind(execution)
    if result is None:
        metrics.EXEC_TOTAL.labels(kind, "error").inc()
        return
    metrics.EXEC_TOTAL.labels(kind, _outcome(result)).inc()
    metrics.EXEC_SECONDS.labels(kind, execution.language or "").observe(result.duration_ms / 1000)


def failed(execution: Execution, exc: errors.ApplicationError) -> None:
    """The command could not run (or its end could not be learnt): the record says so."""
    if Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(
        status=Execution.Status.ERROR, stderr=exc.message[:1000], finished_at=timezone.now()
    ):
        _count(execution, None)


def _run(*, sandbox: Sandbox, **fields) -> tuple[Execution, ExecResult]:
    execution, request = prepare(sandbox=sandbox, **fields)
    try:
        with lifecycle.container_running(sandbox):
            result = driver_for(sandbox).exec(sandbox.container_name, request)
    except errors.ApplicationError as exc:
        failed(execution, exc)
        raise
    return execution, result


def status_of(result: ExecResult) -> str:
    if result.timed_out:
        return Execution.Status.TIMEOUT
    return Execution.Status.COMPLETED if result.exit_code == 0 else Execution.Status.FAILED


def finish(execution: Execution, result: ExecResult, sandbox: Sandbox, stdout: bytes, return_value=None) -> Outcome:
    """Records the command's end, once: a background process's end may be seen by the web
    process that follows it and by the reconcile pass; the first one records it."""
    status = status_of(result)
    secrets = secret_values(sandbox)
    stored = settings.VIBEBOX_EXEC_STORED_OUTPUT
    stdout_text, stderr_text = _decode(stdout), _decode(result.stderr)
    execution.status = status
    execution.exit_code = result.exit_code
    execution.duration_ms = result.duration_ms
    execution.stdout = redact(_decode(stdout[:stored]), secrets)
    execution.stderr = redact(_decode(result.stderr[:stored]), secrets)
    execution.stdout_bytes = result.stdout_bytes
    execution.stderr_bytes = result.stderr_bytes
    execution.truncated = result.truncated
    execution.oom_killed = result.oom_killed
    execution.return_value = return_value
    execution.finished_at = timezone.now()
    fields = ("status", "exit_code", "duration_ms", "stdout", "stderr", "stdout_bytes", "stderr_bytes")
    fields += ("truncated", "oom_killed", "return_value", "finished_at")
    with transaction.atomic():  # the record and its webhook deliveries together
        recorded = Execution.objects.filter(pk=execution.pk, status=Execution.Status.RUNNING).update(
            **{name: getattr(execution, name) for name in fields}
        )
        if not recorded:
            return Outcome(execution, result, stdout_text, stderr_text, return_value)
        data = {"executionId": execution.id, "status": status, "exitCode": result.exit_code}
        limit = exceeded.from_output(sandbox, stderr_text)  # its pids or disk limit (exceeded.py)
        if limit:
            data["limit"] = limit
        events.publish(
            sandbox=sandbox,
            type="exec.finished",
            text=f"{execution.kind} {status} (exit {result.exit_code}, {result.duration_ms} ms)",
            data=data,
        )
    _count(execution, result)
    return Outcome(execution, result, stdout_text, stderr_text, return_value)


def command_argv(command: str | list[str]) -> tuple[tuple[str, ...], str]:
    """(argv, preview) of a shell command line (bash -lc, or sh -c) or of an argv list."""
    if isinstance(command, str):
        if not command.strip():
            raise errors.ValidationFailed("command is empty.")
        argv, preview = ("sh", "-c", SHELL, "sh", command), command
    else:
        if not command or not all(isinstance(part, str) for part in command):
            raise errors.ValidationFailed("command is a string or a non-empty list of strings.")
        argv, preview = tuple(command), json.dumps(command)
    if any("\0" in part for part in argv):
        raise errors.ValidationFailed("command has a NUL byte.")
    return argv, preview


def sandbox_exec_from(*, sandbox: Sandbox, api_key, data: dict) -> Outcome:
    """A command from the exec body's validated fields (api.serializers.ExecSerializer, not in the
    background): REST's and GraphQL's."""
    return sandbox_exec(
        sandbox=sandbox,
        command=data["command"],
        cwd=data.get("cwd"),
        env=data.get("env"),
        user=data.get("user") or None,
        stdin=data.get("stdin"),
        timeout=data.get("timeout"),
        auto_resume=data["autoResume"],
        api_key=api_key,
    )


def sandbox_exec(
    *,
    sandbox: Sandbox,
    command: str | list[str],
    cwd: str | None = None,
    env: dict | None = None,
    user: str | None = None,
    stdin: str | None = None,
    timeout: float | None = None,
    auto_resume: bool = False,
    api_key=None,
    on_output=None,
    control=None,
) -> Outcome:
    """Runs a shell command line (bash -lc, or sh -c) or an argv list. With `control`, stdin stays
    open for interactive input and signals (the WebSocket exec)."""
    argv, preview = command_argv(command)
    data = stdin.encode() if stdin is not None else None
    if data is not None and len(data) > settings.VIBEBOX_EXEC_STDIN_LIMIT:
        raise errors.RequestTooLarge("stdin is too large.")
    require_running(sandbox, auto_resume=auto_resume)
    secrets = secret_values(sandbox)
    execution, result = _run(
        sandbox=sandbox,
        kind=Execution.Kind.EXEC,
        argv=argv,
        record={
            "command": redact(preview[:COMMAND_PREVIEW], secrets),
        },
        stdin=data,
        env=env,
        cwd=cwd,
        user=user,
        timeout=timeout,
        api_key=api_key,
        on_output=on_output,
        control=control,
    )
    return finish(execution, result, sandbox, result.stdout)


def choose_language(sandbox: Sandbox, code: str, language: str) -> str:
    """`auto`: the language a `#!` line or the code's syntax marks among the template's (see
    languages.detect); with no mark, a shell command line when the first word is a builtin or on
    the sandbox's PATH, else the template's language."""
    template = sandbox.template
    language = languages.normalise(language)
    supported = [name for name in (list(template.languages) or [template.language]) if name in languages.RUNNABLE]
    if language == "auto":
        default = template.language if template.language in supported else (supported[0] if supported else "shell")
        detected = languages.detect(code, supported, None)
        if detected:
            return detected
        word = languages.first_command_word(code, default)
        if word and "shell" in supported and (word in languages.SHELL_BUILTINS or _on_path(sandbox, word)):
            return "shell"
        return default
    languages.check_supported(language, supported)
    return language


def run_internal(sandbox: Sandbox, argv: tuple[str, ...], *, timeout: float = 60, output_limit: int = 1024**2):
    """A short command of VibeBox's own (not recorded as an Execution), as the sandbox's user, with
    the template's environment (internal_env). argv[0] is an absolute path of the image's
    (`/bin/sh`), never looked up on a PATH the sandbox can write to, and shells are never login
    shells (~/.profile is the sandbox's)."""
    if not argv[0].startswith("/"):
        raise ValueError("VibeBox's own commands name their program by absolute path")
    request = ExecRequest(
        argv=argv,
        exec_id=new_execution_id(),
        user=sandbox.template.user,
        env=internal_env(sandbox),
        timeout=timeout,
        output_limit=output_limit,
    )
    with lifecycle.container_running(sandbox):
        return driver_for(sandbox).exec(sandbox.container_name, request)


def _on_path(sandbox: Sandbox, word: str) -> bool:
    script = 'command -v -- "$1" >/dev/null 2>&1 && echo yes'
    return run_internal(sandbox, ("/bin/sh", "-lc", script, "sh", word), timeout=10).stdout.strip() == b"yes"


def sandbox_execute_from(*, sandbox: Sandbox, api_key, data: dict) -> Outcome:
    """Code from the execute body's validated fields (api.serializers.ExecuteSerializer): REST's and GraphQL's."""
    return sandbox_execute(
        sandbox=sandbox,
        code=data["code"],
        language=data["language"],
        cwd=data.get("cwd"),
        env=data.get("env"),
        timeout=data.get("timeout"),
        auto_resume=data["autoResume"],
        api_key=api_key,
    )


def sandbox_execute(
    *,
    sandbox: Sandbox,
    code: str,
    language: str = "auto",
    cwd: str | None = None,
    env: dict | None = None,
    timeout: float | None = None,
    auto_resume: bool = False,
    api_key=None,
    on_output=None,
) -> Outcome:
    """Runs a code snippet; `returnValue` is what JavaScript returns or Python's or Ruby's last
    expression; Go, Rust and Java (and TypeScript's type stripping) are compiled first (`phase`)."""
    if not code.strip():
        raise errors.ValidationFailed("code is empty.")
    if len(code.encode()) > settings.VIBEBOX_CODE_LIMIT:
        raise errors.RequestTooLarge("code is too large.")
    require_running(sandbox, auto_resume=auto_resume)
    chosen = choose_language(sandbox, code, language)
    execution_id = new_execution_id()
    prog = languages.program(chosen, code, execution_id)
    secrets = secret_values(sandbox)
    execution, result = _run(
        sandbox=sandbox,
        kind=Execution.Kind.EXECUTE,
        argv=prog.argv,
        record={
            "id": execution_id,
            "language": chosen,
            "command": redact(code[:COMMAND_PREVIEW], secrets),
            "code_sha256": hashlib.sha256(code.encode()).hexdigest(),
        },
        stdin=prog.stdin,
        env=env,
        extra_env=prog.env,
        cwd=cwd,
        user=None,
        timeout=timeout,
        api_key=api_key,
        on_output=on_output,
    )
    stdout, phase = languages.split_phase(result.stdout, prog.run_marker)
    stdout, value_text = languages.split_return_value(stdout, prog.marker)
    return_value = None
    if value_text is not None:
        # Printed in the sandbox: JSON nested at most 64 deep, finite numbers (a strict JSON
        # renderer refuses NaN later, as a 500), else it is answered as the text it is.
        try:
            return_value = bounded.loads(value_text, max_bytes=settings.VIBEBOX_EXEC_OUTPUT_LIMIT)
        except ValueError:
            return_value = value_text
    outcome = finish(execution, result, sandbox, stdout, return_value)
    outcome.phase = phase
    return outcome
