"""Writes VibeBox's Grafana dashboards (the *.json beside this file) from the definitions below.

    python3 deploy/monitoring/grafana/dashboards.py

Edit the panels here, not in the JSON: tests/monitoring/test_grafana_dashboards.py checks that the
JSON is what this writes, and sends every panel's query to a real Prometheus. Each dashboard picks
its Prometheus with the `datasource` variable, so it imports into any Grafana as it is
(Dashboards → New → Import → upload the file). Metric names: docs/monitoring.md, "Metrics"; the
slo:* series are alerts.yml's recording rules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
TEMPLATE = 'template=~"$template"'


# ------------------------------------------------------------------------------- panels --
def _targets(queries: list[tuple[str, str]]) -> list[dict]:
    return [
        {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "range": True}
        for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(title: str, queries: list[tuple[str, str]], *, unit: str = "short", description: str = "", **extra):
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"},
                **extra.get("defaults", {}),
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str,
    expr: str,
    *,
    unit: str = "short",
    legend: str = "",
    thresholds=None,
    description: str = "",
    text: str = "auto",
):
    """One number (the query's last value; text="name": the series' legend instead, e.g. a version).
    thresholds: [(value or None, color)], ascending."""
    steps = [{"value": value, "color": color} for value, color in (thresholds or [(None, "green")])]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets([(expr, legend)]),
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": text,
        },
    }


def table(title: str, queries: list[tuple[str, str]], *, unit: str = "short", description: str = ""):
    """Instant queries as a table, one row per series, the values' columns named by the legends."""
    panel = timeseries(title, queries, unit=unit, description=description)
    panel["type"] = "table"
    for target in panel["targets"]:
        target.update({"instant": True, "range": False, "format": "table"})
    panel["fieldConfig"]["defaults"].pop("custom")
    panel["options"] = {"showHeader": True}
    # Grafana names a table query's value column "Value", or "Value #<refId>" with several queries.
    if len(queries) == 1:
        names = {"Value": "value"}
    else:
        names = {f"Value #{target['refId']}": target["legendFormat"] for target in panel["targets"]}
    panel["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": names}},
    ]
    return panel


UP_DOWN = [(None, "red"), (1, "green")]


def quantile(q: float, metric: str, by: str = "", selector: str = "") -> str:
    labels = f"{{{selector}}}" if selector else ""
    return f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) (rate({metric}_bucket{labels}[{RATE}])))"


def ratio(numerator: str, denominator: str) -> str:
    return f"({numerator})\n/\n({denominator})"


def status_ratio(first_digit: str, selector: str) -> str:
    """The share of HTTP answers whose status starts with `first_digit` (0 with none)."""
    requests = "vibebox_http_requests_total"
    return ratio(
        f'sum(rate({requests}{{status=~"{first_digit}..", {selector}}}[{RATE}])) or vector(0)',
        f"sum(rate({requests}{{{selector}}}[{RATE}]))",
    )


# --------------------------------------------------------------------------- variables --
def datasource_variable() -> dict:
    return {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def query_variable(name: str, label: str, query: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
    }


TEMPLATE_VARIABLE = query_variable("template", "Template", "label_values(vibebox_sandboxes, template)")


# --------------------------------------------------------------------------- dashboards --
def dashboard(uid: str, title: str, description: str, rows: list[list[dict]], variables=()) -> dict:
    """rows: lists of panels, laid out left to right, each row's panels sharing its 24 columns."""
    panels, y, next_id = [], 0, 1
    for row in rows:
        width = 24 // len(row)
        height = 4 if all(p["type"] == "stat" for p in row) else 8
        for i, panel in enumerate(row):
            panels.append({"id": next_id, "gridPos": {"h": height, "w": width, "x": i * width, "y": y}, **panel})
            next_id += 1
        y += height
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["vibebox"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [datasource_variable(), *variables]},
        "annotations": {
            "list": [
                {
                    "name": "VibeBox alerts",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "iconColor": "red",
                    "expr": 'ALERTS{alertstate="firing", alertname=~"VibeBox.*"}',
                    "titleFormat": "{{alertname}}",
                    "textFormat": "{{summary}}",
                    "step": "60s",
                }
            ]
        },
        "links": [{"title": "VibeBox", "type": "dashboards", "tags": ["vibebox"], "asDropdown": True}],
        "panels": panels,
    }


def overview() -> dict:
    requests = f"sum(rate(vibebox_http_requests_total[{RATE}]))"
    return dashboard(
        "vibebox-overview",
        "VibeBox / Overview",
        "Is VibeBox healthy: components, load, errors, latency and firing alerts.",
        [
            [
                stat("Engine", "vibebox_engine_up", thresholds=UP_DOWN, description="1: the container engine answers"),
                stat("Redis", "vibebox_redis_up", thresholds=UP_DOWN, description="1: Redis answers"),
                stat("Metrics scrape", 'up{job="vibebox"}', thresholds=UP_DOWN),
                stat("Running sandboxes", 'sum(vibebox_sandboxes{state="running"}) or vector(0)'),
                stat("Warm containers ready", "sum(vibebox_pool_ready) or vector(0)"),
                stat(
                    "Firing alerts",
                    'count(ALERTS{alertstate="firing", alertname=~"VibeBox.*"}) or vector(0)',
                    thresholds=[(None, "green"), (1, "red")],
                ),
            ],
            [
                stat("Requests / s", requests, unit="reqps"),
                stat(
                    "5xx ratio (5 m)",
                    'slo:sli_error:ratio_rate5m{slo="api_availability"}',
                    unit="percentunit",
                    thresholds=[(None, "green"), (0.01, "red")],
                ),
                stat(
                    "Create p95",
                    quantile(0.95, "vibebox_sandbox_create_seconds"),
                    unit="s",
                    thresholds=[(None, "green"), (0.5, "orange"), (1, "red")],
                ),
                stat(
                    "Exec p95",
                    quantile(0.95, "vibebox_exec_seconds", selector='kind="exec"'),
                    unit="s",
                    thresholds=[(None, "green"), (0.1, "orange")],
                ),
                stat("Version", "vibebox_build_info", legend="{{version}}", text="name"),
            ],
            [
                timeseries("Sandboxes by state", [("sum by (state) (vibebox_sandboxes)", "{{state}}")]),
                timeseries(
                    "Requests by status class",
                    [
                        (f'sum(rate(vibebox_http_requests_total{{status=~"{c}.."}}[{RATE}])) or vector(0)', f"{c}xx")
                        for c in "2345"
                    ],
                    unit="reqps",
                ),
            ],
            [
                timeseries(
                    "Create latency",
                    [
                        (quantile(0.5, "vibebox_sandbox_create_seconds"), "p50"),
                        (quantile(0.95, "vibebox_sandbox_create_seconds"), "p95"),
                    ],
                    unit="s",
                ),
                timeseries(
                    "Execs by outcome", [(f"sum by (outcome) (rate(vibebox_exec_total[{RATE}]))", "{{outcome}}")]
                ),
            ],
        ],
    )


def sandboxes() -> dict:
    creates = f"vibebox_sandbox_create_seconds_count{{{TEMPLATE}}}"
    hits = f"sum by (template) (rate(vibebox_pool_hits_total{{{TEMPLATE}}}[{RATE}]))"
    misses = f"sum by (template) (rate(vibebox_pool_misses_total{{{TEMPLATE}}}[{RATE}]))"
    return dashboard(
        "vibebox-sandboxes",
        "VibeBox / Sandboxes & pools",
        "Sandboxes by state and template, create and start times, warm pools, resource use.",
        [
            [
                timeseries("Sandboxes by state", [(f"sum by (state) (vibebox_sandboxes{{{TEMPLATE}}})", "{{state}}")]),
                timeseries(
                    "Sandboxes by template",
                    [(f'sum by (template) (vibebox_sandboxes{{state!="destroyed", {TEMPLATE}}})', "{{template}}")],
                ),
            ],
            [
                timeseries(
                    "Creates / s by source",
                    [(f"sum by (source) (rate({creates}[{RATE}]))", "{{source}}")],
                    unit="ops",
                ),
                timeseries(
                    "Create latency by source",
                    [
                        (quantile(0.5, "vibebox_sandbox_create_seconds", "source", TEMPLATE), "p50 {{source}}"),
                        (quantile(0.95, "vibebox_sandbox_create_seconds", "source", TEMPLATE), "p95 {{source}}"),
                        (quantile(0.99, "vibebox_sandbox_create_seconds", "source", TEMPLATE), "p99 {{source}}"),
                    ],
                    unit="s",
                ),
                timeseries(
                    "Start latency (stopped → running)",
                    [(quantile(0.95, "vibebox_sandbox_start_seconds", "template", TEMPLATE), "p95 {{template}}")],
                    unit="s",
                ),
            ],
            [
                timeseries("Warm pool: ready containers", [(f"vibebox_pool_ready{{{TEMPLATE}}}", "{{template}}")]),
                timeseries(
                    "Warm pool hit ratio",
                    [(ratio(hits, f"{hits} + {misses}"), "{{template}}")],
                    unit="percentunit",
                    description="Creates of pooled templates served by a warm container.",
                ),
                timeseries("Pool misses / s", [(misses, "{{template}}")], unit="ops"),
            ],
            [
                timeseries(
                    "CPU by template",
                    [
                        (
                            f"sum by (template) (rate(vibebox_sandbox_cpu_seconds_total{{{TEMPLATE}}}[{RATE}]))",
                            "{{template}}",
                        )
                    ],
                    unit="short",
                    description="CPU cores used (CPU seconds per second), as the meter samples them.",
                ),
                timeseries(
                    "Memory by template",
                    [(f"sum by (template) (vibebox_sandbox_memory_bytes{{{TEMPLATE}}})", "{{template}}")],
                    unit="bytes",
                ),
                timeseries(
                    "Workspace disk by template",
                    [(f"sum by (template) (vibebox_sandbox_disk_bytes{{{TEMPLATE}}})", "{{template}}")],
                    unit="bytes",
                ),
            ],
            [
                table(
                    "Top 10 sandboxes by memory",
                    [(f'topk(10, vibebox_sandbox_memory_bytes{{sandbox!="", {TEMPLATE}}})', "{{sandbox}}")],
                    unit="bytes",
                    description="Needs VIBEBOX_METRICS_PER_SANDBOX (the sandbox label).",
                ),
                table(
                    "Top 10 sandboxes by workspace disk",
                    [(f'topk(10, vibebox_sandbox_disk_bytes{{sandbox!="", {TEMPLATE}}})', "{{sandbox}}")],
                    unit="bytes",
                ),
            ],
        ],
        variables=[TEMPLATE_VARIABLE],
    )


def api() -> dict:
    route = 'route=~"$route"'
    return dashboard(
        "vibebox-api",
        "VibeBox / API",
        "HTTP requests by route template, status and latency; WebSockets; Celery queues.",
        [
            [
                timeseries(
                    "Requests / s by route (top 10)",
                    [(f"topk(10, sum by (route) (rate(vibebox_http_requests_total{{{route}}}[{RATE}])))", "{{route}}")],
                    unit="reqps",
                ),
                timeseries(
                    "Requests / s by status",
                    [(f"sum by (status) (rate(vibebox_http_requests_total{{{route}}}[{RATE}]))", "{{status}}")],
                    unit="reqps",
                ),
            ],
            [
                timeseries(
                    "5xx ratio",
                    [(status_ratio("5", route), "5xx")],
                    unit="percentunit",
                ),
                timeseries(
                    "4xx ratio",
                    [(status_ratio("4", route), "4xx")],
                    unit="percentunit",
                ),
                timeseries(
                    "Latency",
                    [
                        (quantile(0.5, "vibebox_http_request_seconds", selector=route), "p50"),
                        (quantile(0.95, "vibebox_http_request_seconds", selector=route), "p95"),
                        (quantile(0.99, "vibebox_http_request_seconds", selector=route), "p99"),
                    ],
                    unit="s",
                ),
            ],
            [
                table(
                    "Slowest routes (p95 over the range)",
                    [
                        (
                            "topk(10, histogram_quantile(0.95, sum by (le, route, method) "
                            f"(rate(vibebox_http_request_seconds_bucket{{{route}}}[$__range]))))",
                            "{{method}} {{route}}",
                        )
                    ],
                    unit="s",
                ),
                table(
                    "Routes answering 5xx (over the range)",
                    [
                        (
                            "sort_desc(sum by (route, method, status) "
                            f'(increase(vibebox_http_requests_total{{status=~"5..", {route}}}[$__range])) > 0)',
                            "{{method}} {{route}} {{status}}",
                        )
                    ],
                ),
            ],
            [
                timeseries("WebSocket connections", [("sum by (route) (vibebox_websocket_connections)", "{{route}}")]),
                timeseries(
                    "WebSocket messages / s",
                    [
                        (
                            f"sum by (route, direction) (rate(vibebox_websocket_messages_total[{RATE}]))",
                            "{{direction}} {{route}}",
                        )
                    ],
                    unit="ops",
                ),
                timeseries("Celery queue length", [("vibebox_celery_queue_length", "{{queue}}")]),
            ],
        ],
        variables=[query_variable("route", "Route", "label_values(vibebox_http_requests_total, route)")],
    )


def exec_and_files() -> dict:
    kind = 'kind=~"$kind"'
    return dashboard(
        "vibebox-exec",
        "VibeBox / Exec & files",
        "Commands, code executions and streams; file uploads and downloads.",
        [
            [
                timeseries(
                    "Execs / s by kind and outcome",
                    [(f"sum by (kind, outcome) (rate(vibebox_exec_total{{{kind}}}[{RATE}]))", "{{kind}} {{outcome}}")],
                    unit="ops",
                ),
                timeseries(
                    "Exec latency by kind",
                    [
                        (quantile(0.5, "vibebox_exec_seconds", "kind", kind), "p50 {{kind}}"),
                        (quantile(0.95, "vibebox_exec_seconds", "kind", kind), "p95 {{kind}}"),
                    ],
                    unit="s",
                ),
            ],
            [
                timeseries(
                    "Execs under 0.1 s (the exec_latency SLI)",
                    [
                        (
                            ratio(
                                f'sum(rate(vibebox_exec_seconds_bucket{{kind="exec", le="0.1"}}[{RATE}]))',
                                f'sum(rate(vibebox_exec_seconds_count{{kind="exec"}}[{RATE}]))',
                            ),
                            "under 0.1 s",
                        )
                    ],
                    unit="percentunit",
                ),
                timeseries(
                    "Code execution latency by language",
                    [
                        (
                            quantile(0.95, "vibebox_exec_seconds", "language", 'kind="execute"'),
                            "p95 {{language}}",
                        )
                    ],
                    unit="s",
                ),
                timeseries(
                    "Timeouts and kills / s",
                    [
                        (
                            "sum by (kind, outcome) "
                            f'(rate(vibebox_exec_total{{outcome=~"timeout|killed", {kind}}}[{RATE}]))',
                            "{{kind}} {{outcome}}",
                        )
                    ],
                    unit="ops",
                ),
            ],
            [
                timeseries(
                    "File transfer throughput",
                    [(f"sum by (direction) (rate(vibebox_file_transfer_bytes_total[{RATE}]))", "{{direction}}")],
                    unit="Bps",
                ),
                timeseries(
                    "File transfer speed (bytes per second of transfer)",
                    [
                        (
                            ratio(
                                f"sum by (direction) (rate(vibebox_file_transfer_bytes_total[{RATE}]))",
                                f"sum by (direction) (rate(vibebox_file_transfer_seconds_sum[{RATE}]))",
                            ),
                            "{{direction}}",
                        )
                    ],
                    unit="Bps",
                ),
                timeseries(
                    "File transfer latency",
                    [(quantile(0.95, "vibebox_file_transfer_seconds", "direction"), "p95 {{direction}}")],
                    unit="s",
                ),
            ],
        ],
        variables=[query_variable("kind", "Kind", "label_values(vibebox_exec_seconds_count, kind)")],
    )


def gateway() -> dict:
    tokens = f"sum by (kind) (rate(vibebox_gateway_tokens_total[{RATE}]))"
    return dashboard(
        "vibebox-gateway",
        "VibeBox / Claude & gateway",
        "The model gateway Claude Code sessions talk through: requests by upstream status, tokens.",
        [
            [
                stat(
                    "Gateway requests (range)",
                    "sum(increase(vibebox_gateway_requests_total[$__range])) or vector(0)",
                ),
                stat(
                    "Tokens (range)",
                    "sum(increase(vibebox_gateway_tokens_total[$__range])) or vector(0)",
                ),
                stat(
                    "Upstream errors (range)",
                    'sum(increase(vibebox_gateway_requests_total{status!~"2.."}[$__range])) or vector(0)',
                    thresholds=[(None, "green"), (1, "orange")],
                ),
            ],
            [
                timeseries(
                    "Gateway requests / s by status",
                    [(f"sum by (status) (rate(vibebox_gateway_requests_total[{RATE}]))", "{{status}}")],
                    unit="reqps",
                ),
                timeseries(
                    "Upstream error ratio",
                    [
                        (
                            ratio(
                                f'sum(rate(vibebox_gateway_requests_total{{status!~"2.."}}[{RATE}])) or vector(0)',
                                f"sum(rate(vibebox_gateway_requests_total[{RATE}]))",
                            ),
                            "not 2xx",
                        )
                    ],
                    unit="percentunit",
                ),
            ],
            [
                timeseries("Tokens / s by kind", [(tokens, "{{kind}}")]),
                timeseries(
                    "Prompt cache reads (share of input)",
                    [
                        (
                            ratio(
                                f'sum(rate(vibebox_gateway_tokens_total{{kind="cache_read"}}[{RATE}]))',
                                f'sum(rate(vibebox_gateway_tokens_total{{kind=~"input|cache_read|cache_write"}}[{RATE}]))',
                            ),
                            "cache reads",
                        )
                    ],
                    unit="percentunit",
                ),
                timeseries(
                    "Claude Code sandboxes",
                    [('sum by (state) (vibebox_sandboxes{template=~".*claude.*"})', "{{state}}")],
                    description="Sandboxes of the templates that run Claude Code (their names hold 'claude').",
                ),
            ],
        ],
    )


def slos() -> dict:
    slo = 'slo=~"$slo"'
    budget = "on (slo) (1 - slo:objective:ratio)"
    return dashboard(
        "vibebox-slos",
        "VibeBox / SLOs",
        "Each SLO's SLI over 30 days, error budget left and burn rates (alerts.yml's recording rules; "
        "docs/monitoring.md, SLOs).",
        [
            [
                table(
                    "SLOs over 30 days",
                    [
                        (f"slo:objective:ratio{{{slo}}}", "objective"),
                        (f"1 - slo:sli_error:ratio_rate30d{{{slo}}}", "SLI"),
                        (f"1 - slo:sli_error:ratio_rate30d{{{slo}}} / {budget}", "budget left"),
                    ],
                    unit="percentunit",
                )
            ],
            [
                timeseries(
                    "Error budget left (30 d)",
                    [(f"1 - slo:sli_error:ratio_rate30d{{{slo}}} / {budget}", "{{slo}}")],
                    unit="percentunit",
                ),
                timeseries(
                    "SLI (30 d)",
                    [(f"1 - slo:sli_error:ratio_rate30d{{{slo}}}", "{{slo}}")],
                    unit="percentunit",
                ),
            ],
            [
                timeseries(
                    f"Burn rate over {window}",
                    [(f"slo:sli_error:ratio_rate{window}{{{slo}}} / {budget}", "{{slo}}")],
                    description=f"1 spends the budget in exactly 30 days; alerts at {factor} and above.",
                    defaults={
                        "thresholds": {
                            "mode": "absolute",
                            "steps": [{"value": None, "color": "green"}, {"value": factor, "color": "red"}],
                        },
                        "custom": {"thresholdsStyle": {"mode": "line"}, "showPoints": "never"},
                    },
                )
                for window, factor in (("1h", 14.4), ("6h", 6), ("1d", 3), ("3d", 1))
            ],
            [
                timeseries(
                    "Error ratio, short windows",
                    [
                        (f"slo:sli_error:ratio_rate5m{{{slo}}}", "5m {{slo}}"),
                        (f"slo:sli_error:ratio_rate30m{{{slo}}}", "30m {{slo}}"),
                        (f"slo:sli_error:ratio_rate2h{{{slo}}}", "2h {{slo}}"),
                    ],
                    unit="percentunit",
                ),
                table(
                    "Burn-rate alerts firing",
                    [
                        (
                            f'ALERTS{{alertstate="firing", alertname=~"VibeBoxErrorBudgetBurn.*", {slo}}}',
                            "{{alertname}} {{slo}}",
                        )
                    ],
                ),
            ],
        ],
        variables=[query_variable("slo", "SLO", "label_values(slo:objective:ratio, slo)")],
    )


DASHBOARDS = {
    "overview.json": overview,
    "sandboxes.json": sandboxes,
    "api.json": api,
    "exec.json": exec_and_files,
    "gateway.json": gateway,
    "slos.json": slos,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    for name, build in DASHBOARDS.items():
        (HERE / name).write_text(render(build))
    print(f"wrote {len(DASHBOARDS)} dashboards to {HERE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
