"""The meter: samples of what each sandbox really uses (MeterSample rows), read from the engine.

A sample holds the container's cumulative counters (CPU time, network bytes in and out since its
start, `boot`), its resident memory then, the sandbox's state and its workspace's last measured
size. The sampler task reads every running and paused sandbox each VIBEBOX_METER_INTERVAL; the
lifecycle adds a sample just before a stop, restart or destroy (sandboxes' `sandbox_leaving`
signal: the counters' tail, before the container's end resets them) and just after a create,
start, restart, resume, stop or pause (receivers.py). A pause resets nothing: its running tail is
the reading after it, dated when the pause began (`_running_until`), so a pause waits for no
stats read. Stopped sandboxes cost no
engine call: a state-only sample every VIBEBOX_METER_STOPPED_INTERVAL keeps their storage and
stopped time counted.

The workspace's size is `du` in the sandbox: measured by the sampler task at most once per
VIBEBOX_METER_WORKSPACE_INTERVAL per running sandbox (a Redis key remembers when), never in a
lifecycle call; every other sample carries the last measured value (a paused or stopped
workspace cannot change).

Sampling never fails its caller: an error is logged and the sample skipped (the rollup spans the
gap between the samples around it).

The sample after a change into a running or paused state reads the engine, whose stats collector
answers on its once-a-second pass (up to a second per read): it is taken off the request by
`sample_soon`, a background thread of the process that made the change (samples of many
sandboxes read together, on the same pass). A change into `stopped` is sampled at once (no engine
call).
"""

import atexit
import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from apps.sandboxes.metrics import sandbox_meter, workspace_size
from apps.sandboxes.models import Sandbox, Status
from vibebox import metrics

from . import rollup
from .models import MeterSample

logger = logging.getLogger(__name__)

READ = {Status.RUNNING, Status.PAUSED}  # states whose container is read
STATE_ONLY = {Status.STOPPED}  # states sampled without the engine: no counters, nothing resident


def _last_workspace(sandbox: Sandbox) -> int | None:
    return (
        MeterSample.objects.filter(sandbox=sandbox, workspace_bytes__isnull=False)
        .order_by("-taken_at")
        .values_list("workspace_bytes", flat=True)
        .first()
    )


def _take(
    sandbox: Sandbox, *, state: str | None, measure_workspace: bool, running_until=None, still=None
) -> MeterSample | None:
    """`running_until`: the sandbox was paused then (its counters frozen since): the same reading
    is also its running tail, a `running` sample at that time, written first. `still`: whether the
    sandbox is still in the state sampled, asked after the engine's read (which can wait up to a
    second, long enough for another change: its own samples mark it, this one is dropped)."""
    state = state or sandbox.status
    boot, cpu_ns, memory, rx, tx = "", 0, 0, 0, 0
    if state in READ:
        meter = sandbox_meter(sandbox=sandbox)
        if meter is None:  # the container is gone, or it restarted during the read
            return None
        boot, reading = meter
        cpu_ns, memory, rx, tx = reading.cpu_ns, reading.memory_bytes, reading.net_rx_bytes, reading.net_tx_bytes
    elif state not in STATE_ONLY:
        return None  # creating, destroying, destroyed, error: no container to count
    previous_cpu = _previous_cpu(sandbox, boot) if boot else None
    workspace = None
    if measure_workspace and sandbox.status == Status.RUNNING:
        workspace = workspace_size(sandbox=sandbox)
    if workspace is None:
        workspace = _last_workspace(sandbox)
    reading = dict(
        sandbox=sandbox,
        org_id=sandbox.org_id,
        boot=boot,
        cpu_ns=cpu_ns,
        memory_bytes=memory,
        net_rx_bytes=rx,
        net_tx_bytes=tx,
        workspace_bytes=workspace,
    )
    if still is not None and not still():
        return None
    if running_until is not None and state == Status.PAUSED:
        # Never before a sample already written (one whose read was under way when the pause
        # began): the counters only grow along the samples.
        latest = MeterSample.objects.filter(sandbox=sandbox).order_by("-taken_at").values_list("taken_at", flat=True)
        running_until = max(running_until, latest.first() or running_until)
        MeterSample.objects.create(taken_at=running_until, state=Status.RUNNING, **reading)
    taken = MeterSample.objects.create(taken_at=timezone.now(), state=state, **reading)
    # vibebox_sandbox_cpu_seconds_total: the CPU time since this boot's previous sample (all of it
    # for a boot's first). Memory and disk are read from the samples at scrape (apps/monitoring).
    used = cpu_ns - previous_cpu if previous_cpu is not None and cpu_ns >= previous_cpu else cpu_ns
    if used > 0:
        label = sandbox.pk if metrics.per_sandbox(_metered_count()) else ""
        metrics.SANDBOX_CPU_SECONDS.labels(label, sandbox.template.name).inc(used / 1e9)
    return taken


def _previous_cpu(sandbox: Sandbox, boot: str) -> int | None:
    """The CPU counter of the sandbox's latest sample of the same boot (None: its first)."""
    samples = MeterSample.objects.filter(sandbox=sandbox, boot=boot).order_by("-taken_at")
    return samples.values_list("cpu_ns", flat=True).first()


_counted: list = [0.0, 0]  # (when, how many) of the last _metered_count


def _metered_count() -> int:
    """How many sandboxes are metered (running, paused, stopped), counted at most once a minute
    per process: whether the CPU counter carries a `sandbox` label (vibebox.metrics.per_sandbox)."""
    now = time.monotonic()
    if now - _counted[0] > 60 or not _counted[0]:
        _counted[:] = [now, Sandbox.objects.filter(status__in=READ | STATE_ONLY).count()]
    return _counted[1]


def sample(
    sandbox: Sandbox, *, state: str | None = None, measure_workspace: bool = False, running_until=None
) -> MeterSample | None:
    """Writes one sample of `sandbox` as it is now (`state`: the state to record, default its
    status; the lifecycle passes the state a sandbox is leaving; `running_until`: as `_take`). None
    when nothing was sampled: a state with no container, a vanished container, or an error
    (logged, never raised)."""
    try:
        return _take(sandbox, state=state, measure_workspace=measure_workspace, running_until=running_until)
    except Exception:
        logger.exception("meter sample of %s failed", sandbox.pk)
        return None


# ---- the samples after a lifecycle change, off the request (sample_soon) ----

AFTER_QUEUE_SIZE = 10_000  # sandboxes waiting; past it, the caller samples itself (nothing is lost)
AFTER_READERS = 8  # engine reads at once: sandboxes changed together are read on the same pass
AFTER_FLUSH_SECONDS = 30  # how long a process's exit waits for the samples it still owes


class _After:
    """One daemon thread per process taking the after-change samples queued by `sample_soon`, in
    order: it takes every sandbox queued so far as one batch and reads them in parallel (at most
    one entry per sandbox is queued: a second change before its sample coalesces into it), then
    the next batch. Started on first use (in each process: a Celery worker's children too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = 0
        self.queue: queue.Queue[str] = queue.Queue(maxsize=AFTER_QUEUE_SIZE)
        self.expected: dict[str, tuple] = {}  # sandbox id -> (status, started_at, running_until) to sample
        self.busy = 0  # batches being sampled

    def _start(self) -> None:
        if self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.queue = queue.Queue(maxsize=AFTER_QUEUE_SIZE)  # a forked child starts empty
        self.expected = {}
        self.busy = 0
        threading.Thread(target=self._run, daemon=True, name="meter-after").start()

    def put(self, sandbox: Sandbox) -> bool:
        """Queues a sample of `sandbox` in the state it is in now; False when the queue is full."""
        expected = (sandbox.status, sandbox.started_at, _running_until(sandbox))
        with self.lock:
            self._start()
            if sandbox.pk in self.expected:
                self.expected[sandbox.pk] = expected  # its queued sample reads the latest state
                return True
            try:
                self.queue.put_nowait(sandbox.pk)
            except queue.Full:
                return False
            self.expected[sandbox.pk] = expected
            return True

    def pending(self) -> int:
        with self.lock:
            return len(self.expected) + self.busy

    def _run(self) -> None:
        readers = ThreadPoolExecutor(max_workers=AFTER_READERS, thread_name_prefix="meter-after-read")
        while True:
            batch = [self.queue.get()]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            with self.lock:
                jobs = [(pk, self.expected.pop(pk)) for pk in batch if pk in self.expected]
                self.busy += 1
            try:
                list(readers.map(lambda job: _sample_after(*job), jobs))
            finally:
                with self.lock:
                    self.busy -= 1

    def flush(self, timeout: float = AFTER_FLUSH_SECONDS) -> bool:
        """Waits (up to `timeout`) until every queued sample was taken: at a process's exit."""
        if self.pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


_after = _After()
atexit.register(_after.flush)


def _running_until(sandbox: Sandbox):
    """When a just-paused sandbox stopped running (its pause's claim): a pause takes no sample
    before the engine call (the counters survive it, and the engine's stats read can wait up to a
    second); its running tail is the reading after, dated then (_take)."""
    return sandbox.paused_at if sandbox.status == Status.PAUSED else None


def _sample_after(pk: str, expected: tuple) -> None:
    """The queued sample of one sandbox, if it is still in the state its change left it in (same
    status, same boot). Otherwise a later change happened before the engine could be read: that
    change's own samples (before leaving, after) mark it, and this one would be in the wrong state.
    """
    try:
        sandbox = Sandbox.objects.filter(pk=pk).select_related("template", "node").first()
        if sandbox is None or (sandbox.status, sandbox.started_at, _running_until(sandbox)) != expected:
            return
        try:
            _take(
                sandbox,
                state=None,
                measure_workspace=False,
                running_until=expected[2],
                still=lambda: Sandbox.objects.filter(pk=pk, status=expected[0], started_at=expected[1]).exists(),
            )
        except Exception:
            if Sandbox.objects.filter(pk=pk).exists():
                logger.exception("meter sample of %s failed", pk)
            # else: the row went away during the read (a test's database flushed): nothing to meter
    except Exception:
        logger.exception("meter sample of %s failed", pk)
    finally:
        connections.close_all()  # this reader's connections: the thread may sit idle for long


def sample_soon(sandbox: Sandbox) -> None:
    """The sample after a lifecycle change: at once for a state read without the engine (stopped,
    or nothing to read), else by this process's background sampler, within about a second (the
    engine's stats pass) and off the caller's request. A full queue samples here instead."""
    if sandbox.status not in READ or not _after.put(sandbox):
        sample(sandbox, running_until=_running_until(sandbox))


def _due(key: str, interval: float) -> bool:
    """Whether what `key` names is due (at most once per `interval`, across processes: Redis)."""
    try:
        return cache.add(key, 1, timeout=interval)
    except Exception:  # Redis away: skip it this pass rather than do it every pass
        logger.warning("meter: cannot tell whether %s is due", key, exc_info=True)
        return False


def sample_all() -> dict:
    """The sampler task's pass: every running and paused sandbox read from the engine, and once
    per VIBEBOX_METER_STOPPED_INTERVAL a state-only sample of each stopped sandbox. Answers counts
    for the task's log."""
    taken = skipped = 0
    for sandbox in Sandbox.objects.filter(status__in=READ).select_related("template", "node").order_by("pk"):
        due = sandbox.status == Status.RUNNING and _due(
            f"billing:meter:workspace:{sandbox.pk}", settings.VIBEBOX_METER_WORKSPACE_INTERVAL
        )
        if sample(sandbox, measure_workspace=due) is None:
            skipped += 1
        else:
            taken += 1
    if _due("billing:meter:stopped-pass", settings.VIBEBOX_METER_STOPPED_INTERVAL):
        for sandbox in Sandbox.objects.filter(status=Status.STOPPED).order_by("pk"):
            if sample(sandbox) is None:
                skipped += 1
            else:
                taken += 1
    return {"taken": taken, "skipped": skipped}


def live_usage(sandbox: Sandbox, *, now=None) -> dict:
    """The sandbox's usage not rolled up into UsageRecords yet (rollup.live_usage): the amounts a
    UsageRecord has, so costs can add them and be live."""
    return rollup.live_usage(sandbox, now=now)


def live_rows(org, *, sandbox: Sandbox | None = None, now=None) -> list[dict]:
    """The organization's usage not rolled up yet (or one sandbox's), as UsageRecord-like dicts
    (sandbox_id, template, hour: the current one, and the amounts), one per sandbox that used
    something: what costs.live_rows answers. The sandboxes are those sampled since the previous
    hour began (running, paused and stopped ones all are) or the one given."""
    now = now or timezone.now()
    current = rollup.floor_hour(now)
    if sandbox is not None:
        sandboxes = [sandbox]
    else:
        recent = MeterSample.objects.filter(org=org, taken_at__gte=current - rollup.HOUR)
        ids = recent.values_list("sandbox_id", flat=True).distinct()
        sandboxes = Sandbox.objects.filter(pk__in=ids).select_related("template", "node").order_by("pk")
    rows = []
    for row in sandboxes:
        amounts = live_usage(row, now=now)
        if any(amounts.values()):
            rows.append({"sandbox_id": row.pk, "template": row.template.name, "hour": current, **amounts})
    return rows
