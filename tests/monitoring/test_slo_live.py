"""From real traffic to the SLO numbers: requests to a live server (its processes count them in
their multiprocess metrics files, vibebox/metrics.py), a real create and exec, server errors
caused by stopping the engine (readiness answers 503), beat's recorder run on those files, and
GET /api/v1/status/slo on the same server."""

import datetime as dt

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.keys.services import api_key_create
from apps.monitoring import slo
from apps.monitoring.models import SliSample
from tests.conftest import live_server


@pytest.mark.timeout(300)
def test_real_traffic_through_a_live_server_reaches_the_slo_numbers(
    transactional_db, templates, engine_fault, tmp_path, cleanup_sandbox_ids
):
    operator = get_user_model().objects.create_user(username="operator", password="pw-operator", is_staff=True)
    _key, secret = api_key_create(user=operator, name="slo", scopes=None)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with live_server(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), DOCKER_HOST=engine_fault.url) as (url, _pid):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {secret}"
        minute = timezone.now().replace(second=0, microsecond=0)
        slo.sli_samples_record(path=str(metrics_dir), now=minute)  # what the server's start counted
        baseline = SliSample.objects.get(slo="api_availability", minute=minute)
        assert baseline.good == baseline.total  # its /healthz polls

        # Good events: answers below 500, client errors included.
        for _ in range(3):
            assert session.get(f"{url}/api/v1/sandboxes", timeout=60).status_code == 200
        assert session.get(f"{url}/api/v1/sandboxes/sbx_nothing", timeout=60).status_code == 404
        assert requests.get(f"{url}/api/v1/keys", timeout=60).status_code == 401
        created = session.post(f"{url}/api/v1/sandboxes", json={"template": "python-3"}, timeout=120)
        assert created.status_code == 201, created.text
        cleanup_sandbox_ids.append(created.json()["id"])
        ran = session.post(f"{url}/api/v1/sandboxes/{created.json()['id']}/exec", json={"command": "true"}, timeout=60)
        assert ran.status_code == 200 and ran.json()["exitCode"] == 0, ran.text
        # Bad events: the engine stops answering, readiness answers 503.
        engine_fault.refuse()
        for _ in range(2):
            assert requests.get(f"{url}/readyz", timeout=60).status_code == 503
        engine_fault.restore()

        later = minute + dt.timedelta(minutes=1)
        slo.sli_samples_record(path=str(metrics_dir), now=later)
        api = SliSample.objects.get(slo="api_availability", minute=later)
        assert (api.good, api.total) == (7, 9)
        creates = SliSample.objects.get(slo="create_latency", minute=later)
        execs = SliSample.objects.get(slo="exec_latency", minute=later)
        assert creates.total == 1 and execs.total == 1  # under the threshold or not: the machine decides
        assert creates.good <= 1 and execs.good <= 1

        report = session.get(f"{url}/api/v1/status/slo", timeout=60)
        assert report.status_code == 200, report.text
        found = {item["name"]: item for item in report.json()["slos"]}

    good, total = baseline.good + 7, baseline.total + 9
    availability = found["api_availability"]
    assert availability["events"] == {"good": good, "total": total}
    assert availability["sli"] == pytest.approx(good / total, abs=1e-6)
    assert availability["errorBudgetRemaining"] == pytest.approx(1 - (2 / total) / 0.001, abs=1e-5)
    assert availability["burnRates"]["1h"] == pytest.approx((2 / total) / 0.001, abs=1e-3)
    assert found["create_latency"]["events"] == {"good": creates.good, "total": 1}
    assert found["exec_latency"]["events"] == {"good": execs.good, "total": 1}
    assert found["webhook_delivery"]["sli"] is None
