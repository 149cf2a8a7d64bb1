"""Prometheus (Debian's, on loopback) scraping a live VibeBox with deploy/monitoring's prometheus.yml
and alerts.yml (test values: its own port and directory, 1 s intervals, the bearer token from a
file): the creates and execs the test makes through the API are the counts Prometheus finds, every
recording and alerting rule evaluates without error, and every Grafana panel's query runs on what
it scraped."""

import json
import secrets
import urllib.request

import pytest

from tests.conftest import live_server
from tests.monitoring import prometheus_tools as prom
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CREATES = 2
EXECS_EACH = 3


def call(url: str, secret: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.load(response)


def test_prometheus_counts_what_the_api_did_and_runs_every_rule_and_panel(
    tmp_path, api_key, templates, cleanup_sandbox_ids
):
    secret = api_key[1]
    token = f"metrics-{secrets.token_hex(16)}"
    token_file = tmp_path / "metrics-token"
    token_file.write_text(f"{token}\n")
    with live_server(VIBEBOX_METRICS_TOKEN=token) as (url, _pid):
        config = prom.prometheus_config(tmp_path, vibebox=url.removeprefix("http://"), token_file=token_file)
        with prom.prometheus(config) as prometheus_url:
            # The scrape works with the token from the file (without it /metrics answers 401).
            prom.wait_value(prometheus_url, 'up{job="vibebox"}', 1)
            assert prom.value(prometheus_url, "vibebox_engine_up") == 1
            assert prom.value(prometheus_url, "vibebox_redis_up") == 1
            assert prom.value(prometheus_url, "count(vibebox_build_info)") == 1

            for _ in range(CREATES):
                status, sandbox = call(url, secret, "POST", "/api/v1/sandboxes", {"template": "python-3"})
                assert status == 201, sandbox
                cleanup_sandbox_ids.append(sandbox["id"])
                for i in range(EXECS_EACH):
                    status, done = call(
                        url, secret, "POST", f"/api/v1/sandboxes/{sandbox['id']}/exec", {"command": f"echo {i}"}
                    )
                    assert status == 200 and done["exitCode"] == 0, done
            execs = CREATES * EXECS_EACH

            expected = {
                # The HTTP middleware's counts, by route template (never the sandbox's id).
                'sum(vibebox_http_requests_total{route="api/v1/sandboxes", method="POST", status="201"})': CREATES,
                'sum(vibebox_http_requests_total{route="api/v1/sandboxes/<str:sandbox_id>/exec", method="POST",'
                ' status="200"})': execs,
                'count(vibebox_http_requests_total{route=~"api/v1/sandboxes/<str:sandbox_id>/exec"})': 1,
                # The services' own.
                "sum(vibebox_sandbox_create_seconds_count)": CREATES,
                'sum(vibebox_sandbox_create_seconds_count{template="python-3.13"})': CREATES,
                'sum(vibebox_exec_seconds_count{kind="exec"})': execs,
                'sum(vibebox_exec_total{kind="exec", outcome="ok"})': execs,
                # From the database at scrape time.
                'sum(vibebox_sandboxes{state="running"})': CREATES,
            }
            for promql, count in expected.items():
                prom.wait_value(prometheus_url, promql, count)

            # Every rule has been evaluated (1 s groups) and none failed.
            def evaluated_rules():
                groups = prom.get_json(f"{prometheus_url}/api/v1/rules")["data"]["groups"]
                rules = [rule for group in groups for rule in group["rules"]]
                return rules if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) else []

            rules = wait_for(evaluated_rules, timeout=60, what="every rule evaluated")
            assert len(rules) == len(prom.rule_expressions())
            assert [r["name"] for r in rules if r["health"] != "ok"] == [], [r.get("lastError") for r in rules]
            # The api_availability SLI has a value now: the API answered no 5xx.
            prom.wait_value(prometheus_url, 'slo:sli_error:ratio_rate5m{slo="api_availability"}', 0)

            queries = {**prom.rule_expressions(), **prom.panel_queries()}
            failed = {}
            for where, expr in queries.items():
                answer = prom.query(prometheus_url, expr)
                if answer["status"] != "success":
                    failed[where] = (expr, answer.get("error"))
            assert not failed, failed
            # ... and the panels show what happened.
            running = panel_query("overview.json", "Running sandboxes")
            assert prom.value(prometheus_url, running) == CREATES, running
            by_outcome = prom.query(prometheus_url, panel_query("exec.json", "Execs / s by kind and outcome"))
            assert {"kind": "exec", "outcome": "ok"} in [series["metric"] for series in by_outcome["data"]["result"]]


def panel_query(dashboard: str, title: str) -> str:
    """The (first) query of the panel titled `title`, its variables filled in as Grafana would."""
    panel = next(p for p in prom.dashboards()[dashboard]["panels"] if p["title"] == title)
    return prom.fill_variables(panel["targets"][0]["expr"])
