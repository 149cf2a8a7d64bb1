"""deploy/monitoring's Prometheus and Alertmanager files, checked by Debian's own tools: promtool check
config and check rules, the rules' unit tests (deploy/monitoring/tests/*.yml, promtool test rules),
amtool check-config and the routes each severity takes; and the names the contract fixes (the SLOs'
recording rules per burn-rate window, the alerts the issue lists)."""

import subprocess

import pytest

from tests.monitoring.prometheus_tools import MONITORING, load_yaml, prometheus_config, tool

SLOS = {"api_availability", "create_latency", "exec_latency", "webhook_delivery"}
WINDOWS = {"5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"}
ALERTS = {
    "VibeBoxMetricsDown",
    "VibeBoxEngineDown",
    "VibeBoxRedisDown",
    "VibeBoxApiErrors",
    "VibeBoxCreateSlow",
    "VibeBoxPoolEmpty",
    "VibeBoxCeleryBacklog",
    "VibeBoxDiskFull",
    "VibeBoxWebhookFailures",
    "VibeBoxErrorBudgetBurnFast",
    "VibeBoxErrorBudgetBurnSlow",
}


def run(*command: str, stdout_only: bool = False) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=MONITORING)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout if stdout_only else done.stdout + done.stderr


def rules() -> list[dict]:
    return [rule for group in load_yaml(MONITORING / "alerts.yml")["groups"] for rule in group["rules"]]


def test_the_shipped_config_is_valid():
    # Its token file (/etc/prometheus/...) is the operator's: the syntax alone here, and the whole
    # check (rule files, token file) on the test's copy below.
    assert "SUCCESS" in run(tool("promtool"), "check", "config", "--syntax-only", "prometheus.yml")


def test_the_config_with_its_files_in_place_is_valid(tmp_path):
    token = tmp_path / "token"
    token.write_text("secret\n")
    config = prometheus_config(tmp_path, vibebox="127.0.0.1:8000", token_file=token, alertmanager="127.0.0.1:9093")
    out = run(tool("promtool"), "check", "config", str(config))
    assert "SUCCESS" in out and "rules found" in out, out


def test_the_rules_are_valid():
    out = run(tool("promtool"), "check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(rules())} rules found" in out, out


def test_the_alerts_unit_tests_pass():
    tests = sorted(str(path.relative_to(MONITORING)) for path in (MONITORING / "tests").glob("*.yml"))
    assert len(tests) >= 2, tests
    out = run(tool("promtool"), "test", "rules", *tests)
    assert out.count("SUCCESS") == len(tests), out


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not():
    fires, quiet = set(), set()
    for path in (MONITORING / "tests").glob("*.yml"):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fires == ALERTS
    assert quiet == ALERTS


def test_the_issue_s_alerts_are_there_with_a_severity_and_a_summary():
    alerts = [rule for rule in rules() if "alert" in rule]
    assert {rule["alert"] for rule in alerts} == ALERTS
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule


def test_every_slo_has_a_recording_rule_per_window_and_both_burn_rate_alerts():
    recorded = {(rule["record"], rule["labels"]["slo"]) for rule in rules() if "record" in rule}
    assert recorded >= {(f"slo:sli_error:ratio_rate{w}", slo) for w in WINDOWS for slo in SLOS}
    assert {slo for name, slo in recorded if name == "slo:objective:ratio"} == SLOS
    burns = {
        (rule["alert"], rule["labels"]["slo"])
        for rule in rules()
        if rule.get("alert", "").startswith("VibeBoxErrorBudgetBurn")
    }
    assert burns == {(f"VibeBoxErrorBudgetBurn{speed}", slo) for speed in ("Fast", "Slow") for slo in SLOS}
    # Each burn alert pairs a long and a short window (the SRE workbook's four pairs).
    for rule in rules():
        if rule.get("alert", "").startswith("VibeBoxErrorBudgetBurn"):
            pairs = (("1h", "5m"), ("6h", "30m")) if rule["alert"].endswith("Fast") else (("1d", "2h"), ("3d", "6h"))
            for long, short in pairs:
                assert f"ratio_rate{long}{{" in rule["expr"] and f"ratio_rate{short}{{" in rule["expr"], rule


def test_the_alertmanager_example_is_valid():
    out = run(tool("amtool"), "check-config", "alertmanager.yml")
    assert "SUCCESS" in out, out


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=VibeBoxEngineDown", "severity=critical"], "ops-webhook,ops-email"),
        (["alertname=VibeBoxPoolEmpty", "severity=warning", "template=python-3.13"], "ops-email"),
    ],
)
def test_critical_alerts_page_through_the_webhook_and_mail_warnings_only_mail(labels, receivers):
    out = run(tool("amtool"), "config", "routes", "test", "--config.file=alertmanager.yml", *labels, stdout_only=True)
    assert out.strip() == receivers, out
