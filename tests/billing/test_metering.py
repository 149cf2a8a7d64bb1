"""The meter against the real engine (accuracy of CPU and memory, counters across a stop and a
start, a vanished container) and the hourly rollup's arithmetic (hour boundaries, new boots,
idempotence, recomputing piecewise)."""

import datetime as dt
import time
from decimal import Decimal

import pytest

from apps.billing import metering, rollup
from apps.billing.models import MeterSample, UsageRecord
from apps.sandboxes.models import Sandbox, Status
from tests.conftest import sandbox_row
from tests.waiting import wait_for

MIB = 1 << 20

# One process holds 200 MiB (written, so resident), waits for the go mark, then burns one CPU until
# it has used 60 s of CPU time since (a busy machine makes that take longer in wall time, never less
# CPU), leaves a mark and keeps holding. One process for both: a second interpreter would add its own
# resident memory to the 200 MiB.
HOLD_THEN_BURN = (
    "import os, time\n"
    "held = b'x' * (200 << 20)\n"
    "open('/workspace/held', 'w').write('1')\n"
    "while not os.path.exists('/workspace/go'):\n"
    "    time.sleep(0.05)\n"
    "start = time.process_time()\n"
    "while time.process_time() - start < 60:\n"
    "    pass\n"
    "open('/workspace/burnt', 'w').write(str(time.process_time() - start))\n"
    "time.sleep(600)\n"
)


def _exec(api_client, sandbox_id, command, **body):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, **body}, format="json")
    assert response.status_code in (200, 202), response.content
    return response.json()


def _exists(api_client, sandbox_id, path) -> bool:
    return _exec(api_client, sandbox_id, f"test -f {path}")["exitCode"] == 0


def _window(sandbox, first, last) -> list[MeterSample]:
    return list(
        MeterSample.objects.filter(sandbox=sandbox, taken_at__gte=first.taken_at, taken_at__lte=last.taken_at).order_by(
            "taken_at", "pk"
        )
    )


def _sampled_after_change(sandbox, **where) -> MeterSample:
    """The sample after a lifecycle change, which billing takes in the background (off the
    request): waits until it is there (`where`: what tells it apart)."""

    def found():
        return MeterSample.objects.filter(sandbox=sandbox, **where).order_by("-taken_at", "-pk").first()

    return wait_for(found, timeout=60, what=f"the meter's sample after the change ({where})")


def _sample_every(seconds: float, until) -> None:
    """The sampler task's pass every `seconds` until `until()`."""
    while not until():
        metering.sample_all()
        time.sleep(seconds)


@pytest.mark.timeout(600)
def test_one_cpu_and_200_mib_for_60_seconds_are_metered_as_such(transactional_db, api_client, create_sandbox):
    """CPU and memory accuracy in one window (one sandbox, one process: docs/billing.md, "Accuracy")."""
    sandbox_id = create_sandbox(template="python-3", resources={"cpu": 1, "memory": 512 * MIB})["id"]
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    _exec(api_client, sandbox_id, ["python3", "-c", HOLD_THEN_BURN], background=True)
    wait_for(lambda: _exists(api_client, sandbox_id, "/workspace/held"), timeout=60, what="200 MiB to be held")
    first = metering.sample(sandbox)
    assert first is not None and first.state == "running" and first.boot
    _exec(api_client, sandbox_id, "touch /workspace/go")
    started = time.monotonic()
    _sample_every(5, lambda: _exists(api_client, sandbox_id, "/workspace/burnt") and time.monotonic() - started >= 60)
    last = metering.sample(sandbox)
    samples = _window(sandbox, first, last)
    assert len(samples) >= 10 and {s.boot for s in samples} == {first.boot}
    assert samples[-1].workspace_bytes is not None  # measured by a sampler pass (du), carried by later samples
    usage = rollup.amounts(samples)
    cpu = usage["cpu_seconds"]
    average = usage["memory_gib_seconds"] / usage["running_seconds"] * 1024  # MiB
    print(
        f"one CPU for 60 s: metered {cpu} CPU-seconds over {len(samples)} samples; "
        f"200 MiB held for {usage['running_seconds']} s: metered {average:.1f} MiB on average"
    )
    assert Decimal(57) <= cpu <= Decimal(63)
    assert Decimal(180) <= average <= Decimal(220)


@pytest.mark.timeout(300)
def test_counters_start_again_after_a_stop_and_a_start(transactional_db, api_client, create_sandbox):
    """The lifecycle samples the tail before the stop (sandbox_leaving) and the new boot after the
    start; the rollup counts the new boot from zero."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    # The create's sample is taken in the background: before the burn, or it would count part of it.
    _sampled_after_change(sandbox, state="running", boot=sandbox.started_at.isoformat())
    burn = "import time\nwhile time.process_time() < 2: pass\n"
    _exec(api_client, sandbox_id, ["python3", "-c", burn], timeout=60)
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop").status_code == 200
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/start").status_code == 200
    sandbox.refresh_from_db()
    _sampled_after_change(sandbox, state="running", boot=sandbox.started_at.isoformat())
    _exec(api_client, sandbox_id, ["python3", "-c", burn], timeout=60)
    metering.sample(sandbox)

    samples = list(MeterSample.objects.filter(sandbox=sandbox).order_by("taken_at", "pk"))
    states = [s.state for s in samples]
    # after create ... the tail before the stop (running), after the stop, after the start, last
    assert states[-4:] == ["running", "stopped", "running", "running"], states
    tail, stopped, started, last = samples[-4:]
    assert tail.cpu_ns >= 2 * 10**9  # the first burn, read before the stop
    assert stopped.cpu_ns == 0 and stopped.boot == ""
    assert started.boot and started.boot != tail.boot
    assert last.boot == started.boot and last.cpu_ns >= 2 * 10**9
    assert last.cpu_ns < tail.cpu_ns + 2 * 10**9  # a new boot's counter: it started again
    usage = rollup.amounts(samples)
    expected = Decimal(tail.cpu_ns - samples[0].cpu_ns + last.cpu_ns) / 10**9
    assert abs(usage["cpu_seconds"] - expected) <= Decimal("0.000002")
    assert usage["cpu_seconds"] >= 4
    assert usage["stopped_seconds"] > 0 and usage["running_seconds"] > 0


def test_a_sandbox_whose_container_vanished_is_skipped(
    transactional_db, api_client, create_sandbox, docker_client, caplog
):
    sandbox_id = create_sandbox(template="python-3")["id"]
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    _sampled_after_change(sandbox, state="running")  # the create's, before the container goes
    before = MeterSample.objects.filter(sandbox=sandbox).count()
    docker_client.containers.get(sandbox.container_name).remove(force=True)  # behind VibeBox's back
    assert metering.sample(sandbox) is None
    assert metering.sample_all()["skipped"] >= 1
    assert MeterSample.objects.filter(sandbox=sandbox).count() == before
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") and "meter" in r.getMessage()]


@pytest.mark.timeout(300)
def test_after_change_samples_running_in_the_background_stopped_at_once(transactional_db, api_client, create_sandbox):
    """A create's sample (running: an engine read) is taken by the background sampler, not in the
    request; a stop's (state only) is there when the stop answers; a queued sample whose state
    the sandbox has left since is not taken (the later change's own samples mark it)."""
    sandbox = Sandbox.objects.get(pk=create_sandbox(template="python-3")["id"])
    boot = sandbox.started_at.isoformat()
    created = _sampled_after_change(sandbox, state="running", boot=boot)
    assert created.cpu_ns > 0  # a real reading of the new container
    assert api_client.post(f"/api/v1/sandboxes/{sandbox.id}/stop").status_code == 200
    samples = MeterSample.objects.filter(sandbox=sandbox).order_by("taken_at", "pk")
    states = list(samples.values_list("state", flat=True))
    assert states[-2:] == ["running", "stopped"], states  # the tail before the stop, then the stop's
    before = MeterSample.objects.filter(sandbox=sandbox).count()
    running_then = (Status.RUNNING, dt.datetime.fromisoformat(boot))
    metering._sample_after(sandbox.pk, running_then)  # a sample queued while it ran, read after the stop
    assert MeterSample.objects.filter(sandbox=sandbox).count() == before


# ---- the rollup's arithmetic, on samples written here ----

T0 = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(hours=5)


def _sample(sandbox, at, state="running", boot="b1", cpu=0, memory=0, rx=0, tx=0, workspace=None):
    return MeterSample.objects.create(
        sandbox=sandbox,
        org_id=sandbox.org_id,
        taken_at=at,
        state=state,
        boot=boot,
        cpu_ns=cpu,
        memory_bytes=memory,
        net_rx_bytes=rx,
        net_tx_bytes=tx,
        workspace_bytes=workspace,
    )


@pytest.fixture
def row(db, owner, templates, settings):
    settings.VIBEBOX_METER_SAMPLES_DAYS = 3650  # the synthetic hours are recent enough
    return sandbox_row(owner, templates["python-3"])


def _records(sandbox) -> dict:
    return {
        r.hour: {f: getattr(r, f) for f in rollup.FIELDS}
        for r in UsageRecord.objects.filter(sandbox=sandbox).order_by("hour")
    }


def test_a_span_across_an_hour_boundary_is_split_in_proportion(row):
    gib = 1 << 30
    _sample(row, T0 + dt.timedelta(minutes=59, seconds=30), memory=gib, workspace=2 * gib)
    _sample(row, T0 + dt.timedelta(hours=1, seconds=30), cpu=60 * 10**9, memory=3 * gib, rx=1001, tx=7)
    rollup.rollup(start=T0, end=T0 + dt.timedelta(hours=2), now=NOW)
    records = _records(row)
    first, second = records[T0], records[T0 + dt.timedelta(hours=1)]
    assert first["cpu_seconds"] == second["cpu_seconds"] == Decimal(30)
    assert first["running_seconds"] == second["running_seconds"] == Decimal(30)
    assert first["net_in_bytes"] + second["net_in_bytes"] == 1001
    assert first["net_out_bytes"] + second["net_out_bytes"] == 7
    # resident 1 GiB -> 3 GiB linearly: 1.5 GiB on average in the first half, 2.5 in the second
    assert first["memory_gib_seconds"] == Decimal(45) and second["memory_gib_seconds"] == Decimal(75)
    assert first["workspace_gib_seconds"] == second["workspace_gib_seconds"] == Decimal(60)
    usage = UsageRecord.objects.get(sandbox=row, hour=T0)
    assert usage.org_id == row.org_id and usage.template == row.template.name


def test_a_new_boot_counts_from_zero_and_states_are_timed(row):
    _sample(row, T0 + dt.timedelta(minutes=1), cpu=10 * 10**9, rx=100)
    _sample(row, T0 + dt.timedelta(minutes=2), cpu=50 * 10**9, rx=400)  # +40 s, +300 B
    _sample(row, T0 + dt.timedelta(minutes=3), state="stopped", boot="")  # stopped for 7 minutes
    _sample(row, T0 + dt.timedelta(minutes=10), boot="b2", cpu=5 * 10**9, rx=50)  # a new boot: +5 s, +50 B
    _sample(row, T0 + dt.timedelta(minutes=11), state="paused", boot="b2", cpu=8 * 10**9, rx=60)  # +3 s
    _sample(row, T0 + dt.timedelta(minutes=13), state="paused", boot="b2", cpu=8 * 10**9, rx=60)
    _sample(row, T0 + dt.timedelta(minutes=14), boot="b2", cpu=2 * 10**9, rx=10)  # went down: unseen restart
    rollup.rollup(start=T0, end=T0 + dt.timedelta(hours=1), now=NOW)
    usage = _records(row)[T0]
    assert usage["cpu_seconds"] == Decimal(40 + 5 + 3 + 2)
    assert usage["net_in_bytes"] == 300 + 50 + 10 + 10
    # A span is in the state of the sample it starts with.
    assert usage["running_seconds"] == Decimal(3 * 60)  # 1-2, 2-3, 10-11
    assert usage["stopped_seconds"] == Decimal(7 * 60)  # 3-10
    assert usage["paused_seconds"] == Decimal(3 * 60)  # 11-13, 13-14


def test_rollup_is_idempotent_and_piecewise_equals_whole(row):
    for minute in range(0, 150, 7):
        _sample(row, T0 + dt.timedelta(minutes=minute), cpu=minute * 3 * 10**8, memory=minute * MIB, rx=minute * 11)
    end = T0 + dt.timedelta(hours=3)
    rollup.rollup(start=T0, end=end, now=NOW)
    whole = _records(row)
    stamps = list(UsageRecord.objects.filter(sandbox=row).values_list("pk", "updated_at"))
    assert len(whole) == 3
    assert rollup.rollup(start=T0, end=end, now=NOW)["written"] == 0  # re-run: nothing changes
    assert _records(row) == whole
    assert list(UsageRecord.objects.filter(sandbox=row).values_list("pk", "updated_at")) == stamps

    # A worker killed after the first hour: the next run recomputes the rest; nothing lost or doubled.
    UsageRecord.objects.filter(sandbox=row).delete()
    rollup.rollup(start=T0, end=T0 + dt.timedelta(hours=1), now=NOW)
    rollup.rollup(start=T0, end=end, now=NOW)
    assert _records(row) == whole
    # Only complete hours are written (the current one is live usage).
    later = end + dt.timedelta(hours=5)
    assert rollup.rollup(start=T0, end=later, now=end + dt.timedelta(minutes=30))["hours"] == 3
    assert max(_records(row)) == end - dt.timedelta(hours=1)


def test_live_usage_is_what_is_not_rolled_up_yet(row):
    _sample(row, T0 + dt.timedelta(minutes=10), cpu=0)
    _sample(row, T0 + dt.timedelta(minutes=70), cpu=60 * 10**9)
    _sample(row, T0 + dt.timedelta(minutes=80), cpu=90 * 10**9)
    now = T0 + dt.timedelta(minutes=85)
    assert metering.live_usage(row, now=now)["cpu_seconds"] == Decimal(90)
    rollup.rollup(start=T0, end=now, now=now)  # the complete hour T0 only
    assert _records(row)[T0]["cpu_seconds"] == Decimal(50)
    assert metering.live_usage(row, now=now)["cpu_seconds"] == Decimal(40)
    (live,) = metering.live_rows(row.org, now=now)  # costs.live_rows's shape
    assert live["sandbox_id"] == row.pk and live["template"] == row.template.name
    assert live["hour"] == T0 + dt.timedelta(hours=1) and live["cpu_seconds"] == Decimal(40)
    assert metering.live_rows(row.org, sandbox=row, now=now) == [live]


def test_prune_keeps_samples_until_their_hours_are_rolled_up(row, settings):
    settings.VIBEBOX_METER_SAMPLES_DAYS = 1
    _sample(row, T0, cpu=0)
    _sample(row, T0 + dt.timedelta(minutes=30), cpu=30 * 10**9)
    _sample(row, NOW, cpu=30 * 10**9)
    assert rollup.prune(now=NOW + dt.timedelta(days=2)) == 3
    assert _records(row)[T0]["cpu_seconds"] == Decimal(30)  # rolled up before the samples went
    # An hour whose samples are gone is never recomputed (to zero).
    rollup.rollup(start=T0, end=NOW, now=NOW + dt.timedelta(days=2))
    assert _records(row)[T0]["cpu_seconds"] == Decimal(30)


@pytest.mark.timeout(300)
def test_a_pause_keeps_the_counters_and_is_timed_as_paused(transactional_db, api_client, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause").status_code == 200
    sandbox.refresh_from_db()
    _sampled_after_change(sandbox, state="paused")
    paused = metering.sample(sandbox)
    assert paused is not None and paused.state == "paused"  # a paused container is read too
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/resume").status_code == 200
    _sampled_after_change(sandbox, state="running", taken_at__gt=paused.taken_at)
    samples = list(MeterSample.objects.filter(sandbox=sandbox).order_by("taken_at", "pk"))
    states = [s.state for s in samples]
    # ... the running tail, after the pause, ours, after the resume
    assert states[-4:] == ["running", "paused", "paused", "running"], states
    # The pause read nothing before the engine call: its one read after is also the running tail,
    # dated when the pause began (the counters have not moved since the freeze).
    first_paused = next(i for i, s in enumerate(samples) if s.state == "paused")
    tail, after = samples[first_paused - 1], samples[first_paused]
    # (later than paused_at only when a sample whose read began before the pause was written after it)
    assert tail.state == "running" and sandbox.paused_at <= tail.taken_at < after.taken_at
    assert (tail.cpu_ns, tail.net_rx_bytes, tail.boot) == (after.cpu_ns, after.net_rx_bytes, after.boot)
    assert len({s.boot for s in samples}) == 1  # one boot: a pause does not reset the counters
    counters = [s.cpu_ns for s in samples]
    assert counters == sorted(counters)
    assert rollup.amounts(samples)["paused_seconds"] > 0


@pytest.mark.timeout(300)
def test_a_snapshot_restore_samples_the_old_container_and_the_new_boot(transactional_db, api_client, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    snap = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json")
    assert snap.status_code == 201, snap.content
    body = {"snapshot": snap.json()["id"]}
    restored = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/restore", body, format="json")
    assert restored.status_code == 200, restored.content
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    _sampled_after_change(sandbox, state="running", boot=sandbox.started_at.isoformat())
    samples = list(MeterSample.objects.filter(sandbox=sandbox).order_by("taken_at", "pk"))
    old, new = samples[-2:]
    assert (old.state, new.state) == ("running", "running")
    assert old.boot and new.boot and old.boot != new.boot  # the snapshot's container counts from 0
    assert metering.live_usage(sandbox)["snapshot_gib_seconds"] > 0  # its storage since it was made


def test_executions_snapshots_and_model_requests_are_rolled_up_by_hour(row, owner):
    from apps.agents.models import ModelUsage
    from apps.sandboxes.models import Execution, Snapshot

    execution = Execution.objects.create(sandbox=row, kind="command", status="finished", duration_ms=120_000)
    start = T0 + dt.timedelta(minutes=59)
    Execution.objects.filter(pk=execution.pk).update(started_at=start, finished_at=start + dt.timedelta(minutes=2))
    snapshot = Snapshot.objects.create(
        owner=owner, org=row.org, sandbox=row, template=row.template, image="x", image_bytes=1 << 30, workspace_bytes=0
    )
    Snapshot.objects.filter(pk=snapshot.pk).update(created_at=T0 + dt.timedelta(minutes=30))
    request = ModelUsage.objects.create(
        sandbox=row, path="/v1/messages", status=200, input_tokens=10, cache_read_tokens=5, output_tokens=7,
        cost_usd=Decimal("0.25"),
    )  # fmt: skip
    own = ModelUsage.objects.create(
        sandbox=row, path="/v1/messages", status=200, output_tokens=1, cost_usd=1, own_key=True
    )
    ModelUsage.objects.filter(pk__in=[request.pk, own.pk]).update(created_at=T0 + dt.timedelta(minutes=5))
    rollup.rollup(start=T0, end=T0 + dt.timedelta(hours=2), now=NOW)
    first, second = _records(row)[T0], _records(row)[T0 + dt.timedelta(hours=1)]
    assert first["execution_seconds"] == Decimal(60) and second["execution_seconds"] == Decimal(60)
    assert first["snapshot_gib_seconds"] == Decimal(30 * 60) and second["snapshot_gib_seconds"] == Decimal(3600)
    assert (first["model_input_tokens"], first["model_output_tokens"]) == (15, 8)
    assert first["model_cost_usd"] == Decimal("0.25")  # the own-key request cost the platform nothing
