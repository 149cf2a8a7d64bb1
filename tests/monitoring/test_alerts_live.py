"""An alert, end to end: a live VibeBox whose engine is unreachable (its DOCKER_HOST names a socket
nobody serves: the engine "stopped" as the server sees it, without touching the machine's engine
that other tests use), Prometheus scraping it with deploy/monitoring's rules, Alertmanager with
deploy/monitoring's alertmanager.yml, and a webhook receiver in the test standing in for the
ops-webhook receiver. Test-only values: 1 s scrape/evaluation, VibeBoxEngineDown's `for` 2 s instead
of 1 m, Alertmanager's group_wait 0 s; e-mail goes to a closed loopback port."""

import pytest

from tests.conftest import live_server
from tests.monitoring import prometheus_tools as prom
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def firing(receiver: prom.WebhookReceiver, alertname: str) -> list[dict]:
    return [
        alert
        for alert in receiver.alerts()
        if alert["labels"].get("alertname") == alertname and alert["status"] == "firing"
    ]


def test_engine_down_fires_through_alertmanager_to_the_webhook_receiver(tmp_path):
    nobody = tmp_path / "nobody.sock"  # no such socket: connecting fails at once
    with (
        prom.WebhookReceiver() as receiver,
        live_server(DOCKER_HOST=f"unix://{nobody}") as (url, _pid),
    ):
        vibebox = url.removeprefix("http://")
        with prom.alertmanager(prom.alertmanager_config(tmp_path, webhook_url=receiver.url)) as alertmanager_url:
            config = prom.prometheus_config(
                tmp_path,
                vibebox=vibebox,  # no token: /metrics answers loopback clients
                alertmanager=alertmanager_url.removeprefix("http://"),
                fors={"VibeBoxEngineDown": "2s"},
            )
            with prom.prometheus(config) as prometheus_url:
                prom.wait_value(prometheus_url, 'up{job="vibebox"}', 1)
                assert prom.value(prometheus_url, "vibebox_engine_up") == 0
                assert prom.value(prometheus_url, "vibebox_redis_up") == 1
                alerts = wait_for(
                    lambda: firing(receiver, "VibeBoxEngineDown"),
                    timeout=120,
                    what=f"VibeBoxEngineDown at the webhook receiver (got {receiver.bodies})",
                )
                # Alertmanager has it too, as the one alert firing.
                listed = prom.get_json(f"{alertmanager_url}/api/v2/alerts?active=true")
                assert {alert["labels"]["alertname"] for alert in listed} == {"VibeBoxEngineDown"}, listed

    alert = alerts[0]
    assert alert["labels"] == {
        "alertname": "VibeBoxEngineDown",
        "severity": "critical",
        "instance": vibebox,
        "job": "vibebox",
        "vibebox": "main",  # prometheus.yml's external label
    }
    assert alert["annotations"]["summary"] == "VibeBox cannot reach its container engine"
    assert vibebox in alert["annotations"]["description"]
    body = next(body for body in receiver.bodies if alert in body["alerts"])
    assert body["receiver"] == "ops-webhook" and body["status"] == "firing", body
    # Only that: Redis, the scrape and the API are fine.
    assert {a["labels"]["alertname"] for a in receiver.alerts()} == {"VibeBoxEngineDown"}
