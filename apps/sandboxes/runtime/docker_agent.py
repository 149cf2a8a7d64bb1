"""The server's side of the in-sandbox exec agent (sandbox_agent.py): install it, call it.

Installed into each container right after it is created (a tar into /opt/vibebox through the
engine's archive API) and started by the container's main command beside `sleep infinity`. A
command goes through the agent when it needs nothing the agent does not do (streamed output,
interactive stdin, signals, another user); if the agent does not answer (not started yet, a
template without python3, a container restarted on a new address), the caller falls back to
Docker's exec, so the agent only ever makes commands faster.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import json
import logging
import tarfile
import time
from pathlib import Path

from .base import ExecRequest, ExecResult

logger = logging.getLogger(__name__)

PORT = 49983
DIRECTORY = "/opt/vibebox"
AGENT = f"{DIRECTORY}/agent.py"
TOKEN_FILE = f"{DIRECTORY}/token"
SOURCE = (Path(__file__).with_name("sandbox_agent.py")).read_bytes()
# The container's main command: the agent beside the process that keeps the container up.
COMMAND = ("sh", "-c", f"command -v python3 >/dev/null && python3 {AGENT} {TOKEN_FILE} & exec sleep infinity")
SLACK = 10.0  # seconds on top of a command's timeout for the answer to arrive
CONNECT_TIMEOUT = 1.0  # an agent that does not accept at once is not there: use Docker's exec


def token(secret: str, container: str) -> str:
    return hmac.new(secret.encode(), f"vibebox-agent:{container}".encode(), hashlib.sha256).hexdigest()


def bundle(secret: str, container: str, uid: int, gid: int) -> bytes:
    """The tar put into a new container: the agent and its token (readable by the sandbox user)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directory = tarfile.TarInfo(DIRECTORY.lstrip("/"))
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        for name, data, mode in (
            (AGENT, SOURCE, 0o644),
            (TOKEN_FILE, token(secret, container).encode(), 0o444),  # the sandbox user reads it
        ):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, gid
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def eligible(request: ExecRequest, default_user: str) -> bool:
    return (
        request.on_output is None
        and request.control is None
        and request.user in ("", default_user)
        and len(request.stdin or b"") <= 16 * 1024 * 1024
    )


def run(address: str, secret: str, container: str, request: ExecRequest) -> ExecResult | None:
    """Runs the command through the agent; None when the agent cannot take it (fall back)."""
    started = time.monotonic()
    body = json.dumps(
        {
            "argv": list(request.argv),
            "exec_id": request.exec_id,
            "env": request.env,
            "workdir": request.workdir,
            "stdin": base64.b64encode(request.stdin).decode() if request.stdin is not None else None,
            "timeout": request.timeout,
            "output_limit": request.output_limit,
        }
    )
    connection = http.client.HTTPConnection(address, PORT, timeout=CONNECT_TIMEOUT)
    try:
        try:
            connection.connect()
        except OSError as exc:  # nothing was sent: Docker's exec can run it instead
            logger.debug("exec agent of %s unavailable: %s", container, exc)
            return None
        # From here on the command may have started: a failure is an error, never a second run.
        connection.sock.settimeout(request.timeout + SLACK)
        connection.request(
            "POST",
            "/exec",
            body=body,
            headers={"Authorization": f"Bearer {token(secret, container)}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status != 200:
        return None
    data = json.loads(payload)
    return ExecResult(
        exit_code=data["exit_code"],
        stdout=base64.b64decode(data["stdout"]),
        stderr=base64.b64decode(data["stderr"]),
        stdout_bytes=data["stdout_bytes"],
        stderr_bytes=data["stderr_bytes"],
        truncated=data["truncated"],
        timed_out=data["timed_out"],
        oom_killed=data["oom_killed"],
        duration_ms=int((time.monotonic() - started) * 1000),
    )
