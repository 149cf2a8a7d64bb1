"""Terminal keystroke-to-echo latency and output throughput: the terminal WebSocket vs a raw
docker-py TTY socket (exec with tty=True) on the same container.

.venv/bin/python bench/terminal.py [--repeat 500] [--lines 5000000]

Latency: one byte typed into `dd bs=1` on a raw-mode TTY (the process reads it and writes it
back, as a shell's line editor does), timed until the byte is back at the client.
Throughput: `yes | head -n LINES` printed to the TTY.
"""

import argparse
import json
import socket
import string
import time

import docker
from common import api, live_server, summary
from websockets.sync.client import connect

WARM_UP = 20
MARK = b"DONE-4" + b"2"  # printed as DONE-$((40+2)), so the typed command never matches


class RawTty:
    """docker-py's attached TTY socket, as a client of the engine would use it."""

    def __init__(self, client, container_id: str):
        exec_id = client.api.exec_create(container_id, ["bash", "-l"], stdin=True, tty=True, user="sandbox")["Id"]
        self.sock = client.api.exec_start(exec_id, socket=True, tty=True)._sock

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class WsTty:
    """The terminal WebSocket, as an SDK or browser client would use it (compression on)."""

    def __init__(self, url: str, key: str, sandbox_id: str):
        base = url.replace("http", "ws")
        self.ws = connect(
            f"{base}/ws/sandboxes/{sandbox_id}/terminal",
            additional_headers={"Authorization": f"Bearer {key}"},
            max_size=None,
        ).__enter__()  # closed by close()
        json.loads(self.ws.recv())  # the session message

    def send(self, data: bytes) -> None:
        self.ws.send(data)

    def recv(self) -> bytes:
        frame = self.ws.recv()
        return frame if isinstance(frame, bytes) else frame.encode()

    def close(self) -> None:
        self.ws.close()


def read_until(tty, needle: bytes, seen: bytes = b"") -> int:
    """Bytes received until `needle` arrives."""
    total = len(seen)
    while needle not in seen:
        chunk = tty.recv()
        if not chunk:
            raise RuntimeError("the terminal closed")
        total += len(chunk)
        seen = seen[-len(needle) :] + chunk
    return total


def latencies(tty, repeat: int) -> list[float]:
    tty.send(b"echo READY-$((20+1))\n")
    read_until(tty, b"READY-21")
    count = repeat + WARM_UP
    tty.send(f"stty raw -echo; echo ECHO-$((3+4)); dd bs=1 count={count} 2>/dev/null; stty sane\n".encode())
    read_until(tty, b"ECHO-7")
    samples = []
    letters = string.ascii_letters.encode()
    for index in range(count):
        key = letters[index % len(letters) : index % len(letters) + 1]
        start = time.perf_counter()
        tty.send(key)
        read_until(tty, key)
        if index >= WARM_UP:
            samples.append(time.perf_counter() - start)
    return samples


def throughput(tty, lines: int) -> dict:
    tty.send(f"yes | head -n {lines}; echo DONE-$((40+2))\n".encode())
    start = time.perf_counter()
    received = read_until(tty, MARK)
    seconds = time.perf_counter() - start
    return {"bytes": received, "seconds": round(seconds, 3), "mib_per_s": round(received / seconds / 1024**2, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--lines", type=int, default=5_000_000)
    args = parser.parse_args()
    client = docker.from_env()
    with live_server() as (url, key, _pid):
        _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": "python-3"})
        try:
            results = {}
            for name, make in (
                ("docker-py raw TTY socket", lambda: RawTty(client, sandbox["id"])),
                ("terminal WebSocket", lambda: WsTty(url, key, sandbox["id"])),
            ):
                tty = make()
                try:
                    row = summary(f"{name}: keystroke to echo", latencies(tty, args.repeat))
                    row["throughput"] = throughput(tty, args.lines)
                finally:
                    tty.close()
                results[name] = row
        finally:
            api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
    baseline, terminal = results["docker-py raw TTY socket"], results["terminal WebSocket"]
    terminal["ratio_p50_vs_baseline"] = round(terminal["p50_ms"] / baseline["p50_ms"], 2)
    terminal["ratio_throughput_vs_baseline"] = round(
        terminal["throughput"]["mib_per_s"] / baseline["throughput"]["mib_per_s"], 2
    )
    print(json.dumps({"baseline": baseline, "results": [terminal]}, indent=2))


if __name__ == "__main__":
    main()
