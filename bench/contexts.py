"""Code context execute latency (issue 25): `x + 1` in a Python context (a kernel kept between
calls) over the API and over the exec WebSocket, against raw docker-py exec_run of a fresh
`python3 -c` on the same container (what running a snippet costs without a kept interpreter), and
the stateless `POST …/execute` of the same snippet.

.venv/bin/python bench/contexts.py [--repeat 50]
"""

import argparse
import json

import docker
from common import api, live_server, summary, timed
from websockets.sync.client import connect


def streamed(url: str, key: str, sandbox_id: str, context_id: str) -> None:
    """One execute over WS /ws/sandboxes/{id}/exec: connect, send it, read up to context.done."""
    socket_url = url.replace("http://", "ws://") + f"/ws/sandboxes/{sandbox_id}/exec"
    with connect(socket_url, additional_headers={"Authorization": f"Bearer {key}"}) as connection:
        connection.send(json.dumps({"type": "context.execute", "context": context_id, "code": "x + 1"}))
        while json.loads(connection.recv(timeout=30)).get("type") != "context.done":
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    client = docker.from_env()
    with live_server() as (url, key, _pid):
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": "python-3"})
        sandbox_id = sandbox["id"]
        try:
            container = client.containers.get(sandbox_id)
            _, context = api(url, key, "POST", f"/api/v1/sandboxes/{sandbox_id}/contexts", {"language": "python"})
            execute = f"/api/v1/sandboxes/{sandbox_id}/contexts/{context['id']}/execute"
            api(url, key, "POST", execute, {"code": "x = 41"})
            fresh = ["python3", "-c", "x = 41; print(x + 1)"]
            stateless = f"/api/v1/sandboxes/{sandbox_id}/execute"
            for _ in range(5):  # warm up every path
                container.exec_run(fresh, user="sandbox")
                api(url, key, "POST", execute, {"code": "x + 1"})
                api(url, key, "POST", stateless, {"code": "x = 41\nx + 1", "language": "python"})
                streamed(url, key, sandbox_id, context["id"])
            baseline = summary(
                "docker-py exec_run(python3 -c …) (baseline)",
                timed(lambda: container.exec_run(fresh, user="sandbox"), args.repeat),
            )
            rest = summary(
                "API context execute 'x + 1'",
                timed(lambda: api(url, key, "POST", execute, {"code": "x + 1"}), args.repeat),
            )
            stream = summary(
                "WebSocket context.execute 'x + 1' (connect, run, done)",
                timed(lambda: streamed(url, key, sandbox_id, context["id"]), args.repeat),
            )
            plain = summary(
                "API execute (stateless) 'x = 41; x + 1'",
                timed(
                    lambda: api(url, key, "POST", stateless, {"code": "x = 41\nx + 1", "language": "python"}),
                    args.repeat,
                ),
            )
        finally:
            api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox_id}")
    for row in (rest, stream, plain):
        row["ratio_p50_vs_baseline"] = round(row["p50_ms"] / baseline["p50_ms"], 2)
    print(json.dumps({"baseline": baseline, "results": [rest, stream, plain]}, indent=2))


if __name__ == "__main__":
    main()
