"""The model gateway's metrics (a process of its own, `manage.py rungateway`) in a web server's
/metrics: requests by status and the tokens of the Messages answers, through a recording stub of
the Anthropic API (tests/anthropic_stub.py)."""

import pytest

from tests import anthropic_stub
from tests.agents.conftest import OPERATOR_KEY
from tests.agents.test_gateway_failures import gateway, local_stub, make_token, post  # noqa: F401 (fixtures)
from tests.conftest import live_server
from tests.monitoring.test_metrics import value
from tests.monitoring.test_metrics_live import scrape


@pytest.mark.django_db(transaction=True)
def test_gateway_requests_and_tokens_reach_the_web_processes(tmp_path, monkeypatch, local_stub, make_token):  # noqa: F811
    directory = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))  # the gateway process's environment
    _, token = make_token("running")
    with gateway(upstream=local_stub.url, operator_key=OPERATOR_KEY) as base:
        assert post(base, token)[0] == 200
        assert post(base, token)[0] == 200
        assert post(base, "sk-ant-not-a-gateway-token")[0] == 401
    with live_server(PROMETHEUS_MULTIPROC_DIR=str(directory)) as (url, _pid):
        samples = scrape(url)
    assert value(samples, "vibebox_gateway_requests_total", status="200") == 2
    assert value(samples, "vibebox_gateway_requests_total", status="401") == 1
    assert value(samples, "vibebox_gateway_tokens_total", kind="input") == 2 * anthropic_stub.USAGE_IN
    assert value(samples, "vibebox_gateway_tokens_total", kind="output") == 2 * anthropic_stub.USAGE_OUT
