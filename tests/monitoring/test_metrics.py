"""GET /metrics in process (docs/monitoring.md, "Metrics"): the contract's names and labels, who may
read it (a bearer token, else loopback only), bounded route labels, and the scrape-time gauges
against the database, the real engine and a real Redis of the test's own."""

import os
import subprocess

import pytest
import redis
from django.utils import timezone
from prometheus_client import REGISTRY, Histogram
from prometheus_client.parser import text_string_to_metric_families

from apps.billing.models import MeterSample
from apps.monitoring import collectors, exporter
from apps.sandboxes.models import PooledContainer, Sandbox, WarmPool
from tests.conftest import free_port, sandbox_row
from tests.test_make_run import redis_server
from vibebox import metrics

# The contract's table (notes: names, types, labels; the deploy and status work writes PromQL against them).
RECORDED = {
    "vibebox_sandbox_create_seconds": ("histogram", ["template", "source"]),
    "vibebox_sandbox_start_seconds": ("histogram", ["template"]),
    "vibebox_pool_hits": ("counter", ["template"]),
    "vibebox_pool_misses": ("counter", ["template"]),
    "vibebox_exec_seconds": ("histogram", ["kind", "language"]),
    "vibebox_exec": ("counter", ["kind", "outcome"]),
    "vibebox_file_transfer_bytes": ("counter", ["direction"]),
    "vibebox_file_transfer_seconds": ("histogram", ["direction"]),
    "vibebox_websocket_connections": ("gauge", ["route"]),
    "vibebox_websocket_messages": ("counter", ["route", "direction"]),
    "vibebox_http_requests": ("counter", ["route", "method", "status"]),
    "vibebox_http_request_seconds": ("histogram", ["route", "method"]),
    "vibebox_sandbox_cpu_seconds": ("counter", ["sandbox", "template"]),
    "vibebox_gateway_requests": ("counter", ["status"]),
    "vibebox_gateway_tokens": ("counter", ["kind"]),
    "vibebox_webhook_deliveries": ("counter", ["outcome"]),
}
SCRAPED = {
    "vibebox_sandboxes": ["state", "template"],
    "vibebox_pool_ready": ["template"],
    "vibebox_sandbox_memory_bytes": ["sandbox", "template"],
    "vibebox_sandbox_disk_bytes": ["sandbox", "template"],
    "vibebox_engine_up": [],
    "vibebox_redis_up": [],
    "vibebox_celery_queue_length": ["queue"],
    "vibebox_build_info": ["version"],
}


def parse(text: str) -> dict:
    """{(sample name, ((label, value), ...)): value} of an exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def scrape(client, **extra) -> dict:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


@pytest.fixture(autouse=True)
def fresh_readings(settings):
    """Every scrape reads the database and probes again (no VIBEBOX_METRICS_SCRAPE_CACHE)."""
    settings.VIBEBOX_METRICS_SCRAPE_CACHE = 0


@pytest.fixture
def web(client):
    """Django's test client (REMOTE_ADDR 127.0.0.1, a loopback client)."""
    return client


def test_every_metric_of_the_contract_with_its_labels_and_buckets():
    found = {collector._name: collector for collector in REGISTRY._collector_to_names if hasattr(collector, "_name")}
    for name, (kind, labels) in RECORDED.items():
        metric = found.get(name)
        assert metric is not None, name
        assert metric._type == kind and list(metric._labelnames) == labels, name
        if isinstance(metric, Histogram):
            assert {0.1, 0.5} <= set(metric._upper_bounds), name
    assert metrics.WEBSOCKET_CONNECTIONS._multiprocess_mode == "livesum"


@pytest.mark.django_db
def test_the_scrape_gauges_are_there(web, settings):
    text = web.get("/metrics").content.decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in ("vibebox_engine_up", "vibebox_redis_up", "vibebox_build_info", "vibebox_celery_queue_length"):
        assert name in families, name
    samples = parse(text)
    assert value(samples, "vibebox_engine_up") == 1
    assert value(samples, "vibebox_redis_up") == 1
    assert value(samples, "vibebox_build_info", version=metrics.version()) == 1
    assert {"celery", "webhooks", "builds"} <= {
        dict(labels)["queue"] for name, labels in samples if name == "vibebox_celery_queue_length"
    }
    # Every name of the contract, recorded or scraped, is described (HELP) even before any sample.
    for name, (kind, _labels) in RECORDED.items():
        assert f"# HELP {name}{'_total' if kind == 'counter' else ''} " in text, name
    for name in SCRAPED:
        assert f"# HELP {name} " in text, name


# ---- access ----


@pytest.mark.django_db
def test_without_a_token_only_loopback_clients_are_answered(web, settings):
    settings.VIBEBOX_METRICS_TOKEN = ""
    assert web.get("/metrics").status_code == 200
    assert web.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    refused = web.get("/metrics", REMOTE_ADDR="192.0.2.7")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "metrics_loopback_only"
    assert b"vibebox_" not in refused.content


@pytest.mark.django_db
def test_with_a_token_every_client_needs_it(web, settings):
    settings.VIBEBOX_METRICS_TOKEN = "s3cret-token"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Basic s3cret-token"}):
        refused = web.get("/metrics", **headers)  # loopback too: the token is the rule then
        assert refused.status_code == 401, headers
        assert refused.json()["error"]["code"] == "metrics_token_required"
        assert refused["WWW-Authenticate"].startswith("Bearer")
    answered = web.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert answered.status_code == 200
    assert b"vibebox_build_info" in answered.content


@pytest.mark.django_db
def test_only_get(web):
    assert web.post("/metrics").status_code == 405


# ---- bounded route labels ----


def _series(samples: dict, name: str) -> set:
    return {labels for sample, labels in samples if sample == name}


@pytest.mark.django_db
def test_a_thousand_ids_make_one_route_label(web, api_client):
    before = scrape(web)
    for number in range(1000):
        response = api_client.get(f"/api/v1/sandboxes/sbx_metrics{number:04d}")
        assert response.status_code == 404
    for number in range(50):  # unknown paths: one `unmatched` route, whatever the path
        assert web.get(f"/no/such/page/{number}").status_code == 404
    after = scrape(web)
    route = "api/v1/sandboxes/<str:sandbox_id>"
    requests = "vibebox_http_requests_total"
    assert value(after, requests, route=route, method="GET", status="404") - (
        value(before, requests, route=route, method="GET", status="404") or 0
    ) == pytest.approx(1000)
    assert value(after, requests, route="unmatched", method="GET", status="404") - (
        value(before, requests, route="unmatched", method="GET", status="404") or 0
    ) == pytest.approx(50)
    new = _series(after, requests) - _series(before, requests)
    assert len(new) <= 3, new  # this route's 404s, the unmatched 404s, /metrics' own 200s
    every_label_value = {value for labels in _series(after, requests) for _, value in labels}
    assert not any("sbx_metrics" in label or "/no/such" in label for label in every_label_value)
    timing = _series(after, "vibebox_http_request_seconds_count") - _series(
        before, "vibebox_http_request_seconds_count"
    )
    assert len(timing) <= 3, timing


@pytest.mark.django_db
def test_static_files_are_one_route(web):
    labels = {"route": "static", "method": "GET", "status": "200"}
    before = value(scrape(web), "vibebox_http_requests_total", **labels) or 0
    assert web.get("/static/css/vibebox.css").status_code == 200
    assert value(scrape(web), "vibebox_http_requests_total", **labels) == before + 1


@pytest.mark.django_db
def test_methods_are_bounded_too(web):
    labels = {"route": "healthz", "method": "other", "status": "200"}
    before = value(scrape(web), "vibebox_http_requests_total", **labels) or 0
    assert web.generic("BREW", "/healthz").status_code == 200
    after = scrape(web)
    assert value(after, "vibebox_http_requests_total", **labels) == before + 1
    assert not any(dict(labels).get("method") == "BREW" for name, labels in after if name.startswith("vibebox_http"))


# ---- the database gauges ----


@pytest.mark.django_db
def test_the_database_gauges_match_the_database(web, owner, templates, settings):
    python, node = templates["python-3.13"], templates["node-20"]
    rows = [
        sandbox_row(owner, python, name="a", status="running"),
        sandbox_row(owner, python, name="b", status="running"),
        sandbox_row(owner, python, name="c", status="stopped"),
        sandbox_row(owner, node, name="d", status="paused"),
        sandbox_row(owner, node, name="e", status="error"),
        sandbox_row(owner, node, name="f", status="destroyed"),
    ]
    now = timezone.now()
    for row, memory, disk in ((rows[0], 1000, 10), (rows[1], 2000, None), (rows[3], 500, 7)):
        MeterSample.objects.create(
            sandbox=row,
            org_id=row.org_id,
            taken_at=now - timezone.timedelta(seconds=30),
            state=row.status,
            memory_bytes=1,
            workspace_bytes=3,
        )
        MeterSample.objects.create(
            sandbox=row, org_id=row.org_id, taken_at=now, state=row.status, memory_bytes=memory, workspace_bytes=disk
        )
    settings.VIBEBOX_POOL_ENABLED = True
    pool = WarmPool.objects.create(template=python, cpu=1.0, memory=256 * 1024**2)
    WarmPool.objects.create(template=node, cpu=1.0, memory=256 * 1024**2)  # enabled, nothing ready
    unpooled = templates["node-22-claude-code"]  # a pool meant to hold none is not "empty" (as /status sees it)
    WarmPool.objects.create(template=unpooled, cpu=1.0, memory=256 * 1024**2, target_size=0)
    for status in ("ready", "ready", "creating"):
        PooledContainer.objects.create(pool=pool, image="x", status=status)

    samples = scrape(web)
    expected = {}
    for row in Sandbox.objects.exclude(status="destroyed").select_related("template"):
        key = (row.status, row.template.name)
        expected[key] = expected.get(key, 0) + 1
    gauged = {
        (dict(labels)["state"], dict(labels)["template"]): count
        for (name, labels), count in samples.items()
        if name == "vibebox_sandboxes"
    }
    assert gauged == expected
    assert ("destroyed", node.name) not in gauged
    assert value(samples, "vibebox_pool_ready", template=python.name) == 2
    assert value(samples, "vibebox_pool_ready", template=node.name) == 0
    assert value(samples, "vibebox_pool_ready", template=unpooled.name) is None
    # Each sandbox's latest sample (the workspace's latest measured one); stopped without samples: 0.
    assert value(samples, "vibebox_sandbox_memory_bytes", sandbox=rows[0].pk, template=python.name) == 1000
    assert value(samples, "vibebox_sandbox_disk_bytes", sandbox=rows[0].pk, template=python.name) == 10
    assert value(samples, "vibebox_sandbox_disk_bytes", sandbox=rows[1].pk, template=python.name) == 3
    assert value(samples, "vibebox_sandbox_memory_bytes", sandbox=rows[2].pk, template=python.name) == 0
    assert value(samples, "vibebox_sandbox_memory_bytes", sandbox=rows[3].pk, template=node.name) == 500
    assert value(samples, "vibebox_sandbox_memory_bytes", sandbox=rows[4].pk, template=node.name) is None  # error

    # Past VIBEBOX_METRICS_PER_SANDBOX_MAX metered sandboxes (or with it off): one series per template.
    settings.VIBEBOX_METRICS_PER_SANDBOX_MAX = 3
    samples = scrape(web)
    memory = {labels: number for (name, labels), number in samples.items() if name == "vibebox_sandbox_memory_bytes"}
    assert memory == {
        (("sandbox", ""), ("template", python.name)): 3000,
        (("sandbox", ""), ("template", node.name)): 500,
    }
    settings.VIBEBOX_METRICS_PER_SANDBOX_MAX = 1000
    settings.VIBEBOX_METRICS_PER_SANDBOX = False
    samples = scrape(web)
    assert value(samples, "vibebox_sandbox_disk_bytes", sandbox="", template=python.name) == 13


# ---- probes ----


@pytest.fixture
def own_redis(tmp_path, settings):
    """A Redis server of the test's own as Celery's broker (the shared one's queues are a running
    server's)."""
    with redis_server(tmp_path) as url:
        settings.CELERY_BROKER_URL = url
        yield redis.Redis.from_url(url)


@pytest.mark.django_db
def test_queue_lengths_are_the_brokers(web, own_redis):
    own_redis.rpush("webhooks", *[b"task"] * 3)
    own_redis.rpush("celery", b"task")
    own_redis.rpush("celery\x06\x166", b"task", b"task")  # kombu's list of priority-6 tasks
    samples = scrape(web)
    assert value(samples, "vibebox_redis_up") == 1
    assert value(samples, "vibebox_celery_queue_length", queue="webhooks") == 3
    assert value(samples, "vibebox_celery_queue_length", queue="celery") == 3
    assert value(samples, "vibebox_celery_queue_length", queue="builds") == 0
    assert collectors.celery_queues() == ["builds", "celery", "webhooks"]


@pytest.mark.django_db
def test_redis_down_never_fails_the_scrape(web, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    samples = scrape(web)
    assert value(samples, "vibebox_redis_up") == 0
    assert not [labels for name, labels in samples if name == "vibebox_celery_queue_length"]
    assert value(samples, "vibebox_engine_up") == 1


@pytest.mark.django_db
def test_engine_down_never_fails_the_scrape(web, engine_fault):
    engine_fault.refuse()
    samples = scrape(web)
    assert value(samples, "vibebox_engine_up") == 0
    assert value(samples, "vibebox_build_info", version=metrics.version()) == 1
    engine_fault.restore()
    assert value(scrape(web), "vibebox_engine_up") == 1


@pytest.mark.django_db
@pytest.mark.engine_timeout(5)
def test_a_hanging_engine_reports_down_within_the_probe_timeout(web, engine_fault, settings):
    settings.VIBEBOX_METRICS_PROBE_TIMEOUT = 0.3
    engine_fault.hang()
    samples = scrape(web)  # answered, not held by the engine
    assert value(samples, "vibebox_engine_up") == 0
    engine_fault.restore()


@pytest.mark.django_db
def test_readings_are_shared_within_the_scrape_cache(web, owner, templates, settings):
    settings.VIBEBOX_METRICS_SCRAPE_CACHE = 3600
    collectors._cached[:] = [0.0, []]  # no reading of another test's
    template = templates["python-3.13"]
    first = value(scrape(web), "vibebox_sandboxes", state="running", template=template.name) or 0
    sandbox_row(owner, template, name="cached", status="running")
    assert (value(scrape(web), "vibebox_sandboxes", state="running", template=template.name) or 0) == first
    settings.VIBEBOX_METRICS_SCRAPE_CACHE = 0
    assert value(scrape(web), "vibebox_sandboxes", state="running", template=template.name) == first + 1


def test_a_killed_processs_live_gauges_leave_at_the_next_scrape(tmp_path):
    """A process that died without saying so (SIGKILL) leaves its live-gauge file behind: the scrape
    drops it; its counters stay, as do a live process's gauges."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    files = [f"gauge_livesum_{dead.pid}.db", f"counter_{dead.pid}.db", f"gauge_livesum_{os.getpid()}.db"]
    for name in files:
        (tmp_path / name).write_bytes(b"")
    exporter.forget_dead_processes(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(files[1:])
