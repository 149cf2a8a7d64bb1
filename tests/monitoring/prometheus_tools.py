"""Debian's Prometheus, promtool and Alertmanager for the monitoring tests (scripts/monitoring-setup.sh
installs them in `make test`): deploy/monitoring's files made into test configurations, the servers
started on loopback in a directory of their own, their HTTP APIs, a webhook receiver, and the
queries of the Grafana dashboards with their variables filled in."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bench.common import free_port
from tests.waiting import WaitTimeout, wait_for

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
GRAFANA = MONITORING / "grafana"


def tool(name: str) -> str:
    """The path of a Prometheus tool; skips the test when it is not installed (make test installs it)."""
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (scripts/monitoring-setup.sh, run by make test, installs it)")
    return path


def closed_address() -> str:
    """A loopback host:port nobody listens on (a target that must stay unreachable)."""
    return f"127.0.0.1:{free_port()}"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------------- configurations --
def prometheus_config(
    directory: Path,
    *,
    vibebox: str,
    token_file: Path | None = None,
    alertmanager: str | None = None,
    interval: str = "1s",
    fors: dict[str, str] | None = None,
) -> Path:
    """deploy/monitoring's prometheus.yml and alerts.yml, copied into `directory` with the test's
    values: VibeBox at `vibebox` (host:port), its token in `token_file` (None: no token, the
    loopback access), alerts to `alertmanager` (None: a closed port), node_exporter at a closed port,
    every scrape and rule evaluation each `interval`, and the alerts named in `fors` pending that
    long instead of their own `for`. Returns the prometheus.yml."""
    config = load_yaml(MONITORING / "prometheus.yml")
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager or closed_address()]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["vibebox"]["static_configs"][0]["targets"] = [vibebox]
    if token_file is None:
        del jobs["vibebox"]["authorization"]
    else:
        jobs["vibebox"]["authorization"]["credentials_file"] = str(token_file)
    jobs["node"]["static_configs"][0]["targets"] = [closed_address()]

    rules = load_yaml(MONITORING / "alerts.yml")
    for group in rules["groups"]:
        group["interval"] = interval
        for rule in group["rules"]:
            if "alert" in rule and rule["alert"] in (fors or {}):
                rule["for"] = fors[rule["alert"]]
    write_yaml(directory / "alerts.yml", rules)
    return write_yaml(directory / "prometheus.yml", config)


def alertmanager_config(directory: Path, *, webhook_url: str) -> Path:
    """deploy/monitoring's alertmanager.yml with the webhook receiver at `webhook_url`, e-mail to a
    closed loopback port (nothing leaves the machine) and groups sent at once."""
    config = load_yaml(MONITORING / "alertmanager.yml")
    config["global"].update({"smtp_smarthost": closed_address(), "smtp_require_tls": False})
    config["global"].pop("smtp_auth_password_file", None)
    config["global"].pop("smtp_auth_username", None)
    config["route"].update({"group_wait": "0s", "group_interval": "1s"})
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    return write_yaml(directory / "alertmanager.yml", config)


# -------------------------------------------------------------------------------- servers --
def get_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _ready(url: str, process: subprocess.Popen, what: str) -> bool:
    assert process.poll() is None, f"{what} exited"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def _server(command: list[str], ready_url: str, log: Path, what: str):
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for(lambda: _ready(ready_url, process, what), timeout=60, interval=0.2, what=f"{what} ready")
        except AssertionError:
            raise AssertionError(f"{what} did not get ready; its log:\n{log.read_text()[-4000:]}") from None
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def prometheus(config: Path):
    """Prometheus on a free loopback port with `config`, its data beside it; yields its URL."""
    directory = config.parent
    url = f"http://127.0.0.1:{free_port()}"
    command = [
        tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
    ]
    with _server(command, f"{url}/-/ready", directory / "prometheus.log", "prometheus"):
        yield url


@contextlib.contextmanager
def alertmanager(config: Path):
    """Alertmanager on a free loopback port with `config` (no cluster); yields its URL."""
    directory = config.parent
    url = f"http://127.0.0.1:{free_port()}"
    command = [
        tool("prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={directory / 'alertmanager-data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
        "--cluster.listen-address=",
    ]
    with _server(command, f"{url}/-/ready", directory / "alertmanager.log", "alertmanager"):
        yield url


def query(prometheus_url: str, promql: str) -> dict:
    """/api/v1/query's whole answer (status, data or errorType/error), also for a 400 or 422."""
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        return get_json(url)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def value(prometheus_url: str, promql: str) -> float | None:
    """The single value `promql` answers now, None when it answers no series."""
    answer = query(prometheus_url, promql)
    assert answer["status"] == "success", (promql, answer)
    result = answer["data"]["result"]
    if not result:
        return None
    assert len(result) == 1, (promql, result)
    return float(result[0]["value"][1])


def wait_value(prometheus_url: str, promql: str, expected: float, *, timeout: float = 60) -> None:
    """Waits until `promql` answers `expected` (scrapes and evaluations come every second)."""
    seen = []

    def check() -> bool:
        seen.append(value(prometheus_url, promql))
        return seen[-1] == expected

    try:
        wait_for(check, timeout=timeout, interval=0.25, what=promql)
    except WaitTimeout:
        raise WaitTimeout(f"{promql}: waited {timeout:g} s for {expected}, last {seen[-1]}") from None


class WebhookReceiver:
    """An HTTP server on loopback keeping the JSON bodies POSTed to it (Alertmanager's webhooks)."""

    def __init__(self):
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def alerts(self) -> list[dict]:
        return [alert for body in list(self.bodies) for alert in body.get("alerts", [])]


# ------------------------------------------------------------------------ rules and panels --
def rule_expressions() -> dict[str, str]:
    """Every rule of alerts.yml: its name (the alert, or the record and its slo) → its expression."""
    named = {}
    for group in load_yaml(MONITORING / "alerts.yml")["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            labels = ",".join(f"{k}={v}" for k, v in sorted((rule.get("labels") or {}).items()))
            named[f"{group['name']}/{name}{{{labels}}}"] = rule["expr"]
    return named


def dashboards_module():
    """deploy/monitoring/grafana/dashboards.py (not a package: loaded from its path)."""
    spec = importlib.util.spec_from_file_location("vibebox_grafana_dashboards", GRAFANA / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(GRAFANA.glob("*.json"))}


# What Grafana puts in place of its own variables, and of the dashboards' (All: the regex .*).
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def fill_variables(expr: str) -> str:
    """A panel's query as Grafana sends it, for the time range "last hour" and every variable at All."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_BUILTINS.get(m.group(1), ".*"), expr)


def panel_queries() -> dict[str, str]:
    """Every query of every dashboard (panels, annotations, variables): where → PromQL, filled in."""
    found = {}
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found[f"{name}: {panel['title']} ({target['refId']})"] = fill_variables(target["expr"])
        for annotation in board["annotations"]["list"]:
            found[f"{name}: annotation {annotation['name']}"] = fill_variables(annotation["expr"])
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                metric = re.fullmatch(r"label_values\(([\w:]+), *(\w+)\)", variable["query"]["query"])
                assert metric, variable  # label_values(metric, label): Grafana asks for the metric's series
                found[f"{name}: variable {variable['name']}"] = metric.group(1)
    return found
