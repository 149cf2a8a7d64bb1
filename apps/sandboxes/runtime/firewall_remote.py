"""The firewall's runner for a remote node: each iptables command `firewall.py` builds is sent to
the node's relay (`sandboxd relay --firewall`, docs/sandboxd.md "The firewall agent") and run
there, on the node's host; nothing runs on this one.

One HTTPS request per command, over the mutual TLS the relay's CONNECT tunnels use
(`relay.client_context`): `POST /firewall` with `{"binary", "args", "stdin"}`, answered
`{"code", "stdout", "stderr"}`; `GET /firewall` says which binaries the node has and its
resolvers, chosen from the node's files as Docker chooses them (daemon.json's `dns`, resolv.conf,
systemd-resolved's upstream list: sandboxd/internal/relay/resolvers.go), loopback ones left out
here as for this host (firewall.usable_resolvers). Every call has a deadline, and every answer is
read with a bound.
"""

import contextlib
import fcntl
import http.client
import ipaddress
import json
import re
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from . import firewall
from .base import NodeConnection

ANSWER_LIMIT = 8 << 20  # the relay caps stdout and stderr at 1 MiB each; JSON escapes may grow them
COMMAND_SECONDS = 30  # the relay's own deadline for one command
INFO_SECONDS = 300  # how long the node's binaries and resolvers are taken as known
# A connection the relay refuses (its container being replaced: rotatenode, a prepare) or whose
# handshake fails (its credentials switching) is tried again for this long; nothing was sent.
RESTART_SECONDS = 5.0


class RelayFirewallRefused(subprocess.SubprocessError):
    """The relay refused the command or could not run it (its status and reason)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"the node's relay answered {status}: {message}")
        self.status, self.message = status, message


def runner_for_node(connection: NodeConnection, *, name: str, context: ssl.SSLContext) -> "RelayRunner":
    """The runner of a registered node: its relay on the engine's host at the connection's
    `relay_port`, trusted with the CA VibeBox minted for it and opened with VibeBox's client
    certificate (docs/nodes.md, "The relay: sandboxd on a node")."""
    host = urlsplit(connection.url).hostname or ""
    return RelayRunner((host, connection.relay_port), context=context, name=name)


class RelayRunner:
    """firewall.Runner for a node: `relay` is (host, port) of the node's relay, `context` from
    relay.client_context (the node's CA, VibeBox's client certificate), `name` the node's."""

    @property
    def model_gateway(self) -> bool:
        """The node's relay serves back links to the server's gateway and egress proxy on the
        bridge's gateway, at their ports (docs/nodes.md, "The server's services from a node"):
        those ports are open there, unless back links are off."""
        return settings.VIBEBOX_NODE_BACK_LINKS > 0

    def __init__(self, relay: tuple[str, int], *, context: ssl.SSLContext, name: str, timeout: float = 10.0):
        self.relay, self.context, self.name = relay, context, f"node {name}"
        self.timeout = timeout  # to connect and for each read; a command gets COMMAND_SECONDS more
        self._info: tuple[float, dict] | None = None
        self._info_lock = threading.Lock()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]
        self._lock_path = Path(tempfile.gettempdir()) / f"vibebox-firewall-node-{safe}.lock"

    # ---- firewall.Runner ----

    def run(self, binary: str, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        body = json.dumps({"binary": binary, "args": list(args), "stdin": stdin or ""})
        try:
            answer = self._request("POST", body, self.timeout + COMMAND_SECONDS)
        except RelayFirewallRefused as exc:
            if exc.status == 504:  # the relay killed it at its deadline, as subprocess.run's timeout would
                raise subprocess.TimeoutExpired([binary, *args], COMMAND_SECONDS, stderr=exc.message) from None
            raise
        code, stdout, stderr = answer.get("code"), answer.get("stdout", ""), answer.get("stderr", "")
        if type(code) is not int or not isinstance(stdout, str) or not isinstance(stderr, str):
            raise ConnectionError("the node's relay answered a command without an exit code and its output")
        return code, stdout, stderr

    def has(self, binary: str) -> bool:
        binaries = self._node_info().get("binaries", [])
        return isinstance(binaries, list) and binary in binaries

    def resolvers(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return firewall.usable_resolvers(self._node_info().get("resolvers", []))

    @contextlib.contextmanager
    def lock(self):
        """Serialises this host's processes' rebuilds for the node (one file per node). Servers on
        other hosts are not serialised with them: each rebuild is one iptables-restore transaction."""
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- the relay's HTTP ----

    def _node_info(self) -> dict:
        with self._info_lock:
            if self._info is None or time.monotonic() - self._info[0] > INFO_SECONDS:
                self._info = (time.monotonic(), self._request("GET", None, self.timeout))
            return self._info[1]

    def _request(self, method: str, body: str | None, timeout: float) -> dict:
        host, port = self.relay
        connection = http.client.HTTPSConnection(host, port, context=self.context, timeout=timeout)
        deadline = time.monotonic() + RESTART_SECONDS
        while True:
            try:
                connection.connect()
                break
            except (ConnectionRefusedError, ssl.SSLError):
                connection.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, "/firewall", body=body.encode() if body is not None else None, headers=headers)
            response = connection.getresponse()
            data = response.read(ANSWER_LIMIT + 1)
        except http.client.HTTPException as exc:  # not OSError: said as one, as a broken connection is
            raise ConnectionError(f"the node's relay gave no usable answer: {exc}") from None
        finally:
            connection.close()
        if len(data) > ANSWER_LIMIT:
            raise ConnectionError(f"the node's relay answered over {ANSWER_LIMIT} bytes")
        if response.status != 200:
            raise RelayFirewallRefused(response.status, data[:1024].decode("utf-8", "replace").strip())
        try:
            answer = json.loads(data)
        except ValueError:
            raise ConnectionError("the node's relay answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise ConnectionError("the node's relay answered something that is not a JSON object")
        return answer
