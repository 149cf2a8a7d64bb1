"""SLOs (apps/monitoring/slo.py): the window math over recorded samples, the recorder reading real
prometheus_client multiprocess files (written by another process, as web workers write them) with
counter resets, the PromQL of each SLI, and the settings' override and checks."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.utils import timezone

from apps.monitoring import slo
from apps.monitoring.models import SliSample

ROOT = Path(__file__).resolve().parent.parent.parent
NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def _by_name(report: dict) -> dict:
    return {item["name"]: item for item in report["slos"]}


@pytest.mark.django_db
def test_budget_and_burn_rates_from_samples_in_their_windows():
    # api_availability, 99.9 %: 30 bad of 10,000 in the last 30 days (3x its budget), of which
    # 10 of 1,000 in the last hour (10x).
    slo.sli_sample_add(slo="api_availability", minute=NOW - dt.timedelta(minutes=30), good=990, total=1000)
    slo.sli_sample_add(slo="api_availability", minute=NOW - dt.timedelta(hours=5), good=1000, total=1000)
    slo.sli_sample_add(slo="api_availability", minute=NOW - dt.timedelta(days=2), good=2990, total=3000)
    slo.sli_sample_add(slo="api_availability", minute=NOW - dt.timedelta(days=20), good=4990, total=5000)
    slo.sli_sample_add(slo="api_availability", minute=NOW - dt.timedelta(days=31), good=0, total=500)  # outside
    report = _by_name(slo.slo_report(now=NOW))

    api = report["api_availability"]
    assert api["events"] == {"good": 9970, "total": 10000}
    assert api["sli"] == pytest.approx(0.997)
    assert api["objective"] == 0.999 and api["window"] == "30d"
    assert api["errorBudgetRemaining"] == pytest.approx(-2.0)  # spent three times over
    assert api["burnRates"]["1h"] == pytest.approx(10.0)
    assert api["burnRates"]["6h"] == pytest.approx(5.0)  # 10 of 2,000
    assert api["burnRates"]["1d"] == pytest.approx(5.0)
    assert api["burnRates"]["3d"] == pytest.approx(20 / 5000 / 0.001)
    assert api["query"] == (
        '1 - ((sum(rate(vibebox_http_requests_total{status=~"5.."}[30d])) or vector(0))'
        " / sum(rate(vibebox_http_requests_total[30d])))"
    )

    # No events at all: no SLI, the whole budget, no burn rate.
    webhooks = report["webhook_delivery"]
    assert webhooks["sli"] is None and webhooks["events"] == {"good": 0, "total": 0}
    assert webhooks["errorBudgetRemaining"] == 1.0
    assert webhooks["burnRates"] == {"1h": None, "6h": None, "1d": None, "3d": None}


@pytest.mark.django_db
def test_a_sample_added_twice_to_one_minute_adds_up():
    minute = NOW - dt.timedelta(minutes=3, seconds=20)
    slo.sli_sample_add(slo="create_latency", minute=minute, good=9, total=10)
    slo.sli_sample_add(slo="create_latency", minute=minute, good=10, total=10)
    assert SliSample.objects.get(slo="create_latency").good == 19
    item = _by_name(slo.slo_report(now=NOW))["create_latency"]
    assert item["events"] == {"good": 19, "total": 20}
    assert item["errorBudgetRemaining"] == pytest.approx(1 - 0.05 / 0.05)  # exactly spent
    with pytest.raises(ValueError):
        slo.sli_sample_add(slo="create_latency", minute=minute, good=3, total=2)


WRITER = textwrap.dedent(
    """
    import sys
    from prometheus_client import Counter, Histogram
    requests, five_xx, creates_fast, creates_slow, execs_fast, execs_slow, executes, delivered, failed = map(
        int, sys.argv[1:]
    )
    http = Counter("vibebox_http_requests_total", "", ["route", "method", "status"])
    http.labels("api/v1/sandboxes", "GET", "200").inc(requests - five_xx)
    http.labels("api/v1/sandboxes", "POST", "503").inc(five_xx)
    create = Histogram("vibebox_sandbox_create_seconds", "", ["template", "source"], buckets=(0.1, 0.5, 1, 5))
    for _ in range(creates_fast):
        create.labels("python-3.13", "warm").observe(0.2)
    for _ in range(creates_slow):
        create.labels("python-3.13", "cold").observe(2.5)
    run = Histogram("vibebox_exec_seconds", "", ["kind", "language"], buckets=(0.05, 0.1, 0.5, 1))
    for _ in range(execs_fast):
        run.labels("exec", "").observe(0.02)
    for _ in range(execs_slow):
        run.labels("exec", "").observe(0.3)
    for _ in range(executes):  # code runs: not the exec SLO's
        run.labels("execute", "python").observe(0.7)
    hooks = Counter("vibebox_webhook_deliveries_total", "", ["outcome"])
    hooks.labels("delivered").inc(delivered)
    hooks.labels("failed").inc(failed)
    hooks.labels("retrying").inc(7)  # neither good nor bad: not counted
    """
)


def _process_writes(directory: Path, *counts: int) -> None:
    """Another process records these metrics in the multiprocess directory, as a web worker does."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run(
        [sys.executable, "-c", WRITER, *map(str, counts)], check=True, env=env, cwd=ROOT, capture_output=True
    )


@pytest.mark.django_db
def test_the_recorder_stores_per_minute_deltas_of_every_process_and_survives_a_reset(tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    _process_writes(directory, 100, 2, 8, 2, 18, 2, 5, 9, 1)
    _process_writes(directory, 50, 0, 2, 0, 0, 0, 0, 0, 0)  # a second process adds to the sums
    minute = timezone.now().replace(second=0, microsecond=0)

    slo.sli_samples_record(path=str(directory), now=minute)
    first = {s.slo: (s.good, s.total) for s in SliSample.objects.filter(minute=minute)}
    assert first == {
        "api_availability": (148, 150),
        "create_latency": (10, 12),
        "exec_latency": (18, 20),
        "webhook_delivery": (9, 10),
    }
    # Again in the same minute: nothing new is stored (those events go to the next sample).
    _process_writes(directory, 10, 0, 0, 0, 0, 0, 0, 0, 0)
    assert slo.sli_samples_record(path=str(directory), now=minute + dt.timedelta(seconds=30)) == []
    assert SliSample.objects.filter(slo="api_availability").count() == 1

    later = minute + dt.timedelta(minutes=1)
    slo.sli_samples_record(path=str(directory), now=later)
    assert SliSample.objects.get(slo="api_availability", minute=later).total == 10
    assert SliSample.objects.get(slo="create_latency", minute=later).total == 0  # a minute without events

    # A restart: the directory starts empty, the counters below their last values.
    for path in directory.iterdir():
        path.unlink()
    _process_writes(directory, 4, 1, 1, 0, 0, 0, 0, 0, 0)
    latest = later + dt.timedelta(minutes=1)
    slo.sli_samples_record(path=str(directory), now=latest)
    assert SliSample.objects.get(slo="api_availability", minute=latest).total == 4
    assert SliSample.objects.get(slo="api_availability", minute=latest).good == 3

    item = _by_name(slo.slo_report(now=latest, path=str(directory)))["api_availability"]
    assert item["events"] == {"good": 148 + 10 + 3, "total": 150 + 10 + 4}
    # Events counted since the newest sample are in the report before beat records them.
    _process_writes(directory, 6, 0, 0, 0, 0, 0, 0, 0, 0)
    item = _by_name(slo.slo_report(now=latest, path=str(directory)))["api_availability"]
    assert item["events"]["total"] == 150 + 10 + 4 + 6


@pytest.mark.django_db
def test_old_samples_are_pruned_but_each_slos_cursor_stays(tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    _process_writes(directory, 3, 0, 0, 0, 0, 0, 0, 0, 0)
    long_ago = timezone.now() - dt.timedelta(days=60)
    slo.sli_samples_record(path=str(directory), now=long_ago)
    slo.sli_sample_add(slo="api_availability", minute=long_ago - dt.timedelta(days=1), good=1, total=1)
    assert slo.sli_samples_prune() == 1  # the hand-added one; the recorder's newest samples stay
    assert SliSample.objects.filter(total_cumulative__isnull=False).count() == 4
    # The next sample's delta starts from that cursor.
    _process_writes(directory, 2, 0, 0, 0, 0, 0, 0, 0, 0)
    slo.sli_samples_record(path=str(directory))
    assert SliSample.objects.filter(slo="api_availability").order_by("-minute").first().total == 2


@pytest.mark.django_db
def test_without_a_multiprocess_directory_nothing_is_recorded(monkeypatch, tmp_path):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert slo.sli_samples_record() == []
    assert slo.sli_samples_record(path=str(tmp_path / "missing")) == []
    assert not SliSample.objects.exists()


def test_every_sli_has_its_promql():
    queries = {item.name: slo.sli_query(item) for item in slo.slos()}
    assert queries["create_latency"] == (
        'sum(rate(vibebox_sandbox_create_seconds_bucket{le="0.5"}[30d]))'
        " / sum(rate(vibebox_sandbox_create_seconds_count[30d]))"
    )
    assert queries["exec_latency"] == (
        'sum(rate(vibebox_exec_seconds_bucket{kind="exec",le="0.1"}[30d]))'
        ' / sum(rate(vibebox_exec_seconds_count{kind="exec"}[30d]))'
    )
    assert queries["webhook_delivery"] == (
        '1 - ((sum(rate(vibebox_webhook_deliveries_total{outcome="failed"}[30d])) or vector(0))'
        ' / sum(rate(vibebox_webhook_deliveries_total{outcome=~"delivered|failed"}[30d])))'
    )
    # The error ratios deploy/monitoring records as slo:sli_error:ratio_rate<window>{slo="<id>"}.
    by_name = {item.name: item for item in slo.slos()}
    assert slo.error_ratio_query(by_name["api_availability"], "5m") == (
        '(sum(rate(vibebox_http_requests_total{status=~"5.."}[5m])) or vector(0))'
        " / sum(rate(vibebox_http_requests_total[5m]))"
    )
    assert slo.error_ratio_query(by_name["exec_latency"], "1h") == (
        '1 - (sum(rate(vibebox_exec_seconds_bucket{kind="exec",le="0.1"}[1h]))'
        ' / sum(rate(vibebox_exec_seconds_count{kind="exec"}[1h])))'
    )


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool: make monitoring installs Debian's prometheus")
def test_every_query_is_valid_promql_for_promtool(tmp_path):
    """Each SLI and error-ratio query, as recording rules, passes `promtool check rules`."""
    rules = []
    for item in slo.slos():
        rules.append({"record": "slo:sli:ratio", "expr": slo.sli_query(item), "labels": {"slo": item.name}})
        for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
            expr = slo.error_ratio_query(item, window)
            rules.append({"record": f"slo:sli_error:ratio_rate{window}", "expr": expr, "labels": {"slo": item.name}})
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "slo", "rules": rules}]}))  # JSON is YAML
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout, done.stdout


def _settings_with(value: str) -> subprocess.CompletedProcess:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps(s.VIBEBOX_SLOS))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vibebox.settings", "VIBEBOX_SLOS": value}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)


def test_operators_override_slos_with_json_in_the_environment():
    done = _settings_with(
        json.dumps(
            {
                "api_availability": {"objective": 0.995},
                "exec_latency": None,
                "gateway_ok": {
                    "objective": 0.99,
                    "window": "7d",
                    "sli": {"kind": "ratio", "metric": "vibebox_gateway_requests_total", "bad": {"status": "5.."}},
                },
            }
        )
    )
    assert done.returncode == 0, done.stderr
    slos = json.loads(done.stdout)
    assert set(slos) == {"api_availability", "create_latency", "webhook_delivery", "gateway_ok"}
    assert slos["api_availability"]["objective"] == 0.995
    assert slos["api_availability"]["sli"]["metric"] == "vibebox_http_requests_total"  # the rest kept

    for bad, says in [
        ("[1]", "JSON object"),
        ("{", "not valid JSON"),
        ('{"api_availability": {"objective": 99.9}}', "objective"),
        ('{"api_availability": {"window": "5m"}}', "window"),
        ('{"new": {"objective": 0.9}}', "sli"),
        ('{"new": {"objective": 0.9, "sli": {"kind": "ratio", "metric": "m"}}}', "either good or bad"),
        ('{"new": {"objective": 0.9, "sli": {"kind": "latency", "metric": "m"}}}', "threshold"),
        ('{"new": {"objective": 0.9, "sli": {"kind": "ratio", "metric": "m", "bad": {"s": "("}}}}', "regular"),
    ]:
        done = _settings_with(bad)
        assert done.returncode != 0, bad
        assert "ImproperlyConfigured" in done.stderr and says in done.stderr, (bad, done.stderr)


@pytest.mark.django_db
def test_beats_task_records_from_the_processes_directory(monkeypatch, tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    _process_writes(directory, 5, 1, 0, 0, 0, 0, 0, 0, 0)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    assert slo.record_sli_samples() == 4  # one sample per SLO
    assert SliSample.objects.get(slo="api_availability").good == 4
