"""The public status (GET /api/v1/status, the /status page) against the real engine, Redis and
database, and a real Celery worker; who may read the SLOs (GET /api/v1/status/slo); and a server
whose Redis is gone, which says so without a 500."""

import datetime as dt
import re

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.monitoring import health, slo
from apps.monitoring.models import SliSample
from apps.sandboxes.models import WarmPool
from apps.sandboxes.services import pools
from tests.agents.test_gateway_failures import gateway
from tests.conftest import live_server
from tests.test_make_run import free_port, own_redis  # noqa: F401 (own_redis: a fixture)
from tests.waiting import wait_for
from tests.webhooks.conftest import QUIET_PASSES, celery_worker, worker_env

COMPONENTS = ["api", "engine", "redis", "workers", "gateway", "pools"]
SLO_NAMES = ["api_availability", "create_latency", "exec_latency", "webhook_delivery"]


@pytest.fixture(autouse=True)
def fresh_status():
    health.forget()
    yield
    health.forget()


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user(username="operator", password="pw-operator", is_staff=True)


def _components(body: dict) -> dict:
    return {component["name"]: component for component in body["components"]}


@pytest.mark.django_db
def test_the_public_status_reports_every_component_without_secrets():
    response = APIClient().get("/api/v1/status")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [component["name"] for component in body["components"]] == COMPONENTS
    components = _components(body)
    for name in ("api", "engine", "redis"):  # the real ones of this machine answer
        assert components[name]["status"] == "ok", components[name]
    assert all(c["status"] in ("ok", "degraded", "down") and c["message"] for c in body["components"])
    assert body["status"] in ("ok", "degraded") and body["checkedAt"]
    assert components["pools"]["status"] == "ok"  # tests/settings.py turns warm pools off
    assert components["pools"]["message"] == "Warm pools are off: sandboxes start cold."
    text = response.content.decode()
    for secret in (django_settings.REDIS_URL, django_settings.SECRET_KEY, "docker.sock", "127.0.0.1"):
        assert secret not in text


@pytest.mark.django_db
def test_the_checks_are_kept_a_while_per_process(settings):
    settings.VIBEBOX_STATUS_CACHE_SECONDS = 3600
    first = APIClient().get("/api/v1/status").json()
    assert APIClient().get("/api/v1/status").json()["checkedAt"] == first["checkedAt"]
    # The page shows the same kept result.
    assert Client().get("/status").status_code == 200
    assert APIClient().get("/api/v1/status").json()["checkedAt"] == first["checkedAt"]


def test_the_slos_are_for_staff_only(owner, staff, client_for):
    anonymous = APIClient().get("/api/v1/status/slo")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"

    refused = client_for(owner).get("/api/v1/status/slo")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert refused.json()["error"]["details"] == {"permission": "staff"}
    session = Client()
    session.force_login(owner)
    assert session.get("/api/v1/status/slo").status_code == 403

    for client in (client_for(staff, scopes=[]), _session(staff)):
        response = client.get("/api/v1/status/slo")
        assert response.status_code == 200, response.content
        body = response.json()
        assert [item["name"] for item in body["slos"]] == SLO_NAMES and body["computedAt"]
        for item in body["slos"]:
            assert set(item) == {
                "name",
                "description",
                "objective",
                "window",
                "sli",
                "errorBudgetRemaining",
                "burnRates",
                "events",
                "query",
            }
            assert set(item["burnRates"]) == {"1h", "6h", "1d", "3d"}
            assert item["window"] == "30d" and "sum(rate(vibebox_" in item["query"]


def _session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_page_shows_health_to_everyone_and_slos_to_staff(owner, staff):
    for path in ("/status", "/status/"):
        page = Client().get(path)
        assert page.status_code == 200
        text = page.content.decode()
        assert 'id="status-components"' in text
        assert all(f'data-component="{name}"' in text for name in COMPONENTS)
        assert 'id="status-slos"' not in text and "api_availability" not in text
    signed_in = _session(owner).get("/status").content.decode()
    assert 'id="status-slos"' not in signed_in
    assert 'href="/status"' in _session(owner).get("/sandboxes/").content.decode()  # in the dashboard's menu

    slo.sli_sample_add(slo="api_availability", minute=timezone.now(), good=995, total=1000)
    text = _session(staff).get("/status/").content.decode()
    assert 'id="status-slos"' in text
    assert all(f'data-slo="{name}"' in text for name in SLO_NAMES)
    row = text[text.index('data-slo="api_availability"') : text.index('data-slo="create_latency"')]
    assert "99.9 % over 30d" in row and '<td class="sli">99.5 %</td>' in row
    assert '<td class="budget">-400 %</td>' in row and '<td class="burn-1h">5.00</td>' in row


def test_redis_unreachable_is_reported_down_without_a_500(transactional_db):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # a port nobody serves
    with live_server(REDIS_URL=dead, VIBEBOX_STATUS_CACHE_SECONDS="0") as (url, _pid):
        response = requests.get(f"{url}/api/v1/status", timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        components = _components(body)
        assert components["redis"] == {"name": "redis", "status": "down", "message": "Redis does not answer."}
        assert components["workers"]["status"] == "down" and "Redis" in components["workers"]["message"]
        assert components["api"]["status"] == "ok" and components["engine"]["status"] == "ok"
        assert body["status"] == "down"
        assert dead not in response.text

        page = requests.get(f"{url}/status", timeout=60)
        assert page.status_code == 200
        assert "Redis does not answer." in page.text


@pytest.mark.timeout(300)
def test_workers_are_up_when_a_real_worker_answers(transactional_db, own_redis, tmp_path):  # noqa: F811
    with live_server(REDIS_URL=own_redis, VIBEBOX_STATUS_CACHE_SECONDS="0") as (url, _pid):

        def workers() -> dict:
            response = requests.get(f"{url}/api/v1/status", timeout=60)
            assert response.status_code == 200, response.text
            return _components(response.json())["workers"]

        # Nothing consumes this Redis yet.
        assert workers() == {"name": "workers", "status": "down", "message": "No Celery worker answered within 1 s."}
        env = worker_env(own_redis, **QUIET_PASSES)
        with celery_worker(env, tmp_path / "worker.log", line="worker"):
            up = wait_for(
                lambda: (answer := workers())["status"] == "ok" and answer, timeout=180, interval=1, what="a worker"
            )
            assert up["message"] == "1 Celery worker answered."
            # Beat's recorder has not written for 10 minutes: the workers answer, beat does not run.
            SliSample.objects.create(
                slo="api_availability",
                minute=timezone.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=10),
                good_cumulative=0,
                total_cumulative=0,
            )
            late = workers()
            assert late["status"] == "degraded"
            # 10 minutes, or 11 if a minute began in between.
            stale = r"1 Celery worker answered\. Beat's last SLI sample is 1[01] min old\."
            assert re.fullmatch(stale, late["message"]), late


def _checked() -> dict:
    health.forget()
    return _components(APIClient().get("/api/v1/status").json())


def test_the_engine_stopping_makes_the_platform_down(db, engine_fault):
    assert _checked()["engine"]["status"] == "ok"
    engine_fault.refuse()
    components = _checked()
    assert components["engine"] == {
        "name": "engine",
        "status": "down",
        "message": "The container engine does not answer.",
    }
    assert APIClient().get("/api/v1/status").json()["status"] == "down"
    engine_fault.restore()
    assert _checked()["engine"]["status"] == "ok"


@pytest.mark.timeout(180)
def test_the_gateway_is_up_while_it_answers(db, settings):
    settings.VIBEBOX_GATEWAY_URL = f"http://127.0.0.1:{free_port()}"  # nobody there
    down = {"name": "gateway", "status": "down", "message": "The model gateway does not answer."}
    assert _checked()["gateway"] == down
    with gateway(upstream="http://127.0.0.1:9", operator_key="sk-test-unused") as base:
        settings.VIBEBOX_GATEWAY_URL = base
        assert _checked()["gateway"] == {"name": "gateway", "status": "ok", "message": "The model gateway answers."}


def test_an_empty_warm_pool_degrades_the_platform(transactional_db, templates, settings, docker_client):
    settings.VIBEBOX_POOL_ENABLED = True
    pool = WarmPool.objects.create(template=templates["python-3"], min_size=1, target_size=1, max_size=1)
    assert _checked()["pools"] == {
        "name": "pools",
        "status": "degraded",
        "message": "Empty (sandboxes start cold): python-3.13.",
    }
    try:
        assert pools.pool_fill(pool) == 1
        components = _checked()
        assert components["pools"] == {"name": "pools", "status": "ok", "message": "1 warm sandbox ready in 1 pool."}
    finally:
        pools.pool_drain()


def test_a_database_that_does_not_answer_is_reported_without_a_500(transactional_db):
    dead = f"postgres://vibebox:unused@127.0.0.1:{free_port()}/vibebox"  # a port nobody serves
    with live_server(DATABASE_URL=dead, VIBEBOX_STATUS_CACHE_SECONDS="0") as (url, _pid):
        response = requests.get(f"{url}/api/v1/status", timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert _components(body)["api"] == {"name": "api", "status": "down", "message": "The database does not answer."}
        assert body["status"] == "down" and "unused" not in response.text
        page = requests.get(f"{url}/status/", timeout=60)
        assert page.status_code == 200 and "The database does not answer." in page.text
