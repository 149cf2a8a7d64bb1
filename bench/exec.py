"""Exec round trip of `true`: VibeBox's API (a plain call, and a streamed one over the exec
WebSocket, its connection included) vs raw docker-py exec_run on the same container. The plain
call is measured twice: a new connection per call (urllib), and one kept-alive connection.

.venv/bin/python bench/exec.py [--repeat 50]
"""

import argparse
import http.client
import json
from urllib.parse import urlsplit

import docker
from common import api, live_server, summary, timed
from websockets.sync.client import connect


def streamed(url: str, key: str, sandbox_id: str) -> None:
    """One command over WS /ws/sandboxes/{id}/exec: connect, send it, read up to its exit."""
    socket_url = url.replace("http://", "ws://") + f"/ws/sandboxes/{sandbox_id}/exec"
    with connect(socket_url, additional_headers={"Authorization": f"Bearer {key}"}) as connection:
        connection.send(json.dumps({"command": ["true"]}))
        while json.loads(connection.recv(timeout=30)).get("type") != "exit":
            pass


class KeptAlive:
    """One HTTP connection for every call, as the SDKs keep theirs (httpx, fetch): what the server
    costs without a TCP handshake and a new urllib opener per call."""

    def __init__(self, url: str, key: str):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict) -> dict:
        self.connection.request("POST", path, body=json.dumps(body), headers=self.headers)
        response = self.connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        return answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    client = docker.from_env()
    with live_server() as (url, key, _pid):
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": "python-3"})
        try:
            container = client.containers.get(sandbox["id"])
            path = f"/api/v1/sandboxes/{sandbox['id']}/exec"
            for _ in range(5):  # warm up every path
                container.exec_run(["true"])
                api(url, key, "POST", path, {"command": ["true"]})
                streamed(url, key, sandbox["id"])
            baseline = summary("docker-py exec_run(['true'])", timed(lambda: container.exec_run(["true"]), args.repeat))
            argv = summary(
                "API exec argv ['true']", timed(lambda: api(url, key, "POST", path, {"command": ["true"]}), args.repeat)
            )
            kept = KeptAlive(url, key)
            argv_kept = summary(
                "API exec argv ['true'], one kept-alive connection",
                timed(lambda: kept.post(path, {"command": ["true"]}), args.repeat),
            )
            shell = summary(
                "API exec 'true' (bash -lc)",
                timed(lambda: api(url, key, "POST", path, {"command": "true"}), args.repeat),
            )
            stream = summary(
                "WebSocket exec ['true'] (connect, run, exit)",
                timed(lambda: streamed(url, key, sandbox["id"]), args.repeat),
            )
        finally:
            api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
    for row in (argv, argv_kept, shell, stream):
        row["ratio_p50_vs_baseline"] = round(row["p50_ms"] / baseline["p50_ms"], 2)
    print(json.dumps({"baseline": baseline, "results": [argv, argv_kept, shell, stream]}, indent=2))


if __name__ == "__main__":
    main()
