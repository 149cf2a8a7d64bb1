"""Moves of a sandbox between states that keep its container: start, stop, restart, pause,
resume. Each claims the move in the row (states.py), asks the engine, and when the engine fails
lets the row follow the container (`_settle`); a call into a running sandbox whose container died
behind VibeBox's back does the same (`container_running`). Below create.py and exec.py,
which both use it (exec resumes a paused sandbox on the way to a command).
"""

import contextlib
import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from vibebox import exceptions as errors
from vibebox import metrics

from .. import events, exceeded, quotas, signals, states
from ..models import Sandbox, Status, new_execution_id
from ..runtime import ExecRequest, driver_for
from . import network
from .env import internal_env

logger = logging.getLogger(__name__)

OOM_REASON = "container OOM-killed"  # statusReason of a sandbox whose container the OOM killer ended
SERVICES_TIMEOUT = 120

PAST = {"start": "started", "stop": "stopped", "restart": "restarted", "pause": "paused", "resume": "resumed"}
# Actions that end or reset the container's counters (signals.sandbox_leaving). Not a pause: the
# counters survive it, and billing's running tail is the reading after it (apps/billing/metering.py).
LEAVING = {"stop", "restart"}


def announce_leaving(sandbox: Sandbox, state: str) -> None:
    """signals.sandbox_leaving, before the engine call: a receiver's failure is logged, never raised."""
    for receiver, result in signals.sandbox_leaving.send_robust(sender=Sandbox, sandbox=sandbox, state=state):
        if isinstance(result, Exception):
            logger.error("sandbox_leaving receiver %r failed for %s: %r", receiver, sandbox.id, result)


def _transition(sandbox: Sandbox, *, action: str, from_statuses, via: str, to: str, call, **done_fields) -> Sandbox:
    """Claims the move (`via` state), asks the engine, then lands in `to`; on failure the row
    follows the container (_settle)."""
    before = claim_checked(sandbox, from_statuses, via, action)
    if action in LEAVING:
        announce_leaving(sandbox, before)
    try:
        call()
    except errors.ApplicationError as exc:
        record(f"sandbox.{PAST[action]}", target=sandbox, changes={"failed": exc.code})
        _settle(sandbox, action=action, at=via, before=before, to=to, failure=exc, done=done_fields)
        events.publish(sandbox=sandbox, type=f"sandbox.{PAST[action]}")
    else:
        with transaction.atomic():  # the move, its entry and its webhook deliveries together
            states.move(sandbox, {via}, to, status_reason="", **done_fields)
            record(f"sandbox.{PAST[action]}", target=sandbox)
            events.publish(sandbox=sandbox, type=f"sandbox.{PAST[action]}")
    return sandbox


# The states from which a move makes the sandbox run: it asks the organization's quotas first.
RUNS_FROM = {Status.STOPPED, Status.PAUSED}


def claim_checked(sandbox: Sandbox, from_statuses, to: str, action: str, **fields) -> str:
    """states.claim; when the move makes a stopped or paused sandbox run, first asks whether the
    organization may (quotas.request_work: 402 quota_exceeded), in one transaction holding the
    organization's lock, so concurrent starts cannot all slip under a quota of running sandboxes."""
    if to not in (Status.STARTING, Status.RUNNING):
        return states.claim(sandbox, from_statuses, to, action, **fields)
    with transaction.atomic():
        quotas.lock_org(sandbox.org_id)
        try:
            sandbox.refresh_from_db(fields=["status"])
        except Sandbox.DoesNotExist:  # a create that failed meanwhile removed its row
            raise errors.SandboxNotFound(details={"sandbox": sandbox.pk}) from None
        if sandbox.status in RUNS_FROM & set(from_statuses):
            quotas.request_work(
                org_id=sandbox.org_id,
                action="resume" if sandbox.status == Status.PAUSED else "start",
                sandbox=sandbox,
                user=sandbox.owner,
                running=1,
                cpu=sandbox.cpu,
                memory=sandbox.memory,
            )
        return states.claim(sandbox, from_statuses, to, action, **fields)


def template_services_start(sandbox: Sandbox) -> None:
    """Runs the template's `services` command (e.g. fullstack's PostgreSQL and Redis), as the
    sandbox's user, after each start; it returns once they answer. A failure does not undo the
    start: it is logged and kept as the sandbox's status reason."""
    command = sandbox.template.services
    if not command:
        return
    request = ExecRequest(
        argv=(command,),  # an absolute path of the image's (template.yaml), never looked up on PATH
        exec_id=new_execution_id(),
        user=sandbox.template.user,
        env=internal_env(sandbox),
        timeout=SERVICES_TIMEOUT,
        output_limit=64 * 1024,
    )
    try:
        result = driver_for(sandbox).exec(sandbox.container_name, request)
    except errors.ApplicationError as exc:
        failure = exc.message
    else:
        if result.exit_code == 0:
            return
        failure = result.stderr.decode(errors="replace")[-400:] or f"exit {result.exit_code}"
    logger.warning("services of %s did not start: %s", sandbox.id, failure)
    Sandbox.objects.filter(pk=sandbox.pk).update(status_reason=f"services did not start: {failure}"[:500])


def _start_with_services(sandbox: Sandbox, call) -> None:
    call()
    try:
        network.network_apply(sandbox)  # its egress policy, before anything of the sandbox's runs
    except BaseException:
        # Not running unrestricted: stopped again (the row follows the container: _settle).
        with contextlib.suppress(errors.ApplicationError):
            driver_for(sandbox).stop(sandbox.container_name, settings.VIBEBOX_STOP_TIMEOUT)
        raise
    template_services_start(sandbox)


def _stop_releasing(sandbox: Sandbox) -> None:
    driver_for(sandbox).stop(sandbox.container_name, settings.VIBEBOX_STOP_TIMEOUT)
    network.network_release(sandbox)  # its address goes to the next container


def _unpause_applying(sandbox: Sandbox, name: str) -> None:
    driver_for(sandbox).unpause(name)
    try:  # its address and rules stayed while paused: this only repairs what a reload removed
        network.network_apply(sandbox)
    except errors.ApplicationError as exc:
        logger.warning("could not refresh the egress rules of %s: %s", sandbox.id, exc.message)


def sandbox_start(*, sandbox: Sandbox) -> Sandbox:
    started = time.perf_counter()
    first_start = sandbox.started_at is None  # created stopped, never run
    _transition(
        sandbox,
        action="start",
        from_statuses=states.START_FROM,
        via=Status.STARTING,
        to=Status.RUNNING,
        call=lambda: _start_with_services(sandbox, lambda: driver_for(sandbox).start(sandbox.container_name)),
        started_at=timezone.now(),
    )
    if sandbox.status == Status.RUNNING:  # started (a failed start settled elsewhere: not timed)
        metrics.SANDBOX_START_SECONDS.labels(sandbox.template.name).observe(time.perf_counter() - started)
        if first_start:
            _finish_create(sandbox)
    return sandbox


def _finish_create(sandbox: Sandbox) -> None:
    """A sandbox created stopped is finished by the higher apps at its first start, as a create
    that starts it is (create._announce_created: Claude Code when its template auto-starts it).
    A refusal there does not undo the start: it is logged, and `POST …/claude/enable` says why."""
    try:
        signals.sandbox_created.send(sender=Sandbox, sandbox=sandbox, api_key=sandbox.api_key)
    except errors.ApplicationError as exc:
        logger.warning("finishing the create of %s at its first start: %s (%s)", sandbox.id, exc.message, exc.code)


def sandbox_stop(*, sandbox: Sandbox) -> Sandbox:
    return _transition(
        sandbox,
        action="stop",
        from_statuses=states.STOP_FROM,
        via=Status.STOPPING,
        to=Status.STOPPED,
        call=lambda: _stop_releasing(sandbox),
        stopped_at=timezone.now(),
    )


def sandbox_restart(*, sandbox: Sandbox) -> Sandbox:
    return _transition(
        sandbox,
        action="restart",
        from_statuses=states.RESTART_FROM,
        via=Status.STARTING,
        to=Status.RUNNING,
        call=lambda: _start_with_services(
            sandbox, lambda: driver_for(sandbox).restart(sandbox.container_name, settings.VIBEBOX_STOP_TIMEOUT)
        ),
        started_at=timezone.now(),
    )


def sandbox_pause(*, sandbox: Sandbox, reason: str = "", note: str = "") -> Sandbox:
    """Freezes every process (docker pause); memory and workspace are kept. `reason` (VibeBox's own
    pauses, e.g. "budget": the organization's monthly budget is used up) is the `sandbox.paused`
    event's data.reason; `note` (else `reason`) the sandbox's statusReason until it is resumed."""
    return _flip(
        sandbox,
        action="pause",
        from_statuses=states.PAUSE_FROM,
        to=Status.PAUSED,
        call=driver_for(sandbox).pause,
        fields={"paused_at": timezone.now()},
        reason=reason,
        note=note or reason,
    )


def sandbox_resume(*, sandbox: Sandbox) -> Sandbox:
    """Unfreezes. With `pauseStopsTimeout`, the expiry moves by the time spent paused."""
    now = timezone.now()
    fields = {"paused_at": None, "last_activity_at": now}
    if sandbox.pause_stops_timeout and sandbox.expires_at and sandbox.paused_at:
        fields["expires_at"] = sandbox.expires_at + (now - sandbox.paused_at)
    return _flip(
        sandbox,
        action="resume",
        from_statuses=states.RESUME_FROM,
        to=Status.RUNNING,
        call=lambda name: _unpause_applying(sandbox, name),
        fields=fields,
    )


def _flip(
    sandbox: Sandbox, *, action: str, from_statuses: set, to: str, call, fields: dict, reason: str = "", note: str = ""
) -> Sandbox:
    """A quick transition without an in-between state: claim, act, undo the claim on failure.
    The claim is committed before the engine call (a concurrent move loses at once); the move is
    confirmed after it, in one transaction with its event (webhook deliveries): the confirming
    UPDATE (conditional: a move that raced in since wins) stamps `updated_at` and clears any
    `statusReason`. A failure in that transaction rolls back both, the claimed state stays."""
    undo = {name: getattr(sandbox, name) for name in fields}
    before = claim_checked(sandbox, from_statuses, to, action, **fields)
    if action in LEAVING:
        announce_leaving(sandbox, before)
    try:
        call(sandbox.container_name)
    except errors.ApplicationError as exc:
        _settle(sandbox, action=action, at=to, before=before, to=to, failure=exc, undo=undo)
    with transaction.atomic():  # the confirmed move and its webhook deliveries together
        if states.move(sandbox, {to}, to, status_reason=note):
            data = {"reason": reason} if reason else None
            events.publish(sandbox=sandbox, type=f"sandbox.{PAST[action]}", data=data)
    return sandbox


@contextlib.contextmanager
def container_running(sandbox: Sandbox):
    """Around a call into a running sandbox (command, file, git, process, terminal): an engine or
    sandboxd failure because the container stopped behind VibeBox's back (killed, OOM, removed)
    answers 409 sandbox_not_running, and the row follows the container now rather than at the next
    reconcile pass (the driver may say so itself: sandboxd is looked up only in a running
    container). Costs nothing unless the call failed."""
    try:
        yield
    except (errors.RuntimeFailure, errors.RuntimeUnavailable, errors.SandboxNotRunning) as exc:
        try:
            container = driver_for(sandbox).inspect(sandbox.container_name)
        except errors.ApplicationError:
            raise exc from None
        if container is not None and container.status == "running":
            raise
        status = states.of_container(container)
        oom = container is not None and container.oom_killed
        reason = "container not found" if container is None else f"container {container.status}"
        reason = OOM_REASON if oom else reason
        fields = {"stopped_at": timezone.now()} if status == Status.STOPPED else {}
        with transaction.atomic():  # the move and its sandbox.limit_exceeded (memory) together
            if states.move(sandbox, {Status.RUNNING}, status, status_reason=reason, **fields) and oom:
                exceeded.publish(sandbox, "memory")
        raise errors.SandboxNotRunning(
            f"The sandbox's container is not running ({reason}).",
            details={"status": sandbox.status, "statusReason": sandbox.status_reason},
        ) from None


def _settle(sandbox: Sandbox, *, action: str, at: str, before: str, to: str, failure, done=None, undo=None) -> None:
    """After the engine failed `action` (the row is `at`), the row follows the container:
    - the engine cannot say: back to `before` (`undo` restores fields), `failure` raised, and the
      reconcile pass compares again later;
    - the container is as before (nothing happened): the same;
    - it is where `action` wanted it (the engine did it, its answer was lost): the action
      succeeded, nothing raised;
    - it is gone or elsewhere (killed, removed behind VibeBox's back): `error` or `stopped`/...
      with a reason, and 409 sandbox_state_conflict saying so.
    """
    undo = undo or {}
    try:
        container = driver_for(sandbox).inspect(sandbox.container_name)
    except errors.ApplicationError:
        states.move(sandbox, {at}, before, **undo)
        raise failure from None
    actual = states.of_container(container)
    if actual == before:
        states.move(sandbox, {at}, before, **undo)
        raise failure
    if actual == to:
        logger.info("%s of %s: the engine failed (%s) but did it", action, sandbox.id, failure.message)
        states.move(sandbox, {at}, to, status_reason="", **(done or {}))
        return
    now = timezone.now()
    fields = {**undo}
    if actual == Status.STOPPED:
        fields.update(stopped_at=now, paused_at=None)
    elif actual == Status.PAUSED:
        fields.update(paused_at=now)
    reason = "container not found" if container is None else f"{action} failed: the container is {container.status}"
    oom = container is not None and container.oom_killed and actual == Status.STOPPED and before == Status.RUNNING
    with transaction.atomic():  # the move and its sandbox.limit_exceeded (memory) together
        if states.move(sandbox, {at}, actual, status_reason=OOM_REASON if oom else reason, **fields) and oom:
            exceeded.publish(sandbox, "memory")
    raise errors.SandboxStateConflict(
        f"Cannot {action} the sandbox: {reason}; it is {sandbox.status} now.",
        details={"status": sandbox.status, "statusReason": sandbox.status_reason},
    ) from None
