"""Per-sandbox egress policies (issue 25): `network` at create, GET/PATCH …/network, the kernel's
per-sandbox chains and the egress proxy, against the real engine, iptables and proxy process.

The destinations are the test's own: an HTTP server on the host's loopback, reached through the
proxy under loopback names (`allowed.localhost`, `denied.localhost`: the proxy resolves
`*.localhost` to loopback itself), which the operator setting VIBEBOX_EGRESS_ALLOW_PRIVATE lets
the proxy reach for this test only; and an HTTP server in a network namespace the test makes on the
host (a veth pair with a private /30, allowed by the same setting for the bridge), reached
directly. No traffic leaves the machine.
"""

import contextlib
import http.server
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.audit.models import AuditEntry
from apps.marketplace.spec import validate_spec
from apps.orgs.network import effective, validate_network
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Sandbox
from apps.sandboxes.runtime import firewall
from apps.sandboxes.services.network import network_reconcile, network_resolve
from tests.conftest import sandbox_row
from tests.database import child_database_url
from tests.sandboxes.test_egress import free_port, namespace_http_server, rebuild_rules
from tests.waiting import wait_for
from vibebox import exceptions as errors

pytestmark = pytest.mark.django_db(transaction=True)  # the proxy process reads the rows

ROOT = Path(__file__).resolve().parent.parent.parent
SUBNET = ipaddress.ip_network("10.213.78.0/30")  # not test_egress.py's, so both can run at once
MARKER = "egress-policy-test-server"
NS_MARKER = "inside-the-policy-namespace"

# Run in the sandbox: an HTTP GET through the proxy the command's environment names (explicitly:
# NO_PROXY's `localhost` would send *.localhost direct, to the sandbox's own loopback).
VIA_PROXY = """
import os, sys, urllib.request, urllib.error
proxy = os.environ.get("HTTP_PROXY")
if not proxy:
    print("NO-PROXY-ENV"); sys.exit(3)
os.environ.pop("no_proxy", None); os.environ.pop("NO_PROXY", None)  # urllib bypasses the proxy by them
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
try:
    print(opener.open(sys.argv[1], timeout=10).read().decode())
except urllib.error.HTTPError as exc:
    print("HTTP", exc.code, exc.headers.get("X-VibeBox-Egress"), exc.read().decode()); sys.exit(2)
"""
# A CONNECT tunnel through the proxy, then a plain HTTP request inside it.
VIA_CONNECT = """
import os, socket, sys, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
host, port = sys.argv[1], sys.argv[2]
s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)
s.sendall(f"CONNECT {host}:{port} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n".encode())
answer = b""
while b"\\r\\n\\r\\n" not in answer:
    chunk = s.recv(4096)
    if not chunk: break
    answer += chunk
status = answer.split(b" ", 2)[1].decode() if answer else "none"
if status != "200":
    print("CONNECT", status); sys.exit(2)
s.sendall(f"GET / HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n".encode())
body = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    body += chunk
print(body.decode(errors="replace"))
"""
# Direct, no proxy.
DIRECT = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open(sys.argv[1], timeout=5).read().decode())
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{MARKER} {self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    """An HTTP server on the host's 127.0.0.1; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def namespace_server(tmp_path):
    """An HTTP server in a network namespace of the test's own, on SUBNET; yields its URL."""
    with namespace_http_server(tmp_path, name="vbxep", subnet=SUBNET, marker=NS_MARKER) as server:
        yield server["url"]


@pytest.fixture
def bridge(docker_client, templates):
    """(bridge name, gateway address) of the test instance's sandbox network."""
    rebuild_rules()  # the network exists
    network = docker_client.networks.get(f"vibebox-{django_settings.VIBEBOX_INSTANCE}")
    return network.attrs["Options"]["com.docker.network.bridge.name"], network.attrs["IPAM"]["Config"][0]["Gateway"]


@pytest.fixture
def egress(bridge, settings):
    """The egress proxy (`manage.py runegress`, a process of its own on the test database) on the
    bridge's gateway, the bridge's rules opening its port and letting the bridge reach SUBNET;
    the operator lets the proxy reach loopback (the test's servers) and SUBNET. Yields the bridge
    and the gateway."""
    name, gateway = bridge
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": child_database_url(),
        "VIBEBOX_EGRESS_ALLOW_PRIVATE": f"127.0.0.0/8,{SUBNET}",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runegress", "--host", gateway, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    saved = (settings.VIBEBOX_EGRESS_PROXY_PORT, settings.VIBEBOX_EGRESS_ALLOW_PRIVATE)
    try:

        def listening() -> bool:
            assert process.poll() is None, "the egress proxy exited"
            with contextlib.suppress(OSError), socket.create_connection((gateway, port), timeout=1):
                return True
            return False

        wait_for(listening, timeout=60, what="the egress proxy")
        settings.VIBEBOX_EGRESS_PROXY_PORT = port
        settings.VIBEBOX_EGRESS_ALLOW_PRIVATE = [str(SUBNET)]
        rebuild_rules()
        yield {"bridge": name, "gateway": gateway, "port": port}
    finally:
        process.terminate()
        process.wait(timeout=10)
        settings.VIBEBOX_EGRESS_PROXY_PORT, settings.VIBEBOX_EGRESS_ALLOW_PRIVATE = saved
        rebuild_rules()


def run(api_client, sandbox_id: str, script: str, *args: str, user: str = "", env: dict | None = None):
    body = {"command": ["python3", "-c", script, *args], "timeout": 60}
    if user:
        body["user"] = user
    if env:
        body["env"] = env
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    return data["exitCode"], data["stdout"] + data["stderr"]


def patch(api_client, sandbox_id: str, body: dict) -> dict:
    response = api_client.patch(f"/api/v1/sandboxes/{sandbox_id}/network", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


# ---- the API ----


def test_precedence_is_create_then_template_then_organization_then_platform():
    org = {"internet": False, "allow": ["a.example"]}
    template = {"allow": ["b.example"], "deny": ["10.0.0.0/8"]}
    assert effective(None, None, None) == {"internet": True, "allow": [], "deny": []}
    assert effective(org, None, None) == {"internet": False, "allow": ["a.example"], "deny": []}
    assert effective(org, template, None) == {"internet": False, "allow": ["b.example"], "deny": ["10.0.0.0/8"]}
    assert effective(org, template, {"internet": True}) == {
        "internet": True,
        "allow": ["b.example"],
        "deny": ["10.0.0.0/8"],
    }
    assert validate_network({"allow": ["API.GitHub.com.", "*.npmjs.org", "10.1.2.3/8"]}, partial=True) == {
        "allow": ["api.github.com", "*.npmjs.org", "10.0.0.0/8"]
    }


def test_network_api_owner_outsider_anonymous_and_bad_entries(api_client, outsider_client, owner, templates, client):
    sandbox = sandbox_row(owner, templates["python-3"], status="stopped")
    url = f"/api/v1/sandboxes/{sandbox.id}/network"
    response = api_client.get(url)
    assert response.status_code == 200
    assert response.json() == {"internet": True, "allow": [], "deny": [], "proxied": False}
    assert api_client.get(f"/api/v1/sandboxes/{sandbox.id}").json()["network"]["internet"] is True

    assert outsider_client.get(url).status_code == 404
    assert outsider_client.patch(url, {"internet": False}, format="json").status_code == 404
    assert client.get(url).status_code == 401
    assert client.patch(url, {"internet": False}, format="json").status_code == 401

    for body, field in (
        ({"allow": ["not a domain"]}, "network.allow"),
        ({"deny": ["10.0.0.0/33"]}, "network.deny"),
        ({"allow": ["*"]}, "network.allow"),
        ({"allow": [f"h{i}.example" for i in range(257)]}, "allow"),
        ({"internet": "no"}, "internet"),
    ):
        response = api_client.patch(url, body, format="json")
        assert response.status_code == 400, (body, response.content)
        error = response.json()["error"]
        assert error["code"] == "validation_error", error
        assert field in json.dumps(error["details"]), error
    assert api_client.patch(url, {"proxy": True}, format="json").json()["error"]["code"] == "unknown_field"
    sandbox.refresh_from_db()
    assert sandbox.network == {}  # nothing changed

    answer = patch(api_client, sandbox.id, {"internet": False, "allow": ["api.github.com", "140.82.112.0/20"]})
    assert answer == {"internet": False, "allow": ["api.github.com", "140.82.112.0/20"], "deny": [], "proxied": True}
    assert patch(api_client, sandbox.id, {"deny": ["*.example.com"]})["allow"] == ["api.github.com", "140.82.112.0/20"]
    detail = api_client.get(f"/api/v1/sandboxes/{sandbox.id}").json()
    assert detail["network"]["deny"] == ["*.example.com"] and detail["network"]["internet"] is False
    entry = AuditEntry.objects.filter(action="sandbox.network_changed", target_id=sandbox.id).order_by("seq").last()
    assert entry is not None and entry.changes["network"]["deny"] == ["*.example.com"]


def test_create_takes_the_organization_default_and_refuses_bad_entries(api_client, owner, create_sandbox):
    org = personal_org_ensure(user=owner)
    org.egress_network = {"internet": False, "allow": ["pypi.org"]}
    org.save(update_fields=["egress_network"])
    body = create_sandbox(autoStart=False, network={"deny": ["203.0.113.0/24"]})
    assert body["network"] == {"internet": False, "allow": ["pypi.org"], "deny": ["203.0.113.0/24"], "proxied": True}
    assert Sandbox.objects.get(pk=body["id"]).network["allow"] == ["pypi.org"]

    before = Sandbox.objects.count()
    error = create_sandbox(expect=400, network={"allow": ["bad entry!"]})["error"]
    assert error["code"] == "validation_error" and "network.allow" in json.dumps(error["details"])
    assert Sandbox.objects.count() == before


# ---- enforcement ----


def test_domains_through_the_proxy_allowed_reachable_denied_not(
    api_client, owner, create_sandbox, egress, loopback_server
):
    port = str(loopback_server)
    sandbox = create_sandbox(network={"internet": False, "allow": ["allowed.localhost", "*.wild.localhost"]})
    sid = sandbox["id"]
    code, output = run(api_client, sid, VIA_PROXY, f"http://allowed.localhost:{port}/")
    assert code == 0 and f"{MARKER} allowed.localhost:{port}" in output, output
    code, output = run(api_client, sid, VIA_PROXY, f"http://deep.er.wild.localhost:{port}/")
    assert code == 0 and MARKER in output, output
    code, output = run(api_client, sid, VIA_PROXY, f"http://denied.localhost:{port}/")
    assert code == 2 and "HTTP 403 denied" in output and MARKER not in output, output
    code, output = run(api_client, sid, VIA_PROXY, f"http://wild.localhost:{port}/")  # *.x is not x itself
    assert code == 2 and "HTTP 403" in output, output
    # HTTPS's way: a CONNECT tunnel.
    code, output = run(api_client, sid, VIA_CONNECT, "allowed.localhost", port)
    assert code == 0 and MARKER in output, output
    code, output = run(api_client, sid, VIA_CONNECT, "denied.localhost", port)
    assert code == 2 and "CONNECT 403" in output, output

    # internet on with a denied name: everything else passes, the name does not.
    patch(api_client, sid, {"internet": True, "allow": [], "deny": ["denied.localhost"]})
    code, output = run(api_client, sid, VIA_PROXY, f"http://allowed.localhost:{port}/")
    assert code == 0 and MARKER in output, output
    code, output = run(api_client, sid, VIA_PROXY, f"http://denied.localhost:{port}/")
    assert code == 2 and "HTTP 403" in output, output

    # The platform's policy: no proxy in the commands' environment.
    patch(api_client, sid, {"deny": []})
    code, output = run(api_client, sid, "import os; print(os.environ.get('HTTP_PROXY', 'none'))")
    assert output.strip() == "none", output


def test_cidrs_in_the_kernel_and_patch_while_running(
    api_client, owner, create_sandbox, egress, namespace_server, loopback_server
):
    sandbox = create_sandbox(network={"deny": [str(SUBNET)]})
    sid = sandbox["id"]
    chain = firewall.sandbox_chain_name(sid)
    assert any(f"-j {chain}" in line for line in firewall.sandbox_rules(egress["bridge"], sid))
    code, output = run(api_client, sid, DIRECT, namespace_server)
    assert code != 0 and NS_MARKER not in output, output

    patch(api_client, sid, {"deny": []})  # in force before the answer
    code, output = run(api_client, sid, DIRECT, namespace_server)
    assert code == 0 and NS_MARKER in output, output
    assert firewall.sandbox_rules(egress["bridge"], sid) == []  # the platform's policy: no chain

    # No internet: neither direct nor through the proxy, but to what is allowed.
    patch(api_client, sid, {"internet": False, "allow": ["allowed.localhost"]})
    code, output = run(api_client, sid, DIRECT, namespace_server)
    assert code != 0 and NS_MARKER not in output, output
    code, output = run(api_client, sid, VIA_PROXY, namespace_server)
    assert code == 2 and "HTTP 403" in output, output
    code, output = run(api_client, sid, VIA_PROXY, f"http://allowed.localhost:{loopback_server}/")
    assert code == 0 and MARKER in output, output
    # No DNS either (names are the proxy's to resolve): the host's resolvers are not let through.
    lines = firewall.sandbox_rules(egress["bridge"], sid)
    assert lines[-1].endswith("REJECT --reject-with icmp-admin-prohibited") and "--dport 53" not in "".join(lines)
    if firewall.host_resolvers():
        patch(api_client, sid, {"internet": True, "deny": ["blocked.localhost"]})  # proxied, with internet: DNS passes
        assert "--dport 53" in "".join(firewall.sandbox_rules(egress["bridge"], sid))
        patch(api_client, sid, {"internet": False, "deny": []})

    patch(api_client, sid, {"allow": [str(SUBNET)]})
    code, output = run(api_client, sid, DIRECT, namespace_server)
    assert code == 0 and NS_MARKER in output, output
    code, output = run(api_client, sid, VIA_PROXY, namespace_server)  # an allowed CIDR through the proxy too
    assert code == 0 and NS_MARKER in output, output

    # The reconcile pass puts back what a firewall reload removed.
    patch(api_client, sid, {"allow": []})
    subprocess.run(["iptables", "-w", "-F", firewall.policy_chain_name(egress["bridge"])], check=True)
    code, output = run(api_client, sid, DIRECT, namespace_server)
    assert code == 0, output  # flushed: open (what the reconcile pass is for)
    network_reconcile()
    code, output = run(api_client, sid, DIRECT, namespace_server)
    assert code != 0 and NS_MARKER not in output, output

    # Stopped: no rules for its address; started again: back, for its new address.
    assert api_client.post(f"/api/v1/sandboxes/{sid}/stop").status_code == 200
    assert not [line for line in firewall.sandbox_rules(egress["bridge"], sid) if line.endswith(f"-j {chain}")]
    assert Sandbox.objects.get(pk=sid).network_address == ""
    assert api_client.post(f"/api/v1/sandboxes/{sid}/start").status_code == 200
    code, output = run(api_client, sid, DIRECT, namespace_server)
    assert code != 0 and NS_MARKER not in output, output


def test_the_mirror_and_the_model_gateway_stay_reachable_without_internet(
    api_client, owner, create_sandbox, egress, loopback_server, settings
):
    org = personal_org_ensure(user=owner)
    org.registry_mirrors = {"pip": f"http://mirror.localhost:{loopback_server}/simple"}
    org.save(update_fields=["registry_mirrors"])
    gateway, port = egress["gateway"], free_port()
    listener = socket.socket()
    listener.bind((gateway, port))
    listener.listen()
    settings.VIBEBOX_GATEWAY_PORT = port
    try:
        rebuild_rules()
        sid = create_sandbox(network={"internet": False})["id"]
        code, output = run(api_client, sid, VIA_PROXY, f"http://mirror.localhost:{loopback_server}/simple/")
        assert code == 0 and MARKER in output, output
        code, output = run(api_client, sid, VIA_PROXY, f"http://other.localhost:{loopback_server}/")
        assert code == 2 and "HTTP 403" in output, output
        probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); print('ok')"
        code, output = run(api_client, sid, probe, gateway, str(port))
        assert code == 0 and "ok" in output, output
    finally:
        listener.close()


def test_root_in_the_sandbox_cannot_change_the_rules_or_go_around_the_proxy(
    api_client, owner, create_sandbox, egress, namespace_server
):
    sid = create_sandbox(network={"internet": False})["id"]
    rules_before = firewall.sandbox_rules(egress["bridge"], sid)
    script = """
import os, shutil, socket, subprocess
caps = int([l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1], 16)
print('uid', os.getuid(), 'net_admin', bool(caps & (1 << 12)), 'net_raw', bool(caps & (1 << 13)))
for tool in ('iptables', 'nft', 'ip'):
    if shutil.which(tool):
        args = {'iptables': ['-F'], 'nft': ['flush', 'ruleset'], 'ip': ['addr', 'add', '10.213.78.9/32', 'dev', 'eth0']}
        r = subprocess.run([tool, *args[tool]], capture_output=True)
        print(tool, 'exit', r.returncode)
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW); print('raw socket OPEN')
except OSError as exc:
    print('raw socket refused', exc.errno)
"""
    code, output = run(api_client, sid, script, user="root")
    assert "uid 0" in output and "net_admin False" in output and "net_raw False" in output, output
    assert "raw socket refused" in output, output
    for line in output.splitlines():
        if " exit " in line:
            assert not line.endswith("exit 0"), output
    assert firewall.sandbox_rules(egress["bridge"], sid) == rules_before
    # Without the proxy's variables, straight to the destination: refused by the kernel.
    code, output = run(api_client, sid, DIRECT, namespace_server, user="root", env={"HTTP_PROXY": "", "http_proxy": ""})
    assert code != 0 and NS_MARKER not in output, output


def test_a_templates_network_is_checked_and_becomes_its_sandboxes_default(owner, templates):
    org = personal_org_ensure(user=owner)
    text = 'name: egress-spec\nversion: "1.0.0"\ndescription: x\nsmoke: "true"\n'
    spec = validate_spec(text + "network: {internet: false, allow: [PyPI.org]}\n", org=org, visibility="private")
    assert spec["network"] == {"internet": False, "allow": ["pypi.org"]}
    with pytest.raises(errors.InvalidTemplateYaml) as caught:
        validate_spec(text + "network: {allow: ['no such thing']}\n", org=org, visibility="private")
    assert "network.allow" in caught.value.details["fields"]
    template = templates["python-3"]
    template.network = {"deny": ["203.0.113.0/24"]}
    org.egress_network = {"internet": False, "deny": ["198.51.100.0/24"]}
    assert network_resolve(org=org, template=template, requested={"allow": ["pypi.org"]}) == {
        "internet": False,
        "allow": ["pypi.org"],
        "deny": ["203.0.113.0/24"],
    }
