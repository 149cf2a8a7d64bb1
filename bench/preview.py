"""Preview proxy throughput and latency vs a direct connection to the container (same run, same
server in the sandbox), and code-context execute latency.

A `python3 -m http.server 3000` in a python-3 sandbox serves a small page and a 64 MiB file. Each
GET is timed on a new connection, as python's http.server closes every one (HTTP/1.0):
- direct: to the container's address on the bridge (what the proxy itself connects to) (baseline);
- the host form `http://3000-<id>.<domain>:<port>/` (127.0.0.1 with that Host header), with the
  preview cookie a signed link set;
- the path form `/preview/<id>/3000/`, with its cookie.
Code contexts: `POST …/contexts/{ctx}/execute` of `1 + 1` (state kept, a warm interpreter), the
same over the exec WebSocket (`context.execute`, connection included), against a one-shot
`POST …/execute` of the same snippet (a fresh interpreter each time) as the baseline.

.venv/bin/python bench/preview.py [--repeat 50] [--big-mib 64]
"""

import argparse
import http.client
import json
import time
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import docker
from common import api, live_server, summary, timed
from websockets.sync.client import connect

PORT = 3000


def get(host: str, port: int, path: str, *, host_header: str | None = None, cookie: str = "") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=120)
    headers = {"Host": host_header} if host_header else {}
    if cookie:
        headers["Cookie"] = cookie
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def cookie_for(link: str) -> str:
    """Follows a signed link once: the Set-Cookie the token is swapped for."""
    parts = urlsplit(link)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port or 80, timeout=60)
    connection.request("GET", f"{parts.path}?{parts.query}", headers={"Host": parts.netloc})
    response = connection.getresponse()
    response.read()
    cookie = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        cookie.load(header)
    assert cookie, f"no cookie for the link (HTTP {response.status})"
    return "; ".join(f"{name}={morsel.value}" for name, morsel in cookie.items())


def throughput(name: str, fetch, size: int, repeat: int) -> dict:
    samples = timed(fetch, repeat)
    row = summary(name, samples)
    row["MiB_per_s"] = round(size / 2**20 / min(samples), 1)
    return row


def context_ws(url: str, key: str, sandbox_id: str, context_id: str) -> None:
    socket_url = url.replace("http://", "ws://") + f"/ws/sandboxes/{sandbox_id}/exec"
    with connect(socket_url, additional_headers={"Authorization": f"Bearer {key}"}) as connection:
        connection.send(json.dumps({"type": "context.execute", "context": context_id, "code": "1 + 1"}))
        while json.loads(connection.recv(timeout=60)).get("type") != "context.done":
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--big-mib", type=int, default=64)
    args = parser.parse_args()
    engine = docker.from_env()
    with live_server("benchprev") as (url, key, _pid):
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": "python-3"})
        sid = sandbox["id"]
        base = f"/api/v1/sandboxes/{sid}"
        try:
            setup = (
                f"mkdir -p /workspace/site && cd /workspace/site && echo hello > index.html"
                f" && head -c {args.big_mib * 2**20} /dev/zero > big.bin"
            )
            api(url, key, "POST", f"{base}/exec", {"command": setup})
            api(
                url,
                key,
                "POST",
                f"{base}/exec",
                {"command": f"cd /workspace/site && exec python3 -m http.server {PORT}", "background": True},
            )
            deadline = time.monotonic() + 60
            while not any(
                p["port"] == PORT and p["listening"] for p in api(url, key, "GET", f"{base}/ports")[1]["ports"]
            ):
                assert time.monotonic() < deadline, "the sandbox's server never listened"
                time.sleep(0.2)
            networks = engine.containers.get(sid).attrs["NetworkSettings"]["Networks"]
            address = next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))
            host_link = api(url, key, "GET", f"{base}/ports/{PORT}/url?form=host")[1]["url"]
            path_link = api(url, key, "GET", f"{base}/ports/{PORT}/url?form=path")[1]["url"]
            host_cookie, path_cookie = cookie_for(host_link), cookie_for(path_link)
            host = urlsplit(host_link).netloc
            server_port = urlsplit(url).port
            path_prefix = urlsplit(path_link).path

            def direct(name: str) -> tuple[int, bytes]:
                return get(address, PORT, f"/{name}")

            def by_host(name: str) -> tuple[int, bytes]:
                return get("127.0.0.1", server_port, f"/{name}", host_header=host, cookie=host_cookie)

            def by_path(name: str) -> tuple[int, bytes]:
                return get("127.0.0.1", server_port, f"{path_prefix}{name}", cookie=path_cookie)

            for fetch in (direct, by_host, by_path):  # warm up, and check each path answers the file
                for _ in range(5):
                    status, body = fetch("index.html")
                    assert (status, body) == (200, b"hello\n"), (fetch.__name__, status, body[:200])
                status, body = fetch("big.bin")
                assert status == 200 and len(body) == args.big_mib * 2**20, (fetch.__name__, status, len(body))

            latency_base = summary(
                "direct GET /index.html (container address)", timed(lambda: direct("index.html"), args.repeat)
            )
            latency = [
                summary("preview host form GET /index.html", timed(lambda: by_host("index.html"), args.repeat)),
                summary("preview path form GET /index.html", timed(lambda: by_path("index.html"), args.repeat)),
            ]
            size, rounds = args.big_mib * 2**20, max(3, args.repeat // 10)
            bulk_base = throughput(f"direct GET {args.big_mib} MiB", lambda: direct("big.bin"), size, rounds)
            bulk = [
                throughput(f"preview host form GET {args.big_mib} MiB", lambda: by_host("big.bin"), size, rounds),
                throughput(f"preview path form GET {args.big_mib} MiB", lambda: by_path("big.bin"), size, rounds),
            ]

            _, context = api(url, key, "POST", f"{base}/contexts", {"language": "python"})
            execute = f"{base}/contexts/{context['id']}/execute"
            for _ in range(5):
                api(url, key, "POST", execute, {"code": "1 + 1"})
                api(url, key, "POST", f"{base}/execute", {"code": "1 + 1", "language": "python"})
                context_ws(url, key, sid, context["id"])
            code_base = summary(
                "one-shot POST /execute '1 + 1' (python, a fresh interpreter)",
                timed(
                    lambda: api(url, key, "POST", f"{base}/execute", {"code": "1 + 1", "language": "python"}),
                    args.repeat,
                ),
            )
            contexts = [
                summary(
                    "context POST …/execute '1 + 1' (warm kernel)",
                    timed(lambda: api(url, key, "POST", execute, {"code": "1 + 1"}), args.repeat),
                ),
                summary(
                    "context over the exec WebSocket (connect, run, done)",
                    timed(lambda: context_ws(url, key, sid, context["id"]), args.repeat),
                ),
            ]
        finally:
            api(url, key, "DELETE", base)
    for row in latency:
        row["ratio_p50_vs_baseline"] = round(row["p50_ms"] / latency_base["p50_ms"], 2)
    for row in bulk:
        row["ratio_p50_vs_baseline"] = round(row["p50_ms"] / bulk_base["p50_ms"], 2)
    for row in contexts:
        row["ratio_p50_vs_baseline"] = round(row["p50_ms"] / code_base["p50_ms"], 2)
    report = {
        "latency": {"baseline": latency_base, "results": latency},
        "throughput": {"baseline": bulk_base, "results": bulk},
        "contexts": {"baseline": code_base, "results": contexts},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
