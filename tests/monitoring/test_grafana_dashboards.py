"""deploy/monitoring/grafana: the six dashboards are importable JSON (what dashboards.py writes), pick
their Prometheus through the `datasource` variable, and every query they hold parses and runs on a
real Prometheus (here one with nothing to scrape; test_prometheus_live.py sends them to one that
scrapes a live VibeBox)."""

import re

import pytest

from tests.monitoring import prometheus_tools as prom

NAMES = {"overview.json", "sandboxes.json", "api.json", "exec.json", "gateway.json", "slos.json"}


def test_the_json_is_what_dashboards_py_writes():
    module = prom.dashboards_module()
    assert set(module.DASHBOARDS) == NAMES
    for name, build in module.DASHBOARDS.items():
        assert (prom.GRAFANA / name).read_text() == module.render(build), (
            f"{name} differs from dashboards.py's: run python3 deploy/monitoring/grafana/dashboards.py"
        )


def test_dashboards_are_importable_and_use_the_datasource_variable():
    boards = prom.dashboards()
    assert set(boards) == NAMES
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        # Grafana's import: no database id, a uid and title of its own, the current schema.
        assert board["id"] is None and board["uid"].startswith("vibebox-") and board["title"], name
        assert board["schemaVersion"] >= 36, name
        variables = board["templating"]["list"]
        assert variables[0] | {"current": {}} == {**variables[0], "type": "datasource", "query": "prometheus"}, name
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            where = f"{name}: {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0, where
            assert panel["targets"], where
            assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"]), where
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"] and target["expr"].strip(), where
        for variable in variables[1:]:
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, name


# The contract's metrics (docs/monitoring.md, "Metrics"); histograms as their series.
HISTOGRAMS = {
    "vibebox_sandbox_create_seconds",
    "vibebox_sandbox_start_seconds",
    "vibebox_exec_seconds",
    "vibebox_file_transfer_seconds",
    "vibebox_http_request_seconds",
}
METRICS = {
    *(f"{name}_{suffix}" for name in HISTOGRAMS for suffix in ("bucket", "count", "sum")),
    "vibebox_sandboxes",
    "vibebox_pool_ready",
    "vibebox_pool_hits_total",
    "vibebox_pool_misses_total",
    "vibebox_exec_total",
    "vibebox_file_transfer_bytes_total",
    "vibebox_websocket_connections",
    "vibebox_websocket_messages_total",
    "vibebox_http_requests_total",
    "vibebox_sandbox_cpu_seconds_total",
    "vibebox_sandbox_memory_bytes",
    "vibebox_sandbox_disk_bytes",
    "vibebox_engine_up",
    "vibebox_redis_up",
    "vibebox_celery_queue_length",
    "vibebox_gateway_requests_total",
    "vibebox_gateway_tokens_total",
    "vibebox_webhook_deliveries_total",
    "vibebox_build_info",
}


def test_queries_and_rules_name_only_contract_metrics_and_recording_rules():
    recorded = {name.split("/", 1)[1].split("{", 1)[0] for name in prom.rule_expressions()}
    known = METRICS | recorded | {"ALERTS", "up"}
    node = {"node_filesystem_avail_bytes", "node_filesystem_size_bytes"}  # VibeBoxDiskFull's (node_exporter)
    exprs = {**prom.panel_queries(), **prom.rule_expressions()}
    for where, expr in exprs.items():
        for metric in re.findall(r"\b(?:vibebox_\w+|node_\w+|slo:[\w:]+|ALERTS|up)\b(?![(\w])", expr):
            assert metric in known | node, (where, metric)


@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory):
    """Prometheus with VibeBox's rules and no reachable target."""
    directory = tmp_path_factory.mktemp("prometheus")
    config = prom.prometheus_config(directory, vibebox=prom.closed_address())
    with prom.prometheus(config) as url:
        yield url


def test_every_panel_query_parses_and_runs(empty_prometheus):
    queries = prom.panel_queries()
    assert len(queries) > 60
    failed = {}
    for where, expr in queries.items():
        answer = prom.query(empty_prometheus, expr)
        if answer["status"] != "success":
            failed[where] = (expr, answer.get("error"))
    assert not failed, failed
