"""GET /metrics of a live server (the Procfile's uvicorn, two worker processes) after real creates,
execs, uploads and WebSockets: every process records into one PROMETHEUS_MULTIPROC_DIR and any
worker's /metrics answers the sums; a Celery worker's metrics (webhook deliveries, the meter's
CPU) show up there too. Real engine, real Redis; no timed assertions (waits are for conditions)."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from websockets.asyncio.client import connect

from apps.webhooks.models import Delivery
from tests.conftest import live_server
from tests.monitoring.test_metrics import parse, value
from tests.test_make_run import redis_server
from tests.waiting import wait_for
from tests.webhooks.conftest import QUIET_PASSES, celery_worker, receiver, worker_env  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

DETAIL = "api/v1/sandboxes/<str:sandbox_id>"
EXEC = "api/v1/sandboxes/<str:sandbox_id>/exec"
WS_EXEC = "ws/sandboxes/<str:sandbox_id>/exec"


def scrape(url: str) -> dict:
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return parse(response.text)


def _per_process(directory: Path, route: str) -> dict[str, float]:
    """{pid: its count of GET `route` 404s}, read from each process's own counter file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in metric.samples:
                if sample.name == "vibebox_http_requests_total" and sample.labels.get("route") == route:
                    counts[path.stem.split("_")[-1]] = counts.get(path.stem.split("_")[-1], 0) + sample.value
    return counts


async def _ws_exec(url: str, secret: str, sandbox_id: str, seen_open) -> list[dict]:
    ws_url = url.replace("http://", "ws://") + f"/ws/sandboxes/{sandbox_id}/exec"
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {secret}"}) as socket:
        await asyncio.to_thread(seen_open)
        await socket.send(json.dumps({"command": "echo streamed"}))
        messages = []
        while not messages or messages[-1].get("type") != "exit":
            messages.append(json.loads(await socket.recv()))
        return messages


def test_counts_are_summed_across_worker_processes(tmp_path, templates, api_key, cleanup_sandbox_ids):
    directory = tmp_path / "metrics"
    template = templates["python-3"].name
    with live_server(workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory)) as (url, _pid):
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key[1]}"}, timeout=120)
        ids = []
        for _ in range(2):
            created = api.post("/api/v1/sandboxes", json={"template": "python-3"})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
            cleanup_sandbox_ids.append(ids[-1])
        first = ids[0]
        for command in ("true", "true", "true", "exit 3"):
            ran = api.post(f"/api/v1/sandboxes/{first}/exec", json={"command": command})
            assert ran.status_code == 200, ran.text
        executed = api.post(f"/api/v1/sandboxes/{first}/execute", json={"code": "print(6 * 7)", "language": "python"})
        assert executed.status_code == 200 and "42" in executed.json()["stdout"], executed.text
        payload = bytes(range(256)) * 40  # 10,240 bytes
        uploaded = api.post(
            f"/api/v1/sandboxes/{first}/files?path=/workspace/blob.bin",
            content=payload,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert uploaded.status_code == 201, uploaded.text
        downloaded = api.get(f"/api/v1/sandboxes/{first}/files/blob.bin")
        assert downloaded.status_code == 200 and downloaded.content == payload
        assert api.post(f"/api/v1/sandboxes/{ids[1]}/stop").status_code == 200
        assert api.post(f"/api/v1/sandboxes/{ids[1]}/start").status_code == 200

        # A WebSocket exec: counted open while it is, and its messages both ways.
        def open_counted():
            return wait_for(
                lambda: value(scrape(url), "vibebox_websocket_connections", route=WS_EXEC) == 1,
                timeout=60,
                what="the open WebSocket counted",
            )

        messages = asyncio.run(_ws_exec(url, api_key[1], first, open_counted))
        assert {"type": "stdout", "data": "streamed\n"} in messages
        wait_for(
            lambda: value(scrape(url), "vibebox_websocket_connections", route=WS_EXEC) == 0,
            timeout=60,
            what="the closed WebSocket no longer counted",
        )

        # Requests until both workers answered some (each process has its own file): the scrape sums them.
        sent = 0
        while len([count for count in _per_process(directory, DETAIL).values() if count]) < 2:
            assert sent < 2000, _per_process(directory, DETAIL)
            with httpx.Client(base_url=url, headers=api.headers) as fresh:  # a new connection each time
                assert fresh.get(f"/api/v1/sandboxes/sbx_gone{sent:05d}").status_code == 404
            sent += 1
        samples = scrape(url)
        api.close()

    assert value(samples, "vibebox_http_requests_total", route=DETAIL, method="GET", status="404") == sent
    assert sum(_per_process(directory, DETAIL).values()) == sent
    assert value(samples, "vibebox_http_requests_total", route=EXEC, method="POST", status="200") == 4
    assert value(samples, "vibebox_http_request_seconds_count", route=EXEC, method="POST") == 4
    assert value(samples, "vibebox_sandbox_create_seconds_count", template=template, source="cold") == 2
    assert value(samples, "vibebox_sandbox_start_seconds_count", template=template) == 1
    assert value(samples, "vibebox_exec_total", kind="exec", outcome="ok") == 3
    assert value(samples, "vibebox_exec_total", kind="exec", outcome="error") == 1
    assert value(samples, "vibebox_exec_seconds_count", kind="exec", language="") == 4
    assert value(samples, "vibebox_exec_total", kind="execute", outcome="ok") == 1
    assert value(samples, "vibebox_exec_seconds_count", kind="execute", language="python") == 1
    assert value(samples, "vibebox_exec_total", kind="stream", outcome="ok") == 1
    assert value(samples, "vibebox_file_transfer_bytes_total", direction="upload") == len(payload)
    assert value(samples, "vibebox_file_transfer_bytes_total", direction="download") == len(payload)
    assert value(samples, "vibebox_file_transfer_seconds_count", direction="upload") == 1
    assert value(samples, "vibebox_file_transfer_seconds_count", direction="download") == 1
    assert value(samples, "vibebox_websocket_messages_total", route=WS_EXEC, direction="in") == 1
    assert value(samples, "vibebox_websocket_messages_total", route=WS_EXEC, direction="out") == len(messages)
    assert value(samples, "vibebox_sandboxes", state="running", template=template) == 2
    # Buckets hold the SLOs' thresholds.
    assert value(samples, "vibebox_exec_seconds_bucket", kind="exec", language="", le="0.1") is not None
    assert (
        value(samples, "vibebox_sandbox_create_seconds_bucket", template=template, source="cold", le="0.5") is not None
    )


def test_celery_workers_metrics_reach_the_web_processes(
    tmp_path,
    templates,
    api_client,
    api_key,
    receiver,  # noqa: F811 (the fixture imported above)
    cleanup_sandbox_ids,
):
    directory = tmp_path / "metrics"
    hook = api_client.post("/api/v1/webhooks", {"url": receiver.url, "events": ["*"]}, format="json")
    assert hook.status_code == 201, hook.content
    receiver.secrets.append(hook.json()["secret"])
    with (
        redis_server(tmp_path) as redis_url,
        celery_worker(
            worker_env(
                redis_url,
                PROMETHEUS_MULTIPROC_DIR=str(directory),
                VIBEBOX_METER_INTERVAL="1s",
                VIBEBOX_WEBHOOK_INTERVAL="1s",
                VIBEBOX_WEBHOOK_DISPATCH="0",
                **QUIET_PASSES,
            ),
            tmp_path / "worker.log",
            beat_schedule=tmp_path / "schedule",
        ),
        live_server(workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory)) as (url, _pid),
    ):
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key[1]}"}, timeout=120)
        created = api.post("/api/v1/sandboxes", json={"template": "python-3"})
        assert created.status_code == 201, created.text
        sandbox_id = created.json()["id"]
        cleanup_sandbox_ids.append(sandbox_id)
        template = created.json()["template"]
        assert api.post(f"/api/v1/sandboxes/{sandbox_id}/exec", json={"command": "true"}).status_code == 200
        api.close()

        def delivered():
            samples = scrape(url)
            done = Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count()
            counted = value(samples, "vibebox_webhook_deliveries_total", outcome="delivered") or 0
            return done >= 1 and counted == done and samples

        samples = wait_for(delivered, timeout=120, interval=0.5, what="the worker's deliveries in /metrics")
        assert len(receiver.seen) >= 1
        assert not value(samples, "vibebox_webhook_deliveries_total", outcome="failed")

        def sampled():
            samples = scrape(url)
            cpu = value(samples, "vibebox_sandbox_cpu_seconds_total", sandbox=sandbox_id, template=template)
            memory = value(samples, "vibebox_sandbox_memory_bytes", sandbox=sandbox_id, template=template)
            return cpu and memory and samples

        samples = wait_for(sampled, timeout=120, interval=0.5, what="the meter's CPU and memory in /metrics")
    # The worker's processes wrote files of their own beside the web workers'.
    assert len({path.stem.split("_")[-1] for path in directory.glob("counter_*.db")}) >= 2


def test_a_live_server_with_a_token_wants_it(transactional_db):
    with live_server(VIBEBOX_METRICS_TOKEN="scrape-me-token") as (url, _pid):
        refused = httpx.get(f"{url}/metrics", timeout=30)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "metrics_token_required"
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401
        answered = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer scrape-me-token"}, timeout=30)
        assert answered.status_code == 200
        assert answered.headers["content-type"].startswith("text/plain")
        assert value(parse(answered.text), "vibebox_engine_up") == 1
