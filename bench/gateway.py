"""The model gateway's overhead: a streamed Messages API call through the gateway vs straight to
the upstream (the local Anthropic stub), from the host, in the same run; and the gateway's memory.

.venv/bin/python bench/gateway.py [--repeat 100]
"""

import argparse
import json
import sys
import urllib.request

from common import ROOT, api, live_server, rss_kib, summary, timed

sys.path.insert(0, str(ROOT))
from tests import anthropic_stub

BODY = json.dumps(
    {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
).encode()


def stream(url: str, key: str) -> None:
    headers = {"x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01"}
    request = urllib.request.Request(f"{url}/v1/messages", data=BODY, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert b"message_stop" in response.read()


def gateway_pid(port: str) -> int:
    """The `rungateway` process serving this port."""
    for entry in (p for p in __import__("os").listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().split(b"\0")
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if b"rungateway" in command and f"VIBEBOX_GATEWAY_PORT={port}".encode() in environ:
            return int(entry)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    stub, http = anthropic_stub.start()
    gateway = {"VIBEBOX_ANTHROPIC_UPSTREAM": stub.url, "VIBEBOX_ANTHROPIC_API_KEY": "sk-ant-bench"}
    with live_server("benchgw", gateway=True, **gateway) as server:
        _, sandbox = api(server.url, server.key, "POST", "/api/v1/sandboxes", {"template": "node-22-claude-code"})
        try:
            path = f"/api/v1/sandboxes/{sandbox['id']}"
            api(server.url, server.key, "POST", f"{path}/claude/enable", {})
            _, env = api(
                server.url,
                server.key,
                "POST",
                f"{path}/exec",
                {"command": "printenv ANTHROPIC_API_KEY ANTHROPIC_BASE_URL"},
            )
            token, gateway_url = env["stdout"].split()
            for _ in range(10):  # warm up both paths
                stream(stub.url, "sk-ant-bench")
                stream(gateway_url, token)
            baseline = summary(
                "upstream direct (stub), streamed", timed(lambda: stream(stub.url, "sk-ant-bench"), args.repeat)
            )
            proxied = summary("through the gateway, streamed", timed(lambda: stream(gateway_url, token), args.repeat))
            pid = gateway_pid(server.env["VIBEBOX_GATEWAY_PORT"])
            memory = {"gateway_rss_peak_mib": round(rss_kib(pid) / 1024, 1) if pid else None}
        finally:
            api(server.url, server.key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
    http.shutdown()
    proxied["ratio_p50_vs_baseline"] = round(proxied["p50_ms"] / baseline["p50_ms"], 2)
    proxied["added_p50_ms"] = round(proxied["p50_ms"] - baseline["p50_ms"], 2)
    print(json.dumps({"baseline": baseline, "results": [proxied], "memory": memory}, indent=2))


if __name__ == "__main__":
    main()
