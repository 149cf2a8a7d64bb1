"""GraphQL against REST for one screen's data: 100 sandboxes with each one's last execution.

REST needs 1 + N requests (`GET /api/v1/sandboxes?limit=100`, then
`GET /api/v1/sandboxes/{id}/executions?limit=1` for each); GraphQL asks once
(`sandboxes(first: 100) { nodes { … lastExecution { … } } }`, batched to a constant number of SQL
queries). Both over one keep-alive HTTP session to the same live server; REST (1 + N) is the baseline.

.venv/bin/python bench/graphql_vs_rest.py [--rounds 7] [--sandboxes 100]
"""

from __future__ import annotations

import argparse
import json

import requests
from common import live_server, summary, timed

SEED = """
from django.contrib.auth import get_user_model
from apps.marketplace.selectors import template_get
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Execution, Sandbox
owner = get_user_model().objects.get(username="{user}")
org = personal_org_ensure(user=owner)
template = template_get(name="python-3")
rows = Sandbox.objects.bulk_create(
    [Sandbox(owner=owner, org=org, template=template, name=f"bench-{{i}}", image=template.image, cpu=1, memory=2**30,
             status="stopped") for i in range({count})]
)
Execution.objects.bulk_create(
    [Execution(sandbox=row, kind="exec", command=f"echo {{n}}", status="completed", exit_code=0)
     for row in rows for n in range(3)]
)
"""

QUERY = """{ sandboxes(first: %d) { nodes {
    sandboxId name status template
    lastExecution { executionId command status exitCode startedAt }
} } }"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sandboxes", type=int, default=100)
    args = parser.parse_args()
    n = args.sandboxes
    with live_server("benchgql") as server:
        server.manage("shell", "-c", SEED.format(user="benchgql", count=n))
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.key}"

        def rest() -> list:
            listing = session.get(f"{server.url}/api/v1/sandboxes?limit={n}", timeout=120)
            listing.raise_for_status()
            rows = []
            for sandbox in listing.json()["results"]:
                last = session.get(f"{server.url}/api/v1/sandboxes/{sandbox['id']}/executions?limit=1", timeout=120)
                last.raise_for_status()
                rows.append((sandbox["id"], (last.json()["results"] or [None])[0]))
            return rows

        def graphql() -> list:
            answer = session.post(f"{server.url}/graphql", json={"query": QUERY % n}, timeout=120)
            answer.raise_for_status()
            body = answer.json()
            assert "errors" not in body, body["errors"]
            return [(row["sandboxId"], row["lastExecution"]) for row in body["data"]["sandboxes"]["nodes"]]

        # The same answer both ways (ids and last executions), and warm caches on both paths.
        rest_rows, graphql_rows = rest(), graphql()
        assert len(rest_rows) == len(graphql_rows) == n
        assert [(i, e["executionId"]) for i, e in rest_rows] == [(i, e["executionId"]) for i, e in graphql_rows]
        baseline = summary(
            f"REST: 1 + {n} requests (list, then each one's last execution) (baseline)", timed(rest, args.rounds)
        )
        one = summary(f"GraphQL: 1 request ({n} sandboxes with lastExecution)", timed(graphql, args.rounds))
        one["ratio_p50_vs_baseline"] = round(one["p50_ms"] / baseline["p50_ms"], 3)
        baseline["ratio_p50_vs_baseline"] = 1.0
    print(json.dumps({"sandboxes": n, "requests": {"rest": n + 1, "graphql": 1}, "rows": [baseline, one]}, indent=2))


if __name__ == "__main__":
    main()
