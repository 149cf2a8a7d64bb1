"""Asks: one `claude -p … --output-format stream-json` run in the sandbox, as its user.

An ask returns at once; a thread runs Claude (argv, no shell, stdin closed) and turns each
line of its output into a stored ClaudeEvent and a live event (WS /ws/sandboxes/{id}/claude,
the log stream and the activity feed). In review mode Claude works in its session's worktree
and what it changed becomes a change set (review.py). One running ask per session; cancel
kills Claude's process group. Running asks live in this process's registry; an ask whose
server went away is marked failed by the reconcile pass.
"""

import datetime as dt
import logging
import threading
import uuid

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from apps.audit.services import record
from apps.marketplace.template_keys import PERMISSION_MODES
from apps.sandboxes import events
from apps.sandboxes import quotas as sandbox_quotas
from apps.sandboxes.runtime import bounded
from apps.sandboxes.runtime.base import ExecControl
from apps.sandboxes.services.exec import require_running, run_internal, sandbox_exec
from vibebox import exceptions as errors

from . import review
from .changes import changes_approve, claude_group
from .models import ChangeSet, ClaudeAsk, ClaudeEvent, ClaudeSession, ClaudeSetup
from .setup import mcp_config_path, setup_get, template_mcp_servers, touch

logger = logging.getLogger(__name__)

LIVE_EVENT_LIMIT = 64 * 1024  # bigger events go to the WebSocket in summary; all are stored whole
# Claude's output is printed in the sandbox, so it is hostile: one event line is at most this many
# bytes (a longer one is stored as cut text), and an ask stores at most EVENTS_LIMIT events.
EVENT_LINE_LIMIT = 1024 * 1024
EVENTS_LIMIT = 20_000

_running: dict[str, ExecControl] = {}
_cancelled: set[str] = set()
_lock = threading.Lock()


def _content(event: dict) -> list:
    """The content blocks of an event's message (any shape Claude, or anything else, printed)."""
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


def _number(value, high: float):
    """A JSON number from the event stream within [0, high], else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
        return None
    return value


def kind_of(event: dict) -> str:
    """init, assistant (text), thinking, tool_use, tool_result, user, result, system, …"""
    kind = event.get("type", "unknown")
    if kind == "system" and event.get("subtype") == "init":
        return "init"
    types = {block.get("type") for block in _content(event) if isinstance(block.get("type"), str)}
    if types:
        if kind == "assistant" and "tool_use" in types:
            return "tool_use"
        if kind == "assistant" and types == {"thinking"}:
            return "thinking"
        if kind == "user" and "tool_result" in types:
            return "tool_result"
    return str(kind)[:32]


def summary(kind: str, event: dict) -> str:
    content = _content(event)
    if kind == "init":
        return f"Claude started ({str(event.get('model', 'default model'))[:100]})"
    if kind == "tool_use":
        uses = [b for b in content if b.get("type") == "tool_use"]
        return "; ".join(f"{str(u.get('name'))[:100]} {_first_argument(u.get('input'))}".strip() for u in uses)[:300]
    if kind == "assistant":
        return " ".join(str(b.get("text", ""))[:300] for b in content)[:300]
    if kind == "result":
        cost = _number(event.get("total_cost_usd"), 1e9)
        subtype = str(event.get("subtype", ""))[:50]
        return f"Claude finished ({subtype}" + (f", ${cost:.4f})" if cost is not None else ")")
    return kind.replace("_", " ")


def _first_argument(arguments) -> str:
    if isinstance(arguments, dict):
        for name in ("file_path", "command", "path", "pattern", "url"):
            if name in arguments:
                return str(arguments[name])[:200]
    return ""


def _validate(prompt: str, model, allowed, disallowed, max_turns, permission_mode) -> None:
    if not isinstance(prompt, str) or not prompt.strip() or "\0" in prompt:
        raise errors.ValidationFailed("prompt is a non-empty string.")
    if permission_mode not in PERMISSION_MODES:
        raise errors.ValidationFailed(
            f"permissionMode is one of {', '.join(PERMISSION_MODES)}.", details={"permissionMode": permission_mode}
        )
    for tools in (allowed or [], disallowed or []):
        if any(not t or "\0" in t or t.startswith("-") for t in tools):
            raise errors.ValidationFailed("Tool names are non-empty strings not starting with '-'.")
    if model is not None and (not model or model.startswith("-") or "\0" in model):
        raise errors.ValidationFailed("model is a model name, e.g. claude-sonnet-4-5.")
    if max_turns is not None and not 1 <= max_turns <= 500:
        raise errors.ValidationFailed("maxTurns is between 1 and 500.")


def _session_for(*, sandbox, setup, session_id, review_mode, api_key, prompt) -> ClaudeSession:
    if session_id:
        session = ClaudeSession.objects.filter(pk=session_id, sandbox=sandbox).first()
        if session is None:
            raise errors.ClaudeSessionNotFound(details={"sessionId": session_id})
        if review_mode is not None and review_mode != session.review:
            raise errors.ValidationFailed(
                f"Session {session_id} was started with review={str(session.review).lower()}; it cannot change.",
                details={"review": session.review},
            )
        return session
    new_id = str(uuid.uuid4())
    review_mode = True if review_mode is None else review_mode
    workspace = sandbox.template.workdir or "/workspace"
    return ClaudeSession.objects.create(
        id=new_id,
        sandbox=sandbox,
        api_key=api_key,
        title=prompt.strip().splitlines()[0][:200],
        review=review_mode,
        cwd=review.worktree_path(setup.home, new_id) if review_mode else workspace,
        branch=f"claude/{new_id}" if review_mode else "",
    )


def ask_start_from(*, sandbox, api_key, data: dict) -> ClaudeAsk:
    """An ask from the ask body's validated fields (api.serializers.AskSerializer): REST's and GraphQL's."""
    return ask_start(
        sandbox=sandbox,
        api_key=api_key,
        prompt=data["prompt"],
        session_id=data.get("sessionId"),
        model=data.get("model"),
        permission_mode=data.get("permissionMode"),
        allowed_tools=data.get("allowedTools"),
        disallowed_tools=data.get("disallowedTools"),
        max_turns=data.get("maxTurns"),
        append_system_prompt=data.get("appendSystemPrompt"),
        review=data.get("review"),
    )


def ask_start(
    *,
    sandbox,
    api_key=None,
    prompt: str,
    session_id: str | None = None,
    model: str | None = None,
    permission_mode: str | None = None,
    allowed_tools: list[str] | None = None,
    disallowed_tools: list[str] | None = None,
    max_turns: int | None = None,
    append_system_prompt: str | None = None,
    review: bool | None = None,
) -> ClaudeAsk:
    setup = setup_get(sandbox)
    # The collaboration mode (docs/claude.md): every door (REST, GraphQL, dashboard) asks here.
    if setup.mode == ClaudeSetup.Mode.HUMAN:
        raise errors.ClaudeDisabledByMode(details={"sandbox": sandbox.id, "mode": setup.mode})
    # What the ask leaves out comes from the sandbox's setup (PATCH …/claude/status), then the
    # template (template.yaml `claude:`), else Claude's.
    defaults = sandbox.template.claude or {}
    permissions = defaults.get("permissions") or {}
    model = model or setup.model or defaults.get("model")
    permission_mode = permission_mode or setup.permission_mode or permissions.get("mode") or "acceptEdits"
    allowed_tools = allowed_tools if allowed_tools is not None else permissions.get("allow")
    disallowed_tools = disallowed_tools if disallowed_tools is not None else permissions.get("deny")
    _validate(prompt, model, allowed_tools, disallowed_tools, max_turns, permission_mode)
    require_running(sandbox)
    # The organization's model spend and budget (402 quota_exceeded), asked like every other work.
    sandbox_quotas.request_work(org_id=sandbox.org_id, action="ask", sandbox=sandbox, user=sandbox.owner)
    options = {
        "model": model,
        "permissionMode": permission_mode,
        "allowedTools": allowed_tools or [],
        "disallowedTools": disallowed_tools or [],
        "maxTurns": max_turns,
        "appendSystemPrompt": append_system_prompt,
    }
    try:
        with transaction.atomic():
            session = _session_for(
                sandbox=sandbox, setup=setup, session_id=session_id, review_mode=review, api_key=api_key, prompt=prompt
            )
            ask = ClaudeAsk.objects.create(
                session=session, sandbox=sandbox, api_key=api_key, prompt=prompt, options=options
            )
            record("claude.asked", target=sandbox, changes={"ask": ask.id, "session": session.id, "prompt": prompt})
    except IntegrityError:
        raise errors.AskRunning(details={"sessionId": session_id}) from None
    control = ExecControl()
    control.close_stdin()
    with _lock:
        _running[ask.id] = control
    _publish(ask, "ask.started", f"Claude ask started: {prompt.strip()[:200]}", {"prompt": prompt[:2000]})
    threading.Thread(target=_run, args=(ask.id, setup, control), daemon=True, name=f"claude-{ask.id}").start()
    return ask


def _argv(ask: ClaudeAsk, session: ClaudeSession, setup, resume: bool) -> list[str]:
    options = ask.options
    argv = ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    argv += ["--permission-mode", options["permissionMode"]]
    argv += ["--resume", session.id] if resume else ["--session-id", session.id]
    if options.get("model"):
        argv += ["--model", options["model"]]
    if options.get("maxTurns"):
        argv += ["--max-turns", str(options["maxTurns"])]
    if options.get("appendSystemPrompt"):
        argv += ["--append-system-prompt", options["appendSystemPrompt"]]
    if setup.mcp or template_mcp_servers(ask.sandbox):
        argv += ["--mcp-config", mcp_config_path(setup)]
    if options.get("allowedTools"):
        argv += ["--allowedTools", *options["allowedTools"]]
    if options.get("disallowedTools"):
        argv += ["--disallowedTools", *options["disallowedTools"]]
    return [*argv, "--", ask.prompt]


class _Lines:
    """Splits Claude's stdout into JSON events: stores each, publishes it, keeps the result. The
    lines are read as hostile (bounded.Lines, bounded.loads): cut at EVENT_LINE_LIMIT, nested at
    most 64 deep, no NaN, at most EVENTS_LIMIT stored."""

    def __init__(self, ask: ClaudeAsk):
        self.ask = ask
        self.lines = bounded.Lines(EVENT_LINE_LIMIT)
        self.seq = 0
        self.dropped = 0
        self.skipping = False  # inside a line that was too long: its other pieces are dropped
        self.result: dict | None = None
        self.started = False
        self.stderr = b""

    def feed(self, stream: str, data: bytes) -> None:
        if stream != "stdout":
            self.stderr = (self.stderr + data)[-8192:]
            return
        for line, cut in self.lines.feed(data):
            self.line(line, cut=cut)

    def flush(self) -> None:
        for line, cut in self.lines.flush():
            self.line(line, cut=cut)

    def line(self, raw: bytes, *, cut: bool = False) -> None:
        skipping, self.skipping = self.skipping, cut
        if skipping:  # the rest of an over-long line: its start was stored already
            return
        raw = raw.strip()
        if not raw:
            return
        if self.seq >= EVENTS_LIMIT:
            self.dropped += 1
            return
        try:
            if cut:
                raise ValueError("an over-long line")
            event = bounded.loads(raw, max_bytes=EVENT_LINE_LIMIT)
        except ValueError:
            event = {"type": "output", "text": raw.decode(errors="replace")[:4000], "truncated": cut}
        if not isinstance(event, dict):
            return
        self.seq += 1
        kind = kind_of(event)
        if kind == "init":
            self.started = True
        if kind == "result":
            self.result = event
        ClaudeEvent.objects.create(ask=self.ask, seq=self.seq, type=kind[:32], data=event)
        live = event if len(raw) <= LIVE_EVENT_LIMIT else {"type": str(event.get("type"))[:32], "truncated": True}
        _publish(self.ask, kind, summary(kind, event), {"seq": self.seq, "kind": kind, "event": live})


def _publish(ask: ClaudeAsk, kind: str, text: str, data: dict | None = None) -> None:
    events.publish(
        sandbox=ask.sandbox,
        type=f"claude.{kind}",
        text=text,
        data={"askId": ask.id, "sessionId": ask.session_id, **(data or {})},
        groups=(claude_group(ask.sandbox_id),),
    )


def _resumable(session: ClaudeSession, ask: ClaudeAsk) -> bool:
    """Claude has a transcript for this session once an earlier ask got to its init event."""
    return ClaudeEvent.objects.filter(ask__session=session, type="init").exclude(ask=ask).exists()


def _prepare(session: ClaudeSession, sandbox) -> str:
    pending = session.change_sets.filter(status=ChangeSet.Status.PENDING).exists()
    start = review.prepare(
        sandbox,
        workspace=sandbox.template.workdir or "/workspace",
        worktree=session.cwd,
        branch=session.branch,
        refresh=not pending,
    )
    if not pending:
        ClaudeSession.objects.filter(pk=session.pk).update(reviewed_commit=start)
    return start


def _run(ask_id: str, setup, control: ExecControl) -> None:
    ask = ClaudeAsk.objects.select_related("session", "sandbox__template", "sandbox__owner").get(pk=ask_id)
    session, sandbox = ask.session, ask.sandbox
    lines = _Lines(ask)
    outcome = None
    failure = ""
    start = ""
    try:
        if session.review:
            start = _prepare(session, sandbox)
        outcome = sandbox_exec(
            sandbox=sandbox,
            command=_argv(ask, session, setup, resume=_resumable(session, ask)),
            cwd=session.cwd,
            env={"ANTHROPIC_CUSTOM_HEADERS": f"X-VibeBox-Ask: {ask.id}", "VIBEBOX_ASK_ID": ask.id},
            timeout=settings.VIBEBOX_CLAUDE_ASK_TIMEOUT,
            api_key=ask.api_key,
            on_output=lines.feed,
            control=control,
        )
        lines.flush()
    except errors.ApplicationError as exc:
        failure = exc.message
    except Exception as exc:  # the ask must end, whatever went wrong
        logger.exception("claude ask %s failed", ask_id)
        failure = f"internal error: {type(exc).__name__}"
    finally:
        with _lock:
            _running.pop(ask_id, None)
            cancelled = ask_id in _cancelled
            _cancelled.discard(ask_id)
        if cancelled or (outcome is not None and outcome.result.timed_out):
            _kill_leftovers(sandbox, ask_id)
        try:
            _finish(ask, session, sandbox, lines, outcome, failure, cancelled, start)
        finally:
            control.close()
            connections.close_all()  # this thread ends: its connections with it


# Claude starts its tools' shells in process groups of their own, which outlive a kill of
# Claude's group; they inherit VIBEBOX_ASK_ID, so they are found by their environment.
KILL_LEFTOVERS = r"""for dir in /proc/[0-9]*; do
    if tr '\0' '\n' < "$dir/environ" 2>/dev/null | grep -qx "VIBEBOX_ASK_ID=$1"; then
        kill -KILL "${dir#/proc/}" 2>/dev/null
    fi
done
exit 0
"""


def _kill_leftovers(sandbox, ask_id: str) -> None:
    try:
        run_internal(sandbox, ("/bin/sh", "-c", KILL_LEFTOVERS, "sh", ask_id), timeout=30)
    except errors.ApplicationError as exc:
        logger.warning("claude ask %s: leftover processes not killed: %s", ask_id, exc.message)


def _finish(ask, session, sandbox, lines: _Lines, outcome, failure: str, cancelled: bool, start: str) -> None:
    result = lines.result or {}
    if cancelled:
        status = ClaudeAsk.Status.CANCELLED
    elif outcome is not None and outcome.result.timed_out:
        status = ClaudeAsk.Status.TIMEOUT
    elif outcome is not None and outcome.result.exit_code == 0 and result and not result.get("is_error"):
        status = ClaudeAsk.Status.COMPLETED
    else:
        status = ClaudeAsk.Status.FAILED
    if status == ClaudeAsk.Status.FAILED and not failure:
        failure = str(result.get("result") or "") or lines.stderr.decode(errors="replace").strip()[-2000:]
        failure = failure or f"claude exited with code {outcome.result.exit_code if outcome else None}"
    # The result event was printed in the sandbox: every field is checked before it is stored.
    cost = _number(result.get("total_cost_usd"), 1e9)
    turns = _number(result.get("num_turns"), 1_000_000)
    duration = _number(result.get("duration_ms"), 2**31 - 1)
    usage = result.get("usage")
    # The change set exists, and in autonomous mode is applied, before the ask stops being `running`:
    # whoever sees it finished can review it, or finds /workspace changed.
    change = _record_changes(ask, session, sandbox, start) if session.review and start else None
    if change is not None:
        _apply_if_autonomous(ask, session, sandbox, change)
    with transaction.atomic():  # the ask's end and its event (webhook deliveries) together
        ClaudeAsk.objects.filter(pk=ask.pk).update(
            status=status,
            error=failure[:4000],
            result=str(result.get("result") or "")[:1_000_000],
            is_error=bool(result.get("is_error")) or status != ClaudeAsk.Status.COMPLETED,
            num_turns=int(turns) if turns is not None else None,
            cost_usd=round(cost, 6) if cost is not None else None,
            usage=usage if isinstance(usage, dict) else {},
            duration_ms=int(duration) if duration is not None else (outcome.result.duration_ms if outcome else None),
            exit_code=outcome.result.exit_code if outcome else None,
            execution_id=outcome.execution.id if outcome else "",
            finished_at=timezone.now(),
        )
        ClaudeSession.objects.filter(pk=session.pk).update(last_activity_at=timezone.now())
        touch(sandbox.claude)
        data = {"status": status, "costUsd": cost, "changeSetId": change.id if change else None}
        _publish(ask, "ask.finished", f"Claude ask {status}", data)


def _apply_if_autonomous(ask, session, sandbox, change: ChangeSet) -> None:
    """In autonomous mode, the ask's change set is approved (merged into /workspace) as soon as
    it is recorded, by the same service as `…/claude/approve`, the ask's key as the reviewer.
    Only when it is the session's one pending change set: earlier ones (made in assist mode)
    wait for a person, and a merge conflict leaves it pending; either way an event says why."""
    mode = ClaudeSetup.objects.filter(sandbox=sandbox).values_list("mode", flat=True).first()
    if mode != ClaudeSetup.Mode.AUTONOMOUS:
        return
    if session.change_sets.filter(status=ChangeSet.Status.PENDING).exclude(pk=change.pk).exists():
        _publish(ask, "changes.not_applied", "Earlier changes of this session wait for review; these wait with them")
        return
    try:
        changes_approve(
            sandbox=sandbox, session_id=session.id, api_key=ask.api_key, automatic=True, finishing_ask=ask.pk
        )
    except errors.ApplicationError as exc:
        logger.info("claude ask %s: autonomous apply failed: %s", ask.id, exc.message)
        _publish(
            ask,
            "changes.not_applied",
            f"Claude's changes could not be applied ({exc.code}); review them",
            {"changeSetId": change.id, "code": exc.code, "details": exc.details},
        )
    except Exception:  # the ask has ended already; its change set stays pending for a person
        logger.exception("claude ask %s: autonomous apply failed", ask.id)
        _publish(ask, "changes.not_applied", "Claude's changes could not be applied; review them")


def _record_changes(ask, session, sandbox, start: str) -> ChangeSet | None:
    try:
        head = review.commit(
            sandbox, worktree=session.cwd, message=f"Claude: {ask.prompt.strip()[:60]}\n\nVibeBox-Ask: {ask.id}"
        )
        if head == start:
            return None
        files = review.files_changed(sandbox, worktree=session.cwd, base=start, head=head)
    except errors.ApplicationError as exc:
        logger.warning("claude ask %s: changes not recorded: %s", ask.id, exc.message)
        return None
    with transaction.atomic():  # the change set and its event (webhook deliveries) together
        change = ChangeSet.objects.create(session=session, ask=ask, base_commit=start, head_commit=head, files=files)
        _publish(
            ask,
            "changes",
            f"Claude changed {len(files)} file(s); review them",
            {"changeSetId": change.id, "files": files},
        )
    return change


def ask_cancel(*, ask: ClaudeAsk) -> ClaudeAsk:
    with _lock:
        control = _running.get(ask.id)
        if control is not None:
            _cancelled.add(ask.id)
    if control is not None:
        control.signal("KILL")
    elif ask.status == ClaudeAsk.Status.RUNNING:  # its server went away: nothing runs it
        ClaudeAsk.objects.filter(pk=ask.pk, status=ClaudeAsk.Status.RUNNING).update(
            status=ClaudeAsk.Status.CANCELLED, finished_at=timezone.now()
        )
    ask.refresh_from_db()
    record("claude.ask_cancelled", target=ask.sandbox, changes={"ask": ask.id})
    return ask


def is_running_here(ask_id: str) -> bool:
    with _lock:
        return ask_id in _running


def asks_orphaned(*, older_than_seconds: float = 0) -> int:
    """Marks failed the running asks that no thread of this process runs (reconcile)."""
    cutoff = timezone.now() - dt.timedelta(seconds=older_than_seconds)
    stale = [
        pk
        for pk in ClaudeAsk.objects.filter(status=ClaudeAsk.Status.RUNNING, started_at__lt=cutoff).values_list(
            "pk", flat=True
        )
        if not is_running_here(pk)
    ]
    return ClaudeAsk.objects.filter(pk__in=stale, status=ClaudeAsk.Status.RUNNING).update(
        status=ClaudeAsk.Status.FAILED, error="The server running this ask stopped.", finished_at=timezone.now()
    )
