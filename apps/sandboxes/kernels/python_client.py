"""The per-execute client of a code context's kernel (python_kernel.py): its stdin, one JSON
request, goes to the kernel's abstract Unix socket; the kernel's answer (JSON lines) comes out on
its stdout as it arrives. Kept apart from the kernel so that each execute starts only this (a
few modules of the standard library). Run as `python3 -I -c <this file> <kernel name>`."""

import json
import socket
import sys
import time


def main(name: str) -> int:
    request = sys.stdin.buffer.read()
    deadline = time.monotonic() + 10  # a kernel just started may not listen yet
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect("\0vibebox-context-" + name)
            break
        except OSError as exc:
            conn.close()
            if time.monotonic() > deadline:
                sys.stdout.write(json.dumps({"type": "dead", "reason": str(exc)}) + "\n")
                return 3
            time.sleep(0.02)
    conn.sendall(request.rstrip(b"\n") + b"\n")
    out = sys.stdout.buffer
    while True:
        data = conn.recv(1 << 16)
        if not data:
            return 0
        out.write(data)
        out.flush()


sys.exit(main(sys.argv[1]))
